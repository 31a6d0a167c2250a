#!/usr/bin/env bash
# check_bench_cli.sh BINARY FLAG BAD_VALUE [FLAG BAD_VALUE ...]
# A benchmark's command line, without running the benchmark: --help exits 0 and lists every
# FLAG; each FLAG BAD_VALUE, an unknown flag and an old-style positional argument each exit 2
# with one line on stderr naming the offending argument. Exit 77 (skipped) when BINARY is not built.
set -u
bin=$1
shift
if [ ! -x "$bin" ]; then
  echo "skipped: $bin is not built (cmake --build build --target $(basename "$bin"))"
  exit 77
fi
name=$(basename "$bin")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

"$bin" --help >"$tmp/help" 2>"$tmp/err"
rc=$?
if [ $rc -ne 0 ]; then
  echo "FAIL: $name --help exited $rc"; cat "$tmp/help" "$tmp/err"; fail=1
fi

# expect_usage_error WORD ARGS...: exit code 2, a single stderr line containing WORD, no stdout
# (so no benchmark work started).
expect_usage_error() {
  local word=$1
  shift
  "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$? lines
  lines=$(wc -l <"$tmp/err")
  if [ $rc -ne 2 ] || [ "$lines" -ne 1 ] || ! grep -qF -- "$word" "$tmp/err" || [ -s "$tmp/out" ]; then
    echo "FAIL: $name $* -> exit $rc, expected 2 and one stderr line naming $word; stderr:"
    cat "$tmp/err"
    fail=1
  else
    echo "ok: $name $* -> $(cat "$tmp/err")"
  fi
}

while [ $# -ge 2 ]; do
  grep -qF -- "$1" "$tmp/help" || { echo "FAIL: $name --help does not list $1"; fail=1; }
  expect_usage_error "$1" "$1" "$2"
  shift 2
done
expect_usage_error --no_such_flag --no_such_flag 1
expect_usage_error 3 3
exit $fail
