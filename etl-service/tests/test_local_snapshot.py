"""The kept local file: built on in place, trusted only while it is exactly the published
version, and otherwise repaired from the store by fetching only the chunks that differ."""

from __future__ import annotations

import json
import threading

import pytest

from analytics_etl import pipeline
from analytics_etl.demo_source import mutate_demo_source
from analytics_etl.local_snapshot import LocalSnapshot
from analytics_etl.pipeline import run_sync
from analytics_shared.chunks import CHUNKS_PREFIX, read_index
from analytics_shared.errors import StorageError
from analytics_shared.manifest import read_manifest
from analytics_shared.snapshot_files import file_digest
from analytics_shared.storage import LocalStore


class CountingStore(LocalStore):
    """The real local store, counting chunk downloads."""

    def __init__(self, root) -> None:  # noqa: ANN001
        super().__init__(root)
        self.chunk_gets = 0
        self._lock = threading.Lock()

    def get_bytes(self, key: str) -> bytes:
        if key.startswith(CHUNKS_PREFIX):
            with self._lock:
                self.chunk_gets += 1
        return super().get_bytes(key)


@pytest.fixture
def counting(store: LocalStore) -> CountingStore:
    return CountingStore(store.root)


def local_of(settings) -> LocalSnapshot:  # noqa: ANN001
    return LocalSnapshot(settings.etl_state_dir, chunk_size=settings.chunk_size)


def sidecar(settings) -> dict:  # noqa: ANN001
    return json.loads((settings.etl_state_dir / "snapshot.json").read_text())


def test_kept_file_is_the_published_version_and_its_chunk_table(make_settings, store, source_path):
    settings = make_settings()
    run_sync(settings)
    mutate_demo_source(source_path, fraction=0.05, seed=71)
    run_sync(settings)
    manifest, _ = read_manifest(store)
    state = local_of(settings).read_state()
    assert state.version == manifest.version and not state.dirty and state.chunks_in_store
    assert file_digest(local_of(settings).path, manifest) == manifest.sha256
    assert state.chunks.digests == read_index(store, manifest.index_key).chunks
    assert len(state.chunks.marks) == len(state.chunks.digests)
    assert not (settings.etl_state_dir / "outbox").exists(), "no copy of the file is made to build in"


def test_a_quiet_run_leaves_the_file_untouched_and_clean(make_settings, store, counting):
    settings = make_settings()
    run_sync(settings)
    before = sidecar(settings)
    assert run_sync(settings, store=counting)["status"] == "unchanged"
    assert sidecar(settings) == before and not before["dirty"]
    assert counting.chunk_gets == 0


def test_touched_local_file_is_repaired_with_only_the_damaged_chunk(make_settings, store, counting, source_path,
                                                                    assert_snapshot_matches):
    settings = make_settings()
    run_sync(settings)
    local = local_of(settings)
    with local.path.open("r+b") as fh:  # same size, new content in the middle of one chunk
        fh.seek(settings.chunk_size + 100)
        damaged = bytes(b ^ 0xFF for b in fh.read(16))
        fh.seek(settings.chunk_size + 100)
        fh.write(damaged)
    assert local.read_state().dirty, "a file written behind our back is not trusted"
    mutate_demo_source(source_path, fraction=0.05, seed=72)
    assert run_sync(settings, store=counting)["status"] == "published"
    assert counting.chunk_gets == 1
    assert not local.read_state().dirty
    assert_snapshot_matches()


def test_unreadable_sidecar_means_a_repair_by_hash(make_settings, store, counting, source_path,
                                                   assert_snapshot_matches):
    settings = make_settings()
    run_sync(settings)
    (settings.etl_state_dir / "snapshot.json").write_text("{not json")
    mutate_demo_source(source_path, fraction=0.05, seed=73)
    assert run_sync(settings, store=counting)["status"] == "published"
    assert counting.chunk_gets == 0, "the file's own bytes still match every chunk"
    assert_snapshot_matches()


def test_a_run_that_fails_after_writing_leaves_the_file_dirty_and_the_next_repairs_it(
        make_settings, store, counting, source_path, monkeypatch, assert_snapshot_matches):
    settings = make_settings()
    run_sync(settings)
    published, _ = read_manifest(store)
    mutate_demo_source(source_path, fraction=0.05, seed=74)

    def fail(*args: object, **kwargs: object) -> None:
        raise StorageError("S3 put failed: injected before anything was uploaded")

    monkeypatch.setattr(pipeline, "publish_snapshot", fail)
    with pytest.raises(StorageError):
        run_sync(settings)
    monkeypatch.undo()
    state = local_of(settings).read_state()
    assert state.dirty and state.version == published.version
    assert file_digest(local_of(settings).path, published) != published.sha256, "the build changed the kept file"

    result = run_sync(settings, store=counting)
    assert result["status"] == "published"
    chunks = len(read_index(store, published.index_key).chunks)
    assert 0 < counting.chunk_gets < chunks, "the repair fetched only the chunks the failed build changed"
    assert_snapshot_matches()


def test_a_new_container_downloads_every_chunk_once(make_settings, store, counting, tmp_path, source_path,
                                                    assert_snapshot_matches):
    run_sync(make_settings())
    manifest, _ = read_manifest(store)
    mutate_demo_source(source_path, fraction=0.05, seed=75)
    fresh = make_settings(etl_state_dir=tmp_path / "new-container")
    assert run_sync(fresh, store=counting)["status"] == "published"
    assert counting.chunk_gets == len(set(read_index(store, manifest.index_key).chunks))
    assert_snapshot_matches()


def test_state_of_earlier_designs_is_removed(make_settings, store):
    settings = make_settings()
    settings.etl_state_dir.mkdir(parents=True)
    (settings.etl_state_dir / "working.duckdb").write_bytes(b"old state")
    (settings.etl_state_dir / "outbox").mkdir()
    (settings.etl_state_dir / "outbox" / "build-1.duckdb").write_bytes(b"old build")
    run_sync(settings)
    assert not (settings.etl_state_dir / "working.duckdb").exists()
    assert not (settings.etl_state_dir / "outbox").exists()


def test_a_wal_left_beside_an_untouched_file_keeps_it_dirty(make_settings, store):
    """DuckDB replays a WAL at open: changes of a run that did not publish must not survive."""
    settings = make_settings()
    run_sync(settings)
    local = local_of(settings)
    state = local.read_state()
    local.begin_writing(state)
    (settings.etl_state_dir / "snapshot.duckdb.wal").write_bytes(b"unpublished changes")
    local.end_unchanged(state)
    assert local.read_state().dirty
    assert run_sync(settings)["status"] == "unchanged"
    assert not (settings.etl_state_dir / "snapshot.duckdb.wal").exists(), "the repair removed it"
    assert not local.read_state().dirty
