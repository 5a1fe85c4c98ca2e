"""Failure injection: S3 errors during publish, a killed process, two racing ETLs, a
dropped source connection, a malformed manifest and the retry loop.

Every scenario checks the same three promises:
  * the published manifest still names a complete, verifiable snapshot;
  * no watermark passed unpublished data (a failed run leaves the manifest as it was);
  * the next normal run recovers by itself and the snapshot then equals the source.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import boto3
import duckdb
import pytest
import sqlalchemy as sa

from analytics_etl import pipeline, scheduler
from analytics_etl.demo_source import mutate_demo_source
from analytics_etl.errors import SyncAborted
from analytics_etl.local_snapshot import LocalSnapshot
from analytics_etl.pipeline import run_sync
from analytics_shared.errors import (IntegrityError, ManifestError, PreconditionFailed, SourceError, StorageError,
                                     TransientSourceError)
from analytics_shared.chunks import CHUNKS_PREFIX
from analytics_shared.manifest import HISTORY_PREFIX, MANIFEST_KEY, Manifest, read_manifest
from analytics_shared.snapshot_files import fetch_snapshot, verify_snapshot_file
from analytics_shared.storage import ObjectStore, S3Store


# --------------------------------------------------------------------------- helpers


def verify_published(store: ObjectStore, tmp_path: Path) -> tuple[Manifest, str]:
    """The manifest names a snapshot that exists, matches its size and sha256, opens in
    DuckDB and holds exactly the row counts the manifest promises."""
    manifest, etag = read_manifest(store)
    assert manifest is not None and etag
    local = tmp_path / f"verify-{uuid.uuid4().hex}.db"
    fetch_snapshot(store, manifest, local)  # every chunk (or the file) verified against its digest
    verify_snapshot_file(local, manifest)  # and once more, from the bytes alone
    with duckdb.connect(str(local), read_only=True) as con:
        for table, entry in manifest.tables.items():
            assert con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] == entry.rows, table
    local.unlink()
    return manifest, etag


def manifest_bytes(store: ObjectStore) -> bytes:
    return store.get(MANIFEST_KEY).data


def watermarks(manifest: Manifest) -> dict[str, object]:
    return {name: entry.watermark for name, entry in manifest.tables.items()}


def touch_order(source_path: Path, order_id: int = 1) -> None:
    """One fresh change, so the next run has something to publish."""
    import sqlite3

    with sqlite3.connect(source_path) as con:
        con.execute("UPDATE orders SET status = ?, updated_at = ? WHERE id = ?",
                    [f"touched-{uuid.uuid4().hex[:6]}", datetime.now(UTC).replace(tzinfo=None).isoformat(" "),
                     order_id])


# --------------------------------------------------------------------------- 1. S3 faults


def _inject_once(monkeypatch: pytest.MonkeyPatch, store: S3Store, where: str) -> list[str]:
    """Make exactly one S3 operation of the publish fail with StorageError. `..._ack_lost`:
    the object reached S3 but the client never saw the answer."""
    fired: list[str] = []
    real_upload, real_put = store.upload_file, store.put

    def upload_file(key: str, path: Path, **kwargs: object):  # noqa: ANN202
        if where == "upload" and not fired:
            fired.append(key)
            raise StorageError(f"S3 upload {key} failed: injected connection reset")
        info = real_upload(key, path, **kwargs)
        if where == "upload_ack_lost" and not fired:
            fired.append(key)
            raise StorageError(f"S3 upload {key} failed: injected read timeout after the upload")
        return info

    def put(key: str, data: bytes, **kwargs: object) -> str:
        kind = ("chunk" if key.startswith(CHUNKS_PREFIX) else "index" if key.startswith(HISTORY_PREFIX)
                else "manifest" if key == MANIFEST_KEY else "other")
        # the third chunk, so that some chunks were uploaded before the fault
        nth = 3 if kind == "chunk" else 1
        if where.startswith(kind) and not fired:
            counts.append(key)
            if len(counts) == nth:
                fired.append(key)
                if where == kind:
                    raise StorageError(f"S3 put {key} failed: injected 503 SlowDown")
                etag = real_put(key, data, **kwargs)
                raise StorageError(f"S3 put {key} failed: injected read timeout after the put ({etag})")
        return real_put(key, data, **kwargs)

    counts: list[str] = []
    monkeypatch.setattr(store, "upload_file", upload_file)
    monkeypatch.setattr(store, "put", put)
    return fired


# (manifest format, where the fault hits, orphaned versions it leaves)
PUBLISH_FAULTS = [
    (1, "upload", 0), (1, "upload_ack_lost", 1), (1, "manifest", 1),
    (2, "chunk", 0), (2, "chunk_ack_lost", 0), (2, "index", 0), (2, "index_ack_lost", 1), (2, "manifest", 1),
]


class TestS3PublishFaults:
    """A real moto S3 server; the conftest fixtures run against it through `store`."""

    @pytest.fixture
    def store(self, aws_env: None, moto_endpoint: str) -> S3Store:
        bucket = f"etl-failures-{uuid.uuid4().hex[:10]}"
        boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
        return S3Store(bucket, "prefix", endpoint_url=moto_endpoint)

    @pytest.fixture
    def s3_settings(self, make_settings, moto_endpoint: str):  # noqa: ANN001, ANN201
        return lambda **kw: make_settings(s3_endpoint_url=moto_endpoint, **kw)

    @pytest.mark.parametrize(("fmt", "where", "orphans"), PUBLISH_FAULTS)
    def test_s3_error_during_publish_keeps_old_manifest_and_next_run_recovers(
            self, fmt, where, orphans, store, s3_settings, tmp_path, source_path, monkeypatch,
            assert_snapshot_matches):
        settings = s3_settings(manifest_format=fmt)
        assert settings.storage_url == store.url and store.url.startswith("s3://")
        assert run_sync(settings, store=store)["status"] == "published"
        before, etag = verify_published(store, tmp_path)
        before_bytes = manifest_bytes(store)

        counts = mutate_demo_source(source_path, fraction=0.05, seed=21)
        assert counts["updated"] and counts["inserted"] and counts["deleted"]
        fired = _inject_once(monkeypatch, store, where)
        with pytest.raises(StorageError, match="injected"):
            run_sync(settings, store=store)
        assert fired

        # Readers still see the old, complete snapshot; no watermark moved.
        after, etag_after = verify_published(store, tmp_path)
        assert manifest_bytes(store) == before_bytes and etag_after == etag
        assert after.version == before.version and watermarks(after) == watermarks(before)
        left = [o.key for o in store.list(HISTORY_PREFIX) if o.key != before.object_key]
        assert len(left) == orphans

        # The fault is gone: the next ordinary run publishes the changes by itself.
        result = run_sync(settings, store=store)
        assert result["status"] == "published", result["status"]
        recovered, _ = verify_published(store, tmp_path)
        assert recovered.previous_version == before.version
        assert_snapshot_matches()

    @pytest.mark.parametrize(("fmt", "where", "orphans"), PUBLISH_FAULTS)
    def test_s3_error_during_publish_is_invisible_to_readers(
            self, fmt, where, orphans, store, s3_settings, tmp_path, source_path, monkeypatch,
            assert_snapshot_matches):
        """Failure is clean, and a later change gets everything (including the changes of
        the failed run) published."""
        settings = s3_settings(manifest_format=fmt)
        run_sync(settings, store=store)
        before, etag = verify_published(store, tmp_path)
        mutate_demo_source(source_path, fraction=0.05, seed=22)
        _inject_once(monkeypatch, store, where)
        with pytest.raises(StorageError):
            run_sync(settings, store=store)
        after, etag_after = verify_published(store, tmp_path)
        assert (after.version, etag_after, watermarks(after)) == (before.version, etag, watermarks(before))
        touch_order(source_path)
        assert run_sync(settings, store=store)["status"] == "published"
        verify_published(store, tmp_path)
        assert_snapshot_matches()


# --------------------------------------------------------------------------- 2. SIGKILL


CHILD = """
import json, os, signal, sys
from analytics_etl import chunk_publish, publish
from analytics_etl.config import get_settings
from analytics_etl.pipeline import run_sync
from analytics_shared.storage import LocalStore

def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

where = sys.argv[3]
if where == "before_manifest":
    publish.write_manifest = killed
elif where == "after_index":
    real_write_index = publish.write_index
    def write_index_then_die(*args, **kwargs):
        real_write_index(*args, **kwargs)
        killed()
    publish.write_index = write_index_then_die
elif where == "after_some_chunks":
    real_put = chunk_publish.ChunkUploader._put
    done = []
    def put_then_die(self, digest, data):
        size = real_put(self, digest, data)
        done.append(digest)
        if len(done) == 2:
            killed()
        return size
    chunk_publish.ChunkUploader._put = put_then_die
run_sync(get_settings(**json.loads(sys.argv[1])), store=LocalStore(sys.argv[2]))
print("survived")
"""

# (manifest format, where the process is killed, orphaned versions it leaves)
KILL_POINTS = [(1, "before_manifest", 1), (2, "after_some_chunks", 0), (2, "after_index", 1),
               (2, "before_manifest", 1)]


def _kill_child(settings, store, cwd: Path, where: str) -> subprocess.CompletedProcess:  # noqa: ANN001
    values = {k: v for k, v in settings.model_dump(mode="json").items() if v is not None}
    return subprocess.run([sys.executable, "-c", CHILD, json.dumps(values), str(store.root), where],
                          cwd=cwd, capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize(("fmt", "where", "orphans"), KILL_POINTS)
def test_killed_mid_publish_next_run_recovers(fmt, where, orphans, make_settings, store, tmp_path, source_path,
                                             assert_snapshot_matches):
    settings = make_settings(history_keep=1, manifest_format=fmt)
    run_sync(settings, store=store)
    before, etag = verify_published(store, tmp_path)
    mutate_demo_source(source_path, fraction=0.05, seed=31)

    child = _kill_child(settings, store, tmp_path, where)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert "survived" not in child.stdout

    after, etag_after = verify_published(store, tmp_path)
    assert (after.version, etag_after, watermarks(after)) == (before.version, etag, watermarks(before))
    left = [o.key for o in store.list(HISTORY_PREFIX) if o.key != before.object_key]
    assert len(left) == orphans, "the killed run's upload is left as an orphan"

    result = run_sync(settings, store=store)
    assert result["status"] == "published", result["status"]
    recovered, _ = verify_published(store, tmp_path)
    assert recovered.previous_version == before.version
    keys = [o.key for o in store.list(HISTORY_PREFIX)]
    assert recovered.object_key in keys
    assert_snapshot_matches()


@pytest.mark.parametrize(("fmt", "where", "orphans"), KILL_POINTS)
def test_killed_mid_publish_is_invisible_and_retention_is_safe(
        fmt, where, orphans, make_settings, store, tmp_path, source_path, assert_snapshot_matches):
    settings = make_settings(history_keep=1, gc_grace_seconds=0, manifest_format=fmt)
    run_sync(settings, store=store)
    before, etag = verify_published(store, tmp_path)
    mutate_demo_source(source_path, fraction=0.05, seed=32)

    child = _kill_child(settings, store, tmp_path, where)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    after, etag_after = verify_published(store, tmp_path)
    assert (after.version, etag_after, watermarks(after)) == (before.version, etag, watermarks(before))
    assert len([o.key for o in store.list(HISTORY_PREFIX) if o.key != before.object_key]) == orphans

    # The killed run left its half-published build (WAL and all) behind; the next run must cope.
    touch_order(source_path, 2)
    assert run_sync(settings, store=store)["status"] == "published"
    recovered, _ = verify_published(store, tmp_path)
    keys = [o.key for o in store.list(HISTORY_PREFIX)]
    assert keys == [recovered.object_key], "retention (keep=1) drops the orphan, keeps the manifest's"
    if fmt == 2:  # and the sweep leaves exactly the chunks the one remaining version needs
        from analytics_shared.chunks import read_index

        needed = {f"{CHUNKS_PREFIX}{d}" for d in read_index(store, recovered.index_key).chunks}
        assert {o.key for o in store.list(CHUNKS_PREFIX)} == needed
    assert_snapshot_matches()


# --------------------------------------------------------------------------- 3. two ETL instances


def test_two_instances_publishing_at_once_loser_fails_then_recovers(make_settings, store, tmp_path, source_path,
                                                                     monkeypatch, assert_snapshot_matches):
    settings_a = make_settings(etl_state_dir=tmp_path / "state-a")
    settings_b = make_settings(etl_state_dir=tmp_path / "state-b")
    # As run_scheduler does; a missing state dir is its own bug (test_fresh_state_dir_restores...).
    settings_b.etl_state_dir.mkdir(parents=True)
    run_sync(settings_a, store=store)
    first, _ = verify_published(store, tmp_path)
    mutate_demo_source(source_path, fraction=0.05, seed=41)

    real_publish = pipeline.publish_snapshot
    b_results: list[dict] = []
    paused: list[str] = []

    def publish_after_b_wins(store_, path, base, **kwargs):  # noqa: ANN001, ANN202
        if not paused:  # A is paused here, holding the etag it read: B runs start to finish.
            paused.append(path.name)
            b_results.append(run_sync(settings_b, store=store))
            assert b_results[0]["status"] == "published"
            assert kwargs["expected_etag"] != read_manifest(store)[1]
        return real_publish(store_, path, base, **kwargs)

    monkeypatch.setattr(pipeline, "publish_snapshot", publish_after_b_wins)
    with pytest.raises(PreconditionFailed):
        run_sync(settings_a, store=store)
    monkeypatch.setattr(pipeline, "publish_snapshot", real_publish)

    winner, _ = verify_published(store, tmp_path)
    assert winner.version == b_results[0]["manifest"]["version"]
    assert winner.previous_version == first.version
    assert_snapshot_matches()

    # A's local file is its own unpublished build of the version it started from; it must
    # become B's version (repaired from the chunks they share) before A builds again.
    state = LocalSnapshot(settings_a.etl_state_dir, chunk_size=settings_a.chunk_size).read_state()
    assert state.version == first.version != winner.version and state.dirty
    assert run_sync(settings_a, store=store)["status"] == "unchanged"
    state = LocalSnapshot(settings_a.etl_state_dir, chunk_size=settings_a.chunk_size).read_state()
    assert state.version == winner.version and not state.dirty
    verify_published(store, tmp_path)

    mutate_demo_source(source_path, fraction=0.05, seed=42)
    assert run_sync(settings_a, store=store)["status"] == "published"
    latest, _ = verify_published(store, tmp_path)
    assert latest.previous_version == winner.version
    assert_snapshot_matches()


def test_fresh_state_dir_restores_from_published_snapshot(make_settings, store, tmp_path, source_path,
                                                          assert_snapshot_matches):
    run_sync(make_settings(etl_state_dir=tmp_path / "state-a"), store=store)
    before, etag = verify_published(store, tmp_path)
    mutate_demo_source(source_path, fraction=0.05, seed=43)
    fresh = make_settings(etl_state_dir=tmp_path / "never-created")
    try:
        result = run_sync(fresh, store=store)
    finally:
        after, etag_after = verify_published(store, tmp_path)
    assert result["status"] == "published"
    assert after.previous_version == before.version
    assert_snapshot_matches()


# --------------------------------------------------------------------------- 4. dropped source connection


def test_connection_drop_mid_extract_marks_table_stale_and_keeps_last_good_data(
        make_settings, store, tmp_path, source_path, monkeypatch, published_rows, assert_snapshot_matches):
    settings = make_settings(batch_size=100)
    run_sync(settings, store=store)
    before, etag = verify_published(store, tmp_path)
    orders_before = published_rows("orders")
    mutate_demo_source(source_path, fraction=0.2, seed=51)

    real_stream = pipeline.stream_batches
    dropped: list[int] = []

    def drop_orders(conn, stmt, builder, batch_size):  # noqa: ANN001, ANN202
        froms = stmt.get_final_froms()
        if froms and getattr(froms[0], "name", None) == "orders" and not dropped:
            dropped.append(1)
            batches = real_stream(conn, stmt, builder, batch_size)
            try:
                yield next(batches)
            finally:
                batches.close()
            raise sa.exc.OperationalError("select", {}, Exception("connection dropped"))
        yield from real_stream(conn, stmt, builder, batch_size)

    monkeypatch.setattr(pipeline, "stream_batches", drop_orders)
    result = run_sync(settings, store=store)
    monkeypatch.setattr(pipeline, "stream_batches", real_stream)
    assert dropped
    assert result["status"] == "published_with_stale_tables"
    assert "connection dropped" in result["errors"]["orders"]

    stale, etag_stale = verify_published(store, tmp_path)
    assert etag_stale != etag and stale.previous_version == before.version
    assert stale.tables["orders"].status == "stale"
    assert "connection dropped" in stale.tables["orders"].last_error
    assert stale.tables["orders"].watermark == before.tables["orders"].watermark
    assert stale.tables["orders"].rows == before.tables["orders"].rows
    assert published_rows("orders") == orders_before, "orders keeps its last good data"
    assert all(stale.tables[t].status == "ok" for t in stale.tables if t != "orders")
    assert_snapshot_matches([t for t in stale.tables if t != "orders"])

    assert run_sync(settings, store=store)["status"] == "published"
    recovered, _ = verify_published(store, tmp_path)
    assert recovered.tables["orders"].status == "ok" and recovered.tables["orders"].last_error is None
    assert recovered.tables["orders"].watermark > before.tables["orders"].watermark
    assert_snapshot_matches()


def test_a_sqlite_source_that_disappears_fails_clearly_and_creates_nothing(make_settings, store, tmp_path,
                                                                          source_path) -> None:
    """An unmounted volume or a mistyped path: SQLite would create an empty file and the run
    would report every table as dropped."""
    settings = make_settings()
    run_sync(settings, store=store)
    before, etag = verify_published(store, tmp_path)
    moved = source_path.rename(tmp_path / "elsewhere.db")
    with pytest.raises(SourceError, match=r"the SQLite file .*source\.db does not exist"):
        run_sync(settings, store=store)
    assert not source_path.exists(), "nothing may be created where the source was"
    after, etag_after = verify_published(store, tmp_path)
    assert etag_after == etag and after.version == before.version
    moved.rename(source_path)
    assert run_sync(settings, store=store)["status"] in ("published", "unchanged")


# --------------------------------------------------------------------------- 5. malformed manifest


@pytest.mark.parametrize("garbage", [
    b"this is not json {{{",
    b'{"format_version": 1, "version": "x"',
    b'{"format_version": 3}',
    b"\xff\xfe\x00binary",
], ids=["text", "truncated", "future-format", "binary"])
def test_malformed_manifest_fails_clearly_and_is_never_overwritten(garbage, make_settings, store, tmp_path,
                                                                    source_path, assert_snapshot_matches):
    settings = make_settings()
    run_sync(settings, store=store)
    good = manifest_bytes(store)
    history = [o.key for o in store.list(HISTORY_PREFIX)]
    store.put(MANIFEST_KEY, garbage)
    mutate_demo_source(source_path, fraction=0.05, seed=61)

    for _ in range(2):
        with pytest.raises(ManifestError, match="malformed manifest") as info:
            run_sync(settings, store=store)
        assert "problems; first at" in info.value.message
        assert manifest_bytes(store) == garbage, "a malformed manifest is never overwritten"
        assert [o.key for o in store.list(HISTORY_PREFIX)] == history, "nothing is published"
    if garbage == b'{"format_version": 3}':
        assert "format_version" in info.value.message

    # Once an operator puts a valid manifest back, the next ordinary run recovers.
    store.put(MANIFEST_KEY, good)
    verify_published(store, tmp_path)
    assert run_sync(settings, store=store)["status"] == "published"
    verify_published(store, tmp_path)
    assert_snapshot_matches()


# --------------------------------------------------------------------------- 6. retry loop


class FakeSync:
    def __init__(self, *outcomes: object) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self, settings, *, stop):  # noqa: ANN001, ANN204
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


@pytest.fixture
def retry_settings(make_settings):  # noqa: ANN001, ANN201
    settings = make_settings()
    settings.etl_state_dir.mkdir(parents=True, exist_ok=True)  # run_scheduler creates it before the first job
    return settings


def test_retries_transient_errors_then_returns_the_result(retry_settings):
    done = {"status": "published"}
    fake = FakeSync(TransientSourceError("source unavailable: a"), TransientSourceError("source unavailable: b"), done)
    assert scheduler.sync_with_retries(retry_settings, threading.Event(), base_delay=0.01, sync=fake) is done
    assert fake.calls == 3
    assert (retry_settings.etl_state_dir / "last_success").exists()


def test_transient_storage_errors_are_retried_too(retry_settings):
    done = {"status": "published"}
    fake = FakeSync(StorageError("S3 put failed"), done)
    assert scheduler.sync_with_retries(retry_settings, threading.Event(), base_delay=0.01, sync=fake) is done
    assert fake.calls == 2


def test_gives_up_after_max_retries(make_settings):
    settings = make_settings(max_retries=2)
    fake = FakeSync(*[TransientSourceError("source unavailable") for _ in range(3)])
    assert scheduler.sync_with_retries(settings, threading.Event(), base_delay=0.01, sync=fake) is None
    assert fake.calls == 3
    assert not (settings.etl_state_dir / "last_success").exists()


@pytest.mark.parametrize("error", [SourceError("source error: no such column"),
                                   ManifestError("malformed manifest"),
                                   PreconditionFailed("current/manifest.json changed since it was read")],
                         ids=["source", "manifest", "conflict"])
def test_terminal_error_is_tried_once(error, retry_settings):
    fake = FakeSync(error, {"status": "published"})
    assert scheduler.sync_with_retries(retry_settings, threading.Event(), base_delay=0.01, sync=fake) is None
    assert fake.calls == 1
    assert not (retry_settings.etl_state_dir / "last_success").exists()


def test_aborted_sync_returns_none_without_retrying(retry_settings):
    fake = FakeSync(SyncAborted("stop requested before publishing"), {"status": "published"})
    assert scheduler.sync_with_retries(retry_settings, threading.Event(), base_delay=0.01, sync=fake) is None
    assert fake.calls == 1


def test_stop_during_backoff_ends_the_retry_loop(retry_settings):
    stop = threading.Event()
    stop.set()
    fake = FakeSync(TransientSourceError("source unavailable"), {"status": "published"})
    assert scheduler.sync_with_retries(retry_settings, stop, base_delay=5.0, sync=fake) is None
    assert fake.calls == 1


# --------------------------------------------------------------------------- 7. a damaged chunk index


@pytest.mark.parametrize("damage", ["truncated", "missing_chunk"])
def test_damaged_published_index_fails_the_restore_clearly_and_publishes_nothing(
        damage, make_settings, store, tmp_path, source_path):
    """A new container must restore the published version; if the store cannot give it
    back whole, the run fails with the reason and the manifest stays as it is."""
    from analytics_shared.chunks import chunk_key, read_index

    run_sync(make_settings())
    manifest, _ = read_manifest(store)
    if damage == "truncated":
        path = store.root / manifest.index_key
        path.write_bytes(path.read_bytes()[:100])
    else:
        store.delete(chunk_key(read_index(store, manifest.index_key).chunks[0]))
    before = manifest_bytes(store)
    mutate_demo_source(source_path, fraction=0.05, seed=81)
    fresh = make_settings(etl_state_dir=tmp_path / "new-container")
    with pytest.raises((ManifestError, IntegrityError), match="malformed chunk index|missing"):
        run_sync(fresh, store=store)
    assert manifest_bytes(store) == before


# --------------------------------------------------------------------------- 8. chunks gone behind the ETL's back


@pytest.mark.parametrize("lost", ["one", "all"])
def test_a_chunk_of_the_published_version_lost_from_the_store_is_uploaded_again(
        lost, make_settings, store, tmp_path, source_path):
    """A lifecycle rule on chunks/, a hand edit or a sweep with too short a grace removed chunks of
    the version the ETL builds on. Its clean local state said the store held them, so they were
    not uploaded, and every following manifest named a version no reader could assemble. The
    store is checked once per GC_GRACE_SECONDS (the listing reads every chunk's key): within
    the period a version may still name the lost chunk; once it is due, the chunk is back."""
    from analytics_shared.chunks import chunk_key, read_index

    settings = make_settings(gc_grace_seconds=3600)
    run_sync(settings)
    manifest, _ = read_manifest(store)
    chunks = read_index(store, manifest.index_key).chunks
    for digest in (chunks[-2:-1] if lost == "one" else chunks):  # [-2]: a chunk the next version keeps
        store.delete(chunk_key(digest))
    touch_order(source_path)
    assert run_sync(settings)["uploaded_objects"] < len(chunks)  # not due: the store was checked just now
    checked = settings.etl_state_dir / "last_chunk_check"
    os.utime(checked, (checked.stat().st_mtime - 3600, checked.stat().st_mtime - 3600))
    touch_order(source_path)
    result = run_sync(settings)
    assert result["status"] == "published"
    published, _ = verify_published(store, tmp_path)  # every chunk it lists is in the store
    assert published.version != manifest.version
    assert result["uploaded_objects"] >= (2 if lost == "one" else len(chunks))
