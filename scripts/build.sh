#!/usr/bin/env bash
# Configures and builds refract (Release, Ninja, ccache).
#   bash scripts/build.sh                  Debian's libtorch 1.13 (CPU) -> ./build
#   LIBTORCH=wheel bash scripts/build.sh   upstream libtorch 2.x with CUDA from the torch wheel in
#                                          .venv (scripts/setup_python.sh) -> ./build-torch2
# Extra arguments go to cmake's configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
LIBTORCH=${LIBTORCH:-debian}
JOBS=${JOBS:-$(nproc)}
args=()
case "$LIBTORCH" in
  debian)
    BUILD_DIR=${BUILD_DIR:-build}
    ;;
  wheel)
    BUILD_DIR=${BUILD_DIR:-build-torch2}
    PY=${PY:-.venv/bin/python}
    [ -x "$PY" ] || { echo "build: $PY not found (run scripts/setup_python.sh)"; exit 1; }
    torch_dir=$("$PY" -c "import os, torch; print(os.path.dirname(torch.__file__))")
    # TorchConfig.cmake searches the system's paths before its own, so Debian's libtorch (if
    # installed) would win - its Caffe2 targets (libtorch_cpu 1.13) too: name the wheel's
    # package directories and libraries explicitly.
    args+=(-DTorch_DIR="$torch_dir/share/cmake/Torch" -DCaffe2_DIR="$torch_dir/share/cmake/Caffe2"
           -DTORCH_LIBRARY="$torch_dir/lib/libtorch.so" -Dc10_LIBRARY="$torch_dir/lib/libc10.so")
    if [ -x /usr/local/cuda/bin/nvcc ]; then
      args+=(-DCUDAToolkit_ROOT=/usr/local/cuda -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc)
    fi
    ;;
  *) echo "build: LIBTORCH must be debian or wheel, got '$LIBTORCH'"; exit 1 ;;
esac
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "${args[@]}" "$@" >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"
