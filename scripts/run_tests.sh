#!/usr/bin/env bash
# Installs dependencies, builds, and runs the whole test suite (what CI runs), once per libtorch:
#   debian  Debian's libtorch 1.13 (CPU)                          -> ./build
#   wheel   upstream libtorch 2.x with CUDA from the torch wheel   -> ./build-torch2
#           (compiled and linked against CUDA; its tests run on REFRACT_TEST_DEVICE, default cpu)
# Both by default (CI builds and tests both); REFRACT_BUILDS=debian (or wheel) runs one.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILDS=${REFRACT_BUILDS:-debian wheel}
bash scripts/setup.sh
# The Python environment: the interop tests (tests/interop: transformers, PEFT, pycocotools) and
# the wheel's libtorch. Without it (no network, no disk) the interop tests report as skipped and
# the wheel build cannot run, which is then an error.
mkdir -p build
py_log=build/setup_python.log
if QUIET=1 bash scripts/setup_python.sh > "$py_log" 2>&1; then
  tail -1 "$py_log"
else
  echo "setup_python: failed (see $py_log); the interop tests will be skipped. Its last lines:"
  tail -n 15 "$py_log" | sed 's/^/  | /'
  case " $BUILDS " in
    *" wheel "*) echo "run_tests: the wheel build needs .venv (REFRACT_BUILDS=debian skips it)"; exit 1 ;;
  esac
fi
# llama.cpp for the GGUF export test (tests/interop/test_llama_cpp_gguf.py): opt-in, because
# building llama-cpp-python from source takes ~9 min on 2 cores (more than CI's budget allows
# for one test); REFRACT_LLAMA_CPP=1 builds it (once: later runs find it), else it is skipped.
if [ "${REFRACT_LLAMA_CPP:-0}" = 1 ]; then
  llama_log=build/setup_llama_cpp.log
  if QUIET=1 bash scripts/setup_llama_cpp.sh > "$llama_log" 2>&1; then
    tail -1 "$llama_log"
  else
    echo "setup_llama_cpp: failed (see $llama_log); the llama.cpp test will be skipped"
  fi
fi
failed=()
for libtorch in $BUILDS; do
  case "$libtorch" in
    debian) dir=build ;;
    wheel) dir=build-torch2 ;;
    *) echo "run_tests: unknown build '$libtorch' (debian | wheel)"; exit 1 ;;
  esac
  start=$(date +%s)
  LIBTORCH=$libtorch BUILD_DIR=$dir bash scripts/build.sh
  echo "build ($libtorch): $(( $(date +%s) - start )) s"
  start=$(date +%s)
  ctest --test-dir "$dir" --output-on-failure -j "${JOBS:-$(nproc)}" || failed+=("$libtorch")
  echo "tests ($libtorch): $(( $(date +%s) - start )) s"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "run_tests: tests failed with: ${failed[*]}"
  exit 1
fi
