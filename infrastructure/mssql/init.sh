#!/usr/bin/env bash
# Runs init.sql (the demo database, its tables and the ETL's read-only login) against SQL Server
# as `sa`. docker-compose.yml runs it in the one-shot `sqlserver-init` service; it also works
# against any SQL Server 2019+ from a machine with mssql-tools18:
#   MSSQL_HOST=db.example.com MSSQL_SA_PASSWORD=... MSSQL_ETL_PASSWORD=... infrastructure/mssql/init.sh
set -euo pipefail

: "${MSSQL_SA_PASSWORD:?set MSSQL_SA_PASSWORD (see .env.example)}"
: "${MSSQL_ETL_PASSWORD:?set MSSQL_ETL_PASSWORD (see .env.example)}"
HOST="${MSSQL_HOST:-sqlserver}"
PORT="${MSSQL_PORT:-1433}"
SQLCMD="${SQLCMD:-/opt/mssql-tools18/bin/sqlcmd}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# init.sql puts the password inside a T-SQL string literal.
if [[ "$MSSQL_ETL_PASSWORD" == *"'"* ]]; then
  echo "sqlserver-init: MSSQL_ETL_PASSWORD must not contain a single quote" >&2
  exit 2
fi
if [[ ${#MSSQL_ETL_PASSWORD} -lt 8 ]]; then
  echo "sqlserver-init: MSSQL_ETL_PASSWORD needs at least 8 characters (SQL Server password policy)" >&2
  exit 2
fi

# sqlcmd reads the password from SQLCMDPASSWORD (never on the command line) and, like every
# environment variable, MSSQL_ETL_PASSWORD becomes the scripting variable $(MSSQL_ETL_PASSWORD).
export SQLCMDPASSWORD="$MSSQL_SA_PASSWORD"
export MSSQL_ETL_PASSWORD

# The healthcheck says SQL Server accepts logins; recovery of system databases can lag a little.
for attempt in $(seq 1 30); do
  if "$SQLCMD" -S "$HOST,$PORT" -U sa -C -b -l 5 -Q "SELECT 1" >/dev/null 2>&1; then
    break
  fi
  if [[ $attempt -eq 30 ]]; then
    echo "sqlserver-init: SQL Server at $HOST,$PORT does not accept the sa login" >&2
    exit 1
  fi
  sleep 2
done

# -b: stop with a non-zero exit on the first error; -I: QUOTED_IDENTIFIER ON; -f 65001: the
# script is UTF-8 (the seed data has non-ASCII names).
"$SQLCMD" -S "$HOST,$PORT" -U sa -C -b -I -f 65001 -i "$HERE/init.sql"
echo "sqlserver-init: analytics_demo is ready"
