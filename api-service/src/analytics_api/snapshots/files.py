"""Local snapshot copies shared by every worker on the host.

One file per version in SNAPSHOT_CACHE_DIR, written under an exclusive flock and renamed
into place only after its size and sha256 matched the manifest, so a worker that finds
the file can trust it and N workers cost one download.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from analytics_api.errors import SnapshotRejected
from analytics_shared.logging import get_logger
from analytics_shared.manifest import Manifest
from analytics_shared.snapshot_files import download_verified
from analytics_shared.storage import ObjectStore

log = get_logger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
STALE_PART_SECONDS = 3600


def local_name(manifest: Manifest) -> str:
    return f"{_UNSAFE.sub('_', manifest.version)}-{manifest.sha256[:16]}.duckdb"


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


def ensure_local_copy(store: ObjectStore, manifest: Manifest, cache_dir: Path) -> Path:
    """Path of a verified local copy of the manifest's snapshot. Call holding host_lock."""
    final = cache_dir / local_name(manifest)
    if final.exists() and final.stat().st_size == manifest.size_bytes:
        return final
    part = cache_dir / f".{final.name}.{os.getpid()}.part"
    try:
        started = time.monotonic()
        download_verified(store, manifest, part)
        os.replace(part, final)
        log.info("snapshot.downloaded", version=manifest.version, size_bytes=manifest.size_bytes,
                 seconds=round(time.monotonic() - started, 3))
    finally:
        part.unlink(missing_ok=True)
    return final


def remove_local_copy(cache_dir: Path, name: str) -> None:
    with host_lock(cache_dir, name):
        (cache_dir / name).unlink(missing_ok=True)
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
        except FileNotFoundError:
            pass
