"""llama.cpp (llama-cpp-python, built from source by scripts/setup_llama_cpp.sh) loads what
`refract export --format gguf` writes and computes what refract computes.

For the `tiny` and `small` presets of `refract model init` with the Qwen tokenizer
(tests/fixtures/tokenizer, 151669 ids, untied lm_head):
- the file, read with gguf-py, has the keys convert_hf_to_gguf.py writes for qwen2, and its
  tensors are the checkpoint's weights: F32 bit-exact, F16 = numpy's float16 rounding, Q8_0 =
  gguf-py's reference quantizer, byte for byte; norms and biases F32;
- llama.cpp tokenizes text (special tokens, digits, CJK, emoji, whitespace runs) to refract's ids;
- greedy decoding in llama.cpp (F32 weights, F32 KV cache) gives the completion of
  `refract infer` (greedy), and refract's teacher-forced logits (`refract model forward` on the
  prompt + llama.cpp's tokens) pick the same token at every step;
- log-probabilities of F32 / F16 / Q8_0 files against refract's float32 ones, over the full
  vocabulary at every completion position, within the tolerances below.
With --adapter the merged weights are exported (checked on the tiny preset: the F32 file equals
`refract export` (hf) of the same base + adapter).
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import shutil

import numpy as np
from safetensors.numpy import load_file, save_file
import gguf
import llama_cpp
from llama_cpp import Llama

# note: the AMX kernels that GGML_NATIVE compiles in on this CPU crash in this VM (SIGSEGV in
# ggml_backend_amx_mul_mat on the first Q8_0 matmul), so models load without the extra buffer
# types (AMX / repacked weights: only quantised types use them; F32 / F16 are unaffected).
_model_default_params = llama_cpp.llama_cpp.llama_model_default_params


def _model_params_without_extra_bufts():
    p = _model_default_params()
    p.use_extra_bufts = False
    return p


llama_cpp.llama_cpp.llama_model_default_params = _model_params_without_extra_bufts

REFRACT = os.environ["REFRACT_BINARY"]
SRC = os.environ["REFRACT_SOURCE_DIR"]
TOKENIZER = os.path.join(SRC, "tests", "fixtures", "tokenizer")
THREADS = 2
NEW_TOKENS = 24
# max |log p_llama - log p_refract| over the vocabulary and the completion positions.
# Measured 2026-12-06 (tiny / small, 2 prompts each): f32 4.1e-6 / 5.2e-6, f16 0.0029 / 0.0042,
# q8_0 0.077 / 0.113 (llama.cpp also quantises the activations to 8 bits for Q8_0 matmuls);
# means f32 7e-7, f16 6e-4, q8_0 0.016. The bounds leave ~2x (q8_0) to ~400x (f32) headroom.
TOL = {"f32": 2e-3, "f16": 0.05, "q8_0": 0.25}
# mean |delta log p| (over the same entries): a quantised file that is broken in a few rows only
# would pass the max test on a lucky prompt; the mean catches systematic errors.
TOL_MEAN = {"f32": 2e-4, "f16": 5e-3, "q8_0": 0.03}

failures = 0


def check(cond, message):
    global failures
    print(("ok: " if cond else "FAILED: ") + message, flush=True)
    if not cond:
        failures += 1


LOG_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+\] \[\w+\] ")


def refract(*args):
    """Runs refract; returns its standard output without the log lines (spdlog writes to stdout)."""
    cmd = [REFRACT, *map(str, args)]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.stdout.write(r.stdout + r.stderr)
        raise RuntimeError(f"{' '.join(cmd)} exited with {r.returncode}")
    return "\n".join(line for line in r.stdout.split("\n") if not LOG_LINE.match(line))


def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def field_value(reader, key):
    f = reader.fields[key]
    if f.types[0] == gguf.GGUFValueType.ARRAY:
        if f.types[1] == gguf.GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
        return [f.parts[i][0].item() for i in f.data]
    if f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode("utf-8")
    return f.parts[f.data[0]][0].item()


HF_TO_GGUF = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
              "lm_head.weight": "output.weight"}
LAYER = {"input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
         "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.weight": "attn_k.weight",
         "self_attn.k_proj.bias": "attn_k.bias", "self_attn.v_proj.weight": "attn_v.weight",
         "self_attn.v_proj.bias": "attn_v.bias", "self_attn.o_proj.weight": "attn_output.weight",
         "post_attention_layernorm.weight": "ffn_norm.weight", "mlp.gate_proj.weight": "ffn_gate.weight",
         "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight"}


def gguf_name(hf):
    if hf in HF_TO_GGUF:
        return HF_TO_GGUF[hf]
    _, _, i, rest = hf.split(".", 3)
    return f"blk.{i}.{LAYER[rest]}"


def check_file(path, model_dir, outtype):
    """Metadata and tensor bytes of one exported file against the checkpoint and the tokenizer."""
    r = gguf.GGUFReader(path)
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    tj = json.load(open(os.path.join(TOKENIZER, "tokenizer.json")))
    tc = json.load(open(os.path.join(TOKENIZER, "tokenizer_config.json")))
    want = {
        "general.architecture": "qwen2", "general.type": "model",
        "general.file_type": {"f32": 0, "f16": 1, "q8_0": 7}[outtype], "general.quantization_version": 2,
        "qwen2.block_count": cfg["num_hidden_layers"], "qwen2.context_length": cfg["max_position_embeddings"],
        "qwen2.embedding_length": cfg["hidden_size"], "qwen2.feed_forward_length": cfg["intermediate_size"],
        "qwen2.attention.head_count": cfg["num_attention_heads"],
        "qwen2.attention.head_count_kv": cfg["num_key_value_heads"],
        "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "qwen2",
        # gguf-py SpecialVocab: eos / pad from tokenizer_config.json, bos from config.json
        "tokenizer.ggml.eos_token_id": 151645, "tokenizer.ggml.padding_token_id": 151643,
        "tokenizer.ggml.bos_token_id": cfg["bos_token_id"], "tokenizer.ggml.add_bos_token": False,
        "tokenizer.ggml.add_eos_token": False, "tokenizer.chat_template": tc["chat_template"],
    }
    bad = {k: (field_value(r, k) if k in r.fields else "(absent)", v) for k, v in want.items()
           if k not in r.fields or field_value(r, k) != v}
    check(not bad, f"{os.path.basename(path)}: metadata as convert_hf_to_gguf.py writes it {bad if bad else ''}")
    check(abs(field_value(r, "qwen2.rope.freq_base") - cfg["rope_theta"]) < 1e-3 * cfg["rope_theta"]
          and abs(field_value(r, "qwen2.attention.layer_norm_rms_epsilon") - cfg["rms_norm_eps"]) < 1e-9,
          "rope theta and rms eps")
    # Tokens, types and merges as convert_hf_to_gguf.py derives them from tokenizer.json.
    n_vocab = cfg["vocab_size"]
    tokens = [f"[PAD{i}]" for i in range(n_vocab)]
    types = [5] * n_vocab
    for t, i in tj["model"]["vocab"].items():
        tokens[i], types[i] = t, 1
    for a in tj["added_tokens"]:
        c = a["content"]
        tokens[a["id"]] = c
        types[a["id"]] = 3 if a["special"] or (c.startswith("<|") and c.endswith("|>")) else 4
    merges = [" ".join("".join(chr(ord(ch) + 256) if ch == " " else ch for ch in p) for p in m)
              if isinstance(m, list) else m for m in tj["model"]["merges"]]
    check(field_value(r, "tokenizer.ggml.tokens") == tokens, f"{n_vocab} tokens")
    check(field_value(r, "tokenizer.ggml.token_type") == types,
          f"token types ({types.count(3)} control, {types.count(4)} user-defined)")
    check(field_value(r, "tokenizer.ggml.merges") == merges, f"{len(merges)} merges")

    weights = load_file(os.path.join(model_dir, "model.safetensors"))
    lm = {k: v for k, v in weights.items() if not k.startswith("visual.")}
    tensors = {t.name: t for t in r.tensors}
    check(sorted(tensors) == sorted(gguf_name(k) for k in lm),
          f"{len(tensors)} tensors = the language model's (vision tower not exported)")
    mismatched = []
    for k, w in lm.items():
        t = tensors[gguf_name(k)]
        w = w.astype(np.float32)
        is_2d_weight = w.ndim == 2
        qtype = {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
                 "q8_0": gguf.GGMLQuantizationType.Q8_0}[outtype] if is_2d_weight else gguf.GGMLQuantizationType.F32
        if t.tensor_type != qtype:
            mismatched.append(f"{t.name}: {t.tensor_type.name} != {qtype.name}")
            continue
        expect = gguf.quants.quantize(w, qtype)  # gguf-py's reference conversion
        if not np.array_equal(np.asarray(t.data).view(np.uint8).reshape(-1), expect.view(np.uint8).reshape(-1)):
            mismatched.append(t.name)
        if list(t.shape) != list(reversed(w.shape)):
            mismatched.append(f"{t.name} shape {list(t.shape)}")
    check(not mismatched, f"every tensor's bytes = gguf-py's {outtype} conversion of the weights {mismatched[:5]}")


def check_adapter(ws, model_dir):
    """--adapter: the exported weights are W + (alpha / r) B A (PEFT's merge), computed here in numpy."""
    rng = np.random.default_rng(5)
    weights = load_file(os.path.join(model_dir, "model.safetensors"))
    r, alpha = 4, 8.0
    targets = {"model.layers.1.self_attn.q_proj": "model.language_model.layers.1.self_attn.q_proj",
               "model.layers.2.mlp.down_proj": "model.language_model.layers.2.mlp.down_proj",
               "lm_head": "lm_head"}
    tensors, expect = {}, {}
    for ours, peft in targets.items():
        w = weights[ours + ".weight"].astype(np.float32)
        a = rng.normal(0, 0.1, (r, w.shape[1])).astype(np.float32)
        b = rng.normal(0, 0.1, (w.shape[0], r)).astype(np.float32)
        tensors[f"base_model.model.{peft}.lora_A.weight"] = a
        tensors[f"base_model.model.{peft}.lora_B.weight"] = b
        expect[gguf_name(ours + ".weight")] = w + (alpha / r) * (b.astype(np.float64) @ a.astype(np.float64))
    expect["blk.0.attn_q.weight"] = weights["model.layers.0.self_attn.q_proj.weight"].astype(np.float64)  # not adapted
    adapter = os.path.join(ws, "adapter")
    os.makedirs(adapter)
    save_file(tensors, os.path.join(adapter, "adapter_model.safetensors"))
    with open(os.path.join(adapter, "adapter_config.json"), "w") as f:
        json.dump({"peft_type": "LORA", "r": r, "lora_alpha": alpha, "lora_dropout": 0.0,
                   "target_modules": ["q_proj", "down_proj", "lm_head"]}, f)
    out = os.path.join(ws, "adapted-f32.gguf")
    refract("export", "--format", "gguf", "--outtype", "f32", "--model", model_dir, "--adapter", adapter,
            "--output", out, "--threads", THREADS)
    got = {t.name: np.asarray(t.data, dtype=np.float64) for t in gguf.GGUFReader(out).tensors}
    d = max(np.abs(got[k] - v).max() for k, v in expect.items())
    moved = np.abs(expect["output.weight"] - weights["lm_head.weight"]).max()
    check(d <= 1e-5 and moved > 1e-2, f"--adapter: exported = W + (alpha/r) B A (max diff {d:.3g}; the merge "
          f"moves the lm_head by up to {moved:.3g})")


def open_llama(path):
    return Llama(model_path=path, n_ctx=512, n_batch=512, n_threads=THREADS, n_threads_batch=THREADS,
                 logits_all=True, verbose=False, type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)


def llama_greedy(llm, prompt_ids, n, stop_ids):
    llm.reset()
    llm.eval(prompt_ids)
    out = []
    for _ in range(n):
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(tok)
        if tok in stop_ids:
            break
        llm.eval([tok])
    return out


def llama_logprobs(llm, ids, start):
    """log-softmax of llama.cpp's logits at positions start-1 .. len(ids)-2 (predicting ids[start:])."""
    llm.reset()
    llm.eval(ids)
    return log_softmax(np.array(llm.scores[start - 1:len(ids) - 1], dtype=np.float32))


def refract_logprobs(ws, model_dir, ids, start):
    inp = os.path.join(ws, "inputs.safetensors")
    out = os.path.join(ws, "forward.safetensors")
    save_file({"input_ids": np.array([ids], dtype=np.int64)}, inp)
    refract("model", "forward", "--model", model_dir, "--inputs", inp, "--output", out, "--threads", THREADS)
    logits = load_file(out)["logits"][0]
    return log_softmax(logits[start - 1:len(ids) - 1])


def chat_prompt(user):
    # What `refract infer` builds (Qwen's template, default system message, generation prompt).
    return (f"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
            "<|im_start|>assistant\n")


def refract_tokenize(ws, texts):
    inp, out = os.path.join(ws, "tok_in.jsonl"), os.path.join(ws, "tok_out.jsonl")
    with open(inp, "w") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    refract("tokenize", "--tokenizer", TOKENIZER, "--input", inp, "--output", out)
    return [json.loads(line)["ids"] for line in open(out)]


TEXTS = ["Hello world! 12345 tokens, 3.14159 and   spaces\n\nnew lines",
         "<|im_start|>user\nWhere is the red circle?<|im_end|>",
         "中文分词测试，日本語のテキスト、한국어 😀🚀 émigré naïve café",
         "def f(x):\n\treturn x**2  # comment\r\n"]
PROMPTS = ["Describe the picture in one sentence.", "Count the blue squares: 1, 2, 3"]


def main():
    print(f"llama-cpp-python {llama_cpp.__version__}, numpy {np.__version__}", flush=True)
    ws = tempfile.mkdtemp(prefix="refract_gguf_")
    try:
        for preset in ["tiny", "small"]:
            model_dir = os.path.join(ws, preset)
            refract("model", "init", "--preset", preset, "--tokenizer", TOKENIZER, "--output", model_dir, "--seed", 1)
            files = {}
            for outtype in ["f32", "f16", "q8_0"]:
                files[outtype] = os.path.join(ws, f"{preset}-{outtype}.gguf")
                refract("export", "--format", "gguf", "--outtype", outtype, "--model", model_dir,
                        "--output", files[outtype], "--threads", THREADS)
                check_file(files[outtype], model_dir, outtype)

            llm = open_llama(files["f32"])
            if preset == "tiny":
                ours = refract_tokenize(ws, TEXTS)
                theirs = [llm.tokenize(t.encode("utf-8"), add_bos=False, special=True) for t in TEXTS]
                for t, a, b in zip(TEXTS, ours, theirs):
                    check(a == b, f"llama.cpp tokenizes {t[:24]!r}... to refract's {len(a)} ids"
                          + ("" if a == b else f" (refract {a[:12]}, llama.cpp {b[:12]})"))
            stop = {151645, 151643}
            for p in PROMPTS:
                prompt_ids = llm.tokenize(chat_prompt(p).encode("utf-8"), add_bos=False, special=True)
                greedy = llama_greedy(llm, prompt_ids, NEW_TOKENS, stop)
                text = refract("infer", "--model", model_dir, "--prompt", p, "--max_new_tokens", len(greedy),
                               "--threads", THREADS).rstrip("\n")
                llama_text = llm.detokenize([t for t in greedy if t not in stop]).decode("utf-8", errors="replace")
                llama_text = llama_text.rstrip("\n")  # refract infer ends its output with one newline
                check(text == llama_text, f"{preset}: `refract infer` (greedy, KV cache) = llama.cpp's greedy "
                      f"{len(greedy)} tokens on {p[:20]!r}" + ("" if text == llama_text else
                                                               f"\n  refract:   {text!r}\n  llama.cpp: {llama_text!r}"))
                ids = prompt_ids + greedy
                start = len(prompt_ids)
                ref = refract_logprobs(ws, model_dir, ids, start)
                ref_greedy = [int(i) for i in ref.argmax(axis=-1)]
                check(ref_greedy == greedy, f"{preset}: refract's argmax = llama.cpp's token at all {len(greedy)} "
                      f"steps (teacher-forced)")
                for outtype in ["f32", "f16", "q8_0"]:
                    m = llm if outtype == "f32" else open_llama(files[outtype])
                    d = np.abs(llama_logprobs(m, ids, start) - ref)
                    check(d.max() <= TOL[outtype] and d.mean() <= TOL_MEAN[outtype],
                          f"{preset} {outtype}: max |d log p| {d.max():.3g} <= {TOL[outtype]}, "
                          f"mean {d.mean():.3g} <= {TOL_MEAN[outtype]} ({d.shape[0]} positions x {d.shape[1]} ids)")
                    if m is not llm:
                        m.close()
            llm.close()

            if preset == "tiny":
                check_adapter(ws, model_dir)
    finally:
        if os.environ.get("REFRACT_INTEROP_KEEP"):
            print(f"kept {ws}")
        else:
            shutil.rmtree(ws, ignore_errors=True)
    if failures:
        print(f"{failures} check(s) failed")
        sys.exit(1)


main()
