#!/usr/bin/env bash
# The dashboard's JavaScript from npm, at the versions package-lock.json pins (with their
# integrity hashes), copied minified into the Python package. The copies are committed, so a
# Python-only install and CI need no npm; run this only to change a version:
#   edit package.json, then: bash tools/ui-vendor/fetch.sh --update
set -euo pipefail
cd "$(dirname "$0")"
if [ "${1:-}" = "--update" ]; then
    npm install --package-lock-only --ignore-scripts
fi
npm ci --ignore-scripts --no-audit --no-fund
dst=../../src/cortex/control/ui/static/vendor
mkdir -p "$dst"
cp node_modules/htmx.org/dist/htmx.min.js "$dst/htmx.min.js"
cp node_modules/htmx-ext-sse/dist/sse.min.js "$dst/htmx-ext-sse.min.js"
cp node_modules/uplot/dist/uPlot.iife.min.js "$dst/uPlot.iife.min.js"
cp node_modules/uplot/dist/uPlot.min.css "$dst/uPlot.min.css"
# Versions and licences beside the files (all three are MIT or 0BSD-style permissive).
node -e '
const lock = require("./package-lock.json").packages;
const out = ["# Vendored by tools/ui-vendor/fetch.sh from npm (package-lock.json)"];
for (const k of ["htmx.org", "htmx-ext-sse", "uplot"]) {
  const p = lock["node_modules/" + k];
  out.push(`${k} ${p.version} ${p.license || ""} ${p.integrity}`);
}
console.log(out.join("\n"));
' > "$dst/VERSIONS.txt"
rm -rf node_modules
echo "copied into $dst:" && ls -l "$dst"
