"""The ETL's local state (ETL_STATE_DIR): the snapshot it last published, which the next
run builds on in place.

Each run opens `snapshot.duckdb` for writing and applies only its changes, so a run costs
the size of its change, not of the database: no copy of the file, and (format 2) only the
chunks DuckDB rewrote are hashed and uploaded. The file is a cache of what the store
holds. A sidecar (snapshot.json) says which published version the file is, the digests
and marks of its chunks, and the file's identity (inode, size, mtime).

The file is trusted as the published version only while the sidecar says so and is
clean. Before DuckDB opens it for writing, the sidecar is marked dirty; it is clean again
only once a new version was published from it, or the run changed nothing. A file that is
dirty (a run failed, lost the manifest race or was killed), touched behind our back, or
another version than the manifest's is brought back to the manifest's version from the
store, reusing its own chunks that still match: a repair costs one pass over the file plus
the chunks that differ. A new container downloads every chunk once.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from analytics_etl.chunk_publish import scan_file
from analytics_shared.chunks import ChunkTable, LocalChunks, file_identity
from analytics_shared.logging import get_logger
from analytics_shared.manifest import Manifest
from analytics_shared.snapshot_files import fetch_snapshot
from analytics_shared.storage import ObjectStore

log = get_logger(__name__)
SNAPSHOT_FILE = "snapshot.duckdb"
SIDECAR_FILE = "snapshot.json"
# Earlier designs' state: a working database, and an outbox of copies to build in.
LEGACY = ("working.duckdb", "working.duckdb.wal", "outbox")


@dataclass
class SnapshotState:
    version: str
    sha256: str
    size: int
    inode: int
    mtime_ns: int
    # Size of the file right after the last full rewrite; growth beyond it triggers the next one.
    compact_size: int
    chunks: ChunkTable = field(default_factory=lambda: ChunkTable(0))
    # The store holds these chunks: the version was published in format 2 at this chunk size.
    chunks_in_store: bool = False
    dirty: bool = False

    @property
    def identity(self) -> tuple[int, int, int]:
        return self.inode, self.size, self.mtime_ns

    @classmethod
    def from_json(cls, text: str) -> SnapshotState:
        data = json.loads(text)
        data["chunks"] = ChunkTable(**data["chunks"])
        return cls(**data)


class LocalSnapshot:
    def __init__(self, state_dir: Path, *, chunk_size: int, concurrency: int = 8) -> None:
        self.dir = state_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / SNAPSHOT_FILE
        self.sidecar = state_dir / SIDECAR_FILE
        self.chunk_size = chunk_size
        self.concurrency = concurrency
        for name in LEGACY:
            legacy = state_dir / name
            if legacy.exists():
                log.info("state.legacy_removed", path=str(legacy))
                shutil.rmtree(legacy) if legacy.is_dir() else legacy.unlink()

    def read_state(self) -> SnapshotState | None:
        """The sidecar, if there is a file it describes (dirty if the file changed since)."""
        try:
            state = SnapshotState.from_json(self.sidecar.read_text())
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("state.sidecar_corrupt", path=str(self.sidecar), error=str(exc))
            return None
        try:
            identity = file_identity(self.path)
        except FileNotFoundError:
            return None
        if identity != state.identity and not state.dirty:
            log.warning("state.modified", path=str(self.path))  # written behind our back: repair it
            state.dirty = True
        return state

    def _write_state(self, state: SnapshotState) -> None:
        tmp = self.sidecar.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state)))
        os.replace(tmp, self.sidecar)

    def prepare(self, store: ObjectStore, manifest: Manifest | None) -> SnapshotState | None:
        """Make the file exactly the manifest's version; None (and no file) before the first publish."""
        if manifest is None:
            self.discard()
            return None
        state = self.read_state()
        if state is not None and not state.dirty and state.version == manifest.version:
            return state
        return self.restore(store, manifest, state)

    def restore(self, store: ObjectStore, manifest: Manifest, state: SnapshotState | None) -> SnapshotState:
        log.info("state.restoring", local_version=state.version if state else None, version=manifest.version,
                 dirty=state.dirty if state else None)
        base = None
        if self.path.exists():  # a clean file's chunk table is known; any other is hashed before reuse
            clean = state is not None and not state.dirty
            base = LocalChunks(self.path, state.chunks, state.identity) if clean \
                else LocalChunks(self.path)
        tmp = self.dir / "snapshot.download"
        try:
            fetched = fetch_snapshot(store, manifest, tmp, base=base, concurrency=self.concurrency)
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        self._wal.unlink(missing_ok=True)  # a killed run's log must not be replayed into this file
        in_store = fetched.table is not None and fetched.table.chunk_size == self.chunk_size
        # Format 1, or another chunk size: our own table of the file, its chunks not (yet) in the store.
        chunks = fetched.table if in_store else scan_file(self.path, self.chunk_size).chunks
        restored = self.adopt(manifest, chunks, chunks_in_store=in_store, compact_size=manifest.size_bytes)
        log.info("state.restored", version=manifest.version, chunks=fetched.stats.chunks,
                 reused=fetched.stats.reused, downloaded_bytes=fetched.stats.downloaded_bytes)
        return restored

    def begin_writing(self, state: SnapshotState | None) -> None:
        """From here until adopt()/end_unchanged() the file is not the published version."""
        if state is not None:
            state.dirty = True
            self._write_state(state)

    def end_unchanged(self, state: SnapshotState | None) -> None:
        """A run that published nothing: clean again if DuckDB left the file as it was."""
        if state is None or not self.path.exists():
            return
        # A WAL left beside an untouched file would replay unpublished changes at the next open.
        if file_identity(self.path) == state.identity and not self._wal.exists():
            state.dirty = False
            self._write_state(state)
        else:
            log.info("state.left_dirty", path=str(self.path))  # the next run repairs it

    def adopt(self, manifest: Manifest, chunks: ChunkTable, *, chunks_in_store: bool,
              compact_size: int) -> SnapshotState:
        """The file is now the published `manifest` version: the base of the next run."""
        inode, size, mtime_ns = file_identity(self.path)
        state = SnapshotState(version=manifest.version, sha256=manifest.sha256, size=size, inode=inode,
                              mtime_ns=mtime_ns, compact_size=compact_size, chunks=chunks,
                              chunks_in_store=chunks_in_store)
        self._write_state(state)
        return state

    def invalidate(self) -> None:
        """Distrust the file (DuckDB could not open it): the next prepare() repairs it by hash."""
        self.sidecar.unlink(missing_ok=True)

    def discard(self) -> None:
        self.sidecar.unlink(missing_ok=True)
        self.path.unlink(missing_ok=True)
        self._wal.unlink(missing_ok=True)

    @property
    def _wal(self) -> Path:
        return Path(f"{self.path}.wal")
