#!/usr/bin/env bash
# Runs a llama.cpp interoperability test (a Python script in this directory) with the test-only
# environment of scripts/setup_llama_cpp.sh (llama-cpp-python built from source, gguf-py,
# safetensors, numpy): $REFRACT_LLAMA_CPP_PYTHON if set, else <source>/.venv-llama-cpp/bin/python.
# Exit code 77 (ctest SKIP_RETURN_CODE) when that Python or one of its packages is absent.
# Usage: run_llama_cpp.sh <source dir> <refract binary> <script.py>
set -euo pipefail
src=$1
refract=$2
script=$3
py=${REFRACT_LLAMA_CPP_PYTHON:-$src/.venv-llama-cpp/bin/python}
if [ ! -x "$py" ]; then
  echo "SKIPPED: the llama.cpp tests need llama-cpp-python built from source;"
  echo "  $py does not exist: run 'bash scripts/setup_llama_cpp.sh' (~20 min on 2 cores) or set REFRACT_LLAMA_CPP_PYTHON."
  exit 77
fi
if ! err=$("$py" -c 'import llama_cpp, gguf, numpy, safetensors.numpy' 2>&1); then
  echo "SKIPPED: $py lacks a package of the llama.cpp tests (run 'bash scripts/setup_llama_cpp.sh'):"
  echo "$err" | tail -1
  exit 77
fi
[ -x "$refract" ] || { echo "refract binary $refract not found"; exit 1; }
export REFRACT_BINARY=$refract REFRACT_SOURCE_DIR=$src PYTHONDONTWRITEBYTECODE=1
exec "$py" "$src/tests/interop/$script"
