"""Rows at the watermark's own timestamp, end to end, with no lookback (CURSOR_LAG_SECONDS=0).

The shape that lost rows: timestamps written as text without fractional seconds (what most
SQLite applications write), and many rows sharing one timestamp on both sides of a sync: the
first sync's watermark is that timestamp, the rows committed after it carry the same one. The
cursor column is declared in the ways applications declare it; on PostgreSQL as a typed
timestamp without fractions and as text.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import duckdb
import psycopg
import pytest

from analytics_etl.pipeline import run_sync
from analytics_shared.manifest import read_manifest
from analytics_shared.snapshot_files import fetch_snapshot

STAMP = "2025-08-22 23:40:01"
BEFORE = "2025-08-22 23:39:59"


def _first_rows() -> list[tuple]:
    # 60 rows at STAMP and a few before it: STAMP is the first sync's watermark.
    return [(i, f"first-{i}", STAMP if i > 5 else BEFORE) for i in range(1, 66)]


def _later_rows() -> list[tuple]:
    return [(i, f"later-{i}", STAMP) for i in range(66, 186)]


def _check(store, tmp_path: Path) -> None:  # noqa: ANN001
    manifest, _ = read_manifest(store)
    assert manifest.tables["events"].change_detection == "timestamp"
    local = tmp_path / "published.db"
    fetch_snapshot(store, manifest, local)
    with duckdb.connect(str(local), read_only=True) as con:
        rows = dict(con.execute("SELECT id, v FROM events").fetchall())
    assert set(rows) == set(range(1, 186))
    assert rows[3] == "changed-at-the-watermark" and rows[64] == "changed-at-the-watermark"


def _sync_across_the_boundary(settings, write) -> None:  # noqa: ANN001
    """First sync; more rows and updates at the watermark's timestamp; second sync."""
    first = run_sync(settings)
    assert first["status"] == "published", first
    write("INSERT", _later_rows())
    write("UPDATE", [("changed-at-the-watermark", STAMP, 3), ("changed-at-the-watermark", STAMP, 64)])
    second = run_sync(settings)
    assert second["status"] == "published", second  # not "unchanged": the rows at STAMP were read
    assert second["tables"]["events"]["status"] == "ok"


@pytest.mark.parametrize("declared", ["DATETIME", "TIMESTAMP", "TEXT", "VARCHAR(19)", ""])
def test_sqlite_text_timestamps_at_the_watermark_are_synced(declared, make_settings, store, tmp_path: Path):
    path = tmp_path / f"events-{declared[:4] or 'untyped'}.db"
    with sqlite3.connect(path) as con:
        con.execute(f"CREATE TABLE events (id INTEGER PRIMARY KEY, v TEXT, updated_at {declared})")
        con.executemany("INSERT INTO events VALUES (?, ?, ?)", _first_rows())

    def write(kind: str, rows: list[tuple]) -> None:
        with sqlite3.connect(path) as con:
            sql = ("INSERT INTO events VALUES (?, ?, ?)" if kind == "INSERT"
                   else "UPDATE events SET v = ?, updated_at = ? WHERE id = ?")
            con.executemany(sql, rows)

    settings = make_settings(source_url=f"sqlite:///{path}", tables_to_sync="events", cursor_lag_seconds=0,
                             delete_reconcile_every=0, batch_size=100)
    _sync_across_the_boundary(settings, write)
    _check(store, tmp_path)


@pytest.mark.postgres
@pytest.mark.parametrize("declared", ["timestamp(0)", "timestamptz", "text"])
def test_postgres_timestamps_at_the_watermark_are_synced(declared, pg: psycopg.Connection, schema: str, pg_url: str,
                                                         make_settings, store, tmp_path: Path):
    pg.execute(f"CREATE TABLE {schema}.events (id bigint PRIMARY KEY, v text, updated_at {declared} NOT NULL)")
    cast = "" if declared == "text" else f"::{declared}"

    def write(kind: str, rows: list[tuple]) -> None:
        sql = (f"INSERT INTO {schema}.events VALUES (%s, %s, %s{cast})" if kind == "INSERT"
               else f"UPDATE {schema}.events SET v = %s, updated_at = %s{cast} WHERE id = %s")
        with pg.cursor() as cur:
            cur.executemany(sql, rows)

    write("INSERT", _first_rows())
    settings = make_settings(source_url=pg_url, tables_to_sync=f"{schema}.events", cursor_lag_seconds=0,
                             delete_reconcile_every=0, batch_size=100)
    _sync_across_the_boundary(settings, write)
    _check(store, tmp_path)
