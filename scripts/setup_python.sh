#!/usr/bin/env bash
# Creates the project-local Python environment .venv/ with pinned releases of torch, pycocotools,
# transformers, peft, safetensors and numpy. It serves the interoperability tests
# (tests/interop/, skipped when it is absent) and provides libtorch 2.x
# (.venv/lib/python3*/site-packages/torch) for a CUDA build.
# Idempotent: a no-op (well under a second) when .venv already holds the pinned versions.
# torch from PyPI pulls the CUDA libraries (nvidia-* wheels): ~4 GB download, ~7 GB on disk;
# pip's cache (~/.cache/pip) makes a re-install take a minute or two.
# Environment: PYTHON (interpreter to create the venv from, default python3), VENV (default
# .venv in the repository), QUIET=1 (only one summary line unless something fails), NEED_GB
# (free disk a first install must find, default 12).
set -euo pipefail
cd "$(dirname "$0")/.."

PINS=(
  torch==2.15.0
  transformers==5.25.0
  peft==0.21.2
  safetensors==0.8.0
  numpy==2.4.6
  pycocotools==2.0.11
  openai==3.63.0
)

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
QUIET=${QUIET:-0}

say() { echo "setup_python: $*"; }

# Succeeds when the venv has exactly the pinned versions (reads package metadata only, so it
# does not pay for importing torch).
pinned_present() {
  [ -x "$VENV/bin/python" ] || return 1
  "$VENV/bin/python" - "${PINS[@]}" <<'EOF' >/dev/null 2>&1
import sys
from importlib import metadata
for pin in sys.argv[1:]:
    name, version = pin.split("==")
    if metadata.version(name) != version:
        sys.exit(1)
EOF
}

if pinned_present; then
  say "$VENV has ${PINS[*]}"
  exit 0
fi

# A first install needs ~4 GB of downloads beside ~7 GB installed; pip running out of disk half
# way leaves a broken venv and an error far from the cause, so check first.
NEED_GB=${NEED_GB:-12}
venv_parent=$(dirname "$(realpath -m "$VENV")")
mkdir -p "$venv_parent"
avail_gb=$(( $(df -Pk "$venv_parent" | awk 'NR == 2 {print $4}') / 1024 / 1024 ))
if ! compgen -G "$VENV/lib/python3*/site-packages/torch" >/dev/null && [ "$avail_gb" -lt "$NEED_GB" ]; then
  say "error: $venv_parent has $avail_gb GB free; installing ${PINS[*]} needs about $NEED_GB GB (free space, or VENV=<dir elsewhere>)"
  exit 1
fi

start=$(date +%s)
if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PYTHON" -m venv --help >/dev/null 2>&1 || ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
    # Debian ships venv / ensurepip separately.
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    say "installing python3-venv"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  fi
  "$PYTHON" -m venv "$VENV"
fi

say "installing ${PINS[*]} into $VENV (torch brings the CUDA libraries: several GB on first install)"
pip_quiet=()
[ "$QUIET" = 1 ] && pip_quiet=(-q)
"$VENV/bin/python" -m pip install "${pip_quiet[@]}" --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install "${pip_quiet[@]}" --disable-pip-version-check "${PINS[@]}"

if ! pinned_present; then
  say "error: $VENV does not hold ${PINS[*]} after pip install"
  exit 1
fi
say "$VENV ready in $(( $(date +%s) - start )) s ($(du -sh "$VENV" | cut -f1))"
