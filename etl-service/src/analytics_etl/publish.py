"""Publish protocol: immutable objects first, manifest last (compare-and-swap).

Format 2: the chunks the store does not hold yet, then the version's chunk index, then
the manifest. Format 1 (MANIFEST_FORMAT=1, for API hosts not yet upgraded): the whole
file, then the manifest. A crash anywhere before the manifest write leaves readers on the
previous complete snapshot; a lost compare-and-swap (another ETL published first) fails
this run without touching what the winner published.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from analytics_etl.chunk_publish import ChunkUploader, UploadStats, scan_file
from analytics_etl.local_snapshot import SnapshotState
from analytics_shared.chunks import CHUNKS_PREFIX, ChunkIndex, ChunkTable, chunk_key, read_index, write_index
from analytics_shared.errors import AnalyticsError, IntegrityError, ManifestError, ObjectNotFound
from analytics_shared.logging import get_logger
from analytics_shared.manifest import RUNS_PREFIX, Manifest, new_version, read_manifest, write_manifest
from analytics_shared.storage import ObjectStore

log = get_logger(__name__)


@dataclass
class Published:
    manifest: Manifest
    chunks: ChunkTable  # the file's chunk table: the next run's base
    index: ChunkIndex | None
    uploaded: UploadStats


def publish_snapshot(store: ObjectStore, path: Path, base: SnapshotState | None, *, format_version: int,
                     chunk_size: int, concurrency: int, expected_etag: str | None, check_reused: bool = True,
                     **fields: object) -> Published:
    """Upload the finished file at `path` and swap the manifest to it. `fields`: the
    manifest's own (previous_version, created_at, source, tables). `check_reused`: list the
    store's chunks to make sure those reused from the previous version are still there."""
    version, key = new_version(format_version=format_version)
    previous = base.chunks if base is not None else None
    index = None
    if format_version == 2:
        known = set(previous.digests) if base is not None and base.chunks_in_store else set()
        uploader = ChunkUploader(store, known, concurrency)
        try:
            scanned = scan_file(path, chunk_size, previous, uploader)
        except BaseException:
            uploader.abort()
            raise
        uploaded = uploader.finish()
        if check_reused:
            _upload_lost_chunks(store, path, chunk_size, scanned.chunks.digests, known, uploaded)
        index = ChunkIndex(version=version, chunk_size=chunk_size, size_bytes=scanned.size, sha256=scanned.sha256,
                           duckdb_version=duckdb.__version__, chunks=scanned.chunks.digests)
        write_index(store, key, index)
        uploaded.objects += 1
        log.info("snapshot.uploaded", key=key, chunks=len(index.chunks), changed=scanned.changed,
                 uploaded_objects=uploaded.objects, uploaded_bytes=uploaded.bytes)
    else:
        scanned = scan_file(path, chunk_size, previous, whole_file=True)  # the table: the next run's base
        info = store.upload_file(key, path)
        if info.size != scanned.size:
            raise IntegrityError(f"uploaded {key} has {info.size} bytes, expected {scanned.size}")
        uploaded = UploadStats(objects=1, bytes=info.size)
        log.info("snapshot.uploaded", key=key, size_bytes=info.size)
    names = {"index_key": key, "chunk_size": chunk_size} if index else {"database_key": key}
    manifest = Manifest(format_version=format_version, version=version, sha256=scanned.sha256,
                        size_bytes=scanned.size, duckdb_version=duckdb.__version__, published_at=datetime.now(UTC),
                        **names, **fields)
    write_manifest(store, manifest, expected_etag=expected_etag)
    log.info("manifest.published", version=version, key=key)
    return Published(manifest=manifest, chunks=scanned.chunks, index=index, uploaded=uploaded)


def _upload_lost_chunks(store: ObjectStore, path: Path, chunk_size: int, digests: list[str], known: set[str],
                        uploaded: UploadStats) -> None:
    """Chunks skipped because the previous index lists them must still be in the store: one
    can go behind the ETL's back (a lifecycle rule on chunks/, a hand edit, a sweep with too
    short a grace). Trusting the index alone, every following manifest named a version no
    reader could assemble. A lost chunk is uploaded again from this file (its bytes re-hashed).
    The listing reads every chunk's key (~6 MB for a 10 GiB snapshot), so the caller asks for it
    once per GC_GRACE_SECONDS, not on every publish: a chunk lost behind the ETL's back is back
    within that period, and API hosts keep serving their last good version meanwhile."""
    skipped = set(digests) & known
    if not skipped:
        return
    held = {o.key[len(CHUNKS_PREFIX):] for o in store.list(CHUNKS_PREFIX)}
    lost = skipped - held
    if not lost:
        return
    log.warning("chunks.lost_from_store", count=len(lost))
    with path.open("rb", buffering=0) as fh:
        for position, digest in enumerate(digests):
            if digest not in lost:
                continue
            data = os.pread(fh.fileno(), chunk_size, position * chunk_size)
            if hashlib.sha256(data).hexdigest() != digest:
                raise IntegrityError(f"chunk {position} of {path} changed while it was published")
            store.put(chunk_key(digest), data, content_type="application/octet-stream")
            uploaded.objects += 1
            uploaded.bytes += len(data)
            lost.discard(digest)


def write_run_record(store: ObjectStore, run_id: str, record: dict) -> None:
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    store.put(f"{RUNS_PREFIX}{day}/{run_id}.json", json.dumps(record, default=str, indent=2).encode())


def find_version(store: ObjectStore, version: str) -> Manifest:
    """The manifest that was published for `version`, from the run records."""
    for obj in reversed(store.list(RUNS_PREFIX)):
        try:
            record = json.loads(store.get(obj.key).data)
        except (ObjectNotFound, ValueError):
            continue
        if record.get("manifest", {}) and record["manifest"].get("version") == version:
            return Manifest.model_validate(record["manifest"])
    raise ManifestError(f"no published version {version!r} in the run records")


def check_complete(store: ObjectStore, manifest: Manifest) -> None:
    """The version's objects are all in the store (retention and GC have not taken them)."""
    if store.head(manifest.object_key) is None:
        raise ObjectNotFound(f"{manifest.object_key} of {manifest.version} was deleted by retention")
    if manifest.index_key is not None:
        index = read_index(store, manifest.index_key)
        held = {o.key[len(CHUNKS_PREFIX):] for o in store.list(CHUNKS_PREFIX)}
        missing = set(index.chunks) - held
        if missing:
            raise ObjectNotFound(f"{len(missing)} chunks of {manifest.version} are missing from the store")


def rollback_to(store: ObjectStore, version: str) -> Manifest:
    """Point the manifest back at an older version whose objects are all still stored.

    The manifest keeps the snapshot's own created_at: readers' snapshot-age figures then
    say how old the data really is. The rollback gets its own run record, like a sync.
    """
    current, etag = read_manifest(store)
    target = find_version(store, version)
    check_complete(store, target)
    rolled = target.model_copy(update={"previous_version": current.version if current else None,
                                       "published_at": datetime.now(UTC)})
    write_manifest(store, rolled, expected_etag=etag)
    log.info("manifest.rolled_back", version=version, from_version=current.version if current else None)
    run_id = uuid.uuid4().hex[:12]
    try:
        write_run_record(store, run_id, {"run_id": run_id, "status": "rolled_back",
                                         "started_at": datetime.now(UTC).isoformat(),
                                         "from_version": current.version if current else None,
                                         "manifest": rolled.model_dump(mode="json")})
    except AnalyticsError as exc:  # the rollback itself is done; the audit line is in the log
        log.warning("run_record.failed", error=exc.message)
    return rolled
