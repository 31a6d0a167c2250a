#!/usr/bin/env bash
# check_install.sh BUILD_DIR VERSION
# `cmake --install BUILD_DIR --prefix TMP` gives a refract that works from any directory: it
# finds TMP/share/refract (--version, the demo's defaults, a toy-size demo run), REFRACT_DATA_DIR
# overrides it, the installed bash completion loads, and a copy of the binary without its data
# says where it looked.
set -u
build=$1 version=$2
. "$(dirname "$0")/common.sh"
prefix=$tmp/prefix

run_ok install cmake --install "$build" --prefix "$prefix"
expect_file "$prefix/bin/refract"
expect_file "$prefix/share/refract/docs/training.md"
expect_file "$prefix/share/bash-completion/completions/refract"
check_runs_from_anywhere "$prefix/bin/refract" "$prefix/share/refract" "$version"

# The demo itself at toy size (~15 s on 1 thread): it starts from the installed warm start and
# reads the installed configs (a missing one would only be a warning).
(cd "$tmp/cwd" && run_ok demo env -u REFRACT_DATA_DIR "$prefix/bin/refract" demo --output "$tmp/cwd/demo" \
  --train_samples 16 --eval_samples 8 --rl_seconds 3 --threads 1)
expect_has "$tmp/demo" "loaded $prefix/share/refract/assets/demo_warm_start"
expect_file "$tmp/cwd/demo/summary.json"
if grep -F "not found" "$tmp/demo"; then echo "FAIL: the demo missed a file"; fail=1; fi

mkdir -p "$tmp/alt/configs"
(cd "$tmp/cwd" && REFRACT_DATA_DIR="$tmp/alt" run_ok version_env "$prefix/bin/refract" --version)
expect_has "$tmp/version_env" "data directory $tmp/alt"

run_ok completion bash -c ". '$prefix/share/bash-completion/completions/refract' && complete -p refract"
expect_has "$tmp/completion" "complete -o default -F _refract refract"

# Without share/refract next to it (and outside the build directory) the demo fails before any
# work, naming every place it looked.
mkdir -p "$tmp/lonely/bin"
cp "$prefix/bin/refract" "$tmp/lonely/bin/"
(cd "$tmp/cwd" && env -u REFRACT_DATA_DIR "$tmp/lonely/bin/refract" demo --output "$tmp/demo_out" >"$tmp/lonely_out" 2>&1)
rc=$?
if [ $rc -eq 1 ]; then echo "ok: lonely refract demo exits 1"; else echo "FAIL: lonely refract demo exited $rc"; fail=1; fi
expect_has "$tmp/lonely_out" "data directory (demo warm start, configs) not found; looked at:"
expect_has "$tmp/lonely_out" "REFRACT_DATA_DIR: not set"
expect_has "$tmp/lonely_out" "$tmp/lonely/share/refract (next to $tmp/lonely/bin/refract): no such directory"
expect_has "$tmp/lonely_out" "(source tree): not used"
if [ -e "$tmp/demo_out" ]; then echo "FAIL: the demo started work ($tmp/demo_out exists)"; fail=1; fi
exit $fail
