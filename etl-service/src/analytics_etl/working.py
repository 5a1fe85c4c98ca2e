"""The DuckDB database a run builds its snapshot in: a copy of the last published
snapshot (local_snapshot.py) that this run's changes are applied to. It holds
exactly what is published, the synced tables and the views, and no ETL state.

Every table change happens inside one DuckDB transaction, so a failed extract
(dropped connection, vanished table) rolls back and the table keeps its last
good data.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa
from pydantic import ByteSize, TypeAdapter

from analytics_shared.logging import get_logger

log = get_logger(__name__)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _casts(columns: Sequence[tuple[str, str]], source: str = "_batch") -> str:
    return ", ".join(f"CAST({source}.{quote(n)} AS {t}) AS {quote(n)}" for n, t in columns)


def _maybe_unchanged(table: str, cursor: str) -> str:
    """Condition on _stage: the row could equal the table's row with its key.

    A staged row whose cursor is above every cursor in the table differs from the row it
    would replace at least in that column, so it is changed without comparing anything.
    Only the others (rows re-read through the lookback window) are compared; usually few.
    """
    c = quote(cursor)
    # max() of one column: DuckDB answers it from the column statistics when they are exact
    # (no deletes since the last rewrite), else from a scan of that one column.
    return f"NOT coalesce(_stage.{c} > (SELECT max({c}) FROM {quote(table)}), false)"


def max_cursor(column: str, duck_type: str | None) -> str:
    """SQL for a column's largest value; an aware one as ISO text in UTC.

    DuckDB hands TIMESTAMPTZ values to Python only through pytz, which is not installed.
    """
    if duck_type == "TIMESTAMP WITH TIME ZONE":
        return f"strftime(max({quote(column)}) AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%f') || '+00:00'"
    return f"max({quote(column)})"


def summarize_stage(table: str, key: Sequence[str], cursor: str | None, cursor_type: str | None = None) -> str:
    """SQL for (staged rows, distinct staged keys, rows that could be unchanged, max cursor)."""
    keys = ", ".join(quote(k) for k in key)
    maybe = _maybe_unchanged(table, cursor) if cursor is not None else "true"
    top = max_cursor(cursor, cursor_type) if cursor is not None else "NULL"
    return f"SELECT count(*), count(DISTINCT ({keys})), count(*) FILTER (WHERE {maybe}), {top} FROM _stage"


def delete_unchanged(table: str, columns: Sequence[tuple[str, str]], key: Sequence[str],
                     cursor: str | None) -> str:
    """SQL that drops from _stage the rows equal to the table's row with the same key.

    For a _stage whose keys are unique, what is left is what `_stage EXCEPT table` gives,
    without materialising that difference. With a cursor only the rows that could be
    unchanged are compared, and the join's key filter then prunes the table's row groups
    instead of reading every column of every row.
    """
    keys = ", ".join(f"m.{quote(k)}" for k in key)
    on = " AND ".join(f"m.{quote(k)} = t.{quote(k)}" for k in key)
    same = " AND ".join(f"m.{quote(n)} IS NOT DISTINCT FROM t.{quote(n)}" for n, _ in columns)
    if cursor is None:
        pairs = f"SELECT ({keys}) FROM _stage m JOIN {quote(table)} t ON {on} WHERE {same}"
    else:
        # The cursor joins with `=`, so DuckDB pushes the staged rows' cursor range into the
        # table scan and skips the row groups outside it: the re-read rows' keys span the whole
        # table, their cursors only the lookback window (3.3M-row demo, 1% re-read: 27-36 ms
        # -> 4-6 ms per large table). `IS NOT DISTINCT FROM` would not be pushed down, so NULL
        # cursors (never staged by a cursor read, but allowed here) take their own branch.
        c = quote(cursor)
        maybe = f"(SELECT * FROM _stage WHERE {_maybe_unchanged(table, cursor)})"
        pairs = (f"SELECT ({keys}) FROM {maybe} m JOIN {quote(table)} t ON {on} AND m.{c} = t.{c} WHERE {same} "
                 f"UNION ALL SELECT ({keys}) FROM {maybe} m JOIN {quote(table)} t ON {on} "
                 f"WHERE m.{c} IS NULL AND t.{c} IS NULL AND {same}")
    return f"DELETE FROM _stage WHERE ({', '.join(quote(k) for k in key)}) IN ({pairs})"


def keep_changed(table: str, key: Sequence[str]) -> str:
    """SQL that replaces _stage by its distinct rows that the table does not hold: for a
    _stage whose keys repeat (a row the source returned twice), where deleting by key
    could drop the newer version together with an unchanged one."""
    keys = ", ".join(quote(k) for k in key)
    return (f"CREATE OR REPLACE TEMP TABLE _stage AS "
            f"SELECT * FROM _stage EXCEPT SELECT t.* FROM {quote(table)} t SEMI JOIN _stage USING ({keys})")


class WorkingDatabase:
    def __init__(self, path: Path, *, memory_limit: str = "") -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        config = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
        if memory_limit:  # beyond it DuckDB spills to ETL_STATE_DIR's temp files, or fails the table
            config["memory_limit"] = memory_limit
        self.conn = duckdb.connect(str(path), config=config)
        self.database = self.conn.execute("SELECT current_database()").fetchone()[0]
        # DuckDB reads "512MB" as 512 x 1000^2 and "512MiB" as 512 x 1024^2, as pydantic's ByteSize does.
        self.memory_budget = TypeAdapter(ByteSize).validate_python(memory_limit) if memory_limit else None

    def relieve_memory(self) -> bool:
        """Checkpoint once the changes committed so far hold over half the memory limit.

        DuckDB keeps a committed table's changes in memory until the next checkpoint, so
        without this a run needs the sum of its tables' changes at once (a 1 % change on a
        55M-row source failed its last table at 512MB); with it, the largest one. True when
        it checkpointed."""
        if self.memory_budget is None:
            return False
        used = self.conn.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone()[0] or 0
        if used <= self.memory_budget // 2:
            return False
        log.info("working.checkpoint_for_memory", used_bytes=used, limit_bytes=self.memory_budget)
        self.checkpoint()
        return True

    def checkpoint(self) -> None:
        """After this the file is complete on its own: no WAL is left beside it."""
        self.conn.execute("CHECKPOINT")

    def close(self) -> None:
        self.conn.close()

    def drop_views(self) -> None:
        # Views are recreated from VIEWS_PATH at publish; dropping them first lets tables be
        # replaced (schema drift, full reloads) whatever the views reference.
        for (name,) in self.conn.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal "
                                         "AND database_name = current_database()").fetchall():
            self.conn.execute(f"DROP VIEW {quote(name)}")

    def keep_only(self, tables: Sequence[str]) -> None:
        """Drop tables that are not published any more (e.g. removed from TABLES_TO_SYNC)."""
        for name in set(self.tables()) - set(tables):
            log.info("table.dropped", table=name)
            self.conn.execute(f"DROP TABLE {quote(name)}")

    def create_views(self, views_sql: str | None) -> None:
        if views_sql:
            self.conn.execute(views_sql)

    def table_columns(self, table: str) -> list[tuple[str, str]] | None:
        # pragma_table_info: the same type strings as information_schema; unlike the duckdb_*()
        # catalog functions it does not build the system catalog on first use (~10 ms per run).
        try:
            rows = self.conn.execute("SELECT name, type FROM pragma_table_info(?) ORDER BY cid",
                                     [f"{quote(self.database)}.main.{quote(table)}"]).fetchall()
        except duckdb.CatalogException:
            return None
        return [(r[0], r[1]) for r in rows] or None

    def tables(self) -> list[str]:
        rows = self.conn.execute("SELECT table_name FROM information_schema.tables WHERE table_catalog = "
                                 "current_database() AND table_schema='main' AND table_type='BASE TABLE'").fetchall()
        return [r[0] for r in rows]

    def row_count(self, table: str) -> int:
        return self.conn.execute(f"SELECT count(*) FROM {quote(table)}").fetchone()[0]

    def max_value(self, table: str, column: str):  # noqa: ANN201 - any SQL scalar
        duck_type = dict(self.table_columns(table) or []).get(column)
        return self.conn.execute(f"SELECT {max_cursor(column, duck_type)} FROM {quote(table)}").fetchone()[0]

    def _create(self, table: str, columns: Sequence[tuple[str, str]]) -> None:
        cols = ", ".join(f"{quote(n)} {t}" for n, t in columns)
        self.conn.execute(f"CREATE OR REPLACE TABLE {quote(table)} ({cols})")

    def _insert(self, table: str, columns: Sequence[tuple[str, str]],
                batch: pa.RecordBatch | pa.RecordBatchReader) -> None:
        self.conn.register("_batch", batch)
        try:
            self.conn.execute(f"INSERT INTO {quote(table)} SELECT {_casts(columns)} FROM _batch")
        except duckdb.Error:
            # Inside an aborted transaction unregister fails too; keep the first, real error.
            with contextlib.suppress(duckdb.Error):
                self.conn.unregister("_batch")
            raise
        self.conn.unregister("_batch")

    def replace_table(self, table: str, columns: Sequence[tuple[str, str]],
                      batches: Iterable[pa.RecordBatch] | pa.RecordBatchReader) -> int:
        """Reload a whole table in one transaction; on failure the old table stays."""
        self.conn.begin()
        try:
            self._create(table, columns)
            if isinstance(batches, pa.RecordBatchReader):
                self._insert(table, columns, batches)  # one statement over the whole stream
            else:
                for batch in batches:
                    self._insert(table, columns, batch)
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        return self.row_count(table)

    def merge_changes(self, table: str, columns: Sequence[tuple[str, str]], key: Sequence[str],
                      batches: Iterable[pa.RecordBatch], *, deleted_keys: Iterable[pa.RecordBatch] = (),
                      cursor: str | None = None) -> tuple[int, int, object]:
        """Upsert rows by primary key and delete keys, in one transaction.

        Returns (rows changed, rows deleted, max cursor value seen). Rows re-read
        through the lookback window that equal what we have are not counted, so a
        quiet source yields zero changes and nothing new is published.
        """
        keys = ", ".join(quote(k) for k in key)
        # Few statements per table: each one is a round trip that may wait for the GIL
        # while the read-ahead thread builds the next table's batches.
        self.conn.begin()
        try:
            self.conn.execute(f"CREATE OR REPLACE TEMP TABLE _stage AS SELECT * FROM {quote(table)} LIMIT 0")
            for batch in batches:
                self._insert("_stage", columns, batch)
            has_del = self._stage_keys("_del", [(n, t) for n, t in columns if n in key], deleted_keys)
            deleted = 0
            if has_del:  # each statement below scans the table's key column: skip the ones with nothing to do
                deleted = self.conn.execute(
                    f"DELETE FROM {quote(table)} WHERE ({keys}) IN (SELECT ({keys}) FROM _del) "
                    f"AND ({keys}) NOT IN (SELECT ({keys}) FROM _stage)").fetchone()[0]
            staged, distinct_keys, maybe_same, top = self.conn.execute(
                summarize_stage(table, key, cursor, dict(columns).get(cursor))).fetchone()
            if distinct_keys < staged:
                changed = self.conn.execute(keep_changed(table, key)).fetchone()[0]
            elif maybe_same:
                changed = staged - self.conn.execute(delete_unchanged(table, columns, key, cursor)).fetchone()[0]
            else:
                changed = staged
            if changed:
                self.conn.execute(f"DELETE FROM {quote(table)} WHERE ({keys}) IN (SELECT ({keys}) FROM _stage); "
                                  f"INSERT INTO {quote(table)} SELECT * FROM _stage")
            self.conn.execute("DROP TABLE _stage" + ("; DROP TABLE _del" if has_del else ""))
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        return changed, deleted, top

    def _stage_keys(self, name: str, key_columns: Sequence[tuple[str, str]],
                    batches: Iterable[pa.RecordBatch]) -> bool:
        """Load key batches into a temp table; False (and no table) when there are none."""
        created = False
        for batch in batches:
            if not created:
                cols = ", ".join(f"{quote(k)} {t}" for k, t in key_columns)
                self.conn.execute(f"CREATE OR REPLACE TEMP TABLE {name} ({cols})")
                created = True
            self._insert(name, key_columns, batch)
        return created

    def reconcile_keys(self, table: str, key_columns: Sequence[tuple[str, str]],
                       batches: Iterable[pa.RecordBatch]) -> int:
        """Delete rows whose primary key no longer exists in the source (hard deletes)."""
        keys = ", ".join(quote(n) for n, _ in key_columns)
        self.conn.begin()
        try:
            self.conn.execute(f"CREATE OR REPLACE TEMP TABLE _keys ({', '.join(f'{quote(n)} {t}' for n, t in key_columns)})")
            for batch in batches:
                self._insert("_keys", key_columns, batch)
            deleted = self.conn.execute(
                f"DELETE FROM {quote(table)} WHERE ({keys}) NOT IN (SELECT ({keys}) FROM _keys)").fetchone()[0]
            self.conn.execute("DROP TABLE _keys")
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        return deleted

    def fingerprint(self, table: str) -> str:
        row = self.conn.execute(f"SELECT count(*), bit_xor(hash(t)) FROM {quote(table)} t").fetchone()
        return f"{row[0]}:{row[1]}"

    def export_snapshot(self, path: Path, tables: Sequence[str], views_sql: str | None) -> None:
        """Write a fresh, compact DuckDB file holding just these tables (and views): a copy
        grows with every run's deletes and updates, this rewrite sheds the dead space."""
        path.unlink(missing_ok=True)
        literal = str(path).replace("'", "''")
        self.conn.execute(f"ATTACH '{literal}' AS snap")
        try:
            for table in tables:
                self.conn.execute(f"CREATE TABLE snap.{quote(table)} AS SELECT * FROM main.{quote(table)}")
            if views_sql:
                home = self.conn.execute("SELECT current_database()").fetchone()[0]
                self.conn.execute("USE snap")
                try:
                    self.conn.execute(views_sql)
                finally:
                    self.conn.execute(f"USE {quote(home)}")
        finally:
            self.conn.execute("DETACH snap")
