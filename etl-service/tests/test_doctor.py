"""`analytics-etl doctor` against real SQLite and PostgreSQL sources and a real local store."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import psycopg
import pytest

from analytics_etl.doctor import doctor
from analytics_etl.pipeline import run_sync
from analytics_shared.manifest import MANIFEST_KEY
from analytics_shared.storage import LocalStore


def run_doctor(settings) -> tuple[int, list[str]]:  # noqa: ANN001
    out: list[str] = []
    code = doctor(settings, out.append)
    return code, [line.rstrip("\n") for line in out]


def test_a_healthy_source_and_store_pass(make_settings):
    settings = make_settings()
    assert run_sync(settings)["status"] == "published"
    code, lines = run_doctor(settings)
    assert code == 0, lines
    assert lines[0].startswith("OK   source: connects (sqlite ")
    assert "OK   table orders: change detection timestamp (auto: no rowversion column, cursor column updated_at)" in lines
    assert "OK   table customers: cursor column updated_at is indexed" in lines
    assert any(line.startswith("OK   store ") and "list, write, conditional write and delete allowed" in line
               for line in lines)
    assert any("snapshot" in line and "readable" in line for line in lines)
    assert lines[-1].startswith("doctor: ") and " 0 FAIL in " in lines[-1]
    assert settings.storage_url and not list(Path(settings.storage_url.removeprefix("file://")).glob("doctor/*"))


def test_sqlite_problems_are_one_line_each_with_the_fix(source_path: Path, make_settings):
    with sqlite3.connect(source_path) as con:
        con.execute("CREATE TABLE notes (body TEXT, updated_at DATETIME)")  # no key, nullable unindexed cursor
        con.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, updated_at DATETIME)")
    settings = make_settings(tables_to_sync="orders,notes,events,ghosts")
    code, lines = run_doctor(settings)
    assert code == 1
    assert ("FAIL table ghosts: table ghosts not found in source -> fix: create it, grant SELECT on it, "
            "or fix TABLES_TO_SYNC / TABLES_CONFIG_PATH") in lines
    assert any(line.startswith("WARN table notes: no primary key: reloaded whole every run") for line in lines)
    assert ("WARN table notes: change detection full (auto: no primary key, no rowversion column, cursor column "
            "updated_at) -> fix: give it a primary key and a cursor column, a rowversion column or Change Tracking"
            ) in lines
    assert any(line.startswith("WARN table events: cursor column updated_at allows NULL") for line in lines)
    assert any(line.startswith("WARN table events: cursor column updated_at has no index") and
               "CREATE INDEX ix_events_updated_at ON events (updated_at)" in line for line in lines)
    assert lines[-1].startswith("doctor: ") and " 1 FAIL in " in lines[-1]


def test_an_explicit_mode_the_table_cannot_do_is_a_warning(make_settings):
    code, lines = run_doctor(make_settings(change_detection="rowversion", tables_to_sync="orders"))
    assert code == 0
    assert any(line.startswith("WARN table orders: change detection rowversion is not possible (") and
               "falls back to full" in line for line in lines), lines


class StoreIgnoringConditions(LocalStore):
    """A store that drops If-Match (a fault no real store here can be made to have)."""

    def put(self, key, data, *, if_match=None, if_none_match=False, content_type="application/json"):  # noqa: ANN001, ANN201
        return super().put(key, data, if_none_match=if_none_match, content_type=content_type)


def test_a_store_without_conditional_writes_fails(make_settings, tmp_path: Path, monkeypatch):
    settings = make_settings(tables_to_sync="orders")
    monkeypatch.setattr("analytics_etl.doctor.open_store", lambda *a, **k: StoreIgnoringConditions(tmp_path / "s"))
    code, lines = run_doctor(settings)
    assert code == 1
    assert any(line.startswith("FAIL store ") and "ignores conditional writes" in line for line in lines), lines


def test_a_corrupt_manifest_or_missing_snapshot_fails(make_settings, store):
    settings = make_settings(tables_to_sync="orders")
    run_sync(settings)
    manifest = json.loads(store.get_bytes(MANIFEST_KEY))
    store.delete(manifest["index_key"])
    code, lines = run_doctor(settings)
    assert code == 1 and any("not readable" in line and "is missing from the store" in line for line in lines), lines
    store.put(MANIFEST_KEY, b"{not json")
    code, lines = run_doctor(settings)
    assert code == 1 and any(line.startswith("FAIL store ") and "unreadable" in line for line in lines), lines


def test_an_unreachable_source_fails_and_the_store_is_still_checked(make_settings):
    settings = make_settings(source_url="postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    code, lines = run_doctor(settings)
    assert code == 1
    assert lines[0].startswith("FAIL source: cannot connect: ") and "-> fix: check SOURCE_URL" in lines[0]
    assert any(line.startswith("OK   store ") for line in lines)


@pytest.mark.postgres
def test_postgres_source(pg: psycopg.Connection, schema: str, pg_url: str, make_settings):
    pg.execute(f"CREATE TABLE {schema}.orders (id int PRIMARY KEY, addr inet, updated_at timestamp NOT NULL)")
    pg.execute(f"CREATE INDEX ON {schema}.orders (updated_at)")
    pg.execute(f"CREATE TABLE {schema}.loose (id int PRIMARY KEY, updated_at timestamptz)")
    pg.execute(f"CREATE VIEW {schema}.v_orders AS SELECT id, updated_at FROM {schema}.orders")
    tables = ",".join(f"{schema}.{t}" for t in ("orders", "loose", "v_orders", "missing"))
    code, lines = run_doctor(make_settings(source_url=pg_url, tables_to_sync=tables))
    assert code == 1
    assert lines[0].startswith("OK   source: connects (postgresql ")
    assert "OK   table orders: cursor column updated_at is indexed" in lines
    assert any(line.startswith("WARN table orders: no DuckDB type for addr (INET()): synced as text") for line in lines)
    assert any(line.startswith("WARN table loose: cursor column updated_at allows NULL") for line in lines)
    assert any(line.startswith("WARN table loose: cursor column updated_at has no index") for line in lines)
    assert any(line.startswith("WARN table v_orders: no primary key") for line in lines)
    assert f"FAIL table missing: table {schema}.missing not found in source -> fix: create it, grant SELECT on it, " \
           f"or fix TABLES_TO_SYNC / TABLES_CONFIG_PATH" in lines
