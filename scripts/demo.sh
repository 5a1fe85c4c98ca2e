#!/usr/bin/env bash
# The whole platform on embedded defaults, on this machine:
#   demo SQLite source -> ETL (first sync, then every SYNC_INTERVAL_SECONDS) -> ./data/store
#   -> API (Gunicorn, 2 workers) on 127.0.0.1:$PORT, trusting a local RSA token issuer.
# A dev token is written to ./data/dev-token.txt, and a console link that carries it (in the URL
# fragment, which the browser never sends to the server) to ./data/console-link.txt. Ctrl-C stops everything.
# DEMO_MUTATE_SECONDS (default 60; 0 = off) changes a few source rows that often, so you can
# watch the data refresh. A second run reuses the source, the issuer key and the store.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"
BIN="$ROOT/.venv/bin"
DATA="${DEMO_DATA_DIR:-$ROOT/data}"
mkdir -p "$DATA"
DATA="$(cd "$DATA" && pwd)"
export PORT="${PORT:-8000}"
export BIND="127.0.0.1:$PORT"
# The ETL would otherwise serve /health, /ready and /metrics on PORT too, which is the API's here.
export ETL_HTTP_PORT="${ETL_HTTP_PORT:-$((PORT + 1))}"
export WEB_CONCURRENCY="${WEB_CONCURRENCY:-2}"
export SOURCE_URL="${SOURCE_URL:-sqlite:///$DATA/demo-source.db}"
export STORAGE_URL="${STORAGE_URL:-file://$DATA/store}"
export ETL_STATE_DIR="${ETL_STATE_DIR:-$DATA/etl-state}"
export SNAPSHOT_CACHE_DIR="${SNAPSHOT_CACHE_DIR:-$DATA/api-cache}"
export SYNC_INTERVAL_SECONDS="${SYNC_INTERVAL_SECONDS:-60}"
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-$DATA/api-metrics}"
# The usual frontend dev servers (Create React App / Next.js on :3000, Vite on :5173) may call the
# demo API from the browser; set CORS_ORIGINS to change it, or to "" for no CORS.
export CORS_ORIGINS="${CORS_ORIGINS-http://localhost:3000,http://127.0.0.1:3000,http://localhost:5173,http://127.0.0.1:5173}"
MUTATE_EVERY="${DEMO_MUTATE_SECONDS:-60}"
DEMO_DB="$DATA/demo-source.db"

if [[ "$SOURCE_URL" == "sqlite:///$DEMO_DB" && ! -f "$DEMO_DB" ]]; then
  "$BIN/analytics-etl" demo-source "$DEMO_DB" --rows "${DEMO_ROWS:-20000}" >/dev/null
  echo "demo: created the demo source $DEMO_DB"
fi
# A real issuer (RSA key + JWKS file): the API validates its tokens exactly like Auth0's.
eval "$("$BIN/analytics-api" issuer-init "$DATA/issuer")"
"$BIN/analytics-api" token --issuer-dir "$DATA/issuer" --ttl 604800 > "$DATA/dev-token.txt"
# The query console's "Use the dev token" link: no file or endpoint serves the token, the link
# hands it to the page in its #fragment. 0600 like the token, since it holds the same secret.
( umask 077; echo "http://$BIND/console/#dev-token=$(cat "$DATA/dev-token.txt")" > "$DATA/console-link.txt" )

echo "demo: first sync into $STORAGE_URL"
"$BIN/analytics-etl" sync >/dev/null

pids=()
stop() {
  trap - INT TERM
  echo "demo: stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  exit 0
}
trap stop INT TERM

"$BIN/analytics-etl" run &
pids+=($!)
rm -rf "$PROMETHEUS_MULTIPROC_DIR"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
"$BIN/analytics-api" serve &
pids+=($!)
if [[ "$SOURCE_URL" == "sqlite:///$DEMO_DB" && "$MUTATE_EVERY" != "0" ]]; then
  ( trap 'exit 0' INT TERM
    while sleep "$MUTATE_EVERY"; do "$BIN/analytics-etl" demo-mutate "$DEMO_DB" --fraction 0.001 >/dev/null; done ) &
  pids+=($!)
fi

for _ in $(seq 1 120); do
  if "$BIN/python" -c "import sys, urllib.request; urllib.request.urlopen('http://$BIND/ready', timeout=1)" 2>/dev/null; then
    break
  fi
  sleep 0.5
done
cat <<MSG

  Analytics API ready on http://$BIND  (OpenAPI docs: http://$BIND/docs)
  Dev token: $DATA/dev-token.txt
  Query console: http://$BIND/console/ ; to log in with the dev token in one click, open the
  link in $DATA/console-link.txt (xdg-open "\$(cat $DATA/console-link.txt)")

  curl -H "Authorization: Bearer \$(cat $DATA/dev-token.txt)" \\
       "http://$BIND/query?q=SELECT%20status,%20count(*)%20AS%20n%20FROM%20orders%20GROUP%20BY%201"

  The ETL syncs every ${SYNC_INTERVAL_SECONDS}s (its health: http://127.0.0.1:$ETL_HTTP_PORT/ready);
  Ctrl-C stops everything.

MSG
wait
