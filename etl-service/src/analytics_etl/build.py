"""This run's snapshot: the kept local file (local_snapshot.py), brought to the published
version, opened for writing, and finished into a file ready to publish.

`with Build(...) as build:` owns the DuckDB connection from start to end: whatever
happens inside, the connection is closed on the way out, and a run that published nothing
leaves the local state clean if DuckDB did not write to the file.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from analytics_etl.local_snapshot import LocalSnapshot, SnapshotState
from analytics_etl.working import WorkingDatabase
from analytics_shared.errors import IntegrityError
from analytics_shared.logging import get_logger
from analytics_shared.manifest import Manifest
from analytics_shared.storage import ObjectStore

log = get_logger(__name__)
# A snapshot that grew this much past its size after the last full rewrite (deleted and
# updated rows leave free blocks in a file that is only ever appended to) is rewritten.
COMPACT_GROWTH = 1.5


class Build:
    def __init__(self, local: LocalSnapshot, store: ObjectStore, manifest: Manifest | None, *,
                 memory_limit: str = "") -> None:
        self.local = local
        self.store = store
        self.manifest = manifest
        self.memory_limit = memory_limit
        self.base: SnapshotState | None = None
        self.db: WorkingDatabase | None = None
        self.compact_size = 0
        self._finished = False

    def __enter__(self) -> Build:
        self.base = self.local.prepare(self.store, self.manifest)
        self.local.begin_writing(self.base)
        try:
            self.db = WorkingDatabase(self.local.path, memory_limit=self.memory_limit)
        except duckdb.Error as exc:
            if self.base is None:
                raise
            # The bytes matched the sidecar but DuckDB refuses them: repair by hash, once.
            log.warning("state.corrupt", path=str(self.local.path), error=str(exc))
            self.local.invalidate()
            self.base = self.local.prepare(self.store, self.manifest)
            self.local.begin_writing(self.base)
            self.db = WorkingDatabase(self.local.path, memory_limit=self.memory_limit)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
        if not self._finished:
            self.local.end_unchanged(self.base)

    def finish(self, tables: list[str], views_sql: str | None) -> Path:
        """Drop tables no longer synced, recreate the views, checkpoint (rewriting the file
        compactly if it grew too much) and close: the returned file is complete on its own."""
        db = self.db
        assert db is not None, "finish() inside the with block"
        self._finished = True
        db.keep_only(tables)
        db.drop_views()
        db.create_views(views_sql)
        db.checkpoint()
        path = self.local.path
        size = path.stat().st_size
        self.compact_size = self.base.compact_size if self.base is not None else size
        if self.base is not None and size > COMPACT_GROWTH * self.base.compact_size:
            compact = path.with_name("compact.duckdb")
            db.export_snapshot(compact, tables, views_sql)
            db.close()
            compact.replace(path)
            self.compact_size = path.stat().st_size
            log.info("snapshot.compacted", size_bytes=size, compact_size_bytes=self.compact_size,
                     last_compact_size_bytes=self.base.compact_size)
        else:
            db.close()
        self.db = None
        if Path(f"{path}.wal").exists():  # readers open it read-only: a WAL would be ignored
            raise IntegrityError(f"{path} still has a WAL after its checkpoint")
        return path
