# Helpers of the package tests (sourced). Each check prints ok/FAIL; `fail` ends non-zero.
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# expect_has FILE TEXT: FILE contains TEXT (a fixed string).
expect_has() {
  if grep -qF -- "$2" "$1"; then
    echo "ok: $(basename "$1") has $2"
  else
    echo "FAIL: $(basename "$1") lacks $2; it reads:"
    sed 's/^/  | /' "$1" | head -40
    fail=1
  fi
}

# expect_file PATH: PATH exists.
expect_file() {
  if [ -e "$1" ]; then echo "ok: $1"; else echo "FAIL: missing $1"; fail=1; fi
}

# run_ok NAME CMD...: CMD exits 0; stdout+stderr in $tmp/NAME.
run_ok() {
  local name=$1
  shift
  if "$@" >"$tmp/$name" 2>&1; then
    echo "ok: $* (exit 0)"
  else
    echo "FAIL: $* exited $?; output:"
    sed 's/^/  | /' "$tmp/$name" | head -40
    fail=1
  fi
}

# check_runs_from_anywhere BIN DATA_DIR VERSION: BIN, run from an unrelated directory without
# REFRACT_DATA_DIR, reports DATA_DIR as its data directory and defaults the demo to the warm
# start and configs in it.
check_runs_from_anywhere() {
  local bin=$1 data=$2 version=$3
  mkdir -p "$tmp/cwd"
  (cd "$tmp/cwd" && run_ok version env -u REFRACT_DATA_DIR "$bin" --version)
  expect_has "$tmp/version" "refract $version (git "
  expect_has "$tmp/version" "libtorch "
  expect_has "$tmp/version" "data directory $data"
  (cd "$tmp/cwd" && run_ok demo_help env -u REFRACT_DATA_DIR "$bin" demo --help)
  expect_has "$tmp/demo_help" "(default \"$data/assets/demo_warm_start\")"
  expect_has "$tmp/demo_help" "(default \"$data/configs\")"
  expect_file "$data/assets/demo_warm_start/config.json"
  expect_file "$data/configs/demo_grpo.yaml"
}
