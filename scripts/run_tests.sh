#!/usr/bin/env bash
# Installs dependencies, builds, and runs the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The Python environment of the interop tests (tests/interop: transformers, PEFT). Optional: without
# it (no network, no disk) those tests report as skipped.
py_log=${BUILD_DIR:-build}/setup_python.log
mkdir -p "$(dirname "$py_log")"
if QUIET=1 bash scripts/setup_python.sh > "$py_log" 2>&1; then
  tail -1 "$py_log"
else
  echo "setup_python: failed (see $py_log); the interop tests will be skipped"
fi
start=$(date +%s)
bash scripts/build.sh
echo "build: $(( $(date +%s) - start )) s"
start=$(date +%s)
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j "${JOBS:-$(nproc)}"
echo "tests: $(( $(date +%s) - start )) s"
