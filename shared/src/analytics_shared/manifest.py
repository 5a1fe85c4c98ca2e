"""The manifest: the one mutable object, naming the current immutable snapshot.

Layout under STORAGE_URL:
  chunks/<sha256>                                               format 2: content-addressed file chunks
  history/analytics_<UTC YYYY-MM-DD_HH-MM-SS>_<id>.index.json   format 2: one chunk index per version
  history/analytics_<UTC YYYY-MM-DD_HH-MM-SS>_<id>.db           format 1: one whole file per version
  current/manifest.json                                         names one history key
  runs/<YYYY-MM-DD>/<run_id>.json                               one record per sync

Format 1 names the snapshot file itself (`database_key`) and carries the sha256 of its
bytes; format 2 names its chunk index (`index_key`, see chunks.py) and carries the file's
digest as a hash list of its chunks, and the chunk size. Every reader verifies the size
and digest, so a reader never serves bytes the ETL did not publish.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from analytics_shared.errors import ManifestError, ObjectNotFound
from analytics_shared.storage.base import ObjectStore
from analytics_shared.validation import describe_first_error

FORMAT_VERSION = 2  # what the ETL writes by default; readers accept every format in FORMATS
FORMATS = (1, 2)
MANIFEST_KEY = "current/manifest.json"
HISTORY_PREFIX = "history/"
RUNS_PREFIX = "runs/"
INDEX_SUFFIX = ".index.json"

ChangeDetection = Literal["timestamp", "rowversion", "change_tracking", "full"]


def _assume_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# Every time in the contract is UTC. One written without an offset (a hand edit, another writer)
# is read as UTC: readers subtract these from aware times, and a naive one raised TypeError there
# (API startup crashed in the swap metric, /snapshot answered 500).
UtcDatetime = Annotated[datetime, AfterValidator(_assume_utc)]


class Column(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    type: str


class TableEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    # A DuckDB table holds at most 2**63 - 1 rows; a larger count (only a hand edit writes one) made
    # the API's /snapshot and /schema answer 500, as JSON encoders take 64-bit integers only.
    rows: int = Field(ge=0, le=2**63 - 1)
    columns: list[Column]
    primary_key: list[str] = []
    change_detection: ChangeDetection
    watermark: str | int | None = None
    synced_at: UtcDatetime | None = None
    status: Literal["ok", "stale"] = "ok"
    last_error: str | None = None
    source: str | None = None
    reconciled_at: UtcDatetime | None = None
    runs_since_reconcile: int = Field(0, ge=0)


class SourceInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    dialect: str
    database: str | None = None


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")
    format_version: int
    # The API sends the version in a response header (X-Snapshot-Version) and in file names:
    # printable ASCII only, bounded (one with other characters made every query a 500).
    version: str = Field(pattern=r"^[!-~]{1,256}$")
    previous_version: str | None = None
    created_at: UtcDatetime
    # When the manifest was written (a rollback rewrites it): readers measure from it how
    # long a new version took to reach them. Absent in manifests of older ETLs.
    published_at: UtcDatetime | None = None
    database_key: str | None = None  # format 1
    index_key: str | None = None  # format 2
    chunk_size: int | None = Field(None, gt=0)  # format 2
    # Format 1: sha256 of the file's bytes. Format 2: sha256 of its chunk digests (chunks.py).
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(gt=0)
    duckdb_version: str
    source: SourceInfo
    tables: dict[str, TableEntry]

    @field_validator("format_version")
    @classmethod
    def _known_format(cls, value: int) -> int:
        if value not in FORMATS:
            raise ValueError(f"unknown manifest format_version {value} (this code reads "
                             f"{' and '.join(map(str, FORMATS))})")
        return value

    @model_validator(mode="after")
    def _names_one_object(self) -> Manifest:
        field = "database_key" if self.format_version == 1 else "index_key"
        other = "index_key" if field == "database_key" else "database_key"
        value = getattr(self, field)
        if value is None:
            raise ValueError(f"format {self.format_version} needs {field}")
        if getattr(self, other) is not None:
            raise ValueError(f"format {self.format_version} has no {other}")
        if (self.chunk_size is None) == (self.format_version == 2):
            raise ValueError("format 2 needs chunk_size" if self.format_version == 2 else "format 1 has no chunk_size")
        if not value.startswith(HISTORY_PREFIX) or ".." in value:
            raise ValueError(f"{field} must name an object under history/")
        return self

    @property
    def object_key(self) -> str:
        """The history object this version is: its file (format 1) or its chunk index (format 2)."""
        return self.database_key or self.index_key  # type: ignore[return-value]


def new_version(now: datetime | None = None, *, format_version: int = FORMAT_VERSION) -> tuple[str, str]:
    """Return (version, history key) for a snapshot created now: the key of its file
    (format 1) or of its chunk index (format 2)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    suffix = secrets.token_hex(3)
    version = f"{now:%Y-%m-%dT%H:%M:%SZ}-{suffix}"
    extension = ".db" if format_version == 1 else INDEX_SUFFIX
    key = f"{HISTORY_PREFIX}analytics_{now:%Y-%m-%d_%H-%M-%S}_{suffix}{extension}"
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
    unused = {"index_key", "chunk_size"} if manifest.format_version == 1 else {"database_key"}
    body = manifest.model_dump_json(indent=2, exclude=unused).encode()
    if expected_etag is None:
        return store.put(MANIFEST_KEY, body, if_none_match=True)
    return store.put(MANIFEST_KEY, body, if_match=expected_etag)
