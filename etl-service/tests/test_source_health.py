"""A broken source is one failure of the run, reported as what it is; a broken table is not.

Real damaged SQLite files: pages of one table overwritten, a file that is not a database,
an empty file where the database should be. Every time the published manifest stays as it
was (each table keeps its last good data) and the next run after a repair recovers.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import structlog

from analytics_etl import pipeline
from analytics_etl.demo_source import mutate_demo_source
from analytics_etl.pipeline import run_sync
from analytics_etl.source_health import source_failure
from analytics_shared.errors import SourceError
from analytics_shared.manifest import MANIFEST_KEY, RUNS_PREFIX


def table_pages(path: Path, table: str) -> list[int]:
    """The 1-based page numbers of a table's b-tree (SQLite's dbstat would need a special build)."""
    with sqlite3.connect(path) as con:
        root = con.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", [table]).fetchone()[0]
        page_size = con.execute("PRAGMA page_size").fetchone()[0]
    data = path.read_bytes()
    pages, todo = [], [root]
    while todo:  # walk interior pages (type 5) down to the leaves (type 13)
        page = todo.pop()
        pages.append(page)
        start = (page - 1) * page_size + (100 if page == 1 else 0)
        if data[start] == 5:
            cells = int.from_bytes(data[start + 3:start + 5], "big")
            todo.append(int.from_bytes(data[start + 8:start + 12], "big"))
            for i in range(cells):
                ptr = int.from_bytes(data[start + 12 + 2 * i:start + 14 + 2 * i], "big")
                todo.append(int.from_bytes(data[(page - 1) * page_size + ptr:(page - 1) * page_size + ptr + 4], "big"))
    return pages


def damage_table(path: Path, table: str) -> None:
    with sqlite3.connect(path) as con:
        page_size = con.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(path.read_bytes())
    for page in table_pages(path, table):
        data[(page - 1) * page_size:page * page_size] = b"\x5a" * page_size
    path.write_bytes(bytes(data))


@pytest.fixture
def events():
    with structlog.testing.capture_logs() as captured:
        yield captured


def runs(store) -> list[dict]:  # noqa: ANN001
    return [json.loads(store.get(o.key).data) for o in store.list(RUNS_PREFIX)]


def test_a_corrupt_file_fails_the_run_once_and_keeps_every_table(make_settings, store, source_path, events):
    settings = make_settings(batch_size=100)
    run_sync(settings, store=store)
    published = store.get(MANIFEST_KEY).data
    pristine = source_path.read_bytes()
    mutate_demo_source(source_path, fraction=0.2, seed=5)  # every table has changes to read
    damage_table(source_path, "orders")  # the third table: two read fine before it

    with pytest.raises(SourceError) as info:
        run_sync(settings, store=store)
    assert info.value.message == ("source unusable (found while syncing orders): "
                                  "database disk image is malformed")
    assert not info.value.transient, "a damaged file does not heal by retrying"
    assert store.get(MANIFEST_KEY).data == published, "nothing published: every table keeps its last good data"
    failed = [e for e in events if e["log_level"] == "error" or e["event"] == "table.failed"]
    assert failed == [], f"no table is blamed for the source: {failed}"
    record = next(r for r in runs(store) if r["status"] == "failed")
    assert record["error"] == info.value.message and record["errors"] == {}

    source_path.write_bytes(pristine)  # the operator restores the file
    mutate_demo_source(source_path, fraction=0.2, seed=5)
    assert run_sync(settings, store=store)["status"] == "published"


def test_a_file_that_is_not_a_database_is_one_source_error(make_settings, store, source_path, events):
    settings = make_settings()
    run_sync(settings, store=store)
    published = store.get(MANIFEST_KEY).data
    source_path.write_bytes(b"this was overwritten by a backup tool " * 2000)
    with pytest.raises(SourceError, match="^source error: file is not a database$"):
        run_sync(settings, store=store)
    assert store.get(MANIFEST_KEY).data == published
    assert not [e for e in events if e["event"] == "table.failed"]


def test_a_source_with_none_of_the_tables_is_the_wrong_database_not_five_dropped_tables(
        make_settings, store, source_path, events):
    settings = make_settings()
    run_sync(settings, store=store)
    published = store.get(MANIFEST_KEY).data
    source_path.write_bytes(b"")  # what SQLite leaves at a path that did not exist
    with pytest.raises(SourceError, match=r"source has none of the tables to sync \(customers, inventory, "
                                          r"orders, products, transactions\): is SOURCE_URL the right sqlite"):
        run_sync(settings, store=store)
    assert store.get(MANIFEST_KEY).data == published
    assert not [e for e in events if e["event"] == "table.failed"]


def test_a_source_that_breaks_mid_run_is_found_by_the_probe(make_settings, store, source_path, monkeypatch,
                                                           events):
    """The table's own error says nothing about the source (a plain failed statement), but a
    fresh connection cannot read the catalog any more: the source is what failed."""
    settings = make_settings()
    run_sync(settings, store=store)
    published = store.get(MANIFEST_KEY).data
    mutate_demo_source(source_path, fraction=0.2, seed=9)
    real_full, real_stream = pipeline.stream_full_table, pipeline.stream_batches
    backup = source_path.with_suffix(".bak")
    shutil.copy(source_path, backup)

    def break_source(conn, *args):  # noqa: ANN001, ANN202
        source_path.write_bytes(b"\0" * 4096)
        raise sqlite3.OperationalError("the statement failed")

    monkeypatch.setattr(pipeline, "stream_batches", lambda conn, stmt, *a: (
        break_source(conn) if "products" in str(stmt) else real_stream(conn, stmt, *a)))
    monkeypatch.setattr(pipeline, "stream_full_table", lambda conn, spec, *a: (
        break_source(conn) if spec.target == "products" else real_full(conn, spec, *a)))
    with pytest.raises(SourceError, match=r"^source \w+ \(found while syncing \w+\): "):
        run_sync(settings, store=store)
    assert store.get(MANIFEST_KEY).data == published
    assert not [e for e in events if e["event"] == "table.failed"]


def test_a_table_error_with_a_healthy_source_stays_the_tables(make_settings, source_path):
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{source_path}")
    with engine.connect() as conn, pytest.raises(sa.exc.OperationalError) as info:
        conn.execute(sa.text("SELECT no_such_column FROM orders"))
    assert source_failure(info.value, "orders", engine, {None}) is None
    source_path.write_bytes(b"garbage" * 1000)
    broken = source_failure(info.value, "orders", engine, {None})
    assert broken is not None and broken.message.startswith("source unusable (found while syncing orders): ")
