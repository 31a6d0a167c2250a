#!/usr/bin/env bash
# The demo's tuning protocol: every choice is made on the validation splits (their own seeds),
# never on the held-out test splits the demo reports. This script sweeps the GRPO learning
# rate: one `refract demo --eval_split validation` per value, each with a copy of
# configs/demo_grpo.yaml whose learning_rate is replaced, then prints the validation table.
# GRPO is bounded by GRPO_STEPS (about the demo's 240 s on an idle 2-core machine) instead of
# wall time, so the comparison does not depend on what else the machine is doing.
#   bash scripts/tune_demo.sh [OUT_DIR] [SEED] [LR ...]     (defaults: tune_output 0 2.5e-5 5e-5 1e-4)
#   GRPO_STEPS=200 REFRACT=./build/refract
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-tune_output}
SEED=${2:-0}
shift $(( $# > 2 ? 2 : $# ))
LRS=("$@")
[ ${#LRS[@]} -gt 0 ] || LRS=(2.5e-5 5e-5 1e-4)
REFRACT=${REFRACT:-./build/refract}
GRPO_STEPS=${GRPO_STEPS:-200}
mkdir -p "$OUT"
for lr in "${LRS[@]}"; do
  cfg="$OUT/configs_lr$lr"
  mkdir -p "$cfg"
  cp configs/demo_sft.yaml configs/demo_sft_annotated.yaml "$cfg/"
  sed -E "s/^learning_rate:.*/learning_rate: $lr/; s/^max_steps:.*/max_steps: $GRPO_STEPS/" configs/demo_grpo.yaml \
    > "$cfg/demo_grpo.yaml"
  grep -q "^learning_rate: $lr\$" "$cfg/demo_grpo.yaml" || { echo "tune_demo: could not set learning_rate"; exit 1; }
  "$REFRACT" demo --eval_split validation --seed "$SEED" --configs_dir "$cfg" --output "$OUT/lr$lr" --rl_seconds 1e9 \
    > "$OUT/lr$lr.log" 2>&1
done
echo "validation splits, seed $SEED (greedy Acc@0.5 in-domain / out-of-domain)"
for lr in "${LRS[@]}"; do
  python3 - "$OUT/lr$lr/summary.json" "$lr" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
f = lambda m: f"{100 * s[m]['in_domain']['acc50']:.1f} / {100 * s[m]['out_of_domain']['acc50']:.1f}"
print(f"lr {sys.argv[2]:>7}: start {f('sft_start')}, grpo {f('grpo')} ({s['grpo_steps']} steps), "
      f"sft_continued {f('sft_continued')}")
PY
done
