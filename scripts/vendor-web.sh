#!/usr/bin/env bash
# Copy the chat page's third-party scripts into chatproxy/http/static/ui/vendor/, from the npm
# packages pinned in web/package.json and web/package-lock.json.
#
# Run it after changing a version there, and commit what it writes: the proxy serves these files
# itself, so neither the tests nor a deploy need Node or the network. Needs Node and npm.
# tests/test_ui_vendor.py checks that the committed files are the pinned versions, unchanged.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
web=$root/web
vendor=$root/chatproxy/http/static/ui/vendor
modules=$web/node_modules

command -v npm >/dev/null || { echo "vendor-web: needs npm (Node.js)" >&2; exit 1; }
# Exactly the lock's versions; the packages' install scripts are not run.
(cd "$web" && npm ci --ignore-scripts --no-audit --no-fund)

version() { node -p "require('$modules/$1/package.json').version"; }

rm -rf "$vendor"
mkdir -p "$vendor"
# Each package's ES module build for browsers (one file, no imports of its own), and its licence.
cp "$modules/markdown-it/dist/browser/markdown-it.esm.min.mjs" "$vendor/markdown-it.mjs"
cp "$modules/markdown-it/LICENSE" "$vendor/markdown-it.LICENSE"
cp "$modules/dompurify/dist/purify.es.mjs" "$vendor/dompurify.mjs"
cp "$modules/dompurify/LICENSE" "$vendor/dompurify.LICENSE"
cp "$modules/dompurify/LICENSE-MPL" "$vendor/dompurify.LICENSE-MPL"

{
  echo "# Written by scripts/vendor-web.sh: package, version, file, sha256. Do not edit."
  for entry in "markdown-it markdown-it.mjs" "dompurify dompurify.mjs"; do
    set -- $entry
    echo "$1 $(version "$1") $2 $(sha256sum "$vendor/$2" | cut -d' ' -f1)"
  done
} >"$vendor/VERSIONS"
cat "$vendor/VERSIONS"
