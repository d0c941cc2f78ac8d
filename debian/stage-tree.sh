#!/bin/sh
# Lays out one program tree for a binary package, from what `npm ci` and `tsc` left in the source tree,
# without the network:
#   debian/stage-tree.sh <stage-dir> <program dirs under dist/src> [-- <dependencies to leave out>]
# <stage-dir> gets package.json (name, version, "type": "module"), src/common and src/<program>/
# (compiled JavaScript only), and node_modules: a copy of the source tree's, pruned by npm to the
# production dependencies the lockfile pins (less the ones left out), with docs, tests, type
# declarations and build leftovers removed.
set -eu

stage=$(realpath -m "$1")
shift
programs=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do programs="$programs $1"; shift; done
[ $# -gt 0 ] && shift
drop="$*"

rm -rf "$stage"
mkdir -p "$stage/src"

# Dependencies: prune a copy (no download, no install script runs; native modules stay as built).
cp package.json package-lock.json "$stage/"
# node_modules/. : the contents, also when node_modules is a symbolic link (never prune through one).
mkdir "$stage/node_modules"
cp -a node_modules/. "$stage/node_modules/"
DROP="$drop" node -e '
  const fs = require("fs");
  const file = process.argv[1];
  const pkg = JSON.parse(fs.readFileSync(file, "utf8"));
  for (const d of (process.env.DROP || "").split(/\s+/).filter(Boolean)) delete pkg.dependencies[d];
  fs.writeFileSync(file, JSON.stringify(pkg, null, 2));
' "$stage/package.json"
(cd "$stage" && npm prune --omit=dev --offline --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
rm -f "$stage/package-lock.json" "$stage/node_modules/.package-lock.json"
rm -rf "$stage/node_modules/.bin"

# What the programs need of package.json at run time: the ESM marker and the version they print.
node -e '
  const fs = require("fs");
  const src = JSON.parse(fs.readFileSync("package.json", "utf8"));
  const out = { name: src.name, version: src.version, description: src.description, license: src.license, private: true, type: "module" };
  fs.writeFileSync(process.argv[1], JSON.stringify(out, null, 2) + "\n");
' "$stage/package.json"

for p in common $programs; do
  mkdir -p "$stage/src/$p"
  (cd "dist/src/$p" && find . -name '*.js' -print0 | tar -cf - --null -T -) | tar -xf - -C "$stage/src/$p"
done
find "$stage/src" -name main.js -exec chmod 0755 {} +

# Not needed at run time.
nm="$stage/node_modules"
find "$nm" -depth -type d \( -name test -o -name tests -o -name __tests__ -o -name example -o -name examples \
  -o -name docs -o -name doc -o -name .github -o -name .husky -o -name benchmark -o -name benchmarks -o -name coverage \) -exec rm -rf {} +
find "$nm" -type f \( -name '*.md' -o -name '*.markdown' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' \
  -o -name '*.map' -o -name '*.ts' -o -name '.npmignore' -o -name '.eslintrc*' -o -name '.prettierrc*' \
  -o -name '.travis.yml' -o -name '.editorconfig' -o -name '.nycrc*' -o -name 'tsconfig*.json' -o -name '*.tsbuildinfo' \
  -o -name 'Makefile' -o -name '*.html' -o -name '*.gyp' -o -name '*.gypi' -o -name '.gitattributes' -o -name '.jshintrc' \) -delete
# better-sqlite3 needs only its compiled module: not the SQLite sources, objects and test extension.
bs="$nm/better-sqlite3"
if [ -d "$bs" ]; then
  rm -rf "$bs/deps" "$bs/src" "$bs/build/Release/obj" "$bs/build/Release/obj.target" "$bs/build/Release/.deps" \
    "$bs/build/Release/sqlite3.a" "$bs/build/Release/test_extension.node" "$bs/build/deps" "$bs/build/"*.mk \
    "$bs/build/"*Makefile "$bs/build/config.gypi" "$bs/build/node_gyp_bins" "$bs/build/Release/.forge-meta"
fi
find "$nm" -depth -type d -empty -delete
# Plain files, readable by all; executables keep their bit only where they are run as programs.
find "$stage" -type f -exec chmod go-w,a+r {} +
