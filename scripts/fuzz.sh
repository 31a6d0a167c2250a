#!/usr/bin/env bash
# Builds one libFuzzer target of fuzz/ with clang and runs it for a bounded time.
#   scripts/fuzz.sh <target> [seconds=60] [extra libFuzzer flags...]
# Build dir: $FUZZ_BUILD_DIR (default build-fuzz/). Seeds: fuzz/corpus/<target>/ are copied into
# a working corpus in the build dir (the repo is never written). Crashes land in
# <build>/artifacts/<target>/; reproduce one with: <build>/<target> <crash file>.
# Exit codes: 0 clean, 77 skipped (no clang), anything else a crash or a build failure.
set -euo pipefail
target=${1:?usage: scripts/fuzz.sh <target> [seconds] [libFuzzer flags...]}
seconds=${2:-60}
shift $(( $# >= 2 ? 2 : 1 ))
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}

cxx=$(command -v clang++ || command -v clang++-14 || true)
cc=$(command -v clang || command -v clang-14 || true)
if [[ -z "$cxx" || -z "$cc" ]]; then
  echo "fuzz.sh: clang not found, skipping $target (install clang and libclang-rt-dev)" >&2
  exit 77
fi

mkdir -p "$build"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
# Several fuzz tests may run at once under ctest: serialise configure + build on a lock.
(
  flock 9
  if [[ ! -f "$build/CMakeCache.txt" ]]; then
    cmake -S "$root/fuzz" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" >/dev/null
  fi
  cmake --build "$build" --target "$target" -j2 >/dev/null
) 9>"$build/.lock"

corpus="$build/corpus/$target"
artifacts="$build/artifacts/$target"
mkdir -p "$corpus" "$artifacts"
if [[ -d "$root/fuzz/corpus/$target" ]]; then
  cp -n "$root/fuzz/corpus/$target"/* "$corpus"/ 2>/dev/null || true
fi
# libFuzzer exits 77 on a crash by default, which ctest reads as "skipped" (SKIP_RETURN_CODE
# 77, kept for "no clang"): a found crash must fail the test.
flags=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
       -error_exitcode=1 -timeout_exitcode=1 -artifact_prefix="$artifacts/")
[[ -f "$root/fuzz/dict/$target.dict" ]] && flags+=(-dict="$root/fuzz/dict/$target.dict")
echo "fuzz.sh: running $target for ${seconds}s (corpus $corpus)"
exec "$build/$target" "${flags[@]}" "$@" "$corpus"
