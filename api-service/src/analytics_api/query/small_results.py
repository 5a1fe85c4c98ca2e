"""Small results of plain types, as JSON rows straight from DuckDB's Python values.

A point lookup spends more on Arrow than on finding its row: exporting one row as Arrow
and turning it back into Python costs ~0.25 ms, fetching the tuple ~0.02 ms. So a query
shape that returned a few rows of plain types last time is fetched as tuples and
converted here, with exactly the text the Arrow path (serialize.py) produces for the
same values. Anything this module is not sure about returns None and the caller takes
the Arrow path: a value DuckDB's Python conversion clamps (infinite dates come back as
date.max), a TIME of 24:00:00 (a str), a type not listed below.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import date, datetime, time

from cachetools import LRUCache

from analytics_api.query.serialize import SMALL_RESULT, unique_names

_INT64 = range(-(2**63), 2**63)
_IDENTITY = frozenset({"BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT",
                       "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "VARCHAR", "BLOB",
                       '"NULL"'})  # SELECT NULL AS x: DuckDB's name for the type of a bare NULL
_TEMPORAL = {"DATE": date, "TIME": time, "TIMESTAMP": datetime}
_CLAMPED = frozenset({date.min, date.max, datetime.min, datetime.max})


def is_plain(type_name: str) -> bool:
    """Types whose Python value renders like its Arrow value (TIMESTAMPTZ would need pytz)."""
    return (type_name in _IDENTITY or type_name in _TEMPORAL or type_name == "HUGEINT"
            or type_name.startswith("DECIMAL("))


def _whole(column: list) -> list | None:
    """HUGEINT / DECIMAL(p,0): integers if the column fits 64 bits, else all exact text (as Arrow)."""
    if all(v is None or int(v) in _INT64 for v in column):
        return [None if v is None else int(v) for v in column]
    return [None if v is None else str(v) for v in column]


def _column(type_name: str, column: list) -> list | None:
    if not is_plain(type_name):
        return None  # this run's types differ from the last run's (the hint): Arrow renders it
    if type_name in _IDENTITY:
        return column
    if type_name == "HUGEINT" or (type_name.startswith("DECIMAL(") and type_name.endswith(",0)")):
        return _whole(column)
    if type_name.startswith("DECIMAL("):
        # float(Decimal) goes through the decimal text, as the Arrow path does: correctly rounded.
        return [None if v is None else float(v) for v in column]
    kind = _TEMPORAL[type_name]
    out = []
    for v in column:
        if v is None:
            out.append(None)
        elif type(v) is not kind or v in _CLAMPED:
            return None  # infinity, 24:00:00, ...: let Arrow render it
        else:
            out.append(v.isoformat())
    return out


def rows_to_dicts(names: Sequence[str], types: Sequence[str], rows: list[tuple]) -> list[dict] | None:
    """JSON-ready rows, or None when any value needs the Arrow path."""
    if not rows:
        return []
    converted = []
    for type_name, column in zip(types, zip(*rows), strict=True):
        values = _column(type_name, list(column))
        if values is None:
            return None
        converted.append(values)
    keys = unique_names(list(names))
    return [dict(zip(keys, row)) for row in zip(*converted)] if converted else [{} for _ in rows]


class ShapeHints:
    """Which query shapes returned a few plain-typed rows the last time they ran.

    Keyed by the guard's shape (literals replaced by markers), so the next lookup with
    another id is known to be small before it runs. Bounded LRU; thread-safe.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self._small: LRUCache[str, bool] = LRUCache(capacity)
        self._lock = threading.Lock()

    def expects_small(self, shape: str) -> bool:
        with self._lock:
            return self._small.get(shape, False)

    def forget(self, shape: str) -> None:
        with self._lock:
            self._small.pop(shape, None)

    def record(self, shape: str, *, rows: int, types: Sequence[str]) -> None:
        small = rows <= SMALL_RESULT and all(is_plain(t) for t in types)
        with self._lock:
            self._small[shape] = small
