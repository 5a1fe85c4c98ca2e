"""Publish protocol: immutable snapshot first, manifest last (compare-and-swap).

A crash anywhere before the manifest write leaves readers on the previous
complete snapshot; a lost compare-and-swap (another ETL published first)
fails this run without touching what the winner published.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

from analytics_shared.errors import AnalyticsError, IntegrityError, ManifestError, ObjectNotFound
from analytics_shared.logging import get_logger
from analytics_shared.manifest import (HISTORY_PREFIX, RUNS_PREFIX, Manifest, read_manifest,
                                       write_manifest)
from analytics_shared.storage import ObjectStore

log = get_logger(__name__)


def publish_manifest(store: ObjectStore, snapshot: Path, manifest: Manifest, expected_etag: str | None) -> str:
    """Upload the snapshot under its history key, then swap the manifest to it."""
    # link_ok: the built file is never written again (local_snapshot.adopt keeps its own copy),
    # so a local store may link it instead of copying 70+ MB.
    info = store.upload_file(manifest.database_key, snapshot, link_ok=True)
    if info.size != manifest.size_bytes:
        raise IntegrityError(f"uploaded {manifest.database_key} has {info.size} bytes, expected {manifest.size_bytes}")
    log.info("snapshot.uploaded", key=manifest.database_key, size_bytes=info.size)
    etag = write_manifest(store, manifest, expected_etag=expected_etag)
    log.info("manifest.published", version=manifest.version, key=manifest.database_key)
    return etag


def write_run_record(store: ObjectStore, run_id: str, record: dict) -> None:
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    store.put(f"{RUNS_PREFIX}{day}/{run_id}.json", json.dumps(record, default=str, indent=2).encode())


def apply_retention(store: ObjectStore, keep: int, current_key: str | None,
                    also_keep: str | None = None) -> list[str]:
    """Keep the newest `keep` snapshots and never the manifest's.

    Names carry the time to the second only, so two publishes in one second are
    ordered by the store's modification time first.
    """
    history = sorted(store.list(HISTORY_PREFIX), key=lambda o: (o.last_modified is None, o.last_modified, o.key))
    kept = {o.key for o in history[-keep:]} | {current_key, also_keep}
    doomed = [o.key for o in history if o.key not in kept]
    for key in doomed:
        store.delete(key)
    if doomed:
        log.info("retention.deleted", count=len(doomed), kept=keep)
    return doomed


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


def rollback_to(store: ObjectStore, version: str) -> Manifest:
    """Point the manifest back at an older snapshot that still exists in history/.

    The manifest keeps the snapshot's own created_at: readers' snapshot-age figures then
    say how old the data really is. The rollback gets its own run record, like a sync.
    """
    current, etag = read_manifest(store)
    target = find_version(store, version)
    if not any(o.key == target.database_key for o in store.list(target.database_key)):
        raise ObjectNotFound(f"snapshot {target.database_key} of {version} was deleted by retention")
    rolled = target.model_copy(update={"previous_version": current.version if current else None})
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
