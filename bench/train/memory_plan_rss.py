#!/usr/bin/env python3
"""The memory plan (`refract grpo|sft --dry_run`) against measured peak RSS on CPU.

For the tiny and small presets (random weights, the demo tokenizer) and the shapes world with
224x224 images, each case runs `--dry_run` for the plan, then a few training steps in a child
process whose peak RSS (getrusage ru_maxrss of the child) is measured. The plan's length
limits are set to the data's real lengths (read from `refract data check`), so that the plan's
upper bounds are the sizes the run really has.

The plan does not count the runtime itself (libtorch's code and static data, OpenMP / OpenBLAS
thread buffers, the allocator). That baseline is measured here too, two ways: a process that
only loads libtorch (`refract --version`), and one that also opens the tiny model and generates
one token for one image (`refract infer`: BLAS buffers, thread pools, a few MB of weights). The
comparison is
    estimate + baseline  vs  measured peak RSS         (what a user's `top` shows)
    estimate             vs  measured - baseline       (what the plan claims to count)

Usage: python3 bench/train/memory_plan_rss.py [--build build] [--presets tiny,small] [--keep DIR]
Standard library only. Not a test: it takes minutes (the small preset trains a few steps).
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_rss(cmd, log, env=None):
    """Runs cmd, returns (exit code, peak RSS in bytes of that child, seconds)."""
    t0 = time.time()
    with open(log, "w") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
        _, status, ru = os.wait4(p.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return code, ru.ru_maxrss * 1024, time.time() - t0


def check_output(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def longest(refract, data_dir, tokenizer, key):
    """The data's longest prompt (key max_prompt_length) or prompt + response (max_length), from
    `refract data check` run with a limit of 1 token: it reports every sample with its length."""
    out = subprocess.run([refract, "data", "check", "--data_file_paths", data_dir + "/rec_in_domain.jsonl",
                          "--image_folders", data_dir, "--question_template", "none", "--tokenizer_path",
                          tokenizer, "--on_bad_sample", "skip", "--" + key, "1"],
                         capture_output=True, text=True).stdout
    pattern = r"prompt is (\d+) tokens" if key == "max_prompt_length" else r"(\d+) tokens, longer than max_length"
    lengths = [int(x) for x in re.findall(pattern, out)]
    if not lengths:
        sys.exit("could not read %s lengths from `refract data check`:\n%s" % (key, out))
    return max(lengths)


def plan_bytes(text):
    m = re.search(r"peak per rank: .*\(([\d,]+) bytes\)", text)
    if not m:
        sys.exit("no peak in the plan:\n" + text)
    return int(m.group(1).replace(",", ""))


def mib(b):
    return b / (1024.0 * 1024.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--presets", default="tiny,small")
    ap.add_argument("--keep", default="", help="work directory to keep (default: a temporary one)")
    ap.add_argument("--only", default="", help="run only the cases whose '<preset> <name>' matches this regex")
    ap.add_argument("--allocators", default="default,fixed",
                    help="default (glibc), fixed (MALLOC_MMAP_THRESHOLD_=65536), or both")
    args = ap.parse_args()
    refract = os.path.join(args.build, "refract")
    work = args.keep or tempfile.mkdtemp(prefix="refract_memplan_")
    os.makedirs(work, exist_ok=True)
    tok = os.path.join(ROOT, "assets", "demo_warm_start")
    data = os.path.join(work, "data")
    if not os.path.exists(data + "/rec_in_domain.jsonl"):
        check_output([refract, "data", "synth", "--num_samples", "64", "--seed", "1", "--output", data,
                      "--min_image_size", "224", "--max_image_size", "224"])
    prompt_len = longest(refract, data, tok, "max_prompt_length")
    seq_len = longest(refract, data, tok, "max_length")

    # Runtime baselines.
    _, rss_version, _ = run_rss([refract, "--version"], os.path.join(work, "version.log"))
    print("libtorch loaded (`refract --version`): peak RSS %.1f MiB" % mib(rss_version))

    print("data: 224x224 images (64 image tokens), longest prompt %d tokens, prompt + response %d" % (prompt_len, seq_len))
    rows = []
    for preset in args.presets.split(","):
        model = os.path.join(work, "model_" + preset)
        if not os.path.exists(model + "/config.json"):
            check_output([refract, "model", "init", "--preset", preset, "--tokenizer", tok, "--output", model,
                          "--seed", "1"])
        if preset == "tiny":
            images = os.path.join(data, "images", "rec_in_domain")
            image = os.path.join(images, sorted(f for f in os.listdir(images) if f.endswith(".png"))[0])
            _, rss_infer, _ = run_rss([refract, "infer", "--model", model, "--image", image,
                                       "--prompt", "Where is the red circle?", "--max_new_tokens", "1",
                                       "--threads", "2"], os.path.join(work, "infer.log"))
            print("libtorch + one tiny-model forward (`refract infer`, 1 token): peak RSS %.1f MiB" % mib(rss_infer))
        common = ["--model", model, "--data_file_paths", data + "/rec_in_domain.jsonl", "--image_folders", data,
                  "--question_template", "none", "--threads", "2", "--report_to", "none", "--save_steps", "0",
                  "--max_pixels", str(224 * 224), "--max_prompt_length", str(prompt_len)]
        # At least 2 steps: AdamW's state is allocated by the first optimizer step, after that
        # step's forward / backward peak; the plan is the steady state that follows.
        grpo_steps = "2"
        sft_steps = "3" if preset == "tiny" else "2"
        cases = [
            ("sft, vision frozen", "sft", ["--per_device_train_batch_size", "16", "--freeze_vision_modules",
                                           "--max_length", str(seq_len), "--max_steps", sft_steps]),
            ("sft, full", "sft", ["--per_device_train_batch_size", "8", "--max_length", str(seq_len),
                                  "--max_steps", sft_steps]),
            ("sft, LoRA r=8", "sft", ["--per_device_train_batch_size", "16", "--use_peft",
                                      "--max_length", str(seq_len), "--max_steps", sft_steps]),
            ("grpo, vision frozen", "grpo", ["--per_device_train_batch_size", "32", "--num_generations", "8",
                                             "--max_completion_length", "48", "--reward_funcs", "iou", "format",
                                             "--freeze_vision_modules", "--max_steps", grpo_steps]),
            ("grpo, full, beta 0.04", "grpo", ["--per_device_train_batch_size", "16", "--num_generations", "8",
                                               "--max_completion_length", "48", "--reward_funcs", "iou", "format",
                                               "--beta", "0.04", "--max_steps", grpo_steps]),
            # The memory features (the trainer's gradient_checkpointing and bf16).
            ("sft, frozen, checkpointing", "sft", ["--per_device_train_batch_size", "16", "--freeze_vision_modules",
                                                   "--max_length", str(seq_len), "--max_steps", sft_steps,
                                                   "--gradient_checkpointing"]),
            ("grpo, frozen, checkpointing", "grpo", ["--per_device_train_batch_size", "32", "--num_generations", "8",
                                                     "--max_completion_length", "48", "--reward_funcs", "iou", "format",
                                                     "--freeze_vision_modules", "--max_steps", grpo_steps,
                                                     "--gradient_checkpointing"]),
            ("sft, frozen, bf16", "sft", ["--per_device_train_batch_size", "16", "--freeze_vision_modules",
                                          "--max_length", str(seq_len), "--max_steps", sft_steps, "--bf16"]),
        ]
        if preset != "tiny":  # the small preset: fewer cases (minutes each on 2 cores)
            cases = [c for c in cases if "LoRA" not in c[0] and "bf16" not in c[0] and "grpo, frozen, check" not in c[0]]
        for name, trainer, extra in cases:
            if args.only and not re.search(args.only, preset + " " + name):
                continue
            base = os.path.join(work, "%s_%s_%s" % (preset, trainer, re.sub(r"\W+", "_", name)))
            cmd = [refract, trainer] + common + extra
            plan = check_output(cmd + ["--output_dir", base, "--dry_run"])
            with open(base + ".plan.txt", "w") as f:
                f.write(plan)
            est = plan_bytes(plan)
            for alloc in args.allocators.split(","):
                env = dict(os.environ)
                if alloc == "fixed":
                    env["MALLOC_MMAP_THRESHOLD_"] = "65536"
                out = base + "_" + alloc
                shutil.rmtree(out, ignore_errors=True)
                code, rss, secs = run_rss(cmd + ["--output_dir", out], out + ".log", env)
                if code != 0:
                    sys.exit("%s failed (exit %d), see %s.log" % (" ".join(cmd), code, out))
                rows.append((preset, name, alloc, est, rss, secs))
                print("%-5s %-22s %-7s plan %8.1f MiB | measured %8.1f MiB, minus libtorch %8.1f MiB | "
                      "(plan + libtorch) / measured %.2f, plan / (measured - libtorch) %.2f  [%.0f s]" %
                      (preset, name, alloc, mib(est), mib(rss), mib(rss - rss_version), (est + rss_version) / rss,
                       est / max(1, rss - rss_version), secs))
                sys.stdout.flush()
    print("\ncommand per case: `refract <trainer> ... --dry_run` for the plan, the same without it for the run;"
          " plans and logs in " + work)


if __name__ == "__main__":
    main()
