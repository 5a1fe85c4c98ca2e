"""WorkingDatabase.merge_changes: which staged rows count as changed, and what the table holds after."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from analytics_etl.working import WorkingDatabase

COLUMNS = [("id", "BIGINT"), ("name", "VARCHAR"), ("score", "DOUBLE"), ("updated_at", "TIMESTAMP")]
T1, T2, T3 = datetime(2026, 1, 1, 10), datetime(2026, 1, 1, 11), datetime(2026, 1, 1, 12)


@pytest.fixture
def db(tmp_path: Path) -> WorkingDatabase:
    working = WorkingDatabase(tmp_path / "w.duckdb")
    working.conn.execute("CREATE TABLE items (id BIGINT, name VARCHAR, score DOUBLE, updated_at TIMESTAMP)")
    working.conn.executemany("INSERT INTO items VALUES (?, ?, ?, ?)", [
        (1, "a", 1.0, T1), (2, None, float("nan"), T2), (3, "c", None, None), (4, "d", 4.0, T2)])
    yield working
    working.close()


def batch(*rows: tuple) -> pa.RecordBatch:
    names = [n for n, _ in COLUMNS]
    types = [pa.int64(), pa.string(), pa.float64(), pa.timestamp("us")]
    return pa.RecordBatch.from_arrays([pa.array(col, type=t) for col, t in zip(zip(*rows), types)], names=names)


def rows(db: WorkingDatabase) -> list[tuple]:
    return db.conn.execute("SELECT * FROM items ORDER BY id").fetchall()


def merge(db: WorkingDatabase, *staged: tuple, cursor: str | None = "updated_at") -> tuple[int, int, object]:
    return db.merge_changes("items", COLUMNS, ["id"], [batch(*staged)] if staged else [], cursor=cursor)


@pytest.mark.parametrize("cursor", ["updated_at", None])
def test_rows_re_read_unchanged_are_not_counted(db, cursor):
    before = rows(db)
    # Equal to what the table holds, NULLs and NaN included: a quiet source publishes nothing.
    changed, deleted, top = merge(db, (1, "a", 1.0, T1), (2, None, float("nan"), T2), (3, "c", None, None),
                                  cursor=cursor)
    assert (changed, deleted) == (0, 0)
    assert top == (T2 if cursor else None)
    assert str(rows(db)) == str(before)  # str: NaN != NaN


@pytest.mark.parametrize("cursor", ["updated_at", None])
def test_changed_and_new_rows_replace_by_key(db, cursor):
    changed, _, top = merge(db, (1, "a", 1.0, T1),  # unchanged
                            (4, "d2", 4.0, T2),  # changed without a newer cursor (inside the lookback)
                            (3, "c", 3.0, None),  # changed, NULL cursor
                            (2, "b", 2.0, T3),  # above every cursor in the table
                            (5, "e", 5.0, T3),  # new
                            cursor=cursor)
    assert changed == 4
    assert top == (T3 if cursor else None)
    assert rows(db) == [(1, "a", 1.0, T1), (2, "b", 2.0, T3), (3, "c", 3.0, None), (4, "d2", 4.0, T2),
                        (5, "e", 5.0, T3)]


def test_a_staged_row_above_the_tables_cursors_counts_even_if_otherwise_equal(db):
    # Same content with a newer cursor is a change: the cursor column is part of the row.
    changed, _, top = merge(db, (1, "a", 1.0, T3))
    assert (changed, top) == (1, T3)
    assert rows(db)[0] == (1, "a", 1.0, T3)


def test_after_deletes_the_cursor_bound_still_holds(db):
    # Deleting the newest rows leaves column statistics that overstate the table's maximum
    # cursor: re-read rows are then compared rather than taken, never the other way round.
    db.conn.execute("DELETE FROM items WHERE id IN (2, 4)")
    assert merge(db, (1, "a", 1.0, T1))[0] == 0
    assert merge(db, (1, "a", 1.0, T2), (2, None, float("nan"), T2))[0] == 2
    assert [r[0] for r in rows(db)] == [1, 2, 3]


def test_nothing_staged_changes_nothing(db):
    before = rows(db)
    assert merge(db) == (0, 0, None)
    assert str(rows(db)) == str(before)


def test_empty_table_takes_every_row(db):
    db.conn.execute("DELETE FROM items")
    changed, _, _ = merge(db, (1, "a", 1.0, T1), (2, "b", None, None))
    assert changed == 2 and rows(db) == [(1, "a", 1.0, T1), (2, "b", None, None)]


def test_deleted_keys_are_removed_unless_upserted_in_the_same_merge(db):
    keys = pa.RecordBatch.from_pydict({"id": pa.array([1, 2, 9], pa.int64())})
    changed, deleted, _ = db.merge_changes("items", COLUMNS, ["id"], [batch((2, "b", 2.0, T3))],
                                           deleted_keys=[keys])
    assert (changed, deleted) == (1, 1)
    assert [r[0] for r in rows(db)] == [2, 3, 4]


def test_composite_keys(tmp_path):
    db = WorkingDatabase(tmp_path / "c.duckdb")
    try:
        db.conn.execute("CREATE TABLE pairs (a BIGINT, b VARCHAR, v BIGINT, updated_at TIMESTAMP)")
        db.conn.execute("INSERT INTO pairs VALUES (1, 'x', 10, ?), (1, 'y', 20, ?)", [T1, T2])
        columns = [("a", "BIGINT"), ("b", "VARCHAR"), ("v", "BIGINT"), ("updated_at", "TIMESTAMP")]
        staged = pa.RecordBatch.from_pydict({"a": pa.array([1, 1, 2], pa.int64()), "b": ["x", "y", "x"],
                                             "v": pa.array([10, 21, 30], pa.int64()),
                                             "updated_at": pa.array([T1, T2, T3], pa.timestamp("us"))})
        changed, _, _ = db.merge_changes("pairs", columns, ["a", "b"], [staged], cursor="updated_at")
        assert changed == 2
        assert db.conn.execute("SELECT a, b, v FROM pairs ORDER BY a, b").fetchall() == [
            (1, "x", 10), (1, "y", 21), (2, "x", 30)]
    finally:
        db.close()


def test_a_failed_merge_keeps_the_table(db):
    before = rows(db)

    def failing():  # noqa: ANN202
        yield batch((1, "changed", 1.0, T3))
        raise RuntimeError("connection dropped")

    with pytest.raises(RuntimeError, match="connection dropped"):
        db.merge_changes("items", COLUMNS, ["id"], failing(), cursor="updated_at")
    assert str(rows(db)) == str(before)


def test_table_columns_reads_the_snapshot_table_not_a_temp_table(db):
    assert db.table_columns("items") == COLUMNS
    assert db.table_columns("missing") is None
    db.conn.execute("CREATE TEMP TABLE shadow (x INTEGER)")
    assert db.table_columns("shadow") is None
    db.conn.execute('CREATE TABLE "odd ""name""" (x DECIMAL(12,2), y TIMESTAMPTZ)')
    assert db.table_columns('odd "name"') == [("x", "DECIMAL(12,2)"), ("y", "TIMESTAMP WITH TIME ZONE")]


@pytest.mark.parametrize("cursor", ["updated_at", None])
def test_a_key_read_twice_keeps_its_changed_version(db, cursor):
    # A row updated while the source scanned its cursor index can come back twice: its old
    # version (equal to the table's) and its new one. Only the unchanged copy is dropped.
    changed, _, _ = merge(db, (1, "a", 1.0, T1), (1, "a2", 1.0, T3), (5, "e", 5.0, T3), (5, "e", 5.0, T3),
                          cursor=cursor)
    assert changed == 2
    assert rows(db)[0] == (1, "a2", 1.0, T3) and [r[0] for r in rows(db)] == [1, 2, 3, 4, 5]


def test_memory_limit_reaches_duckdb(tmp_path: Path) -> None:
    limited = WorkingDatabase(tmp_path / "limited.duckdb", memory_limit="256MB")
    try:
        assert limited.conn.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "244.1 MiB"
    finally:
        limited.close()


def test_committed_changes_over_half_the_memory_limit_are_checkpointed(tmp_path: Path) -> None:
    """DuckDB holds committed changes in memory until a checkpoint; past half the limit the
    build checkpoints, so the next table starts with that memory released."""
    path = tmp_path / "relieve.duckdb"
    db = WorkingDatabase(path, memory_limit="64MB")
    used = lambda: db.conn.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone()[0]  # noqa: E731
    try:
        assert db.memory_budget == 64_000_000
        db.conn.execute("CREATE TABLE t AS SELECT range AS id, repeat('x', 40) || range AS s, range * 2 AS v "
                        "FROM range(2000000)")
        db.checkpoint()
        assert db.relieve_memory() is False, "cached blocks of a checkpointed table stay under half"
        db.conn.execute("CREATE TEMP TABLE st AS SELECT id, 'y' || id AS s, v + 1 AS v FROM t WHERE id % 50 = 0")
        db.conn.execute("BEGIN; DELETE FROM t WHERE id IN (SELECT id FROM st); INSERT INTO t SELECT * FROM st; "
                        "COMMIT")  # a merge's shape: 40,000 rows replaced
        held = used()
        assert held > db.memory_budget // 2
        assert db.relieve_memory() is True
        assert used() < held and db.relieve_memory() is False
        assert db.conn.execute("SELECT count(*), count(*) FILTER (WHERE s LIKE 'y%') FROM t").fetchone() == (
            2_000_000, 40_000)
    finally:
        db.close()
    unlimited = WorkingDatabase(tmp_path / "unlimited.duckdb")
    try:
        assert unlimited.memory_budget is None and unlimited.relieve_memory() is False
    finally:
        unlimited.close()


def test_running_out_of_duckdb_memory_names_the_setting() -> None:
    from analytics_etl.errors import classify_source_error

    tiny = duckdb.connect(config={"memory_limit": "4MB", "temp_directory": ""})
    try:
        with pytest.raises(duckdb.OutOfMemoryException) as caught:
            tiny.execute("SELECT list(range) FROM range(5000000)").fetchall()
    finally:
        tiny.close()
    error = classify_source_error(caught.value)
    assert error.message.startswith("DuckDB ran out of memory (raise DUCKDB_MEMORY_LIMIT): Out of Memory Error")
    assert not error.transient


@pytest.mark.parametrize(("configured", "expected"), [(None, "488.2 MiB"), ("", None), ("1GB", "953.6 MiB")])
def test_a_sync_builds_under_the_default_memory_limit(make_settings, monkeypatch, configured, expected):
    # Unset, DuckDB would take 80% of the RAM and keep every block it touched (RSS grew with
    # the database); the default fits a small container. Empty restores DuckDB's default.
    from analytics_etl.pipeline import run_sync

    seen: list[str] = []
    original = WorkingDatabase.__init__

    def spy(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        original(self, *args, **kwargs)
        seen.append(self.conn.execute("SELECT current_setting('memory_limit')").fetchone()[0])

    monkeypatch.setattr(WorkingDatabase, "__init__", spy)
    overrides = {} if configured is None else {"duckdb_memory_limit": configured}
    run_sync(make_settings(tables_to_sync="products", **overrides))
    unlimited = duckdb.connect().execute("SELECT current_setting('memory_limit')").fetchone()[0]
    assert seen == [expected or unlimited]
