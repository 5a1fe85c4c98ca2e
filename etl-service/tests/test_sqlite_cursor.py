"""Timestamp cursors on SQLite: text timestamps with and without fractional seconds in
DATETIME/TIMESTAMP-declared (NUMERIC affinity) columns, other key names, NULLs, and hard
deletes found by the primary-key reconciliation, natively and through the driver."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from analytics_etl.cursor import select_since_timestamp
from analytics_etl.pipeline import run_sync
from analytics_etl.source import reflect_tables
from analytics_shared.manifest import read_manifest
from analytics_shared.snapshot_files import fetch_snapshot

# The spellings of one instant a writer may leave in a DATETIME column (SQLite keeps text as it
# is given): no fraction (CURRENT_TIMESTAMP; Python's isoformat at .000000), a short one, a full one.
# (newest row when the table is loaded, a row written later with that same instant)
SAME_INSTANT = [
    ("2026-03-01 10:00:00", "2026-03-01 10:00:00"),
    ("2026-03-01 10:00:00", "2026-03-01 10:00:00.000000"),
    ("2026-03-01 10:00:00.000000", "2026-03-01 10:00:00"),
    ("2026-03-01 10:00:00.5", "2026-03-01 10:00:00.5"),
    ("2026-03-01 10:00:00.5", "2026-03-01 10:00:00.500000"),
    ("2026-03-01 10:00:00.500000", "2026-03-01 10:00:00.5"),
    ("2026-03-01 10:00:00.500000", "2026-03-01 10:00:00.500000"),
]


def make_ledger(path: Path, cursor_type: str = "DATETIME") -> None:
    with sqlite3.connect(path) as con:
        con.execute(f"CREATE TABLE ledger (entry_no INTEGER PRIMARY KEY, account TEXT, amount NUMERIC(10,2), "
                    f"memo TEXT, booked_at {cursor_type}, updated_at {cursor_type} NOT NULL)")
        con.execute("CREATE INDEX ix_ledger_updated_at ON ledger (updated_at)")
        con.executemany("INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?)", [
            (i, f"acc-{i % 7}", i * 1.25 if i % 5 else None, None if i % 3 else f"memo {i}",
             None if i % 4 else "2026-02-01 08:00:00", f"2026-03-01 09:{i % 60:02d}:{i % 60:02d}")
            for i in range(1, 301)])


def snapshot_ledger(store, tmp_path: Path) -> list[tuple]:  # noqa: ANN001
    manifest, _ = read_manifest(store)
    local = tmp_path / f"snap-{manifest.version}.db"
    fetch_snapshot(store, manifest, local)
    with duckdb.connect(str(local), read_only=True) as con:
        return con.execute("SELECT entry_no, account, memo, updated_at FROM ledger ORDER BY entry_no").fetchall()


@pytest.fixture
def ledger_settings(make_settings, tmp_path):  # noqa: ANN001, ANN201
    path = tmp_path / "ledger.db"
    return path, lambda **kw: make_settings(**{"source_url": f"sqlite:///{path}", "tables_to_sync": "ledger", **kw})


@pytest.mark.parametrize(("newest", "late"), SAME_INSTANT)
def test_a_row_at_the_watermark_is_not_lost_whatever_the_texts_fraction(ledger_settings, store, tmp_path,
                                                                      newest, late):
    # No lookback: the newest row sets the watermark, and rows committed later with that same
    # instant must still be read. SQLite compares the texts: '10:00:00' < '10:00:00.000000' and
    # '10:00:00.5' < '10:00:00.500000', so the bound value must be the watermark's shortest spelling.
    path, settings_for = ledger_settings
    make_ledger(path)
    with sqlite3.connect(path) as con:
        con.execute("UPDATE ledger SET updated_at = ? WHERE entry_no = 300", [newest])
    settings = settings_for(cursor_lag_seconds=0, delete_reconcile_every=0)
    assert run_sync(settings)["status"] == "published"
    with sqlite3.connect(path) as con:
        con.execute("INSERT INTO ledger VALUES (301, 'late', 1, 'committed late', NULL, ?)", [late])
        con.execute("UPDATE ledger SET memo = 'changed late', updated_at = ? WHERE entry_no = 7", [late])
    assert run_sync(settings)["status"] == "published"
    rows = {r[0]: r for r in snapshot_ledger(store, tmp_path)}
    assert rows[301][1:3] == ("late", "committed late")
    assert rows[7][2] == "changed late"


@pytest.mark.parametrize("cursor_type", ["DATETIME", "TIMESTAMP"])
def test_the_incremental_read_searches_the_cursor_index(tmp_path, cursor_type):
    # DATETIME/TIMESTAMP columns have NUMERIC affinity; a bound text value still compares as
    # text and the index on updated_at answers the range (a full scan would read every row).
    path = tmp_path / "ledger.db"
    make_ledger(path, cursor_type)
    engine = sa.create_engine(f"sqlite:///{path}")
    statements: list[tuple[str, tuple]] = []
    sa.event.listen(engine, "before_cursor_execute",
                    lambda conn, cur, stmt, params, ctx, many: statements.append((stmt, params)))
    try:
        specs, _ = reflect_tables(engine, ["ledger"], requested="auto", cursor_column="updated_at")
        bound = []
        for since, expected in ((datetime(2026, 3, 1, 9, 58, 58), 10), (datetime(2026, 3, 1, 9, 58, 58, 250000), 5)):
            with engine.connect() as conn:
                got = conn.execute(select_since_timestamp(specs["ledger"], since)).fetchall()
                stmt, params = statements[-1]
                bound.append(params)
                plan = " ".join(r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + stmt, params))
            assert "USING INDEX ix_ledger_updated_at" in plan, plan
            assert len(got) == expected  # the 09:58:58 and 09:59:59 rows, 5 each
        assert bound == [("2026-03-01 09:58:58",), ("2026-03-01 09:58:58.25",)]
    finally:
        engine.dispose()


def test_hard_deletes_are_reconciled_with_other_key_names(ledger_settings, store, tmp_path, monkeypatch):
    path, settings_for = ledger_settings
    make_ledger(path)
    with sqlite3.connect(path) as con:  # a second table with a composite key, text first
        con.execute("CREATE TABLE postings (book TEXT, line INTEGER, v NUMERIC, updated_at DATETIME, "
                    "PRIMARY KEY (book, line))")
        con.executemany("INSERT INTO postings VALUES (?, ?, ?, ?)",
                        [(b, n, None if n % 2 else n, "2026-03-01 09:00:00") for b in "xyz" for n in range(50)])
    import connectorx

    native_queries: list[str] = []
    real = connectorx.read_sql

    def spy(conn, query, **kw):  # noqa: ANN001, ANN202
        native_queries.append(query)
        return real(conn, query, **kw)

    monkeypatch.setattr(connectorx, "read_sql", spy)
    settings = settings_for(tables_to_sync="ledger,postings", delete_reconcile_every=1)
    run_sync(settings)
    with sqlite3.connect(path) as con:
        con.execute("DELETE FROM ledger WHERE entry_no IN (3, 150, 299)")
        con.execute("DELETE FROM postings WHERE (book = 'y' AND line = 7) OR (book = 'z' AND line = 49)")
    native_queries.clear()
    assert run_sync(settings)["status"] == "published"
    assert [r[0] for r in snapshot_ledger(store, tmp_path)] == [i for i in range(1, 301) if i not in (3, 150, 299)]
    manifest, _ = read_manifest(store)
    assert manifest.tables["postings"].rows == 148
    # Not through connectorx: mid-run, its own copy of SQLite would remove the -wal and -shm
    # files under the run's driver connections (POSIX locks are per process; a later read on
    # them fails with "disk I/O error", see sqlite.org/howtocorrupt.html 2.2.1).
    assert native_queries == []
