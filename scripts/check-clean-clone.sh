#!/bin/bash
# Type-checks and optionally tests HEAD as a fresh clone would see it (node_modules borrowed).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
git -C "$src" archive HEAD | tar -x -C "$dir"
ln -s "$src/node_modules" "$dir/node_modules"
cd "$dir"
npx tsc -p tsconfig.json --noEmit && echo "clean clone: typecheck ok"
if [ "${1:-}" = test ]; then npx tap "${@:2}"; fi
rm -rf "$dir"
