#!/usr/bin/env bash
# Rebuilds the console's vendored browser libraries from the npm registry:
#   api-service/console-vendor/{package.json,package-lock.json,entry.js}   (what, pinned)
#   -> api-service/src/analytics_api/console/static/vendor/vendor.js       (one minified ES module)
#      .../vendor/licenses/<package>.txt                                   (every bundled package's licence)
#      .../vendor/VENDOR.json                                              (versions + sha256, checked by a test)
# Only needed to change a library: the built files are committed, so the API serves the console
# on a fresh clone with only Python and no network. Needs node and npm (>= 9).
# To upgrade: edit package.json, run `npm install --package-lock-only` in console-vendor/, then this.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/api-service/console-vendor"
OUT="$ROOT/api-service/src/analytics_api/console/static/vendor"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cp "$SRC/package.json" "$SRC/package-lock.json" "$SRC/entry.js" "$WORK/"
# --ignore-scripts: no install script of any package runs (esbuild's binary comes as an
# optional platform package, so it needs none).
(cd "$WORK" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
(cd "$WORK" && ./node_modules/.bin/esbuild entry.js --bundle --format=esm --minify --target=es2020 \
  --legal-comments=none --metafile=meta.json --outfile=vendor.js --log-level=warning)
rm -rf "$OUT"
mkdir -p "$OUT/licenses"
cp "$WORK/vendor.js" "$OUT/vendor.js"
node "$ROOT/scripts/console-vendor-manifest.mjs" "$WORK" "$OUT"
echo "wrote $OUT ($(wc -c < "$OUT/vendor.js") bytes vendor.js)"
