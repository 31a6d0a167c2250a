#!/usr/bin/env bash
# Data-parallel scaling on this machine (docs/distributed.md, "Scaling"): `refract sft` and
# `refract grpo` on the `small` preset, 1 process x 2 threads against 2 processes x 1 thread
# (Gloo on loopback), the same global batch. Reports the median step time, steps/s, tokens/s,
# and for 2 processes the gradient all-reduce time per step, its share of the step and the
# bytes each rank all-reduces per step (from metrics.jsonl: time/communication,
# communication/bytes). Not a test: figures depend on the machine and its load.
#   bash bench/distributed/run.sh [build_dir] [steps]
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
STEPS=${2:-6}
R="$BUILD/refract"
W=$(mktemp -d /tmp/refract_bench_dp.XXXXXX)
trap 'rm -rf "$W"' EXIT
"$R" data synth --task rec --split in_domain --num_samples 256 --seed 1 --output "$W/data" > /dev/null
"$R" model init --preset small --tokenizer assets/demo_warm_start --output "$W/model" --seed 1 > /dev/null
COMMON=(--model "$W/model" --data_file_paths "$W/data/rec_in_domain.jsonl" --image_folders "$W/data"
        --question_template none --report_to none --logging_steps 1 --save_steps 0 --max_steps "$STEPS"
        --lr_scheduler_type constant --learning_rate 1e-5 --seed 3)
SFT=(sft --gradient_accumulation_steps 1)
GRPO=(grpo --num_generations 4 --max_completion_length 16 --reward_funcs iou format --freeze_vision_modules)

run() {  # name global_batch procs threads cmd...
  local name=$1 batch=$2 procs=$3 threads=$4; shift 4
  local out="$W/$name"
  if [ "$procs" -eq 1 ]; then
    "$R" "$@" "${COMMON[@]}" --threads "$threads" --per_device_train_batch_size "$batch" --output_dir "$out" > "$out.log" 2>&1
  else
    "$R" "$@" "${COMMON[@]}" --threads "$threads" --per_device_train_batch_size $((batch / procs)) \
      --nproc_per_node "$procs" --master_port 0 --output_dir "$out" > "$out.log" 2>&1
  fi
  python3 - "$out/metrics.jsonl" "$name" "$procs" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])][2:]  # the first two steps warm up
st = statistics.median(r["step_time"] for r in rows)
tok = [b["num_tokens"] - a["num_tokens"] for a, b in zip(rows, rows[1:])]
line = f"{sys.argv[2]:<22} step {st:7.3f} s  {1/st:6.3f} steps/s  {statistics.median(tok)/st:8.0f} tokens/s"
if int(sys.argv[3]) > 1:
    c = statistics.median(r["time/communication"] for r in rows)
    b = statistics.median(r["communication/bytes"] for r in rows)
    line += f"  all-reduce {c*1000:7.1f} ms/step ({100*c/st:4.1f} %)  {b/2**20:7.2f} MiB/step/rank"
print(line)
PY
}

echo "refract data parallel, small preset, $STEPS steps (median of steps 3..), $(nproc) cores"
run sft_1x2threads 4 1 2 "${SFT[@]}"
run sft_2x1thread 4 2 1 "${SFT[@]}"
run grpo_1x2threads 8 1 2 "${GRPO[@]}"
run grpo_2x1thread 8 2 1 "${GRPO[@]}"
