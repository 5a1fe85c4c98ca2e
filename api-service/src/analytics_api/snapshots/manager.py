"""The worker's current snapshot: loaded at start, polled, hot-swapped, retired when unused.

Swapping is one reference assignment; queries hold the snapshot they started on until they
finish, and the last one out closes it and removes its file. A new version that fails any
check is rejected with a log line while the old one keeps serving. The last `keep_previous`
versions stay open after they are replaced, so that a page cursor pinned to one of them can
still be followed (use(version)); an older one is Gone.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from analytics_api.errors import Gone, SnapshotCacheError, SnapshotRejected, SnapshotUnavailable
from analytics_api.snapshots.database import Snapshot, load_snapshot
from analytics_api.snapshots.files import (LocalCopy, check_compatible, ensure_local_copy, host_lock, local_name,
                                           newest_local_copy, purge_stale_parts, remove_local_copy)
from analytics_shared.errors import AnalyticsError
from analytics_shared.logging import get_logger
from analytics_shared.manifest import Manifest, read_manifest
from analytics_shared.storage import ObjectStore

log = get_logger(__name__)


@dataclass
class SnapshotStatus:
    version: str | None
    loaded_at: datetime | None
    checked_at: datetime | None
    last_error: str | None


class SnapshotManager:
    def __init__(self, store: ObjectStore, *, cache_dir: Path, tables: list[str], poll_seconds: float,
                 memory_limit: str, threads: int, fetch_concurrency: int = 8, keep_previous: int = 1) -> None:
        self.store = store
        self.cache_dir = cache_dir
        self.tables = tables
        self.poll_seconds = poll_seconds
        self.memory_limit = memory_limit
        self.threads = threads
        self.fetch_concurrency = fetch_concurrency
        self._current: Snapshot | None = None
        self.keep_previous = keep_previous
        self._previous: list[Snapshot] = []  # replaced versions still open for page cursors, oldest first
        self._rejected: dict[str, str] = {}  # version -> reason; not retried until the manifest moves
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.checked_at: datetime | None = None
        self.last_error: str | None = None
        self.on_swap: list = []
        self.on_reject: list = []

    @property
    def current(self) -> Snapshot | None:
        return self._current

    def status(self) -> SnapshotStatus:
        snap = self._current
        return SnapshotStatus(version=snap.version if snap else None, loaded_at=snap.loaded_at if snap else None,
                              checked_at=self.checked_at, last_error=self.last_error)

    @contextmanager
    def use(self, version: str | None = None) -> Iterator[Snapshot]:
        """The current snapshot (or the given version, if still open), kept open until the caller
        is done with it."""
        while True:
            snap = self._current
            if snap is None:
                raise SnapshotUnavailable(self.last_error and f"no snapshot loaded yet ({self.last_error})"
                                          or "no snapshot has been published yet; try again shortly")
            if version is not None and snap.version != version:
                snap = next((s for s in self._previous if s.version == version), None)
                if snap is None:
                    raise Gone(f"snapshot version {version} has been retired; start again from the first page")
            if snap.enter():
                break
        try:
            yield snap
        finally:
            if snap.leave():
                self._close(snap)

    def refresh(self) -> bool:
        """Load the manifest's snapshot if it is new; True when a swap happened."""
        with self._refresh_lock:
            self.checked_at = datetime.now(UTC)
            try:
                manifest, _ = read_manifest(self.store)
            except AnalyticsError as exc:
                self._fail(f"manifest unreadable: {exc.message}", transient=exc.transient)
                return False
            if manifest is None:
                self.last_error = "nothing published yet"
                return False
            current = self._current
            if current is not None and current.version == manifest.version:
                self.last_error = None
                return False
            if manifest.version in self._rejected:
                self.last_error = self._rejected[manifest.version]
                return False
            try:
                snap = self._load(manifest)
            except AnalyticsError as exc:
                if not exc.transient:
                    if len(self._rejected) > 64:
                        self._rejected.clear()
                    self._rejected[manifest.version] = exc.message
                self._fail(exc.message, transient=exc.transient, version=manifest.version)
                for callback in self.on_reject:
                    callback(manifest.version, exc)
                return False
            self._current = snap
            self.last_error = None
            log.info("snapshot.swapped", version=snap.version, previous=current.version if current else None)
            for callback in self.on_swap:
                callback(snap)
            if current is not None:
                self._previous.append(current)
            while len(self._previous) > self.keep_previous:
                old = self._previous.pop(0)
                if old.retire():
                    self._close(old)
            return True

    def _load(self, manifest: Manifest) -> Snapshot:
        check_compatible(manifest)
        try:
            return self._load_into_cache(manifest)
        except OSError as exc:
            # The cache directory is full, read-only or refuses a name: not the version's fault,
            # so not remembered as bad. Raised bare, it escaped refresh(): /ready kept saying
            # all was well and no metric moved while the worker fell behind.
            raise SnapshotCacheError(f"snapshot cache {self.cache_dir} cannot take version {manifest.version}: "
                                     f"{exc.strerror or exc}") from exc

    def _load_into_cache(self, manifest: Manifest) -> Snapshot:
        name = local_name(manifest)
        with host_lock(self.cache_dir, name):
            # The file being served is the base the new version reuses unchanged chunks from.
            current = self._current
            base = current.local if current is not None else newest_local_copy(self.cache_dir)
            local = ensure_local_copy(self.store, manifest, self.cache_dir, base=base.chunks if base else None,
                                      concurrency=self.fetch_concurrency)
            try:
                return load_snapshot(manifest, local, self.tables, memory_limit=self.memory_limit,
                                     threads=self.threads)
            except SnapshotRejected:
                remove_local_copy(self.cache_dir, local.path.name, locked=True)  # must not poison the next attempt
                raise

    def _fail(self, message: str, *, transient: bool, version: str | None = None) -> None:
        self.last_error = message
        log.error("snapshot.rejected" if version else "snapshot.check_failed", version=version, error=message,
                  transient=transient, serving=self._current.version if self._current else None)

    def _close(self, snap: Snapshot) -> None:
        try:
            snap.conn.close()
        finally:
            current = self._current
            if (current is None or current.path != snap.path) and all(s.path != snap.path for s in self._previous):
                remove_local_copy(self.cache_dir, snap.path.name)
            log.info("snapshot.closed", version=snap.version)

    def start(self) -> None:
        purge_stale_parts(self.cache_dir)
        self.refresh()
        self._thread = threading.Thread(target=self._poll, name="snapshot-poller", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception:  # the poller must outlive any surprise; serving continues on the old snapshot
                log.exception("snapshot.poll_crashed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        snap, self._current = self._current, None
        kept, self._previous = self._previous, []
        for old in [*kept, *([snap] if snap is not None else [])]:
            if old.retire():
                old.conn.close()
                log.info("snapshot.closed", version=old.version)
