"""transformers (Qwen2_5_VLForConditionalGeneration, the pinned current release) loads what refract
writes - a `refract model init` model and the `refract export` of it with a refract-trained LoRA
adapter - with no missing or unexpected key, and gives refract's logits (`refract model forward`)
on a left-padded batch of two prompts with an image each. Argument: the model_type (qwen2_5_vl,
the default, or qwen2_vl: Qwen2VLForConditionalGeneration)."""
import sys

from interop_common import (Workspace, check, export, hf_logits, load_hf, make_base, make_data, make_inputs,
                            max_diff, refract_logits, train_adapter, versions)

TOL = 1e-4

MODEL_TYPE = sys.argv[1] if len(sys.argv) > 1 else "qwen2_5_vl"

print(versions(), "model_type", MODEL_TYPE)
with Workspace() as ws:
    base = make_base(ws, model_type=MODEL_TYPE)
    data = make_data(ws)
    adapter = train_adapter(ws, base, data)
    merged = export(ws, base, adapter, "merged")
    inputs_path, inputs = make_inputs(ws, base, data)
    mask = inputs["attention_mask"]
    print(f"inputs: input_ids {tuple(inputs['input_ids'].shape)}, image_grid_thw {inputs['image_grid_thw'].tolist()}")

    r_base = refract_logits(ws, base, inputs_path, name="base")
    r_merged = refract_logits(ws, merged, inputs_path, name="merged")
    r_adapter = refract_logits(ws, base, inputs_path, adapter=adapter, name="adapter")
    effect = max_diff(r_merged, r_base, mask)
    check(effect > 1e-2, f"the adapter changes refract's logits (max |merged - base| = {effect:.3g})")
    d = max_diff(r_merged, r_adapter, mask)
    check(d <= TOL, f"refract: merged export == base + adapter (max diff {d:.3g})")

    d = max_diff(hf_logits(load_hf(base), inputs), r_base, mask)
    check(d <= TOL, f"transformers == refract on the `model init` base (max diff {d:.3g} <= {TOL})")
    d = max_diff(hf_logits(load_hf(merged), inputs), r_merged, mask)
    check(d <= TOL, f"transformers == refract on the `refract export` output (max diff {d:.3g} <= {TOL})")
