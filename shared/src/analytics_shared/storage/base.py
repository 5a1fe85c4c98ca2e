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

    @abc.abstractmethod
    def put(self, key: str, data: bytes, *, if_match: str | None = None,
            if_none_match: bool = False, content_type: str = "application/json") -> str:
        """Write bytes; with if_match/if_none_match, raise PreconditionFailed when the
        object changed (or exists) since it was read. Returns the new ETag."""

    @abc.abstractmethod
    def upload_file(self, key: str, path: Path, *, link_ok: bool = False) -> ObjectInfo:
        """Upload a (possibly large) local file; the key must not exist yet.

        link_ok: the caller never writes to the file again, so a store on the same
        filesystem may make the object a hard link to it instead of a copy.
        """

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
