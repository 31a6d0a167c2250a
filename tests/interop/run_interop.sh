#!/usr/bin/env bash
# Runs one interoperability test (a Python script in this directory) with the project's Python
# environment: $REFRACT_PYTHON if set, else <source>/.venv/bin/python (scripts/setup_python.sh).
# Exit code 77 (ctest SKIP_RETURN_CODE) when that Python or one of its packages is absent.
# Usage: run_interop.sh <source dir> <refract binary> <script.py> [script arguments]
set -euo pipefail
src=$1
refract=$2
script=$3
py=${REFRACT_PYTHON:-$src/.venv/bin/python}
if [ ! -x "$py" ]; then
  echo "SKIPPED: interop tests need a Python environment with torch, transformers and peft;"
  echo "  $py does not exist: run 'bash scripts/setup_python.sh' or set REFRACT_PYTHON."
  exit 77
fi
if ! err=$("$py" -c 'import numpy, safetensors, torch, transformers, peft, pycocotools' 2>&1); then
  echo "SKIPPED: $py lacks a package of the interop tests (run 'bash scripts/setup_python.sh'):"
  echo "$err" | tail -1
  exit 77
fi
[ -x "$refract" ] || { echo "refract binary $refract not found"; exit 1; }
export REFRACT_BINARY=$refract PYTHONDONTWRITEBYTECODE=1
exec "$py" "$src/tests/interop/$script" "${@:4}"
