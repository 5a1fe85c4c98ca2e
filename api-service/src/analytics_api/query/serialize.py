"""Result tables to response bodies: JSON (the seed's shape), CSV, Arrow IPC, Parquet.

JSON is built column-wise from Arrow (one C conversion per column, decimals as numbers)
and encoded by orjson; the binary formats are written by pyarrow directly.
"""

from __future__ import annotations

import base64
import io
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Literal

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from analytics_api.errors import BadRequest

Format = Literal["json", "csv", "arrow", "parquet"]
MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "arrow": "application/vnd.apache.arrow.stream",
    "parquet": "application/vnd.apache.parquet",
}
_ACCEPT = {"text/csv": "csv", "application/vnd.apache.arrow.stream": "arrow",
           "application/vnd.apache.parquet": "parquet", "application/json": "json"}


def choose_format(explicit: str | None, accept: str | None) -> Format:
    if explicit:
        if explicit not in MEDIA_TYPES:
            raise BadRequest(f"format must be one of {', '.join(MEDIA_TYPES)}")
        return explicit  # type: ignore[return-value]
    for part in (accept or "").split(","):
        media = part.split(";")[0].strip().lower()
        if media in _ACCEPT:
            return _ACCEPT[media]  # type: ignore[return-value]
    return "json"


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    return str(value)


def _json_column(column: pa.ChunkedArray) -> list:
    kind = column.type
    if pa.types.is_decimal(kind) and kind.scale == 0:
        # Integer sums arrive as DECIMAL(38,0) (DuckDB's HUGEINT): keep them integers.
        try:
            return pc.cast(column, pa.int64()).to_pylist()
        except pa.ArrowInvalid:
            return [None if v is None else str(v) for v in column.to_pylist()]  # beyond 64 bits: exact text
    if pa.types.is_decimal(kind):
        # Via text: Arrow's direct decimal->double cast is not correctly rounded (894.56 -> 894.5600000000001).
        return pc.cast(pc.cast(column, pa.string()), pa.float64()).to_pylist()
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind) or pa.types.is_time(kind):
        if len(column) <= SMALL_RESULT and getattr(kind, "unit", "us") == "us":
            try:  # a few values: per-value formatting beats starting three Arrow kernels
                return [None if v is None else _iso_value(v) for v in column.to_pylist()]
            except (ValueError, OverflowError, pa.ArrowException):
                pass  # out of Python's range: the Arrow path below formats anything
        # One vectorized cast instead of a Python datetime per value (~2 us each): the
        # difference between 2 and 20 ms for a 5,000-row page with two timestamp columns.
        return _iso_text(column).to_pylist()
    if kind == pa.month_day_nano_interval():
        return [None if v is None else _iso_duration(v) for v in column.to_pylist()]
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
    return column.to_pylist()


SMALL_RESULT = 64


def _iso_value(value: date | time | datetime) -> str:
    """The same text _iso_text produces, for one Python value (microsecond precision)."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"
    return value.isoformat()


def _iso_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """ISO 8601 text: 2026-01-02, 03:04:05.5, 2026-01-02T03:04:05.123456, ...Z for UTC instants."""
    kind = column.type
    utc = pa.types.is_timestamp(kind) and kind.tz is not None
    if utc:
        column = pc.cast(column, pa.timestamp(kind.unit))  # the UTC wall time of each instant
    text = pc.cast(column, pa.string())
    if pa.types.is_timestamp(kind):
        text = pc.replace_substring(text, " ", "T", max_replacements=1)
    if not pa.types.is_date(kind):
        text = pc.replace_substring_regex(text, r"\.0+$", "")  # whole seconds: no fraction
    if utc:
        text = pc.binary_join_element_wise(text, pa.scalar("Z"), "")
    return text


def _iso_duration(value: object) -> str:
    """ISO 8601 duration (what JavaScript date libraries parse) from Arrow's (months, days, ns)."""
    months, days, nanos = value.months, value.days, value.nanoseconds  # type: ignore[attr-defined]
    seconds = nanos / 1e9
    text = "P" + (f"{months}M" if months else "") + (f"{days}D" if days else "")
    if seconds or text == "P":
        text += "T" + (f"{seconds:.9f}".rstrip("0").rstrip(".") if seconds % 1 else f"{int(seconds)}") + "S"
    return text


def unique_names(names: list[str]) -> list[str]:
    """Duplicate column names (SELECT a.id, b.id): keep every value, suffix the repeats."""
    if len(set(names)) == len(names):
        return names
    seen: dict[str, int] = {}
    unique = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        unique.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return unique


def rows_as_dicts(table: pa.Table) -> list[dict]:
    names = table.column_names
    if not names:
        return [{} for _ in range(table.num_rows)]
    columns = [_json_column(c) for c in table.columns]
    keys = unique_names(names)
    return [dict(zip(keys, row)) for row in zip(*columns)]


def render_json(data: list[dict], *, columns: list[dict[str, str]], truncated: bool, elapsed_ms: float,
                version: str, more: dict | None = None) -> bytes:
    body = {
        "success": True,
        "data": data,
        "columns": columns,
        "row_count": len(data),
        "execution_time_ms": round(elapsed_ms, 3),
        "snapshot_version": version,
        "truncated": truncated,
        **(more or {}),  # a page's `next` cursor and `total_rows`
    }
    # orjson returns bytes that keep the capacity its buffer grew to (>= 4 KB, then about
    # 2x what it needed) and never shrinks it: a 134-byte body holds 4 KB, a 219 KB one 2 MB.
    # The result cache keeps bodies for a snapshot's life, so hand out a right-sized copy
    # (a memcpy of len(body), a small fraction of rendering it).
    return bytes(memoryview(orjson.dumps(body, default=_json_default, option=orjson.OPT_NON_STR_KEYS)))


def render_binary(table: pa.Table, fmt: Format) -> bytes:
    sink = io.BytesIO()
    if fmt == "csv":
        pacsv.write_csv(_csv_safe(table), sink)
    elif fmt == "arrow":
        with ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    elif fmt == "parquet":
        pq.write_table(table, sink, compression="zstd")
    else:  # pragma: no cover - choose_format guards this
        raise BadRequest(f"unknown format {fmt}")
    return sink.getvalue()


def _csv_safe(table: pa.Table) -> pa.Table:
    """CSV has no nested or binary types: render those columns as text."""
    columns = []
    for column in table.columns:
        kind = column.type
        if pa.types.is_nested(kind) or pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            column = pa.chunked_array([pa.array([None if v is None else str(v) for v in column.to_pylist()],
                                                pa.string())])
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)
