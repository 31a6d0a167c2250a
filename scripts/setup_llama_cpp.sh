#!/usr/bin/env bash
# Creates the test-only Python environment .venv-llama-cpp/ with llama-cpp-python built from
# source (it compiles llama.cpp and ggml for this CPU). It serves the GGUF export tests
# (tests/interop/gguf_*, skipped when it is absent) and bench/llama_cpp_side_by_side.py.
# Kept apart from .venv (scripts/setup_python.sh): a package compiled from source, opt-in
# because the build takes ~15-25 min on 2 cores (scripts/run_tests.sh runs it only when
# REFRACT_LLAMA_CPP=1).
# Idempotent: a no-op when the venv already holds the pinned version.
# Environment: PYTHON (default python3), VENV (default .venv-llama-cpp in the repository),
# QUIET=1 (pip's output only on failure), JOBS (compile jobs, default nproc).
set -euo pipefail
cd "$(dirname "$0")/.."

# llama-cpp-python pins its llama.cpp commit (vendor/llama.cpp); 0.3.36 is the release used for
# the figures in docs/benchmarks.md.
PIN=llama-cpp-python==0.3.36
# What the tests read the files with besides llama.cpp: gguf-py (llama.cpp's own reader and
# reference quantizers), safetensors and numpy.
EXTRA=(gguf==0.19.0 safetensors==0.8.0 numpy==2.4.6)
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv-llama-cpp}
QUIET=${QUIET:-0}

say() { echo "setup_llama_cpp: $*"; }

pinned_present() {
  [ -x "$VENV/bin/python" ] || return 1
  "$VENV/bin/python" - "$PIN" "${EXTRA[@]}" <<'EOF' >/dev/null 2>&1
import sys
from importlib import metadata
for pin in sys.argv[1:]:
    name, version = pin.split("==")
    if metadata.version(name) != version:
        sys.exit(1)
EOF
}

if pinned_present; then
  say "$VENV has $PIN ${EXTRA[*]}"
  exit 0
fi

start=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip_quiet=()
[ "$QUIET" = 1 ] && pip_quiet=(-q)
"$VENV/bin/python" -m pip install "${pip_quiet[@]}" --disable-pip-version-check --upgrade pip

# A CPU build for this machine (GGML_NATIVE: -march=native, so AVX-512 where the CPU has it),
# OpenMP threads as llama.cpp's prebuilt CPU builds; no BLAS (ggml's own kernels, as the
# prebuilt builds); no GPU back-ends. The multimodal library (mtmd) is built too: the
# Qwen2.5-VL projector checks use it.
export CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_OPENMP=ON -DGGML_BLAS=OFF -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF"
export CMAKE_BUILD_PARALLEL_LEVEL=${JOBS:-$(nproc)}
say "building $PIN from source into $VENV (compiles llama.cpp: ~15-25 min on 2 cores)"
"$VENV/bin/python" -m pip install "${pip_quiet[@]}" --disable-pip-version-check \
  --no-binary llama-cpp-python "$PIN" "${EXTRA[@]}"

if ! pinned_present; then
  say "error: $VENV does not hold $PIN ${EXTRA[*]} after pip install"
  exit 1
fi
say "$VENV ready in $(( $(date +%s) - start )) s ($(du -sh "$VENV" | cut -f1))"
