#!/usr/bin/env bash
# check_package.sh BUILD_DIR VERSION
# cpack builds refract_VERSION_ARCH.deb into a temporary directory; its contents, its Depends
# (the package of every library refract links, plus OpenBLAS) and a stripped binary are checked
# with dpkg-deb and apt-get -s, then it is unpacked into a throw-away root whose refract, run from
# an unrelated directory, finds the root's share/refract. Skipped (77) without cpack or dpkg-deb.
set -u
build=$1 version=$2
. "$(dirname "$0")/common.sh"
for tool in cpack dpkg-deb dpkg readelf; do
  command -v $tool >/dev/null || { echo "skipped: no $tool"; exit 77; }
done

# A .deb depends on Debian packages: it is built from Debian's libtorch (LIBTORCH=debian). A
# build against the PyPI wheel's libtorch (the CUDA build) has nothing apt could install.
libtorch=$(ldd "$build/refract" | awk '$1 ~ /^libtorch_cpu[.]so/ {print $3; exit}')
if [ -n "$libtorch" ] && ! dpkg -S "$(readlink -f "$libtorch")" >/dev/null 2>&1; then
  echo "skipped: refract links $libtorch, which no Debian package owns (a .deb needs LIBTORCH=debian)"
  exit 77
fi

start=$(date +%s)
run_ok cpack cpack --config "$build/CPackConfig.cmake" -B "$tmp/pkg"
seconds=$(($(date +%s) - start))
echo "cpack took ${seconds} s"
[ "$seconds" -le 60 ] || echo "NOTE: packaging took more than 60 s"
deb=$tmp/pkg/refract_${version}_$(dpkg --print-architecture).deb
expect_file "$deb"
[ -e "$deb" ] || exit 1
echo "package: $(basename "$deb"), $(du -k "$deb" | cut -f1) KiB"

dpkg-deb -c "$deb" >"$tmp/contents"
for f in ./usr/bin/refract ./usr/share/refract/assets/demo_warm_start/config.json \
         ./usr/share/refract/assets/demo_warm_start/model.safetensors ./usr/share/refract/configs/demo_sft.yaml \
         ./usr/share/refract/configs/demo_grpo.yaml ./usr/share/refract/docs/training.md \
         ./usr/share/bash-completion/completions/refract; do
  expect_has "$tmp/contents" " $f"
done

dpkg-deb -f "$deb" Package Version Architecture Depends >"$tmp/control"
cat "$tmp/control"
expect_has "$tmp/control" "Package: refract"
expect_has "$tmp/control" "Version: $version"
depends=$(sed -n 's/^Depends: //p' "$tmp/control" | tr ',' '\n' | sed 's/^ *//; s/ .*//')
printf '%s\n' $depends >"$tmp/depends"
expect_has "$tmp/depends" libopenblas0-openmp
# Every library refract links (NEEDED) must come from a package the .deb depends on, by name or
# by a name it provides (libspdlog1.10 provides libspdlog1.10-fmt9, which the shlibs file names).
for lib in $(readelf -d "$build/refract" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p'); do
  path=$(ldd "$build/refract" | awk -v l="$lib" '$1 == l { print $3 }')
  owner=$(dpkg -S "$path" 2>/dev/null || dpkg -S "$(readlink -f "$path")" 2>/dev/null)
  owner=${owner%%:*}
  if [ -z "$owner" ]; then
    echo "FAIL: no Debian package owns $lib ($path)"; fail=1
  elif names=$(printf '%s\n' "$owner" $(dpkg-query -W -f='${Provides}' "$owner" | tr ',' '\n' | sed 's/ .*//')) &&
       dep=$(grep -Fx -- "$names" "$tmp/depends" | head -1) && [ -n "$dep" ]; then
    echo "ok: $lib -> $owner (Depends: $dep)"
  else
    echo "FAIL: $lib comes from $owner, which Depends lacks"; fail=1
  fi
done

# apt's resolver accepts it here (a simulation: nothing is installed).
if command -v apt-get >/dev/null; then
  apt-get install -s "$deb" >"$tmp/apt" 2>&1
  expect_has "$tmp/apt" "Inst refract ($version"
fi

dpkg-deb -x "$deb" "$tmp/root"
if readelf -S "$tmp/root/usr/bin/refract" | grep -q '\.symtab'; then
  echo "FAIL: the packaged binary is not stripped"; fail=1
fi
check_runs_from_anywhere "$tmp/root/usr/bin/refract" "$tmp/root/usr/share/refract" "$version"
exit $fail
