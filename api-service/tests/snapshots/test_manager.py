"""Snapshot loading, hot swap and rejection of bad snapshots, on real published files."""

from __future__ import annotations

import fcntl
import hashlib
import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from analytics_api.errors import Gone
from analytics_api.snapshots.manager import SnapshotManager
from analytics_shared.chunks import CHUNKS_PREFIX, chunk_key, list_digest, read_index
from analytics_shared.manifest import MANIFEST_KEY, read_manifest
from analytics_shared.snapshot_files import fetch_snapshot
from analytics_shared.storage import LocalStore

TABLES = ["customers", "inventory", "orders", "products", "transactions"]


class CountingStore(LocalStore):
    """The real local store, counting chunk downloads."""

    downloads = 0

    def get_bytes(self, key: str) -> bytes:
        if key.startswith(CHUNKS_PREFIX):
            type(self).downloads += 1
        return super().get_bytes(key)


def manager_for(store: LocalStore, cache: Path, keep_previous: int = 0) -> SnapshotManager:
    return SnapshotManager(store, cache_dir=cache, tables=TABLES, poll_seconds=3600, memory_limit="256MB", threads=1,
                           keep_previous=keep_previous)


def count_orders(manager: SnapshotManager) -> int:
    with manager.use() as snap:
        return snap.conn.cursor().execute("SELECT count(*) FROM orders").fetchone()[0]


def change_source(demo: Path, shift: int = 1_000_000) -> None:
    with sqlite3.connect(demo / "source.db") as con:
        con.execute(f"INSERT INTO orders SELECT id + {shift}, customer_id, status, total, currency, ordered_at, "
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


def test_replaced_versions_stay_open_for_page_cursors_then_are_gone(demo, store, publish, tmp_path) -> None:  # noqa: ANN001
    manager = manager_for(store, tmp_path / "cache", keep_previous=1)
    manager.refresh()
    first = manager.current
    for step in range(2):
        change_source(demo, shift=1_000_000 * (step + 1))
        assert publish()["status"] == "published"
        assert manager.refresh() is True
        if step == 0:  # one replaced version is kept: a cursor pinned to it still reads it
            assert not first.closed and first.path.exists()
            with manager.use(first.version) as snap:
                assert snap is first
                assert snap.conn.cursor().execute("SELECT count(*) FROM orders").fetchone()[0] > 0
    # two swaps later it is retired, closed and removed: a cursor pinned to it is Gone
    assert first.closed and not first.path.exists()
    with pytest.raises(Gone, match="has been retired"):
        with manager.use(first.version):
            pass
    with manager.use(manager.current.version) as snap:
        assert snap is manager.current
    manager.stop()
    assert manager.current is None


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


def test_workers_on_one_host_share_one_download(store, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """Two workers load the same version at once: the second queues on the host lock while the
    first fetches, then opens the first one's file without a chunk GET of its own."""
    root = Path(store.url.removeprefix("file://"))
    fetching, queued, release = threading.Event(), threading.Event(), threading.Event()

    class FirstWorkerStore(CountingStore):
        downloads = 0

        def get_bytes(self, key: str) -> bytes:
            if key.startswith(CHUNKS_PREFIX):  # inside the host lock: hold it until the other queues
                fetching.set()
                assert release.wait(60), "the second worker never queued on the host lock"
            return super().get_bytes(key)

    real_flock = fcntl.flock

    def flock(fd, operation):  # noqa: ANN001, ANN202 - the real lock, noting when it is held by another
        if operation == fcntl.LOCK_EX:
            try:
                return real_flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                queued.set()
        return real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    CountingStore.downloads = 0
    a = manager_for(FirstWorkerStore(root), tmp_path / "cache")
    b = manager_for(CountingStore(root), tmp_path / "cache")
    with ThreadPoolExecutor(2) as pool:
        try:
            first = pool.submit(a.refresh)
            assert fetching.wait(60), "the first worker never started fetching"
            second = pool.submit(b.refresh)
            assert queued.wait(60), "the second worker did not wait for the host lock"
        finally:
            release.set()  # never leave the first worker holding the lock
        assert first.result(timeout=120) and second.result(timeout=120)
    manifest, _ = read_manifest(store)
    assert FirstWorkerStore.downloads == len(set(read_index(store, manifest.index_key).chunks))
    assert CountingStore.downloads == 0
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


def _new_version(store: LocalStore, data: bytes, *, corrupt: int | None = None, missing: int | None = None,
                 **update: object) -> dict:
    """Store `data` as a new format-2 version's chunks and index; chunk `corrupt` is stored with
    wrong bytes, chunk `missing` not at all. Returns the manifest update naming it."""
    manifest, _ = read_manifest(store)
    index = read_index(store, manifest.index_key)
    size = index.chunk_size
    digests = []
    for position, offset in enumerate(range(0, len(data), size)):
        block = data[offset:offset + size]
        digests.append(hashlib.sha256(block).hexdigest())
        if position != missing:
            store.put(chunk_key(digests[-1]), block[::-1] if position == corrupt else block)
    version = manifest.version + "-bad"
    new_index = index.model_copy(update={"version": version, "size_bytes": len(data), "chunks": digests,
                                         "sha256": list_digest(digests), **update})
    key = f"history/{version}.index.json"
    store.put(key, new_index.model_dump_json().encode())
    return {"version": version, "index_key": key, "sha256": new_index.sha256, "size_bytes": len(data)}


def _break(kind: str, store: LocalStore, tmp_path: Path) -> str:
    """Publish a bad new manifest of the given kind; returns the expected log/error fragment."""
    manifest, etag = read_manifest(store)
    root = Path(store.url.removeprefix("file://"))
    if kind == "malformed":
        (root / MANIFEST_KEY).write_text('{"format_version": 2, "version": 42')
        return "malformed manifest"
    if kind == "unknown_format":
        data = json.loads((root / MANIFEST_KEY).read_text())
        data["format_version"] = 99
        (root / MANIFEST_KEY).write_text(json.dumps(data))
        return "format_version"
    served = tmp_path / "served.db"
    fetch_snapshot(store, manifest, served)
    changed = bytearray(served.read_bytes())
    changed[len(changed) // 2] ^= 0xFF  # a new version differing in one chunk
    changed = bytes(changed)
    middle = len(changed) // 2 // read_index(store, manifest.index_key).chunk_size
    if kind == "corrupt_chunk":  # the one new chunk's bytes in the store are not what its name says
        update, expected = _new_version(store, changed, corrupt=middle), "corrupt"
    elif kind == "missing_chunk":  # e.g. collected by a GC that was wrongly configured
        update, expected = _new_version(store, changed, missing=middle), "missing"
    elif kind == "index_lies":  # its digest is not that of the chunks it lists
        update = _new_version(store, changed)
        index = json.loads((root / update["index_key"]).read_text())
        (root / update["index_key"]).write_text(json.dumps({**index, "chunks": index["chunks"][::-1]}))
        expected = "not the digest of the chunk list"
    elif kind == "manifest_mismatch":  # the index is another file than the one the manifest promises
        update = {**_new_version(store, changed), "sha256": "0" * 64}
        expected = "describes version"
    elif kind == "truncated_index":
        update = _new_version(store, changed)
        path = root / update["index_key"]
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        expected = "malformed chunk index"
    elif kind == "missing_index":
        update = {"version": manifest.version + "-bad", "index_key": "history/never-written.index.json"}
        expected = "missing"
    elif kind == "incompatible":
        update = {**_new_version(store, changed), "duckdb_version": "99.1.0"}
        expected = "cannot read it"
    elif kind == "not_duckdb":  # verifies (sha and size match) but is not a database
        update, expected = _new_version(store, b"this is not a duckdb file\n" * 100), "cannot open snapshot"
    elif kind in ("corrupt_file", "truncated_file", "missing_file"):  # format 1: one whole file
        key = f"history/{manifest.version}-bad.db"
        data = {"corrupt_file": changed, "truncated_file": changed[: len(changed) // 2]}.get(kind)
        if data is not None:
            (root / key).write_bytes(data)
        update = {"format_version": 1, "version": manifest.version + "-bad", "database_key": key, "index_key": None,
                  "chunk_size": None, "sha256": hashlib.sha256(served.read_bytes()).hexdigest()}  # not `changed`
        expected = {"corrupt_file": "sha256", "truncated_file": "bytes", "missing_file": "not found"}[kind]
    else:
        raise AssertionError(kind)
    (root / MANIFEST_KEY).write_text(manifest.model_copy(update=update).model_dump_json())
    return expected


@pytest.mark.parametrize("kind", ["malformed", "unknown_format", "corrupt_chunk", "missing_chunk", "index_lies",
                                  "manifest_mismatch", "truncated_index", "missing_index", "incompatible", "not_duckdb",
                                  "corrupt_file", "truncated_file", "missing_file"])
def test_bad_new_snapshot_is_rejected_and_the_old_keeps_serving(client, auth, store, kind, tmp_path) -> None:  # noqa: ANN001
    manager = client.app.state.services.snapshots
    serving = manager.current.version
    expected = _break(kind, store, tmp_path)
    assert manager.refresh() is False
    assert manager.current.version == serving
    assert expected.lower() in (manager.last_error or "").lower(), manager.last_error
    r = client.get("/query", params={"q": "SELECT count(*) AS n FROM orders"}, headers=auth)
    assert r.status_code == 200 and r.json()["snapshot_version"] == serving
    ready = client.get("/ready").json()
    assert ready["snapshot_version"] == serving and ready["last_error"]
    # a rejected version is not downloaded again on every poll
    assert manager.refresh() is False and manager.current.version == serving


def test_recovers_when_a_good_snapshot_follows_a_bad_one(client, auth, store, demo, publish, tmp_path) -> None:  # noqa: ANN001
    manager = client.app.state.services.snapshots
    manifest, _ = read_manifest(store)
    root = Path(store.url.removeprefix("file://"))
    good = (root / MANIFEST_KEY).read_text()
    _break("corrupt_chunk", store, tmp_path)
    assert manager.refresh() is False
    (root / MANIFEST_KEY).write_text(good)  # operator rolls the manifest back
    change_source(demo)
    assert publish()["status"] == "published"
    assert manager.refresh() is True
    r = client.get("/query", params={"q": "SELECT count(*) AS n FROM orders WHERE id > 1000000"}, headers=auth)
    assert r.json()["data"] == [{"n": 10}]


# ------------------------------------------------------------------ chunks (manifest format 2)


def publish_with(demo: Path, **overrides: object) -> dict:
    from analytics_etl.config import get_settings as get_etl_settings
    from analytics_etl.pipeline import run_sync

    settings = get_etl_settings(source_url=f"sqlite:///{demo / 'source.db'}", storage_url=f"file://{demo / 'store'}",
                                etl_state_dir=demo / "state", cursor_lag_seconds=60, chunk_size="256KiB", **overrides)
    return run_sync(settings)


def chunks_of(store: LocalStore) -> list[str]:
    manifest, _ = read_manifest(store)
    return read_index(store, manifest.index_key).chunks


def test_a_new_version_reuses_the_served_file_and_fetches_only_new_chunks(demo, store, publish, tmp_path) -> None:  # noqa: ANN001
    counting = CountingStore(Path(store.url.removeprefix("file://")))
    manager = manager_for(counting, tmp_path / "cache")
    assert manager.refresh()
    before = set(chunks_of(store))
    change_source(demo)
    assert publish()["status"] == "published"
    new = chunks_of(store)
    CountingStore.downloads = 0
    assert manager.refresh()
    assert count_orders(manager) > 0
    fetched = set(new) - before
    assert 0 < CountingStore.downloads == len(fetched) < len(new)
    stats = manager.current.local.stats
    assert (stats.chunks, stats.reused) == (len(new), len(new) - len(fetched))
    manager.stop()


def test_a_restarted_host_starts_from_the_file_it_already_has(demo, store, publish, tmp_path) -> None:  # noqa: ANN001
    counting = CountingStore(Path(store.url.removeprefix("file://")))
    first = manager_for(counting, tmp_path / "cache")
    assert first.refresh()
    first._stop.set()  # a process that died: its file stays in the cache  # noqa: SLF001
    before = set(chunks_of(store))
    change_source(demo)
    publish()
    CountingStore.downloads = 0
    second = manager_for(counting, tmp_path / "cache")
    assert second.refresh()
    assert CountingStore.downloads == len(set(chunks_of(store)) - before)
    second.stop()


def test_moving_from_format_1_to_format_2_reuses_the_whole_file_served(demo, store, tmp_path) -> None:  # noqa: ANN001
    """The upgrade order: API hosts first (they read both formats), then the ETL."""
    counting = CountingStore(Path(store.url.removeprefix("file://")))
    change_source(demo)
    assert publish_with(demo, manifest_format=1)["status"] == "published"
    manager = manager_for(counting, tmp_path / "cache")
    assert manager.refresh() and manager.current.manifest.format_version == 1
    with sqlite3.connect(demo / "source.db") as con:
        con.execute("UPDATE orders SET status = 'moved', updated_at = datetime('now') WHERE id = 3")
    CountingStore.downloads = 0
    assert publish_with(demo)["status"] == "published"
    assert manager.refresh() and manager.current.manifest.format_version == 2
    assert CountingStore.downloads < len(chunks_of(store)), "chunks of the format-1 file are reused"
    manager.stop()


def test_snapshot_endpoint_and_metrics_report_the_chunked_load(client, auth, demo, publish) -> None:  # noqa: ANN001
    change_source(demo)
    publish()
    manager = client.app.state.services.snapshots
    assert manager.refresh()
    body = client.get("/snapshot", headers=auth).json()
    chunks = body["chunks"]
    assert body["format_version"] == 2 and chunks["count"] == len(manager.current.local.chunks.table.digests)
    assert 0 < chunks["reused"] < chunks["count"] and 0 < chunks["reused_share"] < 1
    assert chunks["downloaded_bytes"] > 0
    metrics = client.get("/metrics").text
    downloaded = next(line for line in metrics.splitlines()
                      if line.startswith("analytics_api_snapshot_bytes_downloaded_total "))
    assert float(downloaded.split()[1]) >= chunks["downloaded_bytes"]
    assert "analytics_api_snapshot_swap_delay_seconds_count" in metrics


def touch_orders(demo: Path, marker: str) -> None:
    with sqlite3.connect(demo / "source.db") as con:
        con.execute("UPDATE orders SET status = ?, updated_at = datetime('now', '+1 second') WHERE id <= 20",
                    [marker])


@pytest.mark.parametrize(("grace", "loads"), [(3600, True), (0, False)], ids=["grace-protects", "no-grace"])
def test_a_sweep_racing_a_slow_reader(demo, store, tmp_path, grace, loads) -> None:  # noqa: ANN001
    """While a host is still fetching version 1, the ETL publishes twice more with HISTORY_KEEP=1
    and sweeps. With the grace period, version 1 stays complete until the reader is done; without
    one its chunks go, the reader rejects it, keeps serving, and loads the newest next time."""
    manager = manager_for(store, tmp_path / "cache")
    assert manager.refresh()
    serving = manager.current.version
    touch_orders(demo, "v1")
    v1 = publish_with(demo)["manifest"]["version"]

    class SlowReaderStore(LocalStore):
        raced = False

        def get_bytes(self, key: str) -> bytes:
            if key.startswith(CHUNKS_PREFIX) and not type(self).raced:
                type(self).raced = True
                for marker in ("v2", "v3"):
                    touch_orders(demo, marker)
                    assert publish_with(demo, history_keep=1, gc_grace_seconds=grace)["status"] == "published"
            return super().get_bytes(key)

    slow = SlowReaderStore(Path(store.url.removeprefix("file://")))
    manager.store = slow
    first, _ = read_manifest(store)
    assert first.version == v1
    with pytest.MonkeyPatch.context() as patch:  # the reader read the manifest naming v1 before the race
        patch.setattr("analytics_api.snapshots.manager.read_manifest", lambda _store: (first, None))
        assert manager.refresh() is loads
    if loads:
        assert manager.current.version == v1 and count_orders(manager) > 0
    else:
        assert manager.current.version == serving and "missing" in manager.last_error
        with manager.use() as snap:  # still serving the old version
            assert snap.conn.cursor().execute("SELECT count(*) FROM orders").fetchone()[0] > 0
    assert manager.refresh() is True
    assert manager.current.version == read_manifest(store)[0].version != v1
    manager.stop()
