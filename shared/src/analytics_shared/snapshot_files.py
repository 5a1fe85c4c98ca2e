"""Snapshot files on local disk: checksums and verified fetches, used by both services.

A snapshot is trusted only after its size and digest match what the manifest promises;
both the ETL (restoring its kept file) and the API (serving) go through here, for either
manifest format: format 1 downloads the one file and hashes it, format 2 assembles it from
verified chunks (assemble.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from analytics_shared.assemble import FetchStats, assemble
from analytics_shared.chunks import ChunkIndex, ChunkTable, LocalChunks, list_digest, read_index, table_of
from analytics_shared.errors import IntegrityError
from analytics_shared.manifest import Manifest
from analytics_shared.storage.base import ObjectStore


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_digest(path: Path, manifest: Manifest) -> str:
    """The digest of a local file as the manifest's format defines it."""
    if manifest.format_version == 1:
        return sha256_file(path)
    return list_digest(table_of(path, manifest.chunk_size).digests)


def verify_snapshot_file(path: Path, manifest: Manifest) -> None:
    """Raise IntegrityError unless the file is exactly the snapshot the manifest names."""
    size = path.stat().st_size
    if size != manifest.size_bytes:
        raise IntegrityError(f"{manifest.object_key}: {size} bytes, manifest says {manifest.size_bytes}")
    digest = file_digest(path, manifest)
    if digest != manifest.sha256:
        raise IntegrityError(f"{manifest.object_key}: sha256 {digest} does not match the manifest")


@dataclass
class Fetched:
    """A verified local file of one version: its chunk index and table (format 2), and what
    fetching it cost."""

    index: ChunkIndex | None
    table: ChunkTable | None
    stats: FetchStats


def fetch_snapshot(store: ObjectStore, manifest: Manifest, path: Path, *, base: LocalChunks | None = None,
                   concurrency: int = 8, stats: FetchStats | None = None) -> Fetched:
    """Write the manifest's snapshot to `path`, verified; a format-2 version reuses the
    chunks `base` already holds and fetches only the others. `stats` (optional) is filled
    in as the work goes, failed attempts included."""
    stats = stats if stats is not None else FetchStats()
    if manifest.format_version == 1:
        store.download_file(manifest.database_key, path)
        stats.downloaded_objects, stats.downloaded_bytes = 1, path.stat().st_size
        verify_snapshot_file(path, manifest)
        return Fetched(None, None, stats)
    index = read_index(store, manifest.index_key)
    stats.downloaded_objects, stats.downloaded_bytes = 1, index.stored_bytes
    index.matches(manifest)
    table = assemble(store, index, path, base, concurrency=concurrency, stats=stats)
    return Fetched(index, table, stats)
