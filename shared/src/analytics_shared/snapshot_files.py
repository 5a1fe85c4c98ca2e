"""Snapshot files on local disk: checksums and verified downloads, used by both services.

A snapshot is trusted only after its size and sha256 match what the manifest promises;
both the ETL (restoring its working state) and the API (serving) go through here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from analytics_shared.errors import IntegrityError
from analytics_shared.manifest import Manifest
from analytics_shared.storage.base import ObjectStore


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_snapshot_file(path: Path, manifest: Manifest) -> None:
    """Raise IntegrityError unless the file is exactly the snapshot the manifest names."""
    size = path.stat().st_size
    if size != manifest.size_bytes:
        raise IntegrityError(f"{manifest.database_key}: {size} bytes, manifest says {manifest.size_bytes}")
    digest = sha256_file(path)
    if digest != manifest.sha256:
        raise IntegrityError(f"{manifest.database_key}: sha256 {digest} does not match the manifest")


def download_verified(store: ObjectStore, manifest: Manifest, path: Path) -> Path:
    """Download the manifest's snapshot to `path` and check its size and sha256."""
    store.download_file(manifest.database_key, path)
    verify_snapshot_file(path, manifest)
    return path
