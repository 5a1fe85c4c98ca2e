"""Retention of published versions and garbage collection of their chunks.

A version is one history object: its file (format 1) or its chunk index (format 2).
Kept: the newest HISTORY_KEEP, every version younger than HISTORY_KEEP_HOURS (one sync a
minute still leaves a rollback window of hours), the ones the manifest names (re-read after
publishing, so another instance's is protected too), and every version superseded less than
GC_GRACE_SECONDS ago, so a reader that read the manifest before it moved finishes loading.

Chunks are collected by mark and sweep, in an order that is safe while others publish
and read: list chunks/ first (a chunk written after that listing is never a candidate),
then read the index of every version that still exists, then delete the listed chunks
no index references that are older than the grace period (an in-flight publish uploads
its chunks before its index). Version objects are deleted before their chunks, so a crash
anywhere leaves only garbage for the next pass, never a version missing a chunk.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from analytics_shared.chunks import CHUNKS_PREFIX, ChunkIndex, parse_index
from analytics_shared.errors import AnalyticsError
from analytics_shared.logging import get_logger
from analytics_shared.manifest import HISTORY_PREFIX, INDEX_SUFFIX, RUNS_PREFIX
from analytics_shared.storage import ObjectInfo, ObjectStore

log = get_logger(__name__)


def versions(store: ObjectStore) -> list[ObjectInfo]:
    """Every version in the store, oldest first (names carry the time to the second only,
    so two publishes in one second are ordered by the store's modification time)."""
    found = [o for o in store.list(HISTORY_PREFIX) if o.key.endswith((".db", INDEX_SUFFIX))]
    return sorted(found, key=lambda o: (o.last_modified is None, o.last_modified, o.key))


def kept_versions(history: list[ObjectInfo], *, keep: int, protect: set[str], grace_seconds: float,
                  now: datetime, keep_hours: float = 0) -> set[str]:
    kept = {o.key for o in history[-keep:]} | protect
    if keep_hours:
        young = now - timedelta(hours=keep_hours)
        kept |= {o.key for o in history if o.last_modified is None or o.last_modified > young}
    cutoff = now - timedelta(seconds=grace_seconds)
    for older, newer in zip(history, history[1:]):
        if newer.last_modified is None or newer.last_modified > cutoff:
            kept.add(older.key)  # superseded less than the grace period ago
    return kept


def apply_retention(store: ObjectStore, *, keep: int, protect: set[str], grace_seconds: float,
                    now: datetime | None = None, keep_hours: float = 0) -> list[str]:
    """Delete the versions retention does not keep; returns their keys."""
    history = versions(store)
    kept = kept_versions(history, keep=keep, protect=protect, grace_seconds=grace_seconds,
                         now=now or datetime.now(UTC), keep_hours=keep_hours)
    doomed = [o.key for o in history if o.key not in kept]
    if doomed:
        store.delete_many(doomed)
        log.info("retention.deleted", count=len(doomed), kept=len(history) - len(doomed))
    return doomed


class IndexCache:
    """Chunk indexes are immutable: each is read from the store once per ETL state dir."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def _path(self, key: str) -> Path:
        name = key.replace("/", "__")
        if len(name.encode()) > 200:  # any key under history/ is a version: keep within a file name's 255 bytes
            name = f"long__{hashlib.sha256(key.encode()).hexdigest()}.json"
        return self.dir / name

    def put(self, key: str, index: ChunkIndex) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self._path(key).with_suffix(".tmp")
        tmp.write_text(index.model_dump_json())
        tmp.replace(self._path(key))

    def get(self, store: ObjectStore, key: str) -> ChunkIndex:
        path = self._path(key)
        if path.exists():
            return parse_index(key, path.read_bytes())
        index = parse_index(key, store.get_bytes(key))
        self.put(key, index)
        return index

    def prune(self, live: set[str]) -> None:
        keep = {self._path(key).name for key in live}
        for path in self.dir.glob("*.json"):
            if path.name not in keep:
                path.unlink(missing_ok=True)


def collect_chunks(store: ObjectStore, indexes: IndexCache, *, grace_seconds: float,
                   now: datetime | None = None) -> int:
    """Delete unreferenced chunks older than the grace period; returns how many."""
    listed = store.list(CHUNKS_PREFIX)
    history = versions(store)
    referenced: set[str] = set()
    for version in history:
        if version.key.endswith(INDEX_SUFFIX):
            # An index that cannot be read stops the sweep: its chunks are unknown, keep them all.
            referenced.update(indexes.get(store, version.key).chunks)
    indexes.prune({o.key for o in history})
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=grace_seconds)
    doomed = [o.key for o in listed if o.key[len(CHUNKS_PREFIX):] not in referenced
              and o.last_modified is not None and o.last_modified < cutoff]
    if doomed:
        store.delete_many(doomed)
    log.info("chunks.collected", deleted=len(doomed), listed=len(listed), referenced=len(referenced))
    return len(doomed)


def prune_run_records(store: ObjectStore, *, keep_days: int, now: datetime | None = None) -> int:
    """Delete runs/<date>/ records older than keep_days, but none a kept version may need:
    rollback finds a version's manifest in the record of the run that published it, written
    on the day of the version's name (or just after midnight)."""
    cutoff = ((now or datetime.now(UTC)) - timedelta(days=keep_days)).strftime("%Y-%m-%d")
    kept_days = [day for day in (_version_day(o.key) for o in versions(store)) if day]
    cutoff = min([cutoff, *kept_days])  # records of a day before the cutoff are deleted
    doomed = [o.key for o in store.list(RUNS_PREFIX) if o.key[len(RUNS_PREFIX):][:10] < cutoff]
    if doomed:
        store.delete_many(doomed)
        log.info("runs.pruned", deleted=len(doomed), before=cutoff)
    return len(doomed)


def _version_day(key: str) -> str:
    """history/analytics_2026-11-30_06-08-00_9d49f2.index.json -> 2026-11-30."""
    name = key.rsplit("/", 1)[-1]
    return name[len("analytics_"):][:10] if name.startswith("analytics_") else ""


def due(marker: Path, every_seconds: float) -> bool:
    """Whether a job that runs at most once per `every_seconds` is due: `marker` is touched
    each time it runs (a file in ETL_STATE_DIR, so the period survives a restart)."""
    last = marker.stat().st_mtime if marker.exists() else 0.0
    return time.time() - last >= every_seconds


def retain_and_collect(store: ObjectStore, state_dir: Path, *, keep: int, protect: set[str],
                       grace_seconds: float, keep_hours: float = 0, runs_keep_days: int | None = None) -> None:
    """After a publish: retention every time; the chunk sweep and the pruning of old run
    records at most once per grace period (each lists a whole prefix). All resume on the
    next publish if they fail; the publish itself stands."""
    marker = state_dir / "last_chunk_gc"
    try:
        apply_retention(store, keep=keep, protect=protect, grace_seconds=grace_seconds, keep_hours=keep_hours)
        if due(marker, grace_seconds):
            collect_chunks(store, IndexCache(state_dir / "indexes"), grace_seconds=grace_seconds)
            if runs_keep_days is not None:
                prune_run_records(store, keep_days=runs_keep_days)
            marker.touch()
    except AnalyticsError as exc:
        log.warning("retention.failed", error=exc.message)
    except OSError as exc:  # the local index cache or marker (full, read-only state dir): the publish stands
        log.warning("retention.failed", error=f"{type(exc).__name__}: {exc}")
