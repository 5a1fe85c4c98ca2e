"""Bounded in-memory cache of rendered results, keyed by snapshot version + query.

Snapshots are immutable, so an entry can never be stale: a new snapshot changes the
version in every key and old entries simply age out of the LRU.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

import orjson


@dataclass(frozen=True)
class CachedResult:
    body: bytes
    media_type: str
    headers: dict[str, str]


def result_key(version: str, sql: str, params: object, fmt: str, max_rows: int) -> str:
    """Also the ETag: identical for identical results on one snapshot."""
    material = orjson.dumps([version, sql, params, fmt, max_rows], default=str, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(material, digest_size=16).hexdigest()


class ResultCache:
    def __init__(self, max_bytes: int, max_entry_fraction: float = 0.25) -> None:
        self.max_bytes = max_bytes
        self.max_entry = int(max_bytes * max_entry_fraction)
        self._entries: OrderedDict[str, CachedResult] = OrderedDict()
        self.size = 0

    def get(self, key: str) -> CachedResult | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: CachedResult) -> None:
        if len(entry.body) > self.max_entry or key in self._entries:
            return
        self._entries[key] = entry
        self.size += len(entry.body)
        while self.size > self.max_bytes and self._entries:
            _, old = self._entries.popitem(last=False)
            self.size -= len(old.body)

    def clear(self) -> None:
        self._entries.clear()
        self.size = 0

    def __len__(self) -> int:
        return len(self._entries)
