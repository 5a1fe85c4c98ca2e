"""The result cache: its budget bounds the memory it really holds, and a swap empties it of
the retired version's entries. Found under a soak: a 64 MB cache of point lookups held
~850 MB per worker (issue 12)."""

from __future__ import annotations

import gc
import sys
import tracemalloc
from types import SimpleNamespace

from analytics_api.query.answer import _entry
from analytics_api.query.cache import CachedResult, ResultCache, entry_cost, result_key
from analytics_api.query.executor import SmallResult
from analytics_api.query.serialize import render_json

COLUMNS = [{"name": "id", "type": "BIGINT"}, {"name": "customer_id", "type": "BIGINT"},
           {"name": "status", "type": "VARCHAR"}, {"name": "total", "type": "DECIMAL(12,2)"},
           {"name": "ordered_at", "type": "TIMESTAMP"}]


def lookup_entry(version: str, i: int) -> tuple[str, CachedResult]:
    """A point lookup's key and entry, built by the code that builds them for requests."""
    row = {"id": i, "customer_id": i * 7 % 1000, "status": "shipped", "total": 12.5 + i,
           "ordered_at": "2026-11-01T10:00:00"}
    result = SmallResult(data=[row], columns=COLUMNS, truncated=False,
                         elapsed_ms=0.1 + i / 1e5)
    key = result_key(version, f"SELECT * FROM orders WHERE id = {i}", None, "json", 10_000)
    return key, _entry(SimpleNamespace(version=version), result, result.data, "json")


def held_by(build) -> int:  # noqa: ANN001
    """Bytes of Python-allocated memory that build()'s result keeps alive (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = build()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del kept
    return held


def test_the_budget_bounds_what_the_entries_really_hold() -> None:
    budget = 2 * 1024 * 1024

    def fill() -> ResultCache:
        cache = ResultCache(budget)
        cache.retain("v1")
        for i in range(20_000):  # ~8x what fits: the LRU has to evict
            cache.put("v1", *lookup_entry("v1", i))
        return cache

    cache = fill()
    assert 1_000 < len(cache) < 20_000 and cache.size <= budget
    held = held_by(fill)
    # Counting len(body) alone, the same cache held ~10x its budget (4.6 KB per 450-byte entry).
    assert held <= budget * 1.1, f"a {budget} B cache holds {held} B"
    assert held >= budget * 0.5, "the estimate is so generous that the budget is wasted"


def test_json_bodies_are_right_sized() -> None:
    """orjson keeps its buffer's capacity (>= 4 KB, then ~2x): a cached body must not."""
    data = [{"id": i, "name": f"n{i}"} for i in range(3)]
    bodies = held_by(lambda: [render_json(data, columns=COLUMNS, truncated=False, elapsed_ms=0.5, version="v")
                              for _ in range(200)])
    one = render_json(data, columns=COLUMNS, truncated=False, elapsed_ms=0.5, version="v")
    assert len(one) < 1000
    assert bodies / 200 <= sys.getsizeof(one) + 64, f"a {len(one)}-byte body holds {bodies / 200:.0f} B"


def test_entry_cost_counts_more_than_the_body() -> None:
    key, entry = lookup_entry("v1", 1)
    assert entry_cost(key, entry) > len(entry.body) + len(key) + sum(map(len, entry.headers.values()))


def test_a_swap_drops_the_retired_version_and_refuses_its_late_answers() -> None:
    cache = ResultCache(10 * 1024 * 1024)
    cache.put("v1", *lookup_entry("v1", 1))
    assert len(cache) == 0  # nothing is served yet: nothing to keep
    cache.retain("v1")
    keys = []
    for i in range(50):
        key, entry = lookup_entry("v1", i)
        cache.put("v1", key, entry)
        keys.append(key)
    assert len(cache) == 50 and cache.get(keys[0]) is not None
    cache.retain("v1")  # the same version again (a poll that found nothing new): kept
    assert len(cache) == 50
    cache.retain("v2")
    assert len(cache) == 0 and cache.size == 0 and cache.get(keys[0]) is None
    cache.put("v1", *lookup_entry("v1", 99))  # a request that finished on the retired snapshot
    assert len(cache) == 0
    key, entry = lookup_entry("v2", 1)
    cache.put("v2", key, entry)
    assert cache.get(key) is entry and cache.size == entry_cost(key, entry)


def test_lru_evicts_the_least_recently_used_and_refuses_oversized_entries() -> None:
    key, entry = lookup_entry("v", 0)
    cost = entry_cost(key, entry)
    cache = ResultCache(cost * 3 + cost // 2, max_entry_fraction=1.0)
    cache.retain("v")
    keys = [lookup_entry("v", i)[0] for i in range(4)]
    for i in range(3):
        cache.put("v", *lookup_entry("v", i))
    assert cache.get(keys[0]) is not None  # now the most recently used
    cache.put("v", *lookup_entry("v", 3))
    assert cache.get(keys[1]) is None and all(cache.get(k) is not None for k in (keys[0], keys[2], keys[3]))
    assert cache.size <= cache.max_bytes
    small = ResultCache(cost * 4)  # max entry: a quarter of the budget
    small.retain("v")
    big = CachedResult(body=b"x" * cost * 2, media_type="application/json", headers={})
    small.put("v", "big", big)
    assert len(small) == 0
