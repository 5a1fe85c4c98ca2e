"""The object-store interface both backends implement.

Only what the publish protocol needs: immutable uploads, a conditional write
for the manifest (compare-and-swap on the ETag read), listing and deletion.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: datetime | None = None


@dataclass(frozen=True)
class StoredObject:
    data: bytes
    etag: str


class ObjectStore(abc.ABC):
    """Keys are '/'-separated paths relative to the store's root prefix."""

    url: str

    @abc.abstractmethod
    def get(self, key: str) -> StoredObject:
        """Return the object's bytes and ETag; raise ObjectNotFound when absent."""

    def get_bytes(self, key: str) -> bytes:
        """The object's bytes without its ETag (a store may skip computing it)."""
        return self.get(key).data

    @abc.abstractmethod
    def put(self, key: str, data: bytes, *, if_match: str | None = None,
            if_none_match: bool = False, content_type: str = "application/json") -> str:
        """Write bytes; with if_match/if_none_match, raise PreconditionFailed when the
        object changed (or exists) since it was read. Returns the new ETag."""

    @abc.abstractmethod
    def upload_file(self, key: str, path: Path) -> ObjectInfo:
        """Upload a (possibly large) local file; the key must not exist yet."""

    @abc.abstractmethod
    def download_file(self, key: str, path: Path) -> None:
        """Stream the object to a local path; raise ObjectNotFound when absent."""

    @abc.abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """Metadata of one object, or None when it does not exist."""

    @abc.abstractmethod
    def list(self, prefix: str) -> list[ObjectInfo]:
        """All objects whose key starts with prefix, sorted by key."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Delete an object; deleting a missing object is not an error."""

    def delete_many(self, keys: list[str]) -> None:
        """Delete objects (S3 sends up to 1,000 per request); missing ones are not an error."""
        for key in keys:
            self.delete(key)
