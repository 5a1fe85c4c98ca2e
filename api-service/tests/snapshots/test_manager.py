"""Snapshot loading, hot swap and rejection of bad snapshots, on real published files."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from analytics_api.snapshots.manager import SnapshotManager
from analytics_shared.manifest import MANIFEST_KEY, read_manifest
from analytics_shared.storage import LocalStore

TABLES = ["customers", "inventory", "orders", "products", "transactions"]


class CountingStore(LocalStore):
    """The real local store, counting snapshot downloads."""

    downloads = 0

    def download_file(self, key: str, path: Path) -> None:
        type(self).downloads += 1
        super().download_file(key, path)


def manager_for(store: LocalStore, cache: Path) -> SnapshotManager:
    return SnapshotManager(store, cache_dir=cache, tables=TABLES, poll_seconds=3600, memory_limit="256MB", threads=1)


def count_orders(manager: SnapshotManager) -> int:
    with manager.use() as snap:
        return snap.conn.cursor().execute("SELECT count(*) FROM orders").fetchone()[0]


def change_source(demo: Path) -> None:
    with sqlite3.connect(demo / "source.db") as con:
        con.execute("INSERT INTO orders SELECT id + 1000000, customer_id, status, total, currency, ordered_at, "
                    "shipped_at, note, datetime('now'), datetime('now') FROM orders WHERE id <= 10")


def test_loads_swaps_and_removes_the_old_file(demo, store, publish, tmp_path) -> None:  # noqa: ANN001
    manager = manager_for(store, tmp_path / "cache")
    assert manager.refresh() is True
    first = manager.current
    before = count_orders(manager)
    assert manager.refresh() is False  # same version: nothing to do
    change_source(demo)
    assert publish()["status"] == "published"
    assert manager.refresh() is True
    assert manager.current.version != first.version
    assert count_orders(manager) == before + 10
    assert first.closed and not first.path.exists()
    assert manager.current.path.exists()
    manager.stop()


def test_in_flight_queries_finish_on_the_old_snapshot(demo, store, publish, tmp_path) -> None:  # noqa: ANN001
    manager = manager_for(store, tmp_path / "cache")
    manager.refresh()
    with manager.use() as old:
        change_source(demo)
        publish()
        assert manager.refresh() is True
        assert old.retired and not old.closed
        # the old connection still answers, with the old data
        assert old.conn.cursor().execute("SELECT count(*) FROM orders WHERE id > 1000000").fetchone()[0] == 0
        assert old.path.exists()
    assert old.closed and not old.path.exists()
    assert count_orders(manager) > 0
    manager.stop()


def test_workers_on_one_host_share_one_download(store, tmp_path) -> None:  # noqa: ANN001
    counting = CountingStore(Path(store.url.removeprefix("file://")))
    CountingStore.downloads = 0
    a, b = manager_for(counting, tmp_path / "cache"), manager_for(counting, tmp_path / "cache")
    assert a.refresh() and b.refresh()
    assert CountingStore.downloads == 1
    assert a.current.path == b.current.path
    a.stop()
    b.stop()


def test_nothing_published_yet_is_503_then_ready_after_the_first_sync(make_client, demo, auth, publish) -> None:  # noqa: ANN001
    empty = demo / "empty-store"
    client = make_client(storage_url=f"file://{empty}")
    r = client.get("/query", params={"q": "SELECT 1 AS x FROM orders"}, headers=auth)
    assert r.status_code == 503 and r.json()["error"]["code"] == "snapshot_unavailable"
    assert "no snapshot" in r.json()["error"]["message"] and r.headers["retry-after"]
    assert client.get("/ready").status_code == 503
    assert client.get("/health").status_code == 200
    empty.mkdir(exist_ok=True)
    for item in (demo / "store").iterdir():
        item.rename(empty / item.name)
    client.app.state.services.snapshots.refresh()
    assert client.get("/ready").status_code == 200
    assert client.get("/query", params={"q": "SELECT count(*) AS n FROM orders"}, headers=auth).status_code == 200


def _break(kind: str, store: LocalStore) -> str:
    """Publish a bad new manifest of the given kind; returns the expected log/error fragment."""
    manifest, etag = read_manifest(store)
    root = Path(store.url.removeprefix("file://"))
    if kind == "malformed":
        (root / MANIFEST_KEY).write_text('{"format_version": 1, "version": 42')
        return "malformed manifest"
    if kind == "unknown_format":
        data = json.loads((root / MANIFEST_KEY).read_text())
        data["format_version"] = 99
        (root / MANIFEST_KEY).write_text(json.dumps(data))
        return "format_version"
    new_key = manifest.database_key.replace(".db", "-bad.db")
    source = root / manifest.database_key
    target = root / new_key
    update: dict = {"version": manifest.version + "-bad", "database_key": new_key}
    if kind == "corrupt":  # same size, different bytes
        data = bytearray(source.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
        expected = "sha256"
    elif kind == "truncated":
        target.write_bytes(source.read_bytes()[: manifest.size_bytes // 2])
        expected = "bytes"
    elif kind == "missing":
        expected = "not found"
    elif kind == "incompatible":
        target.write_bytes(source.read_bytes())
        update["duckdb_version"] = "99.1.0"
        expected = "cannot read it"
    elif kind == "not_duckdb":  # verifies (sha and size match) but is not a database
        from analytics_shared.snapshot_files import sha256_file

        target.write_bytes(b"this is not a duckdb file\n" * 100)
        update.update(sha256=sha256_file(target), size_bytes=target.stat().st_size)
        expected = "cannot open snapshot"
    else:
        raise AssertionError(kind)
    (root / MANIFEST_KEY).write_text(manifest.model_copy(update=update).model_dump_json())
    return expected


@pytest.mark.parametrize("kind", ["malformed", "unknown_format", "corrupt", "truncated", "missing",
                                  "incompatible", "not_duckdb"])
def test_bad_new_snapshot_is_rejected_and_the_old_keeps_serving(client, auth, store, kind) -> None:  # noqa: ANN001
    manager = client.app.state.services.snapshots
    serving = manager.current.version
    expected = _break(kind, store)
    assert manager.refresh() is False
    assert manager.current.version == serving
    assert expected.lower() in (manager.last_error or "").lower(), manager.last_error
    r = client.get("/query", params={"q": "SELECT count(*) AS n FROM orders"}, headers=auth)
    assert r.status_code == 200 and r.json()["snapshot_version"] == serving
    ready = client.get("/ready").json()
    assert ready["snapshot_version"] == serving and ready["last_error"]
    # a rejected version is not downloaded again on every poll
    assert manager.refresh() is False and manager.current.version == serving


def test_recovers_when_a_good_snapshot_follows_a_bad_one(client, auth, store, demo, publish) -> None:  # noqa: ANN001
    manager = client.app.state.services.snapshots
    manifest, _ = read_manifest(store)
    root = Path(store.url.removeprefix("file://"))
    good = (root / MANIFEST_KEY).read_text()
    _break("corrupt", store)
    assert manager.refresh() is False
    (root / MANIFEST_KEY).write_text(good)  # operator rolls the manifest back
    change_source(demo)
    assert publish()["status"] == "published"
    assert manager.refresh() is True
    r = client.get("/query", params={"q": "SELECT count(*) AS n FROM orders WHERE id > 1000000"}, headers=auth)
    assert r.json()["data"] == [{"n": 10}]
