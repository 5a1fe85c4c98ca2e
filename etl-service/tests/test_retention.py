"""Retention and chunk garbage collection: what is kept, what is swept, and that nothing a
version or a reader still needs is ever deleted, whatever runs at the same time."""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from analytics_etl import publish as publish_module
from analytics_etl.pipeline import run_sync
from analytics_etl.publish import check_complete, rollback_to
from analytics_etl.retention import IndexCache, collect_chunks, kept_versions, prune_run_records, versions
from analytics_shared.chunks import CHUNKS_PREFIX, chunk_key, read_index
from analytics_shared.errors import ManifestError, ObjectNotFound, StorageError
from analytics_shared.manifest import HISTORY_PREFIX, RUNS_PREFIX, read_manifest
from analytics_shared.snapshot_files import fetch_snapshot
from analytics_shared.storage import LocalStore, ObjectInfo

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def touch(source_path: Path, order_id: int = 1) -> None:
    with sqlite3.connect(source_path) as con:
        con.execute("UPDATE orders SET status = ?, updated_at = ? WHERE id = ?",
                    [uuid.uuid4().hex[:8], datetime.now(UTC).replace(tzinfo=None).isoformat(" "), order_id])


def publish_versions(settings, source_path: Path, n: int) -> list[str]:  # noqa: ANN001
    versions = []
    for i in range(n):
        touch(source_path, i + 1)
        result = run_sync(settings)
        assert result["status"] == "published"
        versions.append(result["manifest"]["version"])
    return versions


def referenced_chunks(store: LocalStore) -> set[str]:
    return {chunk_key(d) for o in store.list(HISTORY_PREFIX) if o.key.endswith(".index.json")
            for d in read_index(store, o.key).chunks}


def assert_every_version_complete(store: LocalStore, tmp_path: Path) -> None:
    manifest, _ = read_manifest(store)
    check_complete(store, manifest)
    fetch_snapshot(store, manifest, tmp_path / f"check-{uuid.uuid4().hex}.db")
    held = {o.key for o in store.list(CHUNKS_PREFIX)}
    assert referenced_chunks(store) <= held


# ------------------------------------------------------------------ which versions are kept


def info(key: str, minutes_ago: float) -> ObjectInfo:
    return ObjectInfo(key=key, size=1, etag="", last_modified=NOW - timedelta(minutes=minutes_ago))


def test_kept_are_the_newest_the_protected_and_those_superseded_within_the_grace_period() -> None:
    history = [info("history/a.index.json", 300), info("history/b.db", 200), info("history/c.index.json", 100),
               info("history/d.index.json", 30), info("history/e.index.json", 1)]
    kept = kept_versions(history, keep=1, protect={"history/a.index.json"}, grace_seconds=3600, now=NOW)
    # e: newest; a: the manifest's; d: superseded by e 1 minute ago; c: superseded by d 30 minutes ago.
    assert kept == {"history/a.index.json", "history/c.index.json", "history/d.index.json", "history/e.index.json"}
    assert kept_versions(history, keep=2, protect=set(), grace_seconds=0, now=NOW) == {
        "history/d.index.json", "history/e.index.json"}


def test_versions_younger_than_keep_hours_are_kept_as_well_as_the_newest() -> None:
    history = [info("history/a.index.json", 600), info("history/b.index.json", 300),
               info("history/c.index.json", 100), info("history/d.index.json", 30), info("history/e.index.json", 1)]
    assert kept_versions(history, keep=1, protect=set(), grace_seconds=0, now=NOW, keep_hours=2) == {
        "history/c.index.json", "history/d.index.json", "history/e.index.json"}
    assert kept_versions(history, keep=1, protect=set(), grace_seconds=0, now=NOW) == {"history/e.index.json"}
    assert kept_versions(history, keep=4, protect=set(), grace_seconds=0, now=NOW, keep_hours=0.1) == {
        "history/b.index.json", "history/c.index.json", "history/d.index.json", "history/e.index.json"}


def test_a_sync_a_minute_keeps_a_rollback_window_of_hours(make_settings, store, source_path, tmp_path):
    settings = make_settings(history_keep=1, gc_grace_seconds=0, history_keep_hours=1)
    publish_versions(settings, source_path, 3)
    assert len(versions(store)) == 3, "all younger than an hour"
    two_hours_ago = (datetime.now(UTC) - timedelta(hours=2)).timestamp()
    first = versions(store)[0].key
    os.utime(store.root / first, (two_hours_ago, two_hours_ago))
    publish_versions(settings, source_path, 1)
    assert first not in {o.key for o in versions(store)} and len(versions(store)) == 3
    assert_every_version_complete(store, tmp_path)


def test_retention_with_a_grace_period_keeps_recent_versions_for_readers(make_settings, store, source_path):
    publish_versions(make_settings(history_keep=1, gc_grace_seconds=3600), source_path, 3)
    assert len(store.list(HISTORY_PREFIX)) == 3, "each was superseded seconds ago"
    publish_versions(make_settings(history_keep=1, gc_grace_seconds=0), source_path, 1)
    manifest, _ = read_manifest(store)
    assert [o.key for o in store.list(HISTORY_PREFIX)] == [manifest.index_key]
    assert {o.key for o in store.list(CHUNKS_PREFIX)} == referenced_chunks(store)


# ------------------------------------------------------------------ the sweep


def test_sweep_deletes_only_unreferenced_chunks_older_than_the_grace_period(make_settings, store, source_path,
                                                                            tmp_path):
    run_sync(make_settings())
    stale, young = chunk_key("a" * 64), chunk_key("b" * 64)
    store.put(stale, b"left by a killed publish long ago")
    two_hours_ago = (datetime.now(UTC) - timedelta(hours=2)).timestamp()
    os.utime(store.root / stale, (two_hours_ago, two_hours_ago))
    store.put(young, b"uploaded by a publish that has not written its index yet")
    deleted = collect_chunks(store, IndexCache(tmp_path / "indexes"), grace_seconds=3600)
    held = {o.key for o in store.list(CHUNKS_PREFIX)}
    assert deleted == 1 and stale not in held and young in held
    assert referenced_chunks(store) <= held


def test_a_chunk_written_after_the_listing_is_never_swept(store: LocalStore, tmp_path: Path) -> None:
    class RacingStore(LocalStore):
        def list(self, prefix: str) -> list[ObjectInfo]:
            listed = super().list(prefix)
            if prefix == CHUNKS_PREFIX:  # a publisher uploads a chunk right after the sweep listed
                self.put(chunk_key("c" * 64), b"new")
            return listed

    racing = RacingStore(store.root)
    racing.put(chunk_key("d" * 64), b"garbage")
    assert collect_chunks(racing, IndexCache(tmp_path / "i"), grace_seconds=0,
                          now=datetime.now(UTC) + timedelta(seconds=5)) == 1
    assert [o.key for o in racing.list(CHUNKS_PREFIX)] == [chunk_key("c" * 64)]


def test_a_sweep_racing_a_publish_keeps_the_publish_complete(make_settings, store, source_path, tmp_path,
                                                            monkeypatch):
    """Another instance sweeps after this publish uploaded its chunks but before its index
    exists: the chunks are younger than the grace period, so the index finds them all."""
    settings = make_settings(history_keep=1, gc_grace_seconds=600)
    run_sync(settings)
    real_write_index = publish_module.write_index
    swept: list[int] = []

    def sweep_then_write(store_, key, index):  # noqa: ANN001, ANN202
        swept.append(collect_chunks(store_, IndexCache(tmp_path / "other"), grace_seconds=600))
        return real_write_index(store_, key, index)

    monkeypatch.setattr(publish_module, "write_index", sweep_then_write)
    touch(source_path)
    assert run_sync(settings)["status"] == "published"
    assert swept == [0]
    assert_every_version_complete(store, tmp_path)


def test_a_crash_mid_sweep_loses_nothing_and_the_next_sweep_finishes(make_settings, store, source_path, tmp_path,
                                                                     monkeypatch):
    settings = make_settings(history_keep=1, gc_grace_seconds=0)
    publish_versions(make_settings(history_keep=1, gc_grace_seconds=3600), source_path, 4)
    real_delete_many = LocalStore.delete_many

    def die_halfway(self, keys):  # noqa: ANN001, ANN202
        if keys and keys[0].startswith(CHUNKS_PREFIX):
            real_delete_many(self, keys[: len(keys) // 2])
            raise StorageError("S3 delete failed: injected crash halfway through the sweep")
        return real_delete_many(self, keys)

    monkeypatch.setattr(LocalStore, "delete_many", die_halfway)
    touch(source_path, 9)
    assert run_sync(settings)["status"] == "published", "a failed sweep does not fail the publish"
    assert_every_version_complete(store, tmp_path)
    assert {o.key for o in store.list(CHUNKS_PREFIX)} - referenced_chunks(store), "garbage is left"
    monkeypatch.undo()
    collect_chunks(store, IndexCache(tmp_path / "indexes"), grace_seconds=0,
                   now=datetime.now(UTC) + timedelta(seconds=5))
    assert {o.key for o in store.list(CHUNKS_PREFIX)} == referenced_chunks(store)
    assert_every_version_complete(store, tmp_path)


def test_an_unreadable_index_stops_the_sweep(make_settings, store, source_path, tmp_path):
    run_sync(make_settings())
    manifest, _ = read_manifest(store)
    (store.root / manifest.index_key).write_text('{"version": "truncated')
    store.put(chunk_key("e" * 64), b"garbage")
    before = store.list(CHUNKS_PREFIX)
    with pytest.raises(ManifestError, match="malformed chunk index"):
        collect_chunks(store, IndexCache(tmp_path / "fresh"), grace_seconds=0,
                       now=datetime.now(UTC) + timedelta(seconds=5))
    assert store.list(CHUNKS_PREFIX) == before, "its chunks are unknown: nothing is deleted"


def test_an_index_key_too_long_for_a_local_file_name_neither_fails_the_publish_nor_stops_the_sweep(
        make_settings, store, source_path, tmp_path):
    """Any key under history/ ending in .index.json is a version (a copy an operator parked there,
    another tool's). The index cache named its file after the key: a long one raised OSError
    (ENAMETOOLONG) after the manifest was written, so every publish from then on was recorded as
    failed and the sweep never ran again."""
    settings = make_settings(gc_grace_seconds=0)
    run_sync(settings)
    manifest, _ = read_manifest(store)
    parked = HISTORY_PREFIX + "x" * 240 + ".index.json"
    store.put(parked, store.get_bytes(manifest.index_key))
    store.put(chunk_key("f" * 64), b"garbage")
    old = (datetime.now(UTC) - timedelta(hours=2)).timestamp()
    os.utime(store.root / chunk_key("f" * 64), (old, old))
    touch(source_path)
    result = run_sync(settings)
    assert result["status"] == "published", result.get("error")
    assert chunk_key("f" * 64) not in {o.key for o in store.list(CHUNKS_PREFIX)}, "the sweep ran"
    assert_every_version_complete(store, tmp_path)
    assert all(len(p.name) < 256 for p in (tmp_path / "state" / "indexes").iterdir())


# ------------------------------------------------------------------ rollback


def test_rollback_to_any_kept_version_then_sync_on_top(make_settings, store, source_path, tmp_path,
                                                       assert_snapshot_matches):
    settings = make_settings(history_keep=3, gc_grace_seconds=0)
    versions = publish_versions(settings, source_path, 5)
    kept = [o.key for o in store.list(HISTORY_PREFIX)]
    assert len(kept) == 3
    oldest_kept = versions[2]
    rolled = rollback_to(store, oldest_kept)
    assert read_manifest(store)[0].version == oldest_kept == rolled.version
    assert_every_version_complete(store, tmp_path)
    with pytest.raises(ObjectNotFound, match="deleted by retention"):
        rollback_to(store, versions[0])
    # The ETL builds on the rolled-back version (its local file is repaired to it) and
    # re-reads from that version's watermarks.
    touch(source_path, 42)
    assert run_sync(settings)["status"] == "published"
    latest, _ = read_manifest(store)
    assert latest.previous_version == oldest_kept
    assert_snapshot_matches()


def test_rollback_refuses_a_version_missing_a_chunk(make_settings, store, source_path):
    settings = make_settings(history_keep=5, gc_grace_seconds=3600)
    first, _second = publish_versions(settings, source_path, 2)
    manifest, _ = read_manifest(store)
    first_key = versions(store)[0].key
    unique = set(read_index(store, first_key).chunks) - set(read_index(store, manifest.index_key).chunks)
    assert unique, "the two versions differ in at least one chunk"
    store.delete(chunk_key(sorted(unique)[0]))
    with pytest.raises(ObjectNotFound, match="chunks of .* are missing"):
        rollback_to(store, first)
    assert read_manifest(store)[0].version == manifest.version


def test_run_records_say_what_each_publish_uploaded(make_settings, store, source_path):
    settings = make_settings()
    publish_versions(settings, source_path, 2)
    records = [json.loads(store.get(o.key).data) for o in store.list(RUNS_PREFIX)]
    assert len(records) == 2
    for record in records:
        index = read_index(store, record["manifest"]["index_key"])
        assert 1 < record["uploaded_objects"] <= len(index.chunks) + 1
        assert 0 < record["uploaded_bytes"] <= index.size_bytes + len(index.model_dump_json()) + 1024
    first, second = sorted(records, key=lambda r: r["started_at"])
    assert second["uploaded_bytes"] < first["uploaded_bytes"], "the second publish sends only what changed"


def test_run_records_are_pruned_by_age_except_those_a_kept_version_needs(store: LocalStore) -> None:
    days = ["2026-10-01", "2026-10-20", "2026-11-05", "2026-11-29"]
    for day in days:
        store.put(f"{RUNS_PREFIX}{day}/run.json", b"{}")
    kept = "history/analytics_2026-10-20_10-00-00_abcdef.index.json"
    store.put(kept, b"{}")
    # 2026-10-20's records hold that version's manifest: rollback needs them, whatever their age.
    assert prune_run_records(store, keep_days=7, now=NOW) == 1
    assert [o.key for o in store.list(RUNS_PREFIX)] == [f"{RUNS_PREFIX}{d}/run.json" for d in days[1:]]
    store.delete(kept)
    assert prune_run_records(store, keep_days=7, now=NOW) == 2
    assert [o.key for o in store.list(RUNS_PREFIX)] == [f"{RUNS_PREFIX}2026-11-29/run.json"]


def test_publishing_prunes_old_run_records(make_settings, store, source_path):
    store.put(f"{RUNS_PREFIX}2001-01-01/ancient.json", b"{}")
    publish_versions(make_settings(gc_grace_seconds=0, runs_keep_days=30), source_path, 1)
    assert f"{RUNS_PREFIX}2001-01-01/ancient.json" not in {o.key for o in store.list(RUNS_PREFIX)}
    assert len(store.list(RUNS_PREFIX)) == 1
