#!/usr/bin/env python3
"""bench_grpo_step: one GRPO step of the demo recipe, timed and split, against the PyTorch + HF
transformers figure recorded in bench/reference_figures.json ("grpo_step_pytorch_hf").

The recipe is configs/demo_grpo.yaml from the shipped warm start (assets/demo_warm_start, the
tiny model, vision frozen): 4 prompts x 8 samples, up to 48 new tokens (max_completion_length;
completions stop at eos, so a step generates at most 32 x 48 tokens), IoU + format rewards, on
shapes-world samples made by `refract data synth`. The split comes from refract's own
metrics.jsonl (time/generation, time/old_ref_logps, time/rewards, time/forward_backward,
time/optimizer), logged every step; the first --warmup steps are not counted.

    bench/train/bench_grpo_step.py [--refract build/refract] [--steps 10] [--warmup 2] [--threads 2]

Standard library only (the refract binary does the work). Bad flags: one line, exit code 2.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def positive_int(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{s}'")
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{s}'")
    return v


class Parser(argparse.ArgumentParser):
    def error(self, message):
        sys.stderr.write(f"bench_grpo_step: {message} (see --help)\n")
        sys.exit(2)


def main():
    ap = Parser(prog="bench_grpo_step", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--refract", default=os.path.join(SRC, "build", "refract"), help="the refract binary")
    ap.add_argument("--steps", type=positive_int, default=10, help="timed GRPO steps (median reported)")
    ap.add_argument("--warmup", type=int, default=2, help="first steps not counted")
    ap.add_argument("--threads", type=positive_int, default=2, help="CPU threads")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    if a.warmup < 0:
        ap.error("--warmup: expected a non-negative integer")
    if not os.access(a.refract, os.X_OK):
        ap.error(f"--refract: {a.refract} is not an executable")

    ws = tempfile.mkdtemp(prefix="bench_grpo_step_")
    try:
        run = lambda *args: subprocess.run([a.refract, *map(str, args)], check=True, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.PIPE, text=True)
        data = os.path.join(ws, "data")
        # The demo's training distribution (annotated boxes, box_noise 4); 4 prompts a step.
        run("data", "synth", "--task", "rec", "--split", "in_domain", "--num_samples", 4 * (a.steps + a.warmup),
            "--seed", 0, "--box_noise", 4, "--output", data)
        jsonl = os.path.join(data, "rec_in_domain.jsonl")
        out = os.path.join(ws, "run")
        t0 = time.time()
        run("grpo", "--config", os.path.join(SRC, "configs", "demo_grpo.yaml"),
            "--model", os.path.join(SRC, "assets", "demo_warm_start"), "--data_file_paths", jsonl,
            "--output_dir", out, "--max_steps", a.steps + a.warmup,
            "--logging_steps", 1, "--save_steps", 0, "--report_to", "none", "--log_completions=false",
            "--threads", a.threads)
        wall = time.time() - t0
        rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
        rows = [r for r in rows if "time/generation" in r][a.warmup:]
        if not rows:
            sys.exit("bench_grpo_step: metrics.jsonl has no timed step after the warm-up")
    except subprocess.CalledProcessError as e:
        sys.stderr.write(e.stderr or "")
        sys.exit(f"bench_grpo_step: {' '.join(map(str, e.cmd))} exited with {e.returncode}")
    finally:
        if a.keep:
            print(f"kept {ws}")
        else:
            shutil.rmtree(ws, ignore_errors=True)

    parts = ["time/generation", "time/old_ref_logps", "time/rewards", "time/forward_backward", "time/optimizer"]
    med = {p: statistics.median(r.get(p, 0.0) for r in rows) for p in parts}
    step = statistics.median(sum(r.get(p, 0.0) for p in parts) for r in rows)
    tokens = statistics.median(r.get("num_tokens", 0) for r in rows) if "num_tokens" in rows[0] else None
    print(f"GRPO step, demo recipe (configs/demo_grpo.yaml: 4 prompts x 8 samples, max 48 new tokens, tiny model, "
          f"vision frozen), threads {a.threads}; median of {len(rows)} steps after {a.warmup} warm-up "
          f"(whole run {wall:.1f} s wall; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: the times "
          "are wall times, so a loaded machine inflates them)")
    for p in parts:
        print(f"  {p:24s} {med[p]:7.3f} s")
    print(f"  {'step (sum)':24s} {step:7.3f} s")
    if "completions/mean_length" in rows[0]:
        print(f"  mean completion length  {statistics.median(r['completions/mean_length'] for r in rows):7.1f} tokens")
    try:
        ref = json.load(open(os.path.join(SRC, "bench", "reference_figures.json")))["grpo_step_pytorch_hf"]
        print(f"PyTorch + HF transformers (reference, {ref['tool']}; bench/reference_figures.json): "
              f"{ref['value']} s a step ({ref['split']}) -> refract is {ref['value'] / step:.1f}x faster")
    except (OSError, KeyError, ValueError) as e:
        print(f"warning: reference figure 'grpo_step_pytorch_hf' unavailable: {e}", file=sys.stderr)


if __name__ == "__main__":
    main()
