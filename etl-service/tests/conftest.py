"""Fixtures: real SQLite/PostgreSQL sources, a local object store, settings per test."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import date, datetime, time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import uuid

import duckdb
import psycopg
import pytest

from analytics_etl.config import EtlSettings, get_settings
from analytics_etl.demo_source import create_demo_source
from analytics_shared.manifest import read_manifest
from analytics_shared.snapshot_files import fetch_snapshot
from analytics_shared.storage import LocalStore, ObjectStore

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def source_path(tmp_path: Path) -> Path:
    path = tmp_path / "source.db"
    create_demo_source(path, rows=3000, seed=11)
    return path


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.fixture
def make_settings(tmp_path: Path, source_path: Path, store: LocalStore):
    def build(**overrides: object) -> EtlSettings:
        # The smallest chunk size: the small test snapshots (~1.5 MB) still span several chunks.
        values = {"source_url": f"sqlite:///{source_path}", "storage_url": store.url,
                  "etl_state_dir": tmp_path / "state", "delete_reconcile_every": 1,
                  "cursor_lag_seconds": 60, "batch_size": 500, "chunk_size": "256KiB"}
        values.update(overrides)
        return get_settings(**values)

    return build


def normalize(value: object) -> object:
    """One comparable form for a value from SQLite, PostgreSQL or DuckDB."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (Decimal, float)):
        return round(float(value), 6)
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(" ", timespec="microseconds")
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] in " T" and value[13] == ":":
        try:
            return datetime.fromisoformat(value).replace(tzinfo=None).isoformat(" ", timespec="microseconds")
        except ValueError:
            return value
    return value


def snapshot_rows(store: ObjectStore, tmp_path: Path, table: str) -> list[tuple]:
    manifest, _ = read_manifest(store)
    assert manifest is not None
    local = tmp_path / f"check-{manifest.version}.db"
    if not local.exists():
        fetch_snapshot(store, manifest, local)
    with duckdb.connect(str(local), read_only=True) as con:
        rows = con.execute(f'SELECT * FROM "{table}" ORDER BY id').fetchall()
    return [tuple(normalize(v) for v in row) for row in rows]


def sqlite_rows(path: Path, table: str) -> list[tuple]:
    with sqlite3.connect(path) as con:
        rows = con.execute(f'SELECT * FROM "{table}" ORDER BY id').fetchall()
    return [tuple(normalize(v) for v in row) for row in rows]


@pytest.fixture
def assert_snapshot_matches(store: LocalStore, tmp_path: Path, source_path: Path):
    """Compare every listed table of the published snapshot with the source, row by row."""
    from analytics_etl.demo_source import DEMO_TABLES

    def check(tables=DEMO_TABLES) -> None:  # noqa: ANN001
        for table in tables:
            assert snapshot_rows(store, tmp_path, table) == sqlite_rows(source_path, table), table

    return check


@pytest.fixture
def published_rows(store: LocalStore, tmp_path: Path):
    return lambda table: snapshot_rows(store, tmp_path, table)


@pytest.fixture
def published(store: LocalStore, tmp_path: Path):
    """published(sql): rows of `sql` on the version the store publishes now (fetched once per version)."""
    def query(sql: str) -> list[tuple]:
        manifest, _ = read_manifest(store)
        local = tmp_path / f"published-{manifest.version.replace(':', '')}.db"
        if not local.exists():
            fetch_snapshot(store, manifest, local)
        with duckdb.connect(str(local), read_only=True) as con:
            return con.execute(sql).fetchall()

    return query


class Webhook:
    """A real HTTP server standing in for a Slack incoming webhook: it records every POST."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.replies: list[int] = []  # status codes to answer with, in order; then 200
        self.hang = threading.Event()  # while set, requests are read and never answered
        self.release = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.received.append({"body": body, "content_type": self.headers["Content-Type"]})
                if hook.hang.is_set():
                    hook.release.wait(30)
                    return
                self.send_response(hook.replies.pop(0) if hook.replies else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/XXXX"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def texts(self) -> list[str]:
        return [r["body"]["text"] for r in self.received]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    try:
        yield hook
    finally:
        hook.close()


@pytest.fixture
def pg():
    try:
        conn = psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required at {PG_DSN} and is not reachable: {exc}")
    with conn:
        yield conn


@pytest.fixture
def schema(pg: psycopg.Connection):
    name = f"etl_test_{uuid.uuid4().hex}"
    pg.execute(f"CREATE SCHEMA {name}")
    try:
        yield name
    finally:
        pg.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture
def pg_url(pg: psycopg.Connection) -> str:
    """The SQLAlchemy URL of the test PostgreSQL server (fails when it is not reachable)."""
    return PG_URL
