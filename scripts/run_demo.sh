#!/usr/bin/env bash
# Installs dependencies, builds, and runs the embedded demo (GRPO on the shapes world).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
./build/refract demo --output "${DEMO_OUTPUT:-demo_output}" "$@"
