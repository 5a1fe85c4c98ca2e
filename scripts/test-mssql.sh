#!/usr/bin/env bash
# The SQL Server integration suite (pytest marker `mssql`), against a real SQL Server.
#
#   ./scripts/test-mssql.sh [pytest args]
#
# With MSSQL_TEST_URL set, runs against that server (a login that may create databases; each
# test creates and drops its own). Otherwise, with Docker, starts docker-compose.yml's
# `sqlserver` and its `sqlserver-init` (in a project of its own, `analytics-mssql-test`, so a
# dev stack is left alone), runs the suite as `sa`, and removes the containers and their
# volume afterwards (KEEP=1 keeps them). Needs the ODBC driver on this machine
# (msodbcsql18: https://learn.microsoft.com/sql/connect/odbc/linux-mac/installing-the-microsoft-odbc-driver-for-sql-server).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PROJECT=analytics-mssql-test

if [[ -z "${MSSQL_TEST_URL:-}" ]]; then
  if ! command -v docker >/dev/null 2>&1; then
    echo "test-mssql: set MSSQL_TEST_URL to a SQL Server, or install Docker to start the compose one" >&2
    exit 2
  fi
  if ! odbcinst -q -d 2>/dev/null | grep -q "ODBC Driver 18 for SQL Server"; then
    echo "test-mssql: 'ODBC Driver 18 for SQL Server' is not installed here (msodbcsql18)" >&2
    exit 2
  fi
  # The compose file refuses to start without its secrets; a throwaway stack gets throwaway ones
  # (an existing .env or environment wins).
  export MSSQL_SA_PASSWORD="${MSSQL_SA_PASSWORD:-Suite-Sa-Passw0rd-$RANDOM}"
  export MSSQL_ETL_PASSWORD="${MSSQL_ETL_PASSWORD:-Suite-Etl-Passw0rd-$RANDOM}"
  export MINIO_ROOT_USER="${MINIO_ROOT_USER:-unused}" MINIO_ROOT_PASSWORD="${MINIO_ROOT_PASSWORD:-unused-unused}"
  export MINIO_ETL_SECRET_KEY="${MINIO_ETL_SECRET_KEY:-unused-unused}" MINIO_API_SECRET_KEY="${MINIO_API_SECRET_KEY:-unused-unused}"
  compose=(docker compose -p "$PROJECT" -f docker-compose.yml)
  if [[ "${KEEP:-0}" != 1 ]]; then
    trap '"${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true' EXIT
  fi
  "${compose[@]}" up -d --wait sqlserver
  "${compose[@]}" run --rm sqlserver-init
  password="$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$MSSQL_SA_PASSWORD")"
  # The compose server's certificate is self-signed: trusted here, as the compose ETL does.
  export MSSQL_TEST_URL="mssql+pyodbc://sa:${password}@127.0.0.1:1433/master?driver=ODBC+Driver+18+for+SQL+Server&Encrypt=yes&TrustServerCertificate=yes"
fi

exec "$ROOT/scripts/test.sh" -m mssql etl-service/tests/test_mssql_live.py "$@"
