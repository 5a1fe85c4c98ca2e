"""Rebuild a snapshot file from its chunk index: copy what a local file already holds,
fetch the rest (bounded parallel GETs), and verify every chunk, in one sequential pass.

Used by the API to load a new version next to the one it serves, and by the ETL to
restore or repair its kept file. A fetched chunk is checked against its sha256 as it
arrives; a copied chunk against the xxh3 mark its local file recorded when that chunk's
digest was verified (a chunk whose local bytes changed since is fetched instead). The
file is then exactly the index's chunk list, whose digest the index and the manifest
carry: nothing is hashed twice, and nothing unverified is written.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from analytics_shared.chunks import ChunkIndex, ChunkTable, LocalChunks, chunk_key, mark
from analytics_shared.errors import IntegrityError, ObjectNotFound
from analytics_shared.logging import get_logger
from analytics_shared.storage.base import ObjectStore

log = get_logger(__name__)


@dataclass
class FetchStats:
    """What loading one version cost: `chunks` in the file, `reused` from a local file,
    `downloaded_objects`/`downloaded_bytes` fetched from the store."""

    chunks: int = 0
    reused: int = 0
    downloaded_objects: int = 0
    downloaded_bytes: int = 0
    seconds: float = 0.0

    @property
    def reused_share(self) -> float:
        return round(self.reused / self.chunks, 4) if self.chunks else 0.0

    def fetched(self, length: int) -> None:
        self.downloaded_objects += 1
        self.downloaded_bytes += length


def fetch_chunk(store: ObjectStore, digest: str, length: int) -> bytes:
    """One chunk from the store, verified: content addressing makes every byte checkable."""
    try:
        data = store.get_bytes(chunk_key(digest))
    except ObjectNotFound:
        raise IntegrityError(f"chunk {digest} is missing from the store") from None
    if len(data) != length or hashlib.sha256(data).hexdigest() != digest:
        raise IntegrityError(f"chunk {digest} in the store is corrupt ({len(data)} bytes, expected {length})")
    return data


def assemble(store: ObjectStore, index: ChunkIndex, dest: Path, base: LocalChunks | None = None, *,
             concurrency: int = 8, stats: FetchStats | None = None) -> ChunkTable:
    """Write the file `index` describes to `dest` and return its chunk table; raise
    IntegrityError if the store cannot provide it. `stats` is filled in as the work goes,
    so a caller sees what a failed attempt fetched."""
    started = time.monotonic()
    stats = stats if stats is not None else FetchStats()
    stats.chunks = len(index.chunks)
    table = ChunkTable(index.chunk_size, list(index.chunks))
    with ExitStack() as stack:
        source, reusable = _open_base(stack, base, index.chunk_size)
        out = stack.enter_context(dest.open("w+b", buffering=0))  # unbuffered: pread sees every write
        pool = stack.enter_context(ThreadPoolExecutor(concurrency, thread_name_prefix="chunk-fetch"))
        fetches = _Prefetcher(store, index, reusable, pool, window=2 * concurrency)
        stack.callback(fetches.close)  # on error too: queued downloads are cancelled, not waited for
        placed: dict[str, int] = {}  # chunks already written to dest, for a digest that repeats
        for position, digest in enumerate(index.chunks):
            length = index.chunk_length(position)
            data = None
            if digest in placed:
                data = os.pread(out.fileno(), length, placed[digest])
            elif digest in reusable:
                offset, expected = reusable[digest]
                data = os.pread(source.fileno(), length, offset)
                if mark(data) == expected:
                    stats.reused += 1
                else:  # changed on disk since its digest was verified
                    log.warning("chunks.reuse_failed", base=str(base.path), chunk=digest)
                    data = None
            if data is None:
                data = fetches.take(digest, length)
                stats.fetched(length)
            table.marks.append(mark(data))
            out.write(data)
            placed.setdefault(digest, position * index.chunk_size)
        size = out.tell()
    if size != index.size_bytes:
        raise IntegrityError(f"assembled {index.version}: {size} bytes, its index says {index.size_bytes}")
    stats.seconds = round(time.monotonic() - started, 3)
    return table


def _open_base(stack: ExitStack, base: LocalChunks | None,
               chunk_size: int) -> tuple[BinaryIO | None, dict[str, tuple[int, str]]]:
    """(open file, digest -> (offset, mark)) of the local file to copy from; (None, {}) without one."""
    if base is None:
        return None, {}
    try:
        source = stack.enter_context(base.path.open("rb", buffering=0))
        table = base.current_table(chunk_size)
    except OSError as exc:  # the base went away (another worker retired it): fetch everything
        log.warning("chunks.base_unavailable", base=str(base.path), error=str(exc))
        return None, {}
    reusable: dict[str, tuple[int, str]] = {}
    for position, (digest, marked) in enumerate(zip(table.digests, table.marks)):
        reusable.setdefault(digest, (position * chunk_size, marked))
    return source, reusable


class _Prefetcher:
    """Keeps up to `window` chunk downloads in flight, in the order the file needs them:
    memory stays at window x chunk size whatever the file's size."""

    def __init__(self, store: ObjectStore, index: ChunkIndex, reusable: dict[str, tuple[int, str]],
                 pool: ThreadPoolExecutor, window: int) -> None:
        plan: dict[str, int] = {}
        for position, digest in enumerate(index.chunks):
            if digest not in reusable and digest not in plan:
                plan[digest] = index.chunk_length(position)
        self._plan = deque(plan.items())
        self._inflight: dict[str, Future[bytes]] = {}
        self._store, self._pool, self._window = store, pool, window
        self._top_up()

    def _top_up(self) -> None:
        while self._plan and len(self._inflight) < self._window:
            digest, length = self._plan.popleft()
            self._inflight[digest] = self._pool.submit(fetch_chunk, self._store, digest, length)

    def take(self, digest: str, length: int) -> bytes:
        """The chunk, from the prefetched ones or, for a local copy that failed its mark, now."""
        future = self._inflight.pop(digest, None)
        if future is None:
            return fetch_chunk(self._store, digest, length)
        data = future.result()
        self._top_up()
        return data

    def close(self) -> None:
        self._plan.clear()
        for future in self._inflight.values():
            future.cancel()
