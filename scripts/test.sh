#!/usr/bin/env bash
# Runs every test. Needs PostgreSQL (127.0.0.1:5432, database `test`) and Redis
# (127.0.0.1:6379): starts them when they are installed but not answering. The console's
# browser tests need Chromium: installs Debian's package when it is missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"
"$ROOT/scripts/ensure-services.sh"
"$ROOT/scripts/ensure-browser.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest "$@"
