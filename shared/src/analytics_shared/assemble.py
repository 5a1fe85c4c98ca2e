"""Rebuild a snapshot file from its chunk index: reuse what a local file already holds,
fetch the rest (bounded parallel GETs) and verify every byte, in one sequential pass.

Used by the API to load a new version next to the one it serves, and by the ETL to
restore or repair its kept copy. Each fetched chunk is checked against its digest as it
arrives; the finished file is checked against the index's whole-file sha256, which also
covers the reused bytes (a local file may have been changed behind our back). If that
check fails after reusing local bytes, the file is built once more from the store alone.
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

from analytics_shared.chunks import ChunkIndex, LocalChunks, chunk_key
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
             concurrency: int = 8, stats: FetchStats | None = None) -> FetchStats:
    """Write the file `index` describes to `dest`; raise IntegrityError if it cannot be.
    `stats` is filled in as the work goes, so a caller sees what a failed attempt fetched."""
    started = time.monotonic()
    stats = stats if stats is not None else FetchStats()
    problem = _assemble(store, index, dest, base, concurrency, stats)
    if problem and stats.reused:
        log.warning("chunks.reuse_failed", version=index.version, base=str(base.path), error=problem)
        problem = _assemble(store, index, dest, None, concurrency, stats)
    if problem:
        raise IntegrityError(problem)
    stats.seconds = round(time.monotonic() - started, 3)
    return stats


def _assemble(store: ObjectStore, index: ChunkIndex, dest: Path, base: LocalChunks | None, concurrency: int,
              stats: FetchStats) -> str | None:
    """One attempt: None when `dest` holds exactly the indexed file, else why not."""
    stats.chunks, stats.reused = len(index.chunks), 0
    with ExitStack() as stack:
        source, reusable = _open_base(stack, base, index.chunk_size)
        out = stack.enter_context(dest.open("w+b", buffering=0))  # pread sees every write
        pool = stack.enter_context(ThreadPoolExecutor(concurrency, thread_name_prefix="chunk-fetch"))
        fetches = _Prefetcher(store, index, reusable, pool, window=2 * concurrency)
        stack.callback(fetches.close)  # on error too: queued downloads are cancelled, not waited for
        placed: dict[str, int] = {}  # chunks already written to dest, for a digest that repeats
        whole = hashlib.sha256()
        for position, digest in enumerate(index.chunks):
            length = index.chunk_length(position)
            if digest in placed:
                data = os.pread(out.fileno(), length, placed[digest])
            elif digest in reusable:
                data = os.pread(source.fileno(), length, reusable[digest])
                stats.reused += 1
            else:
                data = fetches.take(digest)
                stats.downloaded_objects += 1
                stats.downloaded_bytes += length
            whole.update(data)
            out.write(data)
            placed.setdefault(digest, position * index.chunk_size)
        size = out.tell()
    if size != index.size_bytes or whole.hexdigest() != index.sha256:
        return (f"assembled {index.version}: {size} bytes, sha256 {whole.hexdigest()[:12]}… does not match "
                f"its index ({index.size_bytes} bytes, {index.sha256[:12]}…)")
    return None


def _open_base(stack: ExitStack, base: LocalChunks | None, chunk_size: int):  # noqa: ANN202
    """(open file, digest -> offset) of the local file to reuse; (None, {}) without one."""
    if base is None:
        return None, {}
    try:
        source = stack.enter_context(base.path.open("rb"))
        return source, base.offsets(chunk_size)
    except OSError as exc:  # the base went away (another worker retired it): fetch everything
        log.warning("chunks.base_unavailable", base=str(base.path), error=str(exc))
        return None, {}


class _Prefetcher:
    """Keeps up to `window` chunk downloads in flight, in the order the file needs them:
    memory stays at window x chunk size whatever the file's size."""

    def __init__(self, store: ObjectStore, index: ChunkIndex, reusable: dict[str, int],
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

    def take(self, digest: str) -> bytes:
        data = self._inflight.pop(digest).result()
        self._top_up()
        return data

    def close(self) -> None:
        self._plan.clear()
        for future in self._inflight.values():
            future.cancel()
