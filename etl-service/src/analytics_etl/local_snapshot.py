"""The ETL's local state (ETL_STATE_DIR): the snapshot it last published, kept byte for byte.

Each run copies that file into the outbox, applies only this run's changes to the
copy and publishes the copy. The cost of a run then follows the size of the change
(plus one plain file copy), not the size of the database. The kept file is never
opened for writing, and it never shares its inode with a history object (a local
store may hard-link the published file, see LocalStore.upload_file(link_ok=True)): whatever
happens to the local file cannot reach what readers download.

A sidecar (snapshot.json) says which published version the file is and records the
file's identity (inode, size, mtime): a file that is missing, replaced or touched
behind our back is not trusted, it is restored from the store (a verified download).
Nothing here can drift from what was published: the file only becomes the base
after its manifest was written.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from analytics_shared.logging import get_logger
from analytics_shared.manifest import Manifest
from analytics_shared.snapshot_files import download_verified
from analytics_shared.storage import ObjectStore

log = get_logger(__name__)
SNAPSHOT_FILE = "snapshot.duckdb"
SIDECAR_FILE = "snapshot.json"
LEGACY_FILES = ("working.duckdb", "working.duckdb.wal")  # the pre-copy design's working database


@dataclass
class SnapshotState:
    version: str
    sha256: str
    size: int
    inode: int
    mtime_ns: int
    # Size of the file right after the last full rewrite; growth beyond it triggers the next one.
    compact_size: int


def _identity(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


class LocalSnapshot:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / SNAPSHOT_FILE
        self.sidecar = state_dir / SIDECAR_FILE
        self.outbox = state_dir / "outbox"
        for name in LEGACY_FILES:
            legacy = state_dir / name
            if legacy.exists():
                log.info("state.legacy_removed", path=str(legacy))
                legacy.unlink()

    def read_state(self) -> SnapshotState | None:
        """The sidecar, if it still describes the file on disk; None otherwise."""
        try:
            state = SnapshotState(**json.loads(self.sidecar.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            log.warning("state.sidecar_corrupt", path=str(self.sidecar), error=str(exc))
            return None
        try:
            identity = _identity(self.path)
        except FileNotFoundError:
            return None
        if identity != (state.inode, state.size, state.mtime_ns):
            # Something other than this ETL wrote the file: keep it for inspection, trust the store.
            log.warning("state.modified", path=str(self.path))
            self.set_aside()
            return None
        return state

    def set_aside(self) -> None:
        aside = self.path.with_suffix(f".corrupt-{int(time.time())}")
        self.path.rename(aside)
        self.sidecar.unlink(missing_ok=True)
        log.warning("state.set_aside", moved_to=str(aside))

    def _write_state(self, state: SnapshotState) -> None:
        tmp = self.sidecar.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state)))
        os.replace(tmp, self.sidecar)

    def begin_build(self, store: ObjectStore, manifest: Manifest | None) -> tuple[Path, SnapshotState | None]:
        """A fresh outbox file to build this run's snapshot in: a copy of the published
        snapshot (restored from the store first when ours is not it), or a new empty file
        before the first publish."""
        shutil.rmtree(self.outbox, ignore_errors=True)  # never reuse: an old build may be a history object
        self.outbox.mkdir(parents=True)
        build = self.outbox / f"build-{uuid.uuid4().hex[:12]}.duckdb"
        if manifest is None:
            return build, None
        state = self.read_state()
        if state is None or state.version != manifest.version:
            log.info("state.restoring", local_version=state.version if state else None, version=manifest.version)
            state = self.restore(store, manifest)
        shutil.copyfile(self.path, build)
        return build, state

    def restore(self, store: ObjectStore, manifest: Manifest) -> SnapshotState:
        tmp = self.dir / "snapshot.download"
        tmp.unlink(missing_ok=True)
        download_verified(store, manifest, tmp)
        os.replace(tmp, self.path)
        state = self._adopt_file(manifest, manifest.size_bytes)
        log.info("state.restored", version=manifest.version)
        return state

    def keep_copy(self, built: Path) -> Path:
        """Our own copy of a build about to be published (made while it is hashed): the
        build itself may become a history object (a hard link) that must never change."""
        kept = self.outbox / "kept.duckdb"
        kept.unlink(missing_ok=True)
        shutil.copyfile(built, kept)
        return kept

    def adopt(self, kept: Path, manifest: Manifest, compact_size: int) -> SnapshotState:
        """Make the copy of the file just published the base of the next run."""
        os.replace(kept, self.path)
        return self._adopt_file(manifest, compact_size)

    def _adopt_file(self, manifest: Manifest, compact_size: int) -> SnapshotState:
        inode, size, mtime_ns = _identity(self.path)
        state = SnapshotState(version=manifest.version, sha256=manifest.sha256, size=size, inode=inode,
                              mtime_ns=mtime_ns, compact_size=compact_size)
        self._write_state(state)
        return state

    def discard_builds(self) -> None:
        shutil.rmtree(self.outbox, ignore_errors=True)
