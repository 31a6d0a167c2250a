#!/usr/bin/env python3
"""refract's rollout engine and llama.cpp side by side on the same weights: prefill and decode
tokens/s at several batch sizes, as in issue 16's table.

    .venv-llama-cpp/bin/python bench/llama_cpp_side_by_side.py [--preset small] [--batches 1,8,64]
        [--prompt_len 64] [--new_tokens 32] [--threads 2] [--reps 2] [--outtypes f32,f16]

- the model: `refract model init --preset P` with the Qwen tokenizer (tests/fixtures/tokenizer,
  151669 ids, untied lm_head), exported with `refract export --format gguf --outtype T`;
- refract: build/bench/generate/bench_generate on the same preset and vocabulary (its own random
  weights of the same shapes: speed does not depend on the values); it samples (T = 1), so its
  decode time includes the sampler over 151669 logits;
- llama.cpp: llama-cpp-python's low-level API (the library scripts/setup_llama_cpp.sh built for
  this CPU), one sequence per prompt in one unified F32 KV cache, prompts prefilled in one
  llama_decode call, then one llama_decode per step for all sequences; the next tokens are the
  argmax of the logits (numpy), timed apart: llama.cpp's figures are llama_decode alone.
Prompts are random ids below 4000, as bench_generate's. Figures are wall-clock tokens/s, the
median of --reps runs, both engines with --threads threads, one after the other in this run;
by CPU time / threads (robust to a shared machine, as bench_generate) and by wall time.
"""
import argparse
import ctypes
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Parser(argparse.ArgumentParser):
    def error(self, message):
        sys.stderr.write(f"llama_cpp_side_by_side: {message} (see --help)\n")
        sys.exit(2)


def int_list(s):
    try:
        v = [int(x) for x in s.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got '{s}'")
    if not v or min(v) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got '{s}'")
    return v


def positive_int(s):
    v = int_list(s)
    if len(v) != 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{s}'")
    return v[0]


def run_bench_generate(a):
    cmd = [a.bench_generate, "--threads", str(a.threads), "--presets", a.preset, "--batches",
           ",".join(map(str, a.batches)), "--prompt_len", str(a.prompt_len), "--new_tokens", str(a.new_tokens),
           "--reps", str(a.reps)]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    rows = {}
    # "small      8    8 |           551 (548)  68.2% |             38 (38)  11.6% | ..."
    for line in out.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)\s+(\d+)\s+\|\s+(\d+) \((\d+)\)\s+[\d.]+%\s+\|\s+(\d+) \((\d+)\)", line)
        if m and m.group(1) == a.preset:
            rows[int(m.group(2))] = {"prefill": (float(m.group(4)), float(m.group(5))),
                                     "decode": (float(m.group(6)), float(m.group(7)))}
    return rows, out


def llama_cpp_run(L, np, model, b, a, rng):
    P, N = a.prompt_len, a.new_tokens
    cp = L.llama_context_default_params()
    cp.n_ctx = b * (P + N)
    cp.n_batch = max(b * P, b)
    cp.n_ubatch = min(512, cp.n_batch)
    cp.n_seq_max = b
    cp.n_threads = a.threads
    cp.n_threads_batch = a.threads
    cp.type_k = L.GGML_TYPE_F32
    cp.type_v = L.GGML_TYPE_F32
    cp.kv_unified = True
    cp.no_perf = True
    ctx = L.llama_init_from_model(model, cp)
    if not ctx:
        raise RuntimeError("llama_init_from_model failed")
    n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
    batch = L.llama_batch_init(b * P, 0, b)
    prefill_t, decode_t = [], []
    try:
        for rep in range(a.reps + 1):  # the first run warms up
            L.llama_memory_clear(L.llama_get_memory(ctx), True)
            prompts = rng.integers(0, 4000, size=(b, P))
            n = 0
            for s in range(b):
                for j in range(P):
                    batch.token[n] = int(prompts[s, j])
                    batch.pos[n] = j
                    batch.n_seq_id[n] = 1
                    batch.seq_id[n][0] = s
                    batch.logits[n] = 1 if j == P - 1 else 0
                    n += 1
            batch.n_tokens = n
            t0, c0 = time.perf_counter(), time.process_time()
            if L.llama_decode(ctx, batch) != 0:
                raise RuntimeError("llama_decode (prefill) failed")
            L.llama_synchronize(ctx)
            t_prefill = (time.perf_counter() - t0, (time.process_time() - c0) / a.threads)
            t_decode = [0.0, 0.0]
            for step in range(N):
                logits = np.ctypeslib.as_array(L.llama_get_logits(ctx), shape=(b, n_vocab))
                nxt = logits.argmax(axis=1)
                if step == N - 1:
                    break  # N tokens chosen; the last one needs no forward
                for s in range(b):
                    batch.token[s] = int(nxt[s])
                    batch.pos[s] = P + step
                    batch.n_seq_id[s] = 1
                    batch.seq_id[s][0] = s
                    batch.logits[s] = 1
                batch.n_tokens = b
                t0, c0 = time.perf_counter(), time.process_time()
                if L.llama_decode(ctx, batch) != 0:
                    raise RuntimeError("llama_decode (decode) failed")
                L.llama_synchronize(ctx)
                t_decode[0] += time.perf_counter() - t0
                t_decode[1] += (time.process_time() - c0) / a.threads
            if rep > 0:
                prefill_t.append(t_prefill)
                decode_t.append(t_decode)
    finally:
        L.llama_batch_free(batch)
        L.llama_free(ctx)
    # (CPU time / threads, wall), as bench_generate reports
    return {"prefill": (b * P / statistics.median(t[1] for t in prefill_t), b * P / statistics.median(t[0] for t in prefill_t)),
            "decode": (b * (N - 1) / statistics.median(t[1] for t in decode_t),
                       b * (N - 1) / statistics.median(t[0] for t in decode_t))}


def main():
    ap = Parser(prog="llama_cpp_side_by_side", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--refract", default=os.path.join(SRC, "build", "refract"))
    ap.add_argument("--bench_generate", default=os.path.join(SRC, "build", "bench", "generate", "bench_generate"))
    ap.add_argument("--preset", default="small", choices=["tiny", "small"])
    ap.add_argument("--batches", type=int_list, default=[1, 8, 64])
    ap.add_argument("--prompt_len", type=positive_int, default=64)
    ap.add_argument("--new_tokens", type=positive_int, default=32)
    ap.add_argument("--threads", type=positive_int, default=2)
    ap.add_argument("--reps", type=positive_int, default=2)
    ap.add_argument("--outtypes", default="f32,f16", help="GGUF weight types for llama.cpp (f32, f16, q8_0)")
    a = ap.parse_args()
    outtypes = a.outtypes.split(",")
    if not set(outtypes) <= {"f32", "f16", "q8_0"}:
        ap.error(f"--outtypes: expected f32, f16, q8_0, got '{a.outtypes}'")
    for exe in (a.refract, a.bench_generate):
        if not os.access(exe, os.X_OK):
            ap.error(f"{exe} is not an executable (build first: bash scripts/build.sh)")
    try:
        import numpy as np
        import llama_cpp as L
    except ImportError as e:
        sys.exit(f"llama_cpp_side_by_side: {e}; run with .venv-llama-cpp/bin/python (scripts/setup_llama_cpp.sh)")

    ws = tempfile.mkdtemp(prefix="side_by_side_")
    try:
        model_dir = os.path.join(ws, a.preset)
        subprocess.run([a.refract, "model", "init", "--preset", a.preset, "--tokenizer",
                        os.path.join(SRC, "tests", "fixtures", "tokenizer"), "--output", model_dir],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        files = {}
        for t in outtypes:
            files[t] = os.path.join(ws, f"{a.preset}-{t}.gguf")
            subprocess.run([a.refract, "export", "--format", "gguf", "--outtype", t, "--model", model_dir,
                            "--output", files[t]], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        print(f"{a.preset} preset, vocab 151669, {a.prompt_len}-token prompts, {a.new_tokens} new tokens, "
              f"{a.threads} threads, fp32 activations, F32 KV caches; tok/s by CPU time / threads (by wall time), "
              f"median of {a.reps}; load average {os.getloadavg()[0]:.1f}", flush=True)
        refract_rows, refract_out = run_bench_generate(a)
        L.llama_backend_init()
        from llama_cpp._logger import set_verbose
        set_verbose(False)  # llama.cpp's loader log (llama-cpp-python routes it to a Python logger)
        rng = np.random.default_rng(0)
        llama_rows = {}
        for t in outtypes:
            mp = L.llama_model_default_params()
            # note: the AMX kernels GGML_NATIVE compiles in crash in this VM on quantised weights
            # (tests/interop/test_llama_cpp_gguf.py); F32 / F16 never use these buffer types.
            mp.use_extra_bufts = False
            model = L.llama_model_load_from_file(files[t].encode(), mp)
            if not model:
                raise RuntimeError(f"llama.cpp could not load {files[t]}")
            llama_rows[t] = {b: llama_cpp_run(L, np, model, b, a, rng) for b in a.batches}
            L.llama_model_free(model)

        head = " | ".join(f"batch {b}" for b in a.batches)
        for phase in ("decode", "prefill"):
            print(f"\n| {phase} tok/s | {head} |")
            print("|---|" + "---|" * len(a.batches))
            cell = lambda v: f"{v[0]:.0f} ({v[1]:.0f})"
            print("| refract (bench_generate, sampling included) | " +
                  " | ".join(cell(refract_rows[b][phase]) for b in a.batches) + " |")
            for t in outtypes:
                print(f"| llama.cpp, {t.upper()} weights | " + " | ".join(cell(llama_rows[t][b][phase]) for b in a.batches)
                      + " |")
            if "f32" in outtypes:
                print("| refract / llama.cpp F32 | " +
                      " | ".join(f"{refract_rows[b][phase][0] / llama_rows['f32'][b][phase][0]:.2f}x "
                                 f"({refract_rows[b][phase][1] / llama_rows['f32'][b][phase][1]:.2f}x)"
                                 for b in a.batches) + " |")
        print(f"\nllama-cpp-python {L.__version__}; bench_generate's own output:\n{refract_out}")
    finally:
        shutil.rmtree(ws, ignore_errors=True)


if __name__ == "__main__":
    main()
