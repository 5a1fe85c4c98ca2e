"""Primary-key reconciliation: the hard deletes that timestamp and rowversion reads cannot see.

Comparing every key costs a pass over the whole table on both sides, and every key through
the source driver as a Python object (3.3M-row demo source: 2.4-4.2 s for the five tables,
where the rest of a quiet sync takes 0.3-0.5 s). Most runs find nothing deleted, so a
single integer key is first summarised on both sides: row count and key sum. Equal
summaries mean the same key set, unless rows the snapshot has not seen yet (inserted since
this run read the table) have exactly the count and key sum of rows deleted, which cannot
happen with ascending keys (every new key is above every deleted one). Even then nothing
is lost: once those rows are merged the summaries differ, and the next reconciliation
compares every key, as it does whenever they differ and for other keys.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from analytics_etl.extract import BatchBuilder
from analytics_etl.native import stream_keys
from analytics_etl.source import TableSpec, select_primary_keys, source_from
from analytics_etl.working import WorkingDatabase, quote
from analytics_shared.logging import get_logger

log = get_logger(__name__)
INTEGER_KEYS = {"BIGINT", "SMALLINT", "UTINYINT"}


def summarised_key(spec: TableSpec) -> str | None:
    """The key column when the table's key can be summarised: one integer column."""
    if len(spec.primary_key) == 1 and spec.column(spec.primary_key[0]).duckdb_type in INTEGER_KEYS:
        return spec.primary_key[0]
    return None


def select_key_summary(spec: TableSpec, key: str, dialect: str) -> sa.Select:
    # Cast before summing: SQL Server sums an INT column as INT, which overflows. (SQLite's sum
    # fails on 64-bit overflow; then every key is compared.)
    k = sa.cast(sa.column(key), sa.BigInteger) if dialect != "sqlite" else sa.column(key)
    return sa.select(sa.func.count(), sa.func.sum(k)).select_from(source_from(spec))


def snapshot_key_summary(working: WorkingDatabase, table: str, key: str) -> tuple[int, int]:
    row = working.conn.execute(f"SELECT count(*), sum({quote(key)}) FROM {quote(table)}").fetchone()
    return int(row[0]), int(row[1] or 0)


def source_key_summary(conn: sa.Connection, spec: TableSpec, key: str) -> tuple[int, int] | None:
    """The source's summary, or None when it cannot give one (then every key is compared)."""
    try:
        row = conn.execute(select_key_summary(spec, key, conn.dialect.name)).one()
    except sa.exc.DBAPIError as exc:
        if conn.in_transaction():
            conn.rollback()
        log.info("reconcile.summary_unavailable", table=spec.target, error=str(exc.orig or exc).splitlines()[0])
        return None
    return int(row[0]), int(row[1] or 0)


def delete_missing_sorted_keys(working: WorkingDatabase, table: str, key: str,
                               batches: Iterable[pa.RecordBatch]) -> int:
    """WorkingDatabase.reconcile_keys for one integer key read in ascending order, a batch at a time.

    Each batch of source keys covers the key range from the previous batch's largest key
    (exclusive) to its own largest key; the table's rows in that range that the batch does not
    hold are deleted. Memory follows the batch, not the table: one anti-join over every key
    failed under a 256MB DUCKDB_MEMORY_LIMIT at 6.6M keys (16.5M-row demo source).
    """
    conn, k = working.conn, quote(key)
    deleted, low = 0, None
    conn.begin()
    try:
        for batch in batches:
            # As integers: a driver may hand numbers over as text, which sorts differently.
            values = pc.cast(batch.column(key), pa.int64())
            if len(values) == 0:
                continue
            top = pc.max(values).as_py()
            if low is not None and pc.min(values).as_py() <= low:
                raise ValueError(f"{table}: source keys did not arrive in ascending order")
            conn.register("_batch", pa.table({"k": values}))
            # Plain range conditions, so the scan skips the row groups outside the range.
            within, bounds = (f"{k} > ? AND {k} <= ?", [low, top]) if low is not None else (f"{k} <= ?", [top])
            deleted += conn.execute(f"DELETE FROM {quote(table)} t WHERE {within} AND NOT EXISTS "
                                    f"(SELECT 1 FROM _batch b WHERE b.k = t.{k})", bounds).fetchone()[0]
            conn.unregister("_batch")
            low = top
        tail, bounds = (f" WHERE {k} > ?", [low]) if low is not None else ("", [])
        deleted += conn.execute(f"DELETE FROM {quote(table)}{tail}", bounds).fetchone()[0]
        conn.commit()
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            conn.unregister("_batch")
        conn.rollback()
        raise
    return deleted


def reconcile_table(spec: TableSpec, conn: sa.Connection, working: WorkingDatabase, batch_size: int) -> int:
    """Delete the snapshot's rows whose key the source no longer has; returns how many."""
    key = summarised_key(spec)
    if key is not None:
        source = source_key_summary(conn, spec, key)
        if source is not None and source == snapshot_key_summary(working, spec.target, key):
            return 0
        # Ascending, a batch at a time: memory bounded by the batch (the key's index gives the order).
        key_type = spec.column(key).duckdb_type
        return delete_missing_sorted_keys(working, spec.target, key, stream_keys(
            conn, select_primary_keys(spec).order_by(sa.column(key)),
            BatchBuilder.for_columns([(key, key_type)], conn.dialect.name), batch_size))
    keys = [(k, spec.column(k).duckdb_type) for k in spec.primary_key]
    return working.reconcile_keys(spec.target, keys, stream_keys(
        conn, select_primary_keys(spec), BatchBuilder.for_columns(keys, conn.dialect.name), batch_size))
