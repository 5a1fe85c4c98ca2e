"""Store checks: list, write, conditional write and delete on a scratch key; the published
manifest's format, and its snapshot readable (the index and one chunk, or the .db file's size)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator

from analytics_etl.config import EtlSettings
from analytics_etl.doctor.check import Check, fail, first_line, ok, warn
from analytics_shared.chunks import chunk_key, read_index
from analytics_shared.errors import AnalyticsError, PreconditionFailed
from analytics_shared.manifest import MANIFEST_KEY, read_manifest
from analytics_shared.storage import ObjectStore

SCRATCH_PREFIX = "doctor/"
_PERMISSIONS = "grant the ETL's credentials s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on the prefix"


def store_checks(settings: EtlSettings, store: ObjectStore) -> Iterator[Check]:
    subject = f"store {store.url}"
    if (yield from _permissions(store, subject)):
        yield from _published(settings, store, subject)


def _permissions(store: ObjectStore, subject: str) -> Iterator[Check]:
    key = f"{SCRATCH_PREFIX}{uuid.uuid4().hex}.txt"
    step = "list"
    try:
        store.list(SCRATCH_PREFIX)
        step = "write"
        etag = store.put(key, b"analytics-etl doctor", if_none_match=True, content_type="text/plain")
        step = "conditional write"
        try:
            store.put(key, b"stale writer", if_match='"not-the-current-etag"', content_type="text/plain")
        except PreconditionFailed:
            honoured = True
        else:
            honoured = False
        if honoured:
            store.put(key, b"current writer", if_match=etag, content_type="text/plain")
        step = "delete"
        store.delete(key)
        gone = store.head(key) is None
    except AnalyticsError as exc:
        yield fail(subject, f"{step} failed on {key}: {exc.message}", _PERMISSIONS)
        return False
    if not honoured:
        yield fail(subject, "a write with a stale ETag succeeded: the store ignores conditional writes, so two "
                            "ETL instances could overwrite each other's manifest",
                   "use S3 or an S3-compatible store with conditional writes (If-Match/If-None-Match)")
        return False
    if not gone:
        yield fail(subject, f"{key} is still there after its delete", _PERMISSIONS)
        return False
    yield ok(subject, "list, write, conditional write and delete allowed")
    return True


def _published(settings: EtlSettings, store: ObjectStore, subject: str) -> Iterator[Check]:
    try:
        manifest, _ = read_manifest(store)
    except AnalyticsError as exc:
        yield fail(subject, f"{MANIFEST_KEY} unreadable: {exc.message}",
                   "roll back to a good version (analytics-etl rollback VERSION)")
        return
    if manifest is None:
        yield ok(subject, "nothing published yet: the first sync publishes")
        return
    described = f"manifest format {manifest.format_version}, version {manifest.version}"
    if manifest.format_version != settings.manifest_format:
        yield warn(subject, f"{described}; MANIFEST_FORMAT={settings.manifest_format}: the next sync publishes "
                            f"format {settings.manifest_format}", "set MANIFEST_FORMAT to what the API hosts read")
    else:
        yield ok(subject, described)
    try:
        if manifest.format_version == 1:
            info = store.head(manifest.database_key)
            if info is None or info.size != manifest.size_bytes:
                raise AnalyticsError(f"{manifest.database_key} is missing or not {manifest.size_bytes} bytes")
        else:
            index = read_index(store, manifest.index_key)
            index.matches(manifest)
            first = store.get_bytes(chunk_key(index.chunks[0]))
            if hashlib.sha256(first).hexdigest() != index.chunks[0]:
                raise AnalyticsError(f"chunk {index.chunks[0][:12]}… does not match its digest")
    except Exception as exc:  # noqa: BLE001 - any failure means readers cannot load it
        yield fail(subject, f"snapshot {manifest.version} not readable: {first_line(exc)}",
                   "the next sync repairs it; or roll back (analytics-etl rollback VERSION)")
        return
    yield ok(subject, f"snapshot {manifest.version} readable ({manifest.size_bytes} bytes)")
