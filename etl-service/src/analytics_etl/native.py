"""Reads through connectorx, which fetches straight into Arrow in native code (no Python
tuple per row): full loads on SQLite, PostgreSQL and SQL Server, and primary-key reads for
reconciliation on SQL Server. A large table with one integer key can be read as many key
ranges by parallel workers (partitioned.py): memory stays bounded by the ranges in flight,
not the table.

Anything connectorx cannot do (a type it does not know, an option it lacks, no connectorx at
all) falls back to the driver path, which reads everything.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from analytics_etl.extract import BatchBuilder, stream_batches
from analytics_etl.partitioned import key_bounds, literal_sql, range_select, read_ranges, split_key_range
from analytics_etl.source import TableSpec, select_rows, source_from
from analytics_shared.logging import get_logger

log = get_logger(__name__)

_YES = {"yes", "true", "1", "on", "mandatory", "strict"}
_PARTITIONED = {"postgresql", "mssql"}  # SQLite: one file, one reader is as fast
INTEGER_KEYS = {"BIGINT", "SMALLINT", "UTINYINT"}
# Rows of a key range, in batches: each range is one DuckDB INSERT, and 1.32M rows took
# DuckDB 1.4 s to insert as 50k-row ranges, 1.2 s as 100k-row ones (with no lower peak
# memory for the smaller ranges, measured). Memory: ~4 ranges in flight with two workers.
RANGE_BATCHES = 2


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


def key_histogram(conn: sa.Connection, spec: TableSpec, key: str) -> list[int]:
    """PostgreSQL's equal-count histogram of the key (pg_stats, from the last ANALYZE), [] where
    there is none: other sources, a table never analyzed, statistics not readable."""
    if conn.dialect.name != "postgresql":
        return []
    stmt = sa.text("SELECT histogram_bounds::text FROM pg_stats WHERE schemaname = coalesce(:schema, "
                   "current_schema()) AND tablename = :table AND attname = :column").bindparams(
        schema=spec.schema, table=spec.name, column=key)
    try:
        text = conn.execute(stmt).scalar()
    except sa.exc.DBAPIError:
        conn.rollback()
        return []
    return [int(v) for v in text.strip("{}").split(",")] if text else []


def _estimate(conn: sa.Connection, spec: TableSpec, partitions: int, min_rows: int) -> int | None:
    """The table's estimated rows when it is worth reading in key ranges, else None."""
    stmt = estimated_rows_sql(spec, conn.dialect.name)
    if partitions < 2 or partition_key(spec) is None or stmt is None or conn.dialect.name not in _PARTITIONED:
        return None
    try:
        estimate = conn.execute(stmt).scalar()
    except sa.exc.DBAPIError:
        conn.rollback()
        return None
    return estimate if estimate is not None and estimate >= min_rows else None


def read_native(conn: sa.Connection, stmt: sa.Select, batch_size: int, return_type: str = "arrow_stream",
                ) -> pa.RecordBatchReader | pa.Table | None:
    """The statement's rows through connectorx (an Arrow stream, or with return_type="arrow"
    one table), or None to use the driver."""
    native = native_source_url(conn.engine.url)
    if native is None:
        return None
    # Compiled for the dialect with literal-free SQL: a full or key read binds no values.
    query = str(stmt.compile(dialect=conn.dialect))
    try:
        import connectorx

        size = {"batch_size": batch_size} if return_type == "arrow_stream" else {}
        return connectorx.read_sql(native, query, return_type=return_type, **size)
    except BaseException as exc:  # noqa: BLE001 - an unsupported type or option: the driver path reads anything
        # connectorx reports some unsupported types by panicking (PostgreSQL `interval`:
        # "not implemented: interval"), and pyo3's PanicException derives from BaseException,
        # not Exception: caught as Exception it escaped every handler and failed the whole run.
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        log.info("extract.native_unavailable", reason=str(exc).splitlines()[0][:200] if str(exc) else repr(exc))
        return None


def rescale_decimals(table: pa.Table, columns: list[tuple[str, str]]) -> pa.Table:
    """connectorx hands every DECIMAL over as decimal128(38, 10); DuckDB's cast from that
    (a 128-bit division per value) to the column's DECIMAL(p, s) cost 0.66 s of CPU per
    1.3M values, pyarrow's 0.13 s. Done here, in the reading worker, the DuckDB writer only
    copies. A value the exact cast refuses (more digits than the column) leaves the column
    to DuckDB's cast, as on the one-stream path."""
    for name, duck in columns:
        field = table.schema.field(name)
        if not (duck.startswith("DECIMAL(") and pa.types.is_decimal(field.type)):
            continue
        precision, scale = (int(x) for x in duck[8:-1].split(","))
        if (field.type.precision, field.type.scale) == (precision, scale) or precision > 38:
            continue
        try:
            column = pc.cast(table.column(name), pa.decimal128(precision, scale))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        table = table.set_column(table.schema.get_field_index(name), name, column)
    return table


class NativeRanges:
    """The key ranges read by connectorx workers: an iterator of Arrow tables that says it
    is connectorx's (is_native), so a load that fails part-way can be retried via the driver."""

    def __init__(self, tables: Iterator[pa.Table]) -> None:
        self._tables = tables

    def __iter__(self) -> Iterator[pa.Table]:
        return self

    def __next__(self) -> pa.Table:
        return next(self._tables)

    def close(self) -> None:  # stops the workers (the channel closes with the generator)
        close = getattr(self._tables, "close", None)
        if close is not None:
            close()


def is_native(batches: object) -> bool:
    """Whether stream_full_table's result comes from connectorx (not the driver)."""
    return isinstance(batches, (pa.RecordBatchReader, NativeRanges))


def read_key_ranges(conn: sa.Connection, spec: TableSpec, estimate: int, workers: int, range_rows: int,
                    ) -> Iterator[pa.Table] | None:
    """The table as Arrow tables of key ranges read by `workers` threads (partitioned.py),
    or None when connectorx cannot read it."""
    native = native_source_url(conn.engine.url)
    stmt = select_rows(spec)
    # One row-less read first: a type connectorx lacks shows here, before any worker starts,
    # and the table goes the driver's way instead of failing.
    if native is None or read_native(conn, stmt.where(sa.false()), range_rows, return_type="arrow") is None:
        return None
    key = partition_key(spec)
    low, high = key_bounds(conn, source_from(spec), key)
    ranges = split_key_range(low, high, estimate, range_rows, workers, key_histogram(conn, spec, key))
    log.info("extract.partitioned", table=spec.target, key=key, ranges=len(ranges), workers=workers)
    queries = [literal_sql(range_select(stmt, sa.column(key), r), conn.dialect) for r in ranges]
    columns = [(c.name, c.duckdb_type) for c in spec.columns]
    return NativeRanges(read_ranges(native, queries, workers, lambda table: rescale_decimals(table, columns)))


def stream_full_table(conn: sa.Connection, spec: TableSpec, builder: BatchBuilder, batch_size: int, *,
                      partitions: int = 1, partition_min_rows: int = 1_000_000,
                      ) -> Iterator[pa.RecordBatch] | Iterator[pa.Table] | pa.RecordBatchReader:
    """Every row of the table: in key ranges read in parallel (large tables with an integer
    key, READ_PARTITIONS > 1), else as one connectorx stream, else via the driver."""
    estimate = _estimate(conn, spec, partitions, partition_min_rows)
    if estimate is not None and (ranges := read_key_ranges(conn, spec, estimate, partitions,
                                                           RANGE_BATCHES * batch_size)) is not None:
        return ranges
    # Handed over whole: DuckDB pulls the batches through the Arrow C stream itself. A Python
    # loop over it would serialise reading and loading (connectorx keeps the GIL while it
    # fetches the next batch); this way they overlap.
    reader = read_native(conn, select_rows(spec), batch_size)
    if reader is not None:
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
