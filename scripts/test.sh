#!/usr/bin/env bash
# Runs every test. Needs PostgreSQL (127.0.0.1:5432, database `test`) and Redis
# (127.0.0.1:6379): starts them when they are installed but not answering.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"
"$ROOT/scripts/ensure-services.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest "$@"
