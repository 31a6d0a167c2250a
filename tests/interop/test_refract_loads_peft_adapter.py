"""refract loads LoRA adapters saved by PEFT (the pinned current release; get_peft_model on the
`refract model init` base, random non-zero lora_B, save_pretrained): `refract export --adapter`
gives the weights of PEFT's merge_and_unload() and `refract model forward --adapter` the PEFT
model's logits. Two adapters: (1) a target_modules list that also hits the vision tower and the
merger, with rank_pattern and alpha_pattern; (2) target_modules "all-linear" (a string) with
use_rslora. Then refract continues each adapter (`refract sft --adapter`, learning rate 0) and
saves it: PEFT must read the re-saved adapter as the same one (per-module ranks and scalings
written through rank_pattern / alpha_pattern)."""
import os

import torch
from peft import LoraConfig, PeftModel, get_peft_model

from interop_common import (THREADS, Workspace, adapter_modules, check, compare_weights, export, hf_logits,
                            load_hf, make_base, make_data, make_inputs, max_diff, peft_lora_modules, refract,
                            refract_logits, versions)

LOGITS_TOL = 1e-4
WEIGHT_TOL = 1e-6

ADAPTERS = {
    "patterns": LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.0,
        # the language model's Linears, and in the vision tower attn.qkv / attn.proj, the MLPs
        # (gate/up/down_proj) and the merger's first layer (merger.mlp.0)
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "qkv", "attn.proj",
                        "mlp.0"],
        rank_pattern={"layers.1.mlp.down_proj": 8, "blocks.0.attn.qkv": 2},
        alpha_pattern={"o_proj": 32, r"visual\.merger\.mlp\.0": 3}),
    "rslora": LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", use_rslora=True),
}


def peft_adapter(base, config, directory, seed):
    """A PEFT adapter on `base` with random non-zero lora_B (PEFT's init zeroes it, which would
    make every comparison vacuous), saved with save_pretrained."""
    torch.manual_seed(seed)  # lora_A's kaiming init, then lora_B
    model = get_peft_model(load_hf(base), config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_B." in name:
                p.normal_(0.0, 0.05)
    model.save_pretrained(directory)
    return model.eval()


print(versions())
with Workspace() as ws:
    base = make_base(ws)
    data = make_data(ws)
    inputs_path, inputs = make_inputs(ws, base, data)
    mask = inputs["attention_mask"]
    r_base = refract_logits(ws, base, inputs_path, name="base")
    for seed, (name, config) in enumerate(ADAPTERS.items()):
        print(f"-- PEFT adapter '{name}'")
        adapter = ws.path(f"peft_{name}")
        peft_model = peft_adapter(base, config, adapter, seed)
        mods = peft_lora_modules(peft_model)
        vision = sum(m.startswith("model.visual.") for m in mods)
        check(adapter_modules(adapter) == mods and vision > 0,
              f"PEFT saved {len(mods)} adapted modules ({vision} in the vision tower)")

        # refract model forward with the adapter unmerged
        peft_logits = hf_logits(peft_model, inputs)
        effect = max_diff(peft_logits, r_base, mask)
        check(effect > 1e-2, f"the adapter changes the logits (max |adapter - base| = {effect:.3g})")
        r_adapter = refract_logits(ws, base, inputs_path, adapter=adapter, name=f"adapter_{name}")
        d = max_diff(peft_logits, r_adapter, mask)
        check(d <= LOGITS_TOL,
              f"refract model forward --adapter == PEFT model logits (max diff {d:.3g} <= {LOGITS_TOL})")

        # refract export (merge) vs PEFT merge_and_unload
        merged_state = {k: v.detach().clone() for k, v in peft_model.merge_and_unload().state_dict().items()}
        exported = export(ws, base, adapter, f"merged_{name}")
        d, key = compare_weights(merged_state, exported, f"refract export of the PEFT adapter '{name}'")
        check(d <= WEIGHT_TOL,
              f"refract export == PEFT merge_and_unload (max diff {d:.3g} at {key or '-'}, <= {WEIGHT_TOL})")

        # refract continues the adapter (learning rate 0: unchanged) and saves it; PEFT reads the
        # result as the same adapter.
        out = ws.path(f"continued_{name}")
        refract("sft", "--model_name_or_path", base, "--adapter", adapter, "--use_peft",
                "--data_file_paths", os.path.join(data, "rec_in_domain.jsonl"), "--learning_rate", 0.0,
                "--max_steps", 1, "--per_device_train_batch_size", 2, "--output_dir", out, "--report_to", "none",
                "--threads", THREADS)
        resaved = os.path.join(out, "checkpoint-1")
        again = PeftModel.from_pretrained(load_hf(base), resaved).eval()
        check(peft_lora_modules(again) == mods, "PEFT loads refract's re-saved adapter on the same modules")
        again_state = {k: v.detach().clone() for k, v in again.merge_and_unload().state_dict().items()}
        d = max((again_state[k].double() - v.double()).abs().max().item() for k, v in merged_state.items())
        check(d <= WEIGHT_TOL, f"PEFT merge of refract's re-saved adapter == PEFT merge of the original "
                               f"(max diff {d:.3g} <= {WEIGHT_TOL})")
