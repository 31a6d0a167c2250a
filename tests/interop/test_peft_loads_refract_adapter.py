"""PEFT (the pinned current release) loads a LoRA adapter trained and saved by refract
(`refract sft --use_peft`): PeftModel.from_pretrained on the base takes every tensor of it, its
adapter_config.json `target_modules` makes PEFT adapt exactly the modules refract adapted (no
vision module refract left alone), the PEFT model gives refract's logits, and merge_and_unload()
gives the weights of `refract export` (float32, and bfloat16 as the same rounding)."""
import os
import sys

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from safetensors.torch import load_file

from interop_common import (Workspace, adapter_modules, check, compare_weights, export, hf_logits, load_hf,
                            make_base, make_data, make_inputs, max_diff, peft_lora_modules, refract_logits,
                            train_adapter, versions)

LOGITS_TOL = 1e-4
WEIGHT_TOL = 1e-6

# Argument: the model_type (qwen2_5_vl, the default, or qwen2_vl, whose adapter also targets
# Qwen2-VL's vision MLP by its name "mlp.fc1").
MODEL_TYPE = sys.argv[1] if len(sys.argv) > 1 else "qwen2_5_vl"

print(versions(), "model_type", MODEL_TYPE)
with Workspace() as ws:
    base = make_base(ws, model_type=MODEL_TYPE)
    data = make_data(ws)
    adapter = train_adapter(ws, base, data, extra_targets=["mlp.fc1"] if MODEL_TYPE == "qwen2_vl" else [])
    inputs_path, inputs = make_inputs(ws, base, data)
    mask = inputs["attention_mask"]
    refract_mods = adapter_modules(adapter)
    print(f"refract adapted {len(refract_mods)} modules, "
          f"{sum(m.startswith('model.visual.') for m in refract_mods)} of them in the vision tower")

    # target_modules alone (no tensors): PEFT adapts exactly refract's modules.
    config = LoraConfig.from_pretrained(adapter)
    targeted = peft_lora_modules(get_peft_model(load_hf(base), config))
    check(targeted == refract_mods,
          f"get_peft_model(LoraConfig.from_pretrained(adapter)) adapts exactly refract's {len(refract_mods)} modules"
          + ("" if targeted == refract_mods else
             f": extra {sorted(targeted - refract_mods)[:4]}, missing {sorted(refract_mods - targeted)[:4]}"))

    # PeftModel.from_pretrained: same modules, and every tensor of the file loaded as written.
    peft_model = PeftModel.from_pretrained(load_hf(base), adapter).eval()
    check(peft_lora_modules(peft_model) == refract_mods, "PeftModel.from_pretrained wraps the same modules")
    state = peft_model.state_dict()
    written = load_file(os.path.join(adapter, "adapter_model.safetensors"))
    worst = 0.0
    for key, t in written.items():
        peft_key = key.replace(".lora_A.weight", ".lora_A.default.weight").replace(".lora_B.weight",
                                                                                  ".lora_B.default.weight")
        assert peft_key in state, f"PEFT has no parameter {peft_key} for the adapter tensor {key}"
        worst = max(worst, (state[peft_key].double() - t.double()).abs().max().item())
    check(worst == 0.0, f"PEFT holds the {len(written)} adapter tensors exactly as refract wrote them")
    scalings = {m.scaling["default"] for m in peft_model.modules() if isinstance(m, LoraLayer)}
    check(scalings == {config.lora_alpha / config.r}, f"PEFT scaling = lora_alpha / r ({scalings})")

    r_adapter = refract_logits(ws, base, inputs_path, adapter=adapter, name="adapter")
    d = max_diff(hf_logits(peft_model, inputs), r_adapter, mask)
    check(d <= LOGITS_TOL, f"PEFT model logits == refract base + adapter (max diff {d:.3g} <= {LOGITS_TOL})")

    merged = peft_model.merge_and_unload()
    merged_state = {k: v.detach().clone() for k, v in merged.state_dict().items()}
    exported = export(ws, base, adapter, "merged")
    d, key = compare_weights(merged_state, exported, "refract export vs PEFT merge_and_unload")
    check(d <= WEIGHT_TOL, f"refract export weights == PEFT merge_and_unload (max diff {d:.3g} at {key or '-'}, "
                           f"<= {WEIGHT_TOL})")
    d = max_diff(hf_logits(merged, inputs), refract_logits(ws, exported, inputs_path, name="merged"), mask)
    check(d <= LOGITS_TOL, f"PEFT merged model logits == refract export logits (max diff {d:.3g} <= {LOGITS_TOL})")

    # bfloat16 export: refract merges in float32 and rounds once, as PEFT's float32 merge cast.
    exported_bf16 = export(ws, base, adapter, "merged_bf16", "--torch_dtype", "bfloat16")
    d, key = compare_weights({k: v.to(torch.bfloat16) for k, v in merged_state.items()}, exported_bf16,
                             "bfloat16 export")
    check(d == 0.0, f"refract bfloat16 export == PEFT float32 merge cast to bfloat16 (max diff {d:.3g})")
