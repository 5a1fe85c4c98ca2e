"""Faults around a worker's snapshot load that are not the published bytes' fault: odd but valid
manifest fields, a local cache that is full, read-only or holds a damaged file, and an S3 store
that answers 503. Each time the last good version keeps serving, /ready says why, and the next
good version is picked up."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from analytics_api.snapshots.files import local_name, sidecar_of
from analytics_api.snapshots.manager import SnapshotManager
from analytics_etl.config import get_settings as get_etl_settings
from analytics_etl.pipeline import run_sync
from analytics_shared.chunks import CHUNKS_PREFIX, file_identity, table_of
from analytics_shared.manifest import MANIFEST_KEY, read_manifest

TABLES = ["customers", "inventory", "orders", "products", "transactions"]
Q = {"q": "SELECT count(*) AS n FROM orders"}


def change_source(demo: Path) -> None:
    with sqlite3.connect(demo / "source.db") as con:
        con.execute("UPDATE orders SET status = ?, updated_at = datetime('now', '+1 second') WHERE id <= 5",
                    [uuid.uuid4().hex[:8]])


def rewrite_manifest(store, **update: object) -> dict:  # noqa: ANN001
    path = Path(store.url.removeprefix("file://")) / MANIFEST_KEY
    data = json.loads(path.read_text())
    data.update(update)
    path.write_text(json.dumps(data))
    return data


def rejected_loads(client) -> float:  # noqa: ANN001
    for line in client.get("/metrics").text.splitlines():
        if line.startswith('analytics_api_snapshot_loads_total{result="rejected"}'):
            return float(line.split()[1])
    return 0.0


# ------------------------------------------------------------------ manifest fields


def test_a_manifest_whose_times_have_no_offset_is_served(make_client, auth, store) -> None:  # noqa: ANN001
    """created_at/published_at/synced_at without `Z` (a hand-edited or foreign manifest): the
    swap-delay metric subtracted a naive time from an aware one, so the app did not even start,
    and /snapshot answered 500."""
    data = rewrite_manifest(store, created_at="2026-01-02T03:04:05", published_at="2026-01-02T03:04:06")
    path = Path(store.url.removeprefix("file://")) / MANIFEST_KEY
    for table in data["tables"].values():
        table["synced_at"] = "2026-01-02T03:00:00"
    path.write_text(json.dumps(data))
    client = make_client()
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["snapshot_created_at"] == "2026-01-02T03:04:05+00:00"
    body = client.get("/snapshot", headers=auth)
    assert body.status_code == 200 and body.json()["tables"]["orders"]["synced_at"] == "2026-01-02T03:00:00+00:00"
    assert client.get("/query", params=Q, headers=auth).status_code == 200


def _publish_as(store, version: str) -> None:  # noqa: ANN001
    """The current version again, under another name (its index names its version too)."""
    manifest, _ = read_manifest(store)
    index = json.loads(store.get_bytes(manifest.index_key))
    key = f"history/renamed-{uuid.uuid4().hex[:6]}.index.json"
    store.put(key, json.dumps({**index, "version": version}).encode())
    rewrite_manifest(store, version=version, index_key=key)


@pytest.mark.parametrize("version", ["v" * 256, "../../../etc/passwd", "x/../../y", "..", "a\\b:c*?<>|"],
                         ids=["256-chars", "traversal", "inner-traversal", "dotdot", "windows-specials"])
def test_any_printable_version_loads_into_a_file_of_the_cache(client, auth, store, version) -> None:  # noqa: ANN001
    """The version is free text in the manifest; the local file name made of it must stay one
    short name inside SNAPSHOT_CACHE_DIR. A long one used to exceed the file-name limit:
    refresh() raised OSError, /ready kept saying all was well, and the version never loaded."""
    manager = client.app.state.services.snapshots
    _publish_as(store, version)
    assert manager.refresh() is True, manager.last_error
    assert manager.current.version == version and manager.last_error is None
    assert manager.current.path.parent == manager.cache_dir and len(manager.current.path.name) < 200
    r = client.get("/query", params=Q, headers=auth)
    assert r.status_code == 200 and r.json()["snapshot_version"] == version
    assert r.headers["X-Snapshot-Version"] == version


@pytest.mark.parametrize("version", ["ünïcødé-版本", "tab\there", "nul\u0000", "", "v" * 257],
                         ids=["unicode", "control", "nul", "empty", "257-chars"])
def test_a_version_no_header_can_carry_is_refused_and_the_old_keeps_serving(client, auth, store, version) -> None:  # noqa: ANN001
    """Every answer carries the version in X-Snapshot-Version. One outside printable ASCII was
    loaded, then every query failed with 500 (UnicodeEncodeError writing the header)."""
    manager = client.app.state.services.snapshots
    serving = manager.current.version
    _publish_as(store, version)
    assert manager.refresh() is False
    assert "malformed manifest" in manager.last_error and "version" in manager.last_error
    r = client.get("/query", params=Q, headers=auth)
    assert r.status_code == 200 and r.json()["snapshot_version"] == serving
    assert client.get("/ready").json()["last_error"] == manager.last_error


def test_a_row_count_beyond_64_bits_is_refused_and_the_old_keeps_serving(client, auth, store) -> None:  # noqa: ANN001
    """`rows` had no upper bound: a version claiming 10**20 rows loaded, then /snapshot and /schema
    answered 500 (orjson serializes 64-bit integers only)."""
    manager = client.app.state.services.snapshots
    serving = manager.current.version
    _publish_as(store, "huge-rows")
    data = rewrite_manifest(store)
    data["tables"]["orders"]["rows"] = 10**20
    rewrite_manifest(store, tables=data["tables"])
    assert manager.refresh() is False and "malformed manifest" in manager.last_error
    for path in ("/snapshot", "/schema"):
        r = client.get(path, headers=auth)
        assert r.status_code == 200, path
    assert client.get("/snapshot", headers=auth).json()["version"] == serving


# ------------------------------------------------------------------ the local cache


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 4 MiB file system (tmpfs): room for about two demo snapshots."""
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    try:
        _mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt))
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("needs permission to mount a tmpfs")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(disk: Path, leave: int) -> Path:
    stat = os.statvfs(disk)
    filler = disk / "filler"
    filler.write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave))
    return filler


def test_a_full_cache_disk_is_reported_and_the_next_version_loads_once_there_is_room(
        make_client, auth, demo, publish, small_disk) -> None:  # noqa: ANN001
    """ENOSPC while a new version is written: the OSError escaped refresh(), so /ready kept
    `last_error: null` and no metric moved while the worker silently fell behind."""
    client = make_client(snapshot_cache_dir=small_disk / "cache")
    manager = client.app.state.services.snapshots
    serving = manager.current.version
    filler = _fill(small_disk, leave=256 * 1024)
    change_source(demo)
    assert publish()["status"] == "published"
    before = rejected_loads(client)
    assert manager.refresh() is False
    assert "No space left on device" in manager.last_error
    ready = client.get("/ready").json()
    assert ready["snapshot_version"] == serving and "No space left" in ready["last_error"]
    assert rejected_loads(client) == before + 1
    r = client.get("/query", params=Q, headers=auth)
    assert r.status_code == 200 and r.json()["snapshot_version"] == serving
    assert not list((small_disk / "cache").glob(".*.part")), "the half-written file is removed"
    filler.unlink()  # the operator makes room: the same version is tried again, not remembered as bad
    assert manager.refresh() is True and manager.last_error is None
    assert manager.current.version == read_manifest(client.app.state.services.snapshots.store)[0].version


def test_a_read_only_cache_is_reported_and_the_next_version_loads_once_writable(
        make_client, auth, demo, publish, tmp_path) -> None:  # noqa: ANN001
    cache = tmp_path / "ro-cache"
    client = make_client(snapshot_cache_dir=cache)
    manager = client.app.state.services.snapshots
    serving = manager.current.version
    try:
        _mount("--bind", str(cache), str(cache))
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("needs permission to bind-mount")
    try:
        _mount("-o", "remount,bind,ro", str(cache))
        change_source(demo)
        assert publish()["status"] == "published"
        assert manager.refresh() is False
        assert "Read-only file system" in manager.last_error
        assert client.get("/ready").json()["last_error"] == manager.last_error
        r = client.get("/query", params=Q, headers=auth)
        assert r.status_code == 200 and r.json()["snapshot_version"] == serving
    finally:
        subprocess.run(["umount", str(cache)], check=True)
    assert manager.refresh() is True and manager.last_error is None


@pytest.mark.parametrize("sidecar", [False, True], ids=["no-sidecar", "sidecar-survived"])
def test_a_damaged_file_under_the_version_s_name_is_fetched_again(make_client, auth, store, tmp_path,
                                                                  sidecar) -> None:  # noqa: ANN001
    """A file of the right size but the wrong bytes under a version's final name (a crash of the
    host before the written data reached the disk; an operator's copy). It used to be trusted on
    its size alone: the version was rejected as unreadable and remembered as bad, so the host
    answered 503 until the ETL published something else, although the store held it intact."""
    manifest, _ = read_manifest(store)
    good_cache = tmp_path / "good-cache"
    good = SnapshotManager(store, cache_dir=good_cache, tables=TABLES, poll_seconds=3600, memory_limit="256MB",
                           threads=1)
    assert good.refresh()
    good_sidecar = json.loads(sidecar_of(good.current.path).read_text())
    good.stop()
    cache = tmp_path / "snapshot-cache"
    cache.mkdir()
    damaged = cache / local_name(manifest)
    damaged.write_bytes(b"\0" * manifest.size_bytes)
    if sidecar:  # its chunk table survived, and describes the file's identity as it is now
        sidecar_of(damaged).write_text(json.dumps({**good_sidecar, "identity": list(file_identity(damaged))}))
    client = make_client(snapshot_cache_dir=cache)
    manager = client.app.state.services.snapshots
    assert manager.current is not None and manager.current.version == manifest.version, manager.last_error
    assert client.get("/query", params=Q, headers=auth).json()["data"][0]["n"] > 0
    assert table_of(damaged, manifest.chunk_size).digests == good_sidecar["table"]["digests"]


# ------------------------------------------------------------------ S3 (moto's server)


class Fault503:
    """Answers the S3 GETs of the `nth` chunk key asked for with 503 SlowDown, `times` times (a mock:
    moto cannot be told to throttle); botocore's own retries see every one of them."""

    def __init__(self, nth: int, times: int) -> None:
        self.nth, self.times, self.keys, self.fired = nth, times, [], 0

    def __call__(self, request, **kwargs: object):  # noqa: ANN001, ANN204
        from botocore.awsrequest import AWSResponse

        if f"/{CHUNKS_PREFIX}" not in request.url or request.method != "GET":
            return None
        if request.url not in self.keys:
            self.keys.append(request.url)
        if self.keys.index(request.url) != self.nth - 1 or self.fired >= self.times:
            return None
        self.fired += 1

        class Raw:
            def stream(self, *args: object, **kw: object) -> Iterator[bytes]:
                yield b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"

        return AWSResponse(request.url, 503, {}, Raw())


def test_s3_503s_on_the_nth_chunk_are_transient_and_the_next_poll_loads(
        make_client, auth, demo, aws_env, moto_endpoint) -> None:  # noqa: ANN001
    bucket = f"api-faults-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
    storage = f"s3://{bucket}/pfx"

    def publish() -> dict:
        settings = get_etl_settings(source_url=f"sqlite:///{demo / 'source.db'}", storage_url=storage,
                                    s3_endpoint_url=moto_endpoint, etl_state_dir=demo / "s3-state",
                                    cursor_lag_seconds=60, chunk_size="256KiB")
        return run_sync(settings)

    assert publish()["status"] == "published"
    client = make_client(storage_url=storage, s3_endpoint_url=moto_endpoint)
    manager = client.app.state.services.snapshots
    serving = manager.current.version
    change_source(demo)
    assert publish()["status"] == "published"
    fault = Fault503(nth=2, times=6)  # max_attempts=5 retries after the first try: this GET fails
    manager.store.client.meta.events.register("before-send.s3.GetObject", fault)
    assert manager.refresh() is False, (fault.keys, fault.fired)
    assert fault.fired == 6 and "SlowDown" in manager.last_error
    assert client.get("/ready").json()["snapshot_version"] == serving
    r = client.get("/query", params=Q, headers=auth)
    assert r.status_code == 200 and r.json()["snapshot_version"] == serving
    assert manager.refresh() is True  # transient: not remembered as a bad version
    assert manager.current.version != serving and manager.last_error is None
    fault2 = Fault503(nth=1, times=2)  # fewer failures than botocore's attempts: nobody notices
    manager.store.client.meta.events.register("before-send.s3.GetObject", fault2)
    change_source(demo)
    assert publish()["status"] == "published"
    assert manager.refresh() is True and fault2.fired == 2
