"""Bounded in-memory cache of rendered results, keyed by snapshot version + query.

Snapshots are immutable, so an entry can never be stale. Nor can an entry of a retired
version ever be hit again: every key carries the version of the snapshot its request runs
on. So a swap drops the old version's entries (`retain`, called on every swap) instead of
leaving them to age out of the LRU, and the budget is spent on answers that can still be
served.

The budget (RESULT_CACHE_MB) bounds what the entries really hold: the body's allocation,
the key, the headers and the objects around them, not only the body's length. Counting
len(body) alone let a point lookup's 769-byte JSON hold 4.1 KB (orjson's buffer, see
serialize.render_json) plus ~0.6 KB of key, headers and objects: the 64 MB cache held
~420 MB per worker, and under load every swap added a new version's worth of dead entries
until it did (docs/benchmarks.md, "Soak").
"""

from __future__ import annotations

import hashlib
import sys
import threading
from dataclasses import dataclass

import orjson
from cachetools import LRUCache

# Per entry, beyond the sizes sys.getsizeof reports: the LRUCache's slots (its dict, its size
# dict and its order's linked-list node), allocator rounding. With it a point lookup is
# charged 1,314 bytes for the 1,065 tracemalloc sees it hold (header names are shared
# constants but charged to every entry); tests/query/test_result_cache.py holds the
# budget to the memory really held.
ENTRY_OVERHEAD = 160


@dataclass(frozen=True, slots=True)
class CachedResult:
    body: bytes
    media_type: str
    headers: dict[str, str]


def result_key(version: str, sql: str, params: object, fmt: str, max_rows: int, page: object = None) -> str:
    """Also the ETag: identical for identical results on one snapshot."""
    material = orjson.dumps([version, sql, params, fmt, max_rows, page], default=str, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(material, digest_size=16).hexdigest()


def entry_cost(key: str, entry: CachedResult) -> int:
    """Bytes one entry keeps alive. The body must be right-sized (bytes report their length,
    not their allocation): render_json and render_binary return right-sized bytes."""
    headers = entry.headers
    return (sys.getsizeof(entry.body) + sys.getsizeof(key) + sys.getsizeof(entry) + sys.getsizeof(headers)
            + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in headers.items()) + ENTRY_OVERHEAD)


class ResultCache:
    """LRU over one snapshot version's entries, bounded by what they hold. Thread-safe:
    requests use it on the event loop, the snapshot poller calls `retain` on a swap."""

    def __init__(self, max_bytes: int, max_entry_fraction: float = 0.25) -> None:
        self.max_bytes = max_bytes
        self.max_entry = int(max_bytes * max_entry_fraction)
        self._entries = self._empty()
        self._version: str | None = None
        self._lock = threading.Lock()

    def _empty(self) -> LRUCache[str, tuple[CachedResult, int]]:
        return LRUCache(self.max_bytes, getsizeof=lambda pair: pair[1])  # evicts least recent past the budget

    @property
    def version(self) -> str | None:
        return self._version

    @property
    def size(self) -> int:
        return int(self._entries.currsize)

    def get(self, key: str) -> CachedResult | None:
        with self._lock:
            found = self._entries.get(key)
            return None if found is None else found[0]

    def put(self, version: str, key: str, entry: CachedResult) -> None:
        """Keep `entry` (computed on snapshot `version`) if it is the version being served."""
        cost = entry_cost(key, entry)
        if cost > self.max_entry:
            return
        with self._lock:
            # A request that finished on a retired snapshot: its answer can never be hit again.
            if version != self._version or key in self._entries:
                return
            self._entries[key] = (entry, cost)

    def retain(self, version: str) -> None:
        """The snapshot being served is now `version`: drop every other version's entries."""
        with self._lock:
            if version == self._version:
                return
            old, self._entries = self._entries, self._empty()
            self._version = version
        old.clear()  # freed after the lock is released

    def clear(self) -> None:
        with self._lock:
            self._entries = self._empty()

    def __len__(self) -> int:
        return len(self._entries)
