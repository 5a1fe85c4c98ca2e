"""Publishing a snapshot file as content-addressed chunks (manifest format 2).

The build writes in place on the kept copy of the last published file, so the chunks it
did not touch are byte for byte those of the previous version. One pass over the file
finds them by their xxh3 mark (~30 GB/s), unchanged since the previous pass, and
sha256-hashes only the others; the file's digest is the hash list of the chunk digests
(chunks.py), so nothing else is hashed. Chunks the store does not hold yet are uploaded
while the pass goes on, a bounded number at a time: no HEAD per chunk, the previous
version's index says what the store has.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from analytics_shared.chunks import ChunkTable, chunk_key, list_digest, mark
from analytics_shared.storage import ObjectStore


@dataclass
class ScannedFile:
    size: int
    sha256: str  # the file's digest: of its chunk list, or (whole_file) of its bytes
    chunks: ChunkTable
    changed: int  # chunks whose bytes differ from the previous pass (all, without one)


@dataclass
class UploadStats:
    objects: int = 0
    bytes: int = 0


def scan_file(path: Path, chunk_size: int, previous: ChunkTable | None = None,
              uploader: ChunkUploader | None = None, *, whole_file: bool = False) -> ScannedFile:
    """Digest every chunk of `path`, hashing only those whose mark changed since `previous`;
    hand each chunk to `uploader` as soon as its digest is known. `whole_file`: the digest
    is the sha256 of the bytes (format 1) instead of the chunk list's."""
    same_layout = previous is not None and previous.chunk_size == chunk_size
    prev_marks = previous.marks if same_layout else []
    table = ChunkTable(chunk_size)
    whole = hashlib.sha256() if whole_file else None
    changed = size = 0
    with path.open("rb", buffering=0) as fh:
        for position, block in enumerate(iter(lambda: fh.read(chunk_size), b"")):
            marked = mark(block)
            size += len(block)
            if whole is not None:
                whole.update(block)
            if position < len(prev_marks) and prev_marks[position] == marked:
                digest = previous.digests[position]
            else:
                digest = hashlib.sha256(block).hexdigest()
                changed += 1
            if uploader is not None:  # it skips what the store holds: unchanged chunks, as a rule
                uploader.submit(digest, block)
            table.digests.append(digest)
            table.marks.append(marked)
    digest = whole.hexdigest() if whole is not None else list_digest(table.digests)
    return ScannedFile(size=size, sha256=digest, chunks=table, changed=changed)


class ChunkUploader:
    """Uploads chunks the store does not hold, at most `concurrency` at a time and at most
    2 x concurrency chunks in memory. `known`: digests the store already holds."""

    def __init__(self, store: ObjectStore, known: set[str], concurrency: int) -> None:
        self._store = store
        self._sent = set(known)
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="chunk-upload")
        self._slots = threading.BoundedSemaphore(2 * concurrency)
        self._futures: list[Future[int]] = []
        self.stats = UploadStats()

    def submit(self, digest: str, data: bytes) -> None:
        if digest in self._sent:  # the store has it: from an earlier version, or earlier in this file
            return
        self._sent.add(digest)
        self._slots.acquire()
        future = self._pool.submit(self._put, digest, data)
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)

    def _put(self, digest: str, data: bytes) -> int:
        self._store.put(chunk_key(digest), data, content_type="application/octet-stream")
        return len(data)

    def finish(self) -> UploadStats:
        """Wait for every upload; raise the first failure (the index must not be written)."""
        try:
            for future in self._futures:
                self.stats.bytes += future.result()
                self.stats.objects += 1
        finally:
            self._pool.shutdown(cancel_futures=True)
        return self.stats

    def abort(self) -> None:
        self._pool.shutdown(cancel_futures=True)
