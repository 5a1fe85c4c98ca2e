#!/usr/bin/env bash
# The platform on embedded defaults: demo SQLite source, local object store (./data/store),
# a first sync, then the ETL scheduler (every SYNC_INTERVAL_SECONDS, default 60). Ctrl-C stops it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
mkdir -p data
export SOURCE_URL="${SOURCE_URL:-sqlite:///$ROOT/data/demo-source.db}"
export STORAGE_URL="${STORAGE_URL:-file://$ROOT/data/store}"
export ETL_STATE_DIR="${ETL_STATE_DIR:-$ROOT/data/etl-state}"
if [ ! -f "$ROOT/data/demo-source.db" ] && [[ "$SOURCE_URL" == sqlite:///$ROOT/data/demo-source.db ]]; then
  "$ROOT/.venv/bin/analytics-etl" demo-source "$ROOT/data/demo-source.db" --rows "${DEMO_ROWS:-20000}"
fi
exec "$ROOT/.venv/bin/analytics-etl" run
