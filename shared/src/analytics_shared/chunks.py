"""Snapshot chunks (manifest format 2): the contract both services read.

A snapshot file is stored as fixed-size chunks, each under `chunks/<sha256 of its bytes>`:
immutable, written once, shared by every version that contains those bytes. A version is
an immutable index, `history/analytics_<UTC>_<id>.index.json`, listing its chunk digests
in file order, with the chunk size, the file's size and the file's digest.

The file's digest (`sha256` in the index and the manifest) is the sha256 of its chunk
digests in order, 32 bytes each (a hash list): it identifies every byte of the file, and
it is computed from the chunk digests alone, so a writer hashes only the chunks it
changed and a reader only the chunks it fetched. (Format 1's `sha256` is of the bytes.)

The chunk size is a multiple of DuckDB's 256 KiB block: DuckDB writes whole blocks, so a
block it did not touch leaves its chunk byte for byte as it was.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import xxhash
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, ValidationError, model_validator

from analytics_shared.errors import IntegrityError, ManifestError, ObjectNotFound
from analytics_shared.manifest import Manifest
from analytics_shared.storage.base import ObjectStore
from analytics_shared.validation import describe_first_error

CHUNKS_PREFIX = "chunks/"
DUCKDB_BLOCK = 256 * 1024
MAX_CHUNK_SIZE = 64 * 1024 * 1024

Digest = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


def chunk_key(digest: str) -> str:
    return f"{CHUNKS_PREFIX}{digest}"


def chunk_count(size: int, chunk_size: int) -> int:
    return -(-size // chunk_size)


def chunk_spans(size: int, chunk_size: int) -> Iterator[tuple[int, int]]:
    """(offset, length) of each chunk of a file of `size` bytes; the last one may be shorter."""
    for offset in range(0, size, chunk_size):
        yield offset, min(chunk_size, size - offset)


def list_digest(digests: Sequence[str]) -> str:
    """A file's digest in format 2: the sha256 of its chunks' sha256 digests, in order."""
    return hashlib.sha256(b"".join(bytes.fromhex(d) for d in digests)).hexdigest()


def mark(block: bytes) -> str:
    """A fast fingerprint (xxh3, ~30 GB/s) of a chunk whose sha256 is known: equal marks mean the
    bytes are still those the digest was computed from, without hashing them again."""
    return xxhash.xxh3_128_hexdigest(block)


def check_chunk_size(value: int) -> int:
    if value <= 0 or value % DUCKDB_BLOCK or value > MAX_CHUNK_SIZE:
        raise ValueError(f"chunk size must be a multiple of {DUCKDB_BLOCK} bytes (DuckDB's block) "
                         f"up to {MAX_CHUNK_SIZE}, got {value}")
    return value


class ChunkIndex(BaseModel):
    """One version's file as an ordered list of chunk digests (immutable once written)."""

    model_config = ConfigDict(extra="allow")
    version: str
    chunk_size: int
    size_bytes: int = Field(gt=0)
    sha256: Digest
    duckdb_version: str
    chunks: list[Digest]
    _stored_bytes: int = PrivateAttr(0)  # the index object's own size, as read

    @model_validator(mode="after")
    def _consistent(self) -> ChunkIndex:
        check_chunk_size(self.chunk_size)
        expected = chunk_count(self.size_bytes, self.chunk_size)
        if len(self.chunks) != expected:
            raise ValueError(f"{len(self.chunks)} chunks listed, a file of {self.size_bytes} bytes "
                             f"in chunks of {self.chunk_size} has {expected}")
        if list_digest(self.chunks) != self.sha256:
            raise ValueError("sha256 is not the digest of the chunk list")
        return self

    @property
    def stored_bytes(self) -> int:
        return self._stored_bytes

    def chunk_length(self, position: int) -> int:
        return min(self.chunk_size, self.size_bytes - position * self.chunk_size)

    def matches(self, manifest: Manifest) -> None:
        """The index is the file the manifest promises (same version, size and digest)."""
        ours = (self.version, self.size_bytes, self.sha256, self.chunk_size)
        if ours != (manifest.version, manifest.size_bytes, manifest.sha256, manifest.chunk_size):
            raise IntegrityError(f"{manifest.index_key} describes version {self.version} ({self.size_bytes} "
                                 f"bytes, sha256 {self.sha256[:12]}…), the manifest version {manifest.version} "
                                 f"({manifest.size_bytes} bytes, sha256 {manifest.sha256[:12]}…)")


def parse_index(key: str, data: bytes) -> ChunkIndex:
    try:
        index = ChunkIndex.model_validate_json(data)
    except ValidationError as exc:
        raise ManifestError(f"malformed chunk index {key} ({exc.error_count()} problems; first at "
                            f"{describe_first_error(exc)})") from None
    index._stored_bytes = len(data)
    return index


def read_index(store: ObjectStore, key: str) -> ChunkIndex:
    try:
        data = store.get_bytes(key)
    except ObjectNotFound:
        raise IntegrityError(f"chunk index {key} is missing from the store") from None
    return parse_index(key, data)


def write_index(store: ObjectStore, key: str, index: ChunkIndex) -> None:
    """Indexes are immutable: the write fails if the key exists (keys are new per version)."""
    store.put(key, index.model_dump_json().encode(), if_none_match=True)


@dataclass
class ChunkTable:
    """A file's chunks: their sha256 digests (their names in the store) and xxh3 marks."""

    chunk_size: int
    digests: list[str] = field(default_factory=list)
    marks: list[str] = field(default_factory=list)


def table_of(path: Path, chunk_size: int) -> ChunkTable:
    """Hash every chunk of a local file (one that no trusted table describes)."""
    table = ChunkTable(chunk_size)
    with path.open("rb", buffering=0) as fh:
        for block in iter(lambda: fh.read(chunk_size), b""):
            table.digests.append(hashlib.sha256(block).hexdigest())
            table.marks.append(mark(block))
    return table


def file_identity(path: Path) -> tuple[int, int, int]:
    """(inode, size, mtime): any write to the file or its replacement changes it."""
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


@dataclass(frozen=True)
class LocalChunks:
    """A verified local file a new version may copy chunks from, with its chunk table.

    The table is trusted while the file keeps the identity it had when the table was made;
    otherwise every chunk is hashed again. Each chunk copied is checked against its mark.
    """

    path: Path
    table: ChunkTable | None = None
    identity: tuple[int, int, int] | None = None

    def current_table(self, chunk_size: int) -> ChunkTable:
        table = self.table
        if table is None or table.chunk_size != chunk_size or file_identity(self.path) != self.identity:
            table = table_of(self.path, chunk_size)
        return table

