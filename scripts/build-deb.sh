#!/bin/bash
# Builds the Debian packages snf-cyclades-gtools and snf-dispatcher.
#
#   scripts/build-deb.sh [--reuse-node-modules] [OUTPUT_DIR]     (default OUTPUT_DIR: var/deb)
#
# The sources are copied to OUTPUT_DIR/build/, where `npm ci` installs the dependencies from the
# committed lockfile (the only step that may use the network); then `dpkg-buildpackage -us -uc -b`
# builds both packages without network access (in a network namespace of its own when `unshare`
# allows). With --reuse-node-modules the working tree's node_modules, which `npm ci` made from the
# same lockfile, is copied instead of running `npm ci` again (the test suite does this). The .deb
# files end up in OUTPUT_DIR, whose absolute path is the last line printed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
reuse=no
out=""
for arg in "$@"; do
  case "$arg" in
    --reuse-node-modules) reuse=yes ;;
    -h | --help) sed -n '2,11s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) echo "build-deb: unknown option $arg" >&2; exit 2 ;;
    *) out=$arg ;;
  esac
done
out=$(realpath -m "${out:-$root/var/deb}")

for tool in dpkg-buildpackage dh help2man node npm; do
  command -v "$tool" >/dev/null || { echo "build-deb: $tool is missing (apt-get install debhelper help2man; see scripts/provision.sh)" >&2; exit 1; }
done

version=$(cd "$root" && dpkg-parsechangelog -SVersion)
build="$out/build/snf-cyclades-gtools-$version"
rm -rf "$out/build"
mkdir -p "$build"
rm -f "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo

# The sources the build uses (what git tracks, less tests and benchmarks).
(cd "$root" && cp -a package.json package-lock.json tsconfig.json README.md src systemd man debian "$build/")
(cd "$build/debian" && rm -rf .debhelper stage files ./*.substvars ./*.debhelper.log snf-cyclades-gtools snf-dispatcher tmp)
# tsconfig.json also names test/ and bench/, which are not copied; only src/ is compiled.

if [ "$reuse" = yes ]; then
  [ -f "$root/node_modules/.package-lock.json" ] || { echo "build-deb: $root/node_modules is missing: run npm ci" >&2; exit 1; }
  # The contents, also when node_modules is a symbolic link (as in scripts/check-clean-clone.sh).
  mkdir "$build/node_modules"
  cp -a "$root/node_modules/." "$build/node_modules/"
else
  (cd "$build" && npm ci --no-audit --no-fund --loglevel=error)
fi

offline=()
if [ "$(id -u)" = 0 ] && unshare --net true 2>/dev/null; then
  offline=(unshare --net)
fi
(cd "$build" && "${offline[@]}" dpkg-buildpackage -us -uc -b)

mv "$out/build"/*.deb "$out/build"/*.changes "$out/build"/*.buildinfo "$out/"
rm -rf "$out/build"
ls -1 "$out"/*.deb >&2
echo "$out"
