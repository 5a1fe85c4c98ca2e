"""upload_snapshot: a local store gets a hard link, every other store the ordinary upload."""

from __future__ import annotations

import os

import pytest

from analytics_etl.publish import upload_snapshot
from analytics_shared.errors import PreconditionFailed, StorageError
from analytics_shared.storage import LocalStore


def test_local_store_links_the_file_and_keeps_history_write_once(store: LocalStore, tmp_path):
    snapshot = tmp_path / "built.duckdb"
    snapshot.write_bytes(b"x" * 1000)
    info = upload_snapshot(store, "history/a.db", snapshot)
    assert info.size == 1000
    assert os.stat(store.root / "history/a.db").st_ino == os.stat(snapshot).st_ino
    with pytest.raises(PreconditionFailed):
        upload_snapshot(store, "history/a.db", snapshot)


def test_other_filesystem_falls_back_to_the_store_copy(store: LocalStore, tmp_path, monkeypatch):
    snapshot = tmp_path / "built.duckdb"
    snapshot.write_bytes(b"y" * 10)

    def cross_device(src, dst):  # noqa: ANN001, ANN202
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    assert upload_snapshot(store, "history/b.db", snapshot).size == 10
    assert (store.root / "history/b.db").read_bytes() == b"y" * 10
    assert os.stat(store.root / "history/b.db").st_ino != os.stat(snapshot).st_ino


def test_key_outside_the_store_is_rejected_by_the_store(store: LocalStore, tmp_path):
    snapshot = tmp_path / "built.duckdb"
    snapshot.write_bytes(b"z")
    with pytest.raises(StorageError, match="escapes"):
        upload_snapshot(store, "../outside.db", snapshot)
