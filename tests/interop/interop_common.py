"""Shared pieces of the interoperability tests: a tiny model, data and LoRA adapters made with the
refract binary, model inputs (text + images), refract / transformers / PEFT forwards, comparisons.

Run through run_interop.sh (REFRACT_BINARY set, the project's Python environment)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file

REFRACT = os.environ.get("REFRACT_BINARY", "")
THREADS = 2
torch.set_num_threads(THREADS)
import transformers  # noqa: E402
import warnings  # noqa: E402

transformers.utils.logging.disable_progress_bar()
warnings.filterwarnings("ignore", category=FutureWarning)  # deprecations inside transformers / PEFT


def versions():
    import numpy, peft, safetensors, transformers
    return (f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, "
            f"safetensors {safetensors.__version__}, numpy {numpy.__version__}")


class Workspace:
    """A temporary directory, removed at the end unless REFRACT_INTEROP_KEEP is set."""

    def __enter__(self):
        self.root = tempfile.mkdtemp(prefix="refract_interop_")
        return self

    def __exit__(self, *exc):
        if os.environ.get("REFRACT_INTEROP_KEEP"):
            print(f"kept {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.root, *parts)


def refract(*args):
    """Runs `refract args...`; on failure prints its output and raises."""
    cmd = [REFRACT, *map(str, args)]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        sys.stdout.write(r.stdout)
        raise RuntimeError(f"{' '.join(cmd)} exited with {r.returncode}")
    return r.stdout


# ---- tokenizer, base model, data, adapter ---------------------------------------------------

ADDED_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|reserved_0|>",
                "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
FIRST_ADDED = 4000  # <|endoftext|>; <|image_pad|> = 4013


def write_tokenizer(d):
    """The byte-level BPE tokenizer of tests/serve/tiny_model.h (vocab 4000 + the Qwen added
    tokens at 4000..4014), written as tokenizer.json + tokenizer_config.json."""
    os.makedirs(d, exist_ok=True)
    # GPT-2 bytes_to_unicode, written plainly: printable bytes map to themselves, the others to
    # U+0100 onwards in byte order.
    sym, n = {}, 0
    for b in range(256):
        if 33 <= b <= 126 or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF:
            sym[b] = chr(b)
        else:
            sym[b] = chr(256 + n)
            n += 1
    vocab = {sym[b]: b for b in range(256)}
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [chr(c) for c in range(ord("A"), ord("Z") + 1)] + \
            [chr(c) for c in range(ord("0"), ord("9") + 1)]
    merges, i = [], 256
    for x in chars:
        for y in chars:
            if i == FIRST_ADDED:
                break
            merges.append(f"{x} {y}")
            vocab[x + y] = i
            i += 1
    added = [{"id": FIRST_ADDED + k, "content": a, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for k, a in enumerate(ADDED_TOKENS)]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    regex = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
             "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
    tj = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
          "normalizer": {"type": "NFC"},
          "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
              {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False}, byte_level]},
          "post_processor": byte_level, "decoder": byte_level,
          "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                    "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                    "vocab": vocab, "merges": merges}}
    with open(os.path.join(d, "tokenizer.json"), "w") as f:
        json.dump(tj, f)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}, f)
    return d


def make_base(ws, seed=1, model_type="qwen2_5_vl"):
    """`refract model init --preset tiny`: a random Qwen2.5-VL or Qwen2-VL (`model_type`; vision
    depth 2, text 4 layers)."""
    tok = write_tokenizer(ws.path("tokenizer"))
    d = ws.path("base")
    refract("model", "init", "--preset", "tiny", "--model_type", model_type, "--tokenizer", tok, "--output", d,
            "--seed", seed)
    return d


def make_data(ws, n=8):
    """`refract data synth`: n shapes-world REC samples (VLM-R1 JSONL + PNG images)."""
    d = ws.path("data")
    refract("data", "synth", "--task", "rec", "--num_samples", n, "--seed", 3, "--output", d)
    return d


# Every Linear of the language model plus two vision ones (an attention block and the merger), so
# the adapter's names cover both towers.
REFRACT_TARGETS = ["all-linear", "visual.blocks.0.attn.qkv", "visual.merger.mlp.0"]


def train_adapter(ws, base, data, steps=2, extra_targets=()):
    """`refract sft --use_peft`: a LoRA adapter trained for `steps` steps with a large learning
    rate (lora_B moves well away from its zero init)."""
    out = ws.path("sft")
    refract("sft", "--model_name_or_path", base, "--data_file_paths", os.path.join(data, "rec_in_domain.jsonl"),
            "--use_peft", "--lora_r", 4, "--lora_alpha", 16, "--lora_dropout", 0.0,
            "--lora_target_modules", *REFRACT_TARGETS, *extra_targets,
            "--learning_rate", 0.05, "--lr_scheduler_type", "constant", "--max_steps", steps,
            "--per_device_train_batch_size", 2, "--output_dir", out, "--report_to", "none", "--threads", THREADS)
    return os.path.join(out, f"checkpoint-{steps}")


def export(ws, base, adapter, name, *extra):
    out = ws.path(name)
    refract("export", "--model_name_or_path", base, "--adapter", adapter, "--output", out, "--threads", THREADS,
            *extra)
    return out


# ---- inputs and forwards ----------------------------------------------------------------------

def make_inputs(ws, base, data):
    """Two chat prompts, each with one shapes image of a different size, left-padded to one length
    (as generation batches them): input_ids, attention_mask, pixel_values, image_grid_thw in a
    safetensors file, the input format of `refract model forward`."""
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(base, "tokenizer.json"))
    with open(os.path.join(data, "rec_in_domain.jsonl")) as f:
        samples = [json.loads(line) for line in f]
    # two images of different sizes
    chosen = [samples[0]]
    for s in samples[1:]:
        if (s["width"], s["height"]) != (chosen[0]["width"], chosen[0]["height"]):
            chosen.append(s)
            break
    assert len(chosen) == 2, "data synth gave images of one size only"
    seqs, pixels, grids = [], [], []
    for k, s in enumerate(chosen):
        pre = ws.path(f"image{k}.safetensors")
        refract("preprocess", "--image", os.path.join(data, s["image"]), "--output", pre)
        t = load_file(pre)
        pixels.append(t["pixel_values"])
        grids.append(t["image_grid_thw"].reshape(1, 3))
        n_image = int(t["image_grid_thw"].prod()) // 4
        question = s["conversations"][0]["value"].replace("<image>", "")
        text = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|>" +
                "<|image_pad|>" * n_image + "<|vision_end|>" + question + "<|im_end|>\n<|im_start|>assistant\n" +
                s["conversations"][1]["value"][:20 + 10 * k])
        seqs.append(tok.encode(text, add_special_tokens=False).ids)
    length = max(map(len, seqs))
    pad = FIRST_ADDED
    input_ids = torch.tensor([[pad] * (length - len(s)) + s for s in seqs], dtype=torch.int64)
    attention_mask = torch.tensor([[0] * (length - len(s)) + [1] * len(s) for s in seqs], dtype=torch.int64)
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask,
              "pixel_values": torch.cat(pixels).contiguous(), "image_grid_thw": torch.cat(grids).contiguous()}
    path = ws.path("inputs.safetensors")
    save_file(inputs, path)
    return path, inputs


def refract_logits(ws, model, inputs_path, adapter=None, name="forward"):
    """`refract model forward` logits (float32), [B, S, V]."""
    out = ws.path(f"{name}.safetensors")
    args = ["model", "forward", "--model_name_or_path", model, "--inputs", inputs_path, "--output", out,
            "--torch_dtype", "float32", "--threads", THREADS]
    if adapter:
        args += ["--adapter", adapter]
    refract(*args)
    return load_file(out)["logits"]


def load_hf(model_dir):
    """transformers' Qwen2_5_VLForConditionalGeneration (or Qwen2VLForConditionalGeneration, by
    config.json's model_type) in float32; fails on any missing or unexpected checkpoint key."""
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2VLForConditionalGeneration
    with open(os.path.join(model_dir, "config.json")) as f:
        model_type = json.load(f)["model_type"]
    cls = {"qwen2_5_vl": Qwen2_5_VLForConditionalGeneration, "qwen2_vl": Qwen2VLForConditionalGeneration}[model_type]
    try:
        m, info = cls.from_pretrained(model_dir, dtype=torch.float32, output_loading_info=True)
    except Exception as e:
        print(f"FAILED: transformers cannot load {model_dir} (written by refract): {e}")
        raise
    bad = {k: v for k, v in info.items() if v}
    assert not bad, f"transformers loading {model_dir}: {bad}"
    return m.eval()


def hf_logits(model, inputs):
    """Forward of a transformers (or PEFT-wrapped) Qwen2.5-VL. transformers 5 computes the M-RoPE
    positions only when given mm_token_type_ids (the processor's; 1 = image token): without it
    the positions silently fall back to 1-D ones."""
    image_token_id = FIRST_ADDED + ADDED_TOKENS.index("<|image_pad|>")
    with torch.no_grad():
        out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                    pixel_values=inputs["pixel_values"], image_grid_thw=inputs["image_grid_thw"],
                    mm_token_type_ids=(inputs["input_ids"] == image_token_id).int(), use_cache=False)
    return out.logits.float()


def max_diff(a, b, mask=None):
    """max |a - b| (in float64), over the positions where mask == 1 when given ([B, S])."""
    assert a.shape == b.shape, f"shapes {tuple(a.shape)} vs {tuple(b.shape)}"
    d = (a.double() - b.double()).abs()
    if mask is not None:
        d = d[mask.bool()]
    return d.max().item()


# ---- names ------------------------------------------------------------------------------------

def hf_name(name):
    """A module / parameter name in current transformers' layout, from either layout: old
    checkpoints say "model.layers.0..." and "visual.blocks.0...", transformers >= 4.52 modules
    "model.language_model.layers.0..." and "model.visual.blocks.0..."."""
    if name.startswith("visual."):
        return "model." + name
    if name.startswith("model.") and not name.startswith(("model.language_model.", "model.visual.")):
        return "model.language_model." + name[len("model."):]
    return name


def adapter_modules(adapter_dir):
    """The modules an adapter file holds lora_A / lora_B for (current transformers' names)."""
    mods = set()
    for k in load_file(os.path.join(adapter_dir, "adapter_model.safetensors")):
        k = k.replace(".default.weight", ".weight")
        for part in (".lora_A.weight", ".lora_B.weight"):
            if k.endswith(part):
                mods.add(hf_name(k[:-len(part)].removeprefix("base_model.model.")))
    return mods


def peft_lora_modules(peft_model):
    """The modules a PeftModel wrapped with a LoRA layer of adapter "default"."""
    from peft.tuners.lora import LoraLayer
    return {n.removeprefix("base_model.model.") for n, m in peft_model.named_modules()
            if isinstance(m, LoraLayer) and "default" in m.lora_A}


def checkpoint_state(model_dir):
    """All tensors of an HF-layout checkpoint directory, keys in current transformers' names."""
    out = {}
    for f in sorted(os.listdir(model_dir)):
        if f.endswith(".safetensors"):
            out.update({hf_name(k): v for k, v in load_file(os.path.join(model_dir, f)).items()})
    return out


def compare_weights(expected, actual_dir, what):
    """max |expected - checkpoint| over every tensor; the key sets must agree."""
    actual = checkpoint_state(actual_dir)
    expected = {k: v for k, v in expected.items()}
    assert set(actual) == set(expected), \
        f"{what}: keys differ: only in the checkpoint {sorted(set(actual) - set(expected))[:5]}, " \
        f"only expected {sorted(set(expected) - set(actual))[:5]}"
    worst, worst_key = 0.0, ""
    for k, v in expected.items():
        assert actual[k].dtype == v.dtype, f"{what}: {k} is {actual[k].dtype}, expected {v.dtype}"
        d = (actual[k].double() - v.double()).abs().max().item() if v.numel() else 0.0
        if d > worst:
            worst, worst_key = d, k
    return worst, worst_key


def check(cond, message):
    if not cond:
        print(f"FAILED: {message}")
        sys.exit(1)
    print(f"ok: {message}")
