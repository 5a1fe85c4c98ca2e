#!/usr/bin/env bash
# Makes sure a headless Chromium exists for the console's browser tests (api-service/tests/console).
# Debian's `chromium` package: Playwright drives it through executable_path, because
# `playwright install` downloads browser builds from a CDN that these machines cannot reach.
# Prints nothing when the browser is already there; the tests fail (never skip) without it.
set -uo pipefail
BROWSER="${CONSOLE_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$BROWSER" ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the console browser tests" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq chromium >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1 || true
    apt-get install -y -qq chromium >/dev/null 2>&1 || true
  fi
fi
[ -x "$BROWSER" ] || echo "WARNING: no Chromium at $BROWSER (apt-get install chromium); the console browser tests will fail" >&2
exit 0
