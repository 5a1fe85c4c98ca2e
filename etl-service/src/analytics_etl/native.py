"""Reads through connectorx, which fetches straight into Arrow in native code (no Python
tuple per row): full loads on SQLite, PostgreSQL and SQL Server, and primary-key reads for
reconciliation on SQL Server. A large table with one integer key is read in parallel ranges
of it (connectorx `partition_on`), still as a stream of batches: memory stays bounded by
the batches in flight, not the table.

Anything connectorx cannot do (a type it does not know, an option it lacks, no connectorx at
all) falls back to the driver path, which reads everything.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import pyarrow as pa
import sqlalchemy as sa

from analytics_etl.extract import BatchBuilder, stream_batches
from analytics_etl.source import TableSpec, select_rows
from analytics_shared.logging import get_logger

log = get_logger(__name__)

_YES = {"yes", "true", "1", "on", "mandatory", "strict"}
_PARTITIONED = {"postgresql", "mssql"}  # SQLite: one file, one reader is as fast
INTEGER_KEYS = {"BIGINT", "SMALLINT", "UTINYINT"}


def _odbc_pairs(odbc_connect: str) -> dict[str, str]:
    """'Server=tcp:h,1433;Database=d;UID=u;PWD={p;w}' -> lower-cased keys, braces removed."""
    pairs, key, value, depth, in_key = {}, "", "", 0, True
    for ch in odbc_connect + ";":
        if in_key:
            if ch == "=":
                in_key = False
            elif ch != ";":
                key += ch
            continue
        if ch == "{" and depth == 0 and not value:
            depth = 1
        elif ch == "}" and depth == 1:
            depth = 0
        elif ch == ";" and depth == 0:
            pairs[key.strip().lower()] = value
            key, value, in_key = "", "", True
        else:
            value += ch
    return pairs


def mssql_native_url(url: sa.engine.URL) -> str | None:
    """connectorx's mssql:// URL for a SQLAlchemy SQL Server URL, TLS settings carried over.

    connectorx (tiberius) leaves TLS off unless told: encrypt=true unless the source URL says
    Encrypt=no, trust_server_certificate only where TrustServerCertificate says so. None for
    what it cannot do: Windows (trusted) authentication.
    """
    query = {k.lower(): (v[-1] if isinstance(v, tuple) else v) for k, v in url.query.items()}
    host, port, database, user, password = url.host, url.port, url.database, url.username, url.password
    if "odbc_connect" in query:
        odbc = _odbc_pairs(query.pop("odbc_connect"))
        server = odbc.get("server", "").removeprefix("tcp:")
        host, _, port_text = server.partition(",")
        port = int(port_text) if port_text.strip() else None
        database, user, password = odbc.get("database"), odbc.get("uid"), odbc.get("pwd")
        query.update({k: v for k, v in odbc.items() if k in ("encrypt", "trustservercertificate", "trusted_connection")})
    if str(query.get("trusted_connection", "no")).lower() in _YES or not host or not user:
        return None
    params = {"encrypt": "false" if str(query.get("encrypt", "yes")).lower() not in _YES else "true"}
    if str(query.get("trustservercertificate", "no")).lower() in _YES:
        params["trust_server_certificate"] = "true"
    auth = f"{quote(user, safe='')}:{quote(password or '', safe='')}"
    return f"mssql://{auth}@{host}:{port or 1433}/{quote(database or '', safe='')}?{urlencode(params)}"


def native_source_url(url: sa.engine.URL) -> str | None:
    """The connectorx connection string for a SQLAlchemy URL, or None when it has none."""
    backend = url.get_backend_name()
    if backend == "sqlite" and url.database and url.database != ":memory:":
        return "sqlite://" + str(Path(url.database).resolve())
    if backend == "postgresql":
        return url.set(drivername="postgresql").render_as_string(hide_password=False)
    if backend == "mssql":
        return mssql_native_url(url)
    return None


def partition_key(spec: TableSpec) -> str | None:
    if len(spec.primary_key) == 1 and spec.column(spec.primary_key[0]).duckdb_type in INTEGER_KEYS:
        return spec.primary_key[0]
    return None


def estimated_rows_sql(spec: TableSpec, dialect: str) -> sa.TextClause | None:
    """The catalog's row estimate (no scan): PostgreSQL's planner statistics, SQL Server's
    partition stats. Views and SELECT sources have none."""
    if spec.query:
        return None
    name = f"{spec.schema}.{spec.name}" if spec.schema else spec.name
    if dialect == "postgresql":
        sql = "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(:object_name)"
    elif dialect == "mssql":
        sql = ("SELECT SUM(row_count) FROM sys.dm_db_partition_stats "
               "WHERE object_id = OBJECT_ID(:object_name) AND index_id IN (0, 1)")
        name = f"{spec.schema or 'dbo'}.{spec.name}"
    else:
        return None
    return sa.text(sql).bindparams(sa.bindparam("object_name", name, type_=sa.Unicode))


def _partitions(conn: sa.Connection, spec: TableSpec, partitions: int, min_rows: int) -> dict:
    """connectorx's partition arguments when the table is large enough to split, else {}."""
    key = partition_key(spec)
    stmt = estimated_rows_sql(spec, conn.dialect.name)
    if partitions < 2 or key is None or stmt is None or conn.dialect.name not in _PARTITIONED:
        return {}
    try:
        estimate = conn.execute(stmt).scalar()
    except sa.exc.DBAPIError:
        conn.rollback()
        return {}
    if estimate is None or estimate < min_rows:
        return {}
    return {"partition_on": key, "partition_num": partitions}


def read_native(conn: sa.Connection, stmt: sa.Select, batch_size: int, **partition: object,
                ) -> pa.RecordBatchReader | None:
    """The statement's rows as an Arrow stream through connectorx, or None to use the driver."""
    native = native_source_url(conn.engine.url)
    if native is None:
        return None
    # Compiled for the dialect with literal-free SQL: a full or key read binds no values.
    query = str(stmt.compile(dialect=conn.dialect))
    try:
        import connectorx

        return connectorx.read_sql(native, query, return_type="arrow_stream", batch_size=batch_size, **partition)
    except Exception as exc:  # noqa: BLE001 - an unsupported type or option: the driver path reads anything
        log.info("extract.native_unavailable", reason=str(exc).splitlines()[0][:200] if str(exc) else repr(exc))
        return None


def stream_full_table(conn: sa.Connection, spec: TableSpec, builder: BatchBuilder, batch_size: int, *,
                      partitions: int = 1, partition_min_rows: int = 1_000_000,
                      ) -> Iterator[pa.RecordBatch] | pa.RecordBatchReader:
    """Every row of the table: natively through connectorx where possible, else via the driver."""
    # Handed over whole: DuckDB pulls the batches through the Arrow C stream itself. A Python
    # loop over it would serialise reading and loading (connectorx keeps the GIL while it
    # fetches the next batch); this way they overlap.
    partition = _partitions(conn, spec, partitions, partition_min_rows)
    reader = read_native(conn, select_rows(spec), batch_size, **partition)
    if reader is None and partition:
        reader = read_native(conn, select_rows(spec), batch_size)
    if reader is not None:
        if partition:
            log.info("extract.partitioned", table=spec.target, **partition)
        return reader
    return stream_batches(conn, select_rows(spec), builder, batch_size)


def stream_keys(conn: sa.Connection, stmt: sa.Select, builder: BatchBuilder, batch_size: int,
                ) -> Iterator[pa.RecordBatch] | pa.RecordBatchReader:
    """Primary keys for reconciliation: natively on SQL Server (every key through pyodbc is a
    Python object and a round trip's share), through the driver elsewhere. Not SQLite: mid-run,
    connectorx's own copy of SQLite would remove the -wal and -shm files under the run's
    connections (POSIX locks are per process)."""
    if conn.dialect.name == "mssql":
        reader = read_native(conn, stmt, batch_size)
        if reader is not None:
            return reader
    return stream_batches(conn, stmt, builder, batch_size)
