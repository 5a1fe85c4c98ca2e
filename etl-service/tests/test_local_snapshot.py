"""The local copy of the last published snapshot: trusted only while it is exactly that."""

from __future__ import annotations

import os

from analytics_etl.demo_source import mutate_demo_source
from analytics_etl.local_snapshot import LocalSnapshot
from analytics_etl.pipeline import run_sync
from analytics_shared.manifest import read_manifest
from analytics_shared.snapshot_files import sha256_file


def test_local_copy_is_the_published_file_but_never_the_same_inode(make_settings, store, source_path):
    settings = make_settings()
    run_sync(settings)
    mutate_demo_source(source_path, fraction=0.05, seed=71)
    run_sync(settings)
    manifest, _ = read_manifest(store)
    local = LocalSnapshot(settings.etl_state_dir)
    state = local.read_state()
    published = store.root / manifest.database_key
    assert state.version == manifest.version and sha256_file(local.path) == manifest.sha256
    assert os.stat(local.path).st_ino != os.stat(published).st_ino
    assert os.stat(published).st_nlink == 1, "no outbox name or local copy left on the history object"
    assert not list(local.outbox.glob("*")), "builds are removed after the run"

    # Whatever happens to the local file cannot reach what readers download.
    local.path.write_bytes(b"garbage")
    assert sha256_file(published) == manifest.sha256


def test_touched_local_copy_is_set_aside_and_restored(make_settings, store, source_path, assert_snapshot_matches):
    settings = make_settings()
    run_sync(settings)
    local = LocalSnapshot(settings.etl_state_dir)
    with local.path.open("r+b") as fh:  # same size, new content
        fh.seek(100)
        fh.write(b"\0" * 16)
    assert local.read_state() is None
    assert list(settings.etl_state_dir.glob("snapshot.corrupt-*"))
    mutate_demo_source(source_path, fraction=0.05, seed=72)
    assert run_sync(settings)["status"] == "published"
    assert local.read_state().version == read_manifest(store)[0].version
    assert_snapshot_matches()


def test_unreadable_sidecar_means_restore(make_settings, store, source_path, assert_snapshot_matches):
    settings = make_settings()
    run_sync(settings)
    (settings.etl_state_dir / "snapshot.json").write_text("{not json")
    mutate_demo_source(source_path, fraction=0.05, seed=73)
    assert run_sync(settings)["status"] == "published"
    assert_snapshot_matches()


def test_working_database_of_the_previous_design_is_removed(make_settings, store):
    settings = make_settings()
    settings.etl_state_dir.mkdir(parents=True)
    (settings.etl_state_dir / "working.duckdb").write_bytes(b"old state")
    run_sync(settings)
    assert not (settings.etl_state_dir / "working.duckdb").exists()
