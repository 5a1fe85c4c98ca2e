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

from analytics_shared.logging import get_logger

log = get_logger(__name__)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _casts(columns: Sequence[tuple[str, str]], source: str = "_batch") -> str:
    return ", ".join(f"CAST({source}.{quote(n)} AS {t}) AS {quote(n)}" for n, t in columns)


class WorkingDatabase:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = duckdb.connect(str(path), config={"autoinstall_known_extensions": False,
                                                       "autoload_known_extensions": False})

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
        rows = self.conn.execute(
            # duckdb_columns(): the same type strings as information_schema, a tenth of the time.
            "SELECT column_name, data_type FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = 'main' AND table_name = ? "
            "ORDER BY column_index", [table]).fetchall()
        return [(r[0], r[1]) for r in rows] or None

    def tables(self) -> list[str]:
        rows = self.conn.execute("SELECT table_name FROM information_schema.tables WHERE table_catalog = "
                                 "current_database() AND table_schema='main' AND table_type='BASE TABLE'").fetchall()
        return [r[0] for r in rows]

    def row_count(self, table: str) -> int:
        return self.conn.execute(f"SELECT count(*) FROM {quote(table)}").fetchone()[0]

    def max_value(self, table: str, column: str):  # noqa: ANN201 - any SQL scalar
        return self.conn.execute(f"SELECT max({quote(column)}) FROM {quote(table)}").fetchone()[0]

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
        self.conn.begin()
        try:
            self.conn.execute(f"CREATE OR REPLACE TEMP TABLE _stage AS SELECT * FROM {quote(table)} LIMIT 0")
            for batch in batches:
                self._insert("_stage", columns, batch)
            self.conn.execute(f"CREATE OR REPLACE TEMP TABLE _del ({', '.join(f'{quote(k)} {t}' for k, t in columns if k in key)})")
            key_columns = [(n, t) for n, t in columns if n in key]
            n_del = 0
            for batch in deleted_keys:
                self._insert("_del", key_columns, batch)
                n_del += batch.num_rows
            top = self.conn.execute(f"SELECT max({quote(cursor)}) FROM _stage").fetchone()[0] if cursor else None
            self.conn.execute(
                f"CREATE OR REPLACE TEMP TABLE _changed AS "
                f"SELECT * FROM _stage EXCEPT SELECT t.* FROM {quote(table)} t SEMI JOIN _stage USING ({keys})")
            changed = self.conn.execute("SELECT count(*) FROM _changed").fetchone()[0]
            deleted = 0
            if n_del:  # each statement below scans the whole table: skip the ones with nothing to do
                deleted = self.conn.execute(
                    f"DELETE FROM {quote(table)} WHERE ({keys}) IN (SELECT ({keys}) FROM _del) "
                    f"AND ({keys}) NOT IN (SELECT ({keys}) FROM _stage)").fetchone()[0]
            if changed:
                self.conn.execute(f"DELETE FROM {quote(table)} WHERE ({keys}) IN (SELECT ({keys}) FROM _changed)")
                self.conn.execute(f"INSERT INTO {quote(table)} SELECT * FROM _changed")
            for tmp in ("_stage", "_del", "_changed"):
                self.conn.execute(f"DROP TABLE {tmp}")
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        return changed, deleted, top

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
