"""The manifest: the one mutable object, naming the current immutable snapshot.

Layout under STORAGE_URL:
  history/analytics_<UTC YYYY-MM-DD_HH-MM-SS>_<id>.db   immutable snapshots
  current/manifest.json                                  points at one history key
  runs/<YYYY-MM-DD>/<run_id>.json                        one record per sync
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from analytics_shared.errors import ManifestError, ObjectNotFound
from analytics_shared.storage.base import ObjectStore
from analytics_shared.validation import describe_first_error

FORMAT_VERSION = 1
MANIFEST_KEY = "current/manifest.json"
HISTORY_PREFIX = "history/"
RUNS_PREFIX = "runs/"

ChangeDetection = Literal["timestamp", "rowversion", "change_tracking", "full"]


class Column(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    type: str


class TableEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    rows: int = Field(ge=0)
    columns: list[Column]
    primary_key: list[str] = []
    change_detection: ChangeDetection
    watermark: str | int | None = None
    synced_at: datetime | None = None
    status: Literal["ok", "stale"] = "ok"
    last_error: str | None = None
    source: str | None = None
    reconciled_at: datetime | None = None


class SourceInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    dialect: str
    database: str | None = None


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")
    format_version: int
    version: str
    previous_version: str | None = None
    created_at: datetime
    database_key: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(gt=0)
    duckdb_version: str
    source: SourceInfo
    tables: dict[str, TableEntry]

    @field_validator("format_version")
    @classmethod
    def _known_format(cls, value: int) -> int:
        if value != FORMAT_VERSION:
            raise ValueError(f"unknown manifest format_version {value} (this code reads {FORMAT_VERSION})")
        return value

    @field_validator("database_key")
    @classmethod
    def _history_key(cls, value: str) -> str:
        if not value.startswith(HISTORY_PREFIX) or ".." in value:
            raise ValueError("database_key must name an object under history/")
        return value


def new_version(now: datetime | None = None) -> tuple[str, str]:
    """Return (version, history key) for a snapshot created now."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    suffix = secrets.token_hex(3)
    version = f"{now:%Y-%m-%dT%H:%M:%SZ}-{suffix}"
    key = f"{HISTORY_PREFIX}analytics_{now:%Y-%m-%d_%H-%M-%S}_{suffix}.db"
    return version, key


def parse_manifest(data: bytes) -> Manifest:
    try:
        return Manifest.model_validate_json(data)
    except ValidationError as exc:
        raise ManifestError(f"malformed manifest ({exc.error_count()} problems; first at "
                            f"{describe_first_error(exc)})") from None


def read_manifest(store: ObjectStore) -> tuple[Manifest | None, str | None]:
    """Return (manifest, etag); (None, None) when nothing has been published yet."""
    try:
        obj = store.get(MANIFEST_KEY)
    except ObjectNotFound:
        return None, None
    return parse_manifest(obj.data), obj.etag


def write_manifest(store: ObjectStore, manifest: Manifest, *, expected_etag: str | None) -> str:
    """Compare-and-swap the manifest: succeeds only if it is unchanged since it was read."""
    body = manifest.model_dump_json(indent=2).encode()
    if expected_etag is None:
        return store.put(MANIFEST_KEY, body, if_none_match=True)
    return store.put(MANIFEST_KEY, body, if_match=expected_etag)
