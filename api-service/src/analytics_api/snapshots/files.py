"""Local snapshot copies shared by every worker on the host.

One file per version in SNAPSHOT_CACHE_DIR, written under an exclusive flock and renamed
into place only after its size and sha256 matched the manifest, so a worker that finds
the file can trust it and N workers cost one download. A format-2 version is assembled
from the chunks a local file already holds (the version being served) plus the chunks it
lacks; a sidecar (`<file>.chunks.json`) keeps the new file's chunk digests, so it can be
the base of the next version, and what loading it cost.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

from analytics_api.errors import SnapshotRejected
from analytics_api.metrics import SNAPSHOT_BYTES
from analytics_shared.assemble import FetchStats
from analytics_shared.chunks import ChunkTable, LocalChunks, chunk_spans, file_identity, list_digest, mark
from analytics_shared.errors import IntegrityError
from analytics_shared.logging import get_logger
from analytics_shared.manifest import Manifest
from analytics_shared.snapshot_files import fetch_snapshot, verify_snapshot_file
from analytics_shared.storage import ObjectStore

log = get_logger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
STALE_PART_SECONDS = 3600


def local_name(manifest: Manifest) -> str:
    # The version is at most 256 characters: cut so that the name and its `.<name>.lock` and
    # `.<name>.chunks.json` siblings stay within the 255-byte limit of a file name (a long one
    # made every load fail with ENAMETOOLONG). The digest keeps names of distinct files distinct.
    return f"{_UNSAFE.sub('_', manifest.version)[:96]}-{manifest.sha256[:16]}.duckdb"


def check_compatible(manifest: Manifest) -> None:
    """Refuse before downloading a snapshot written by a newer DuckDB than ours."""
    ours = _major_minor(duckdb.__version__)
    theirs = _major_minor(manifest.duckdb_version)
    if theirs is None or ours is None or theirs > ours:
        raise SnapshotRejected(
            f"snapshot {manifest.version} was written by DuckDB {manifest.duckdb_version}; "
            f"this API runs DuckDB {duckdb.__version__} and cannot read it")


def _major_minor(version: str) -> tuple[int, int] | None:
    match = re.match(r"v?(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else None


@contextmanager
def host_lock(cache_dir: Path, name: str) -> Iterator[None]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / f".{name}.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass(frozen=True)
class LocalCopy:
    """A verified local file of one version, what its chunks are, and what fetching it cost."""

    path: Path
    chunks: LocalChunks
    stats: FetchStats


def sidecar_of(path: Path) -> Path:
    return path.with_name(f".{path.name}.chunks.json")


def read_local_copy(path: Path) -> LocalCopy:
    """A file already in the cache; without a readable sidecar its chunk table is unknown
    (computed if it is ever the base of a new version)."""
    try:
        data = json.loads(sidecar_of(path).read_text())
        table = ChunkTable(**data["table"]) if data["table"] else None
        chunks = LocalChunks(path, table, tuple(data["identity"]) if table else None)
        return LocalCopy(path, chunks, FetchStats(**data["stats"]))
    except (OSError, ValueError, KeyError, TypeError):
        return LocalCopy(path, LocalChunks(path), FetchStats())


def ensure_local_copy(store: ObjectStore, manifest: Manifest, cache_dir: Path, *, base: LocalChunks | None = None,
                      concurrency: int = 8) -> LocalCopy:
    """A verified local copy of the manifest's snapshot. Call holding host_lock."""
    final = cache_dir / local_name(manifest)
    if final.exists() and final.stat().st_size == manifest.size_bytes:
        found = read_local_copy(final)
        if _intact(found, manifest):
            return found
        # Not the bytes it was renamed with (the host crashed before they reached the disk, or
        # someone copied a file there): trusted on its size alone, it was rejected as
        # unreadable, and the version remembered as bad although the store holds it intact.
        log.warning("snapshot.cache_file_damaged", path=str(final), version=manifest.version)
    part = cache_dir / f".{final.name}.{os.getpid()}.part"
    stats = FetchStats()
    try:
        table = fetch_snapshot(store, manifest, part, base=base, concurrency=concurrency, stats=stats).table
        identity = file_identity(part)  # a rename keeps it
        sidecar_of(final).write_text(json.dumps({
            "table": asdict(table) if table else None, "identity": identity, "stats": asdict(stats)}))
        os.replace(part, final)
    finally:
        part.unlink(missing_ok=True)
        SNAPSHOT_BYTES.inc(stats.downloaded_bytes)  # a rejected version's bytes were transferred too
    log.info("snapshot.downloaded", version=manifest.version, size_bytes=manifest.size_bytes,
             format_version=manifest.format_version, chunks=stats.chunks, reused=stats.reused,
             downloaded_bytes=stats.downloaded_bytes, seconds=stats.seconds)
    return LocalCopy(final, LocalChunks(final, table, identity if table else None), stats)


def _intact(copy: LocalCopy, manifest: Manifest) -> bool:
    """A file found under the version's name is that version: checked against the xxh3 marks its
    sidecar recorded (~30 GB/s), or, without a usable sidecar, hashed as the manifest defines."""
    table = copy.chunks.table
    try:
        if table is None or table.chunk_size != manifest.chunk_size or list_digest(table.digests) != manifest.sha256:
            verify_snapshot_file(copy.path, manifest)
            return True
        with copy.path.open("rb", buffering=0) as fh:
            return len(table.marks) == len(table.digests) and all(
                mark(fh.read(length)) == expected
                for (_, length), expected in zip(chunk_spans(manifest.size_bytes, table.chunk_size), table.marks))
    except IntegrityError:
        return False


def newest_local_copy(cache_dir: Path) -> LocalCopy | None:
    """The newest complete file in the cache (left by an earlier process): a base for the
    first version this worker loads, so a restarted host fetches only what changed."""
    files = [p for p in cache_dir.glob("*.duckdb") if sidecar_of(p).exists()] if cache_dir.exists() else []
    return read_local_copy(max(files, key=lambda p: p.stat().st_mtime)) if files else None


def remove_local_copy(cache_dir: Path, name: str, *, locked: bool = False) -> None:
    """Delete a version's file and sidecar; `locked`: the caller holds its host_lock."""
    with contextlib.nullcontext() if locked else host_lock(cache_dir, name):
        (cache_dir / name).unlink(missing_ok=True)
        sidecar_of(cache_dir / name).unlink(missing_ok=True)
    if not locked:
        (cache_dir / f".{name}.lock").unlink(missing_ok=True)


def purge_stale_parts(cache_dir: Path) -> None:
    """Downloads abandoned by a killed worker; old enough that nobody is still writing them."""
    if not cache_dir.exists():
        return
    cutoff = time.time() - STALE_PART_SECONDS
    for part in cache_dir.glob(".*.part"):
        try:
            if part.stat().st_mtime < cutoff:
                part.unlink()
        except OSError:  # gone already, or a read-only cache: the load reports that, start-up goes on
            pass
