#!/usr/bin/env bash
# Every variant of bench_train_step in its own process (peak RSS is per process), one table.
#   bash bench/model/train_step.sh [BUILD_DIR] [extra bench_train_step flags, e.g. --preset tiny]
set -euo pipefail
build=${1:-build}
shift || true
bin="$build/bench/model/bench_train_step"
[ -x "$bin" ] || { echo "train_step.sh: $bin not built (cmake --build $build --target bench_train_step)"; exit 1; }
first=1
for v in fp32 ckpt bf16 bf16+ckpt; do
  out=$("$bin" --variant "$v" "$@")
  if [ $first = 1 ]; then echo "$out" | sed -n 1,2p; first=0; fi
  echo "$out" | sed -n 3p
done
