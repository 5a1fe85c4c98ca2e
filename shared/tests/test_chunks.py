"""Chunk indexes and assembling a file from chunks, on both stores (moto's S3 server too)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import pytest

from analytics_shared.assemble import FetchStats, assemble
from analytics_shared.chunks import (DUCKDB_BLOCK, ChunkIndex, LocalChunks, chunk_key, file_identity, list_digest,
                                     parse_index, read_index, table_of, write_index)
from analytics_shared.errors import IntegrityError, ManifestError, PreconditionFailed
from analytics_shared.manifest import Manifest
from analytics_shared.snapshot_files import fetch_snapshot
from analytics_shared.storage import LocalStore, ObjectStore

CS = DUCKDB_BLOCK  # the smallest legal chunk size keeps the files small


def publish(store: ObjectStore, data: bytes, version: str = "v1", chunk_size: int = CS) -> ChunkIndex:
    digests = []
    for offset in range(0, len(data), chunk_size):
        block = data[offset:offset + chunk_size]
        digests.append(hashlib.sha256(block).hexdigest())
        store.put(chunk_key(digests[-1]), block)
    index = ChunkIndex(version=version, chunk_size=chunk_size, size_bytes=len(data),
                       sha256=list_digest(digests), duckdb_version="2.0.0", chunks=digests)
    write_index(store, f"history/{version}.index.json", index)
    return index


def manifest_for(index: ChunkIndex, **changes: object) -> Manifest:
    fields = {"format_version": 2, "version": index.version, "created_at": "2026-01-01T00:00:00Z",
              "index_key": f"history/{index.version}.index.json", "sha256": index.sha256,
              "chunk_size": index.chunk_size,
              "size_bytes": index.size_bytes, "duckdb_version": "2.0.0", "source": {"dialect": "sqlite"},
              "tables": {}}
    return Manifest.model_validate({**fields, **changes})


class CountingStore(LocalStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.gets: list[str] = []
        self._lock = threading.Lock()

    def get_bytes(self, key: str) -> bytes:
        with self._lock:
            self.gets.append(key)
        return super().get_bytes(key)


def file_of(size: int, seed: int = 1) -> bytes:
    return (hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1))[:size] if seed == 0 else os.urandom(size)


# ------------------------------------------------------------------ the index


def test_index_roundtrip_and_validation() -> None:
    good = {"version": "v", "chunk_size": CS, "size_bytes": CS + 1, "sha256": list_digest(["b" * 64, "c" * 64]),
            "duckdb_version": "2.0.0", "chunks": ["b" * 64, "c" * 64]}
    index = parse_index("k", json.dumps(good).encode())
    assert index.chunk_length(0) == CS and index.chunk_length(1) == 1 and index.stored_bytes > 0
    for bad, why in [({"chunks": ["b" * 64]}, "1 chunks listed"), ({"chunk_size": 1000}, "multiple of 262144"),
                     ({"chunks": ["B" * 64, "c" * 64]}, "chunks.0"), ({"size_bytes": 0}, "size_bytes"),
                     ({"chunks": ["c" * 64, "b" * 64]}, "not the digest of the chunk list"),
                     ({"sha256": "0" * 64}, "not the digest of the chunk list")]:
        with pytest.raises(ManifestError, match=why):
            parse_index("k", json.dumps({**good, **bad}).encode())
    with pytest.raises(ManifestError, match="malformed chunk index k"):
        parse_index("k", json.dumps(good).encode()[:-20])  # truncated


@pytest.mark.parametrize(("bad", "why"), [
    ({"chunk_size": 0}, "chunk size must be"), ({"chunk_size": -CS}, "chunk size must be"),
    ({"chunk_size": 2**40}, "chunk size must be"), ({"chunk_size": "1MiB"}, "chunk_size"),
    ({"size_bytes": 10**30}, "chunks listed"), ({"size_bytes": -1}, "size_bytes"),
    ({"chunks": ["../../current/manifest.json", "c" * 64]}, "chunks.0"),
    ({"chunks": ["b" * 64 + "/..", "c" * 64]}, "chunks.0"), ({"chunks": None}, "chunks"),
    ({"sha256": None}, "sha256"), ({"version": ["v"]}, "version"),
], ids=["chunk-size-0", "chunk-size-negative", "chunk-size-1TiB", "chunk-size-text", "size-huge", "size-negative",
        "chunk-key-traversal", "chunk-key-suffix", "chunks-null", "sha256-null", "version-list"])
def test_hostile_index_fields_are_a_clear_error(bad: dict, why: str) -> None:
    """A chunk name is a digest, never a path; sizes must describe the chunk list exactly."""
    good = {"version": "v", "chunk_size": CS, "size_bytes": CS + 1, "sha256": list_digest(["b" * 64, "c" * 64]),
            "duckdb_version": "2.0.0", "chunks": ["b" * 64, "c" * 64]}
    with pytest.raises(ManifestError, match=f"malformed chunk index k .*{why}"):
        parse_index("k", json.dumps({**good, **bad}).encode())
    for body in (b"[]", b"null", b"\xff\xfe", b'{"a": ' * 10000):  # not an object, not UTF-8, nested too deep
        with pytest.raises(ManifestError, match="malformed chunk index k"):
            parse_index("k", body)


def test_index_is_write_once(store: ObjectStore) -> None:
    index = publish(store, file_of(CS))
    with pytest.raises(PreconditionFailed):
        write_index(store, "history/v1.index.json", index)
    assert read_index(store, "history/v1.index.json").model_dump() == index.model_dump()
    with pytest.raises(IntegrityError, match="missing"):
        read_index(store, "history/none.index.json")


# ------------------------------------------------------------------ assembling


def test_assembles_from_the_store_alone(store: ObjectStore, tmp_path: Path) -> None:
    data = file_of(5 * CS + 123)
    index = publish(store, data)
    stats = FetchStats()
    table = assemble(store, index, tmp_path / "out", concurrency=3, stats=stats)
    assert (tmp_path / "out").read_bytes() == data and table.digests == index.chunks
    assert (stats.chunks, stats.reused, stats.downloaded_objects, stats.downloaded_bytes) == (6, 0, 6, len(data))


def test_reuses_unchanged_chunks_of_a_local_file(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "store")
    old = bytearray(file_of(8 * CS))
    publish(store, bytes(old), "v1")
    (tmp_path / "old").write_bytes(old)
    new = bytearray(old)
    new[3 * CS + 7] ^= 0xFF  # one chunk changed,
    new += file_of(CS // 2)  # and a short one appended
    index = publish(store, bytes(new), "v2")
    store.gets.clear()
    old_path = tmp_path / "old"
    for base in (LocalChunks(old_path), LocalChunks(old_path, table_of(old_path, CS), file_identity(old_path))):
        stats = FetchStats()
        assemble(store, index, tmp_path / "new", base, stats=stats)
        assert (tmp_path / "new").read_bytes() == new
        assert (stats.reused, stats.downloaded_objects, stats.downloaded_bytes) == (7, 2, CS + CS // 2)
    assert sorted(store.gets) == sorted([chunk_key(index.chunks[3]), chunk_key(index.chunks[8])] * 2)


def test_local_bytes_that_changed_since_their_table_was_made_are_fetched(tmp_path: Path) -> None:
    """A base damaged behind our back: its identity no longer matches, so it is hashed again
    and only the damaged chunk is fetched."""
    store = CountingStore(tmp_path / "store")
    data = file_of(4 * CS)
    index = publish(store, data)
    base_path = tmp_path / "base"
    base_path.write_bytes(data)
    base = LocalChunks(base_path, table_of(base_path, CS), file_identity(base_path))
    with base_path.open("r+b") as fh:
        fh.seek(CS + 5)
        fh.write(b"\x00\x01\x02")
    store.gets.clear()
    table = assemble(store, index, tmp_path / "out", base)
    assert (tmp_path / "out").read_bytes() == data and table.digests == index.chunks
    assert len(store.gets) == 1


def test_a_copied_chunk_that_fails_its_mark_is_fetched(tmp_path: Path) -> None:
    """Bit rot the identity cannot see (same inode, size and mtime): the mark catches it."""
    store = CountingStore(tmp_path / "store")
    data = file_of(4 * CS)
    index = publish(store, data)
    base_path = tmp_path / "base"
    base_path.write_bytes(data)
    table, identity = table_of(base_path, CS), file_identity(base_path)
    stat = base_path.stat()
    with base_path.open("r+b") as fh:
        fh.seek(2 * CS + 9)
        fh.write(b"\xff\xfe")
    os.utime(base_path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert file_identity(base_path) == identity
    store.gets.clear()
    stats = FetchStats()
    assemble(store, index, tmp_path / "out", LocalChunks(base_path, table, identity), stats=stats)
    assert (tmp_path / "out").read_bytes() == data
    assert (stats.reused, stats.downloaded_objects) == (3, 1) and store.gets == [chunk_key(index.chunks[2])]


def test_repeated_chunks_are_fetched_once(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "store")
    zeros, other = bytes(CS), file_of(CS)
    index = publish(store, zeros + other + zeros + zeros)
    store.gets.clear()
    assemble(store, index, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == zeros + other + zeros + zeros
    assert len(store.gets) == 2


@pytest.mark.parametrize("fault", ["missing", "corrupt", "short"])
def test_a_bad_chunk_in_the_store_rejects_the_version(fault: str, store: ObjectStore, tmp_path: Path) -> None:
    data = file_of(3 * CS)
    index = publish(store, data)
    key = chunk_key(index.chunks[1])
    if fault == "missing":
        store.delete(key)
    else:
        store.put(key, file_of(CS) if fault == "corrupt" else data[CS:CS + 10])
    with pytest.raises(IntegrityError, match="missing" if fault == "missing" else "corrupt"):
        assemble(store, index, tmp_path / "out")


def test_an_index_whose_digest_is_not_its_chunk_list_is_refused(store: ObjectStore) -> None:
    index = publish(store, file_of(2 * CS))
    body = json.loads(index.model_dump_json())
    store.put("history/lying.index.json", json.dumps({**body, "chunks": body["chunks"][::-1]}).encode())
    with pytest.raises(ManifestError, match="not the digest of the chunk list"):
        read_index(store, "history/lying.index.json")


def test_prefetch_keeps_a_bounded_number_of_chunks_in_flight(tmp_path: Path) -> None:
    class SlowStore(CountingStore):
        active = peak = 0

        def get_bytes(self, key: str) -> bytes:
            with self._lock:
                type(self).active += 1
                type(self).peak = max(type(self).peak, type(self).active)
            try:
                threading.Event().wait(0.002)
                return super().get_bytes(key)
            finally:
                with self._lock:
                    type(self).active -= 1

    store = SlowStore(tmp_path / "store")
    index = publish(store, file_of(40 * CS))
    assemble(store, index, tmp_path / "out", concurrency=3)
    assert 1 <= SlowStore.peak <= 3


# ------------------------------------------------------------------ fetch_snapshot, both formats


def test_fetch_snapshot_reads_format_1_and_2(store: ObjectStore, tmp_path: Path) -> None:
    data = file_of(3 * CS + 5)
    index = publish(store, data)
    two = fetch_snapshot(store, manifest_for(index), tmp_path / "two")
    assert (tmp_path / "two").read_bytes() == data and two.index.model_dump() == index.model_dump()
    assert two.table.digests == index.chunks and len(two.table.marks) == 4
    assert two.stats.downloaded_objects == 5  # the index and four chunks
    (tmp_path / "whole").write_bytes(data)
    store.upload_file("history/v1.db", tmp_path / "whole")
    one_manifest = manifest_for(index, format_version=1, index_key=None, chunk_size=None,
                                database_key="history/v1.db", sha256=hashlib.sha256(data).hexdigest())
    one = fetch_snapshot(store, one_manifest, tmp_path / "one")
    assert (tmp_path / "one").read_bytes() == data and one.index is None
    assert (one.stats.downloaded_objects, one.stats.downloaded_bytes) == (1, len(data))


def test_fetch_snapshot_refuses_an_index_of_another_version(store: ObjectStore, tmp_path: Path) -> None:
    index = publish(store, file_of(CS))
    with pytest.raises(IntegrityError, match="describes version"):
        fetch_snapshot(store, manifest_for(index, sha256="1" * 64), tmp_path / "out")
