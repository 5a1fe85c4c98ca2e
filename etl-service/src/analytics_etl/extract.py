"""Extraction: rows streamed from the source as Arrow batches.

Rows come from the DBAPI cursor in batches of BATCH_SIZE (a server-side cursor
where the driver has one), so memory is bounded by the batch, not the table.
The SQL comes from source.py (full and key reads) and cursor.py (changed rows).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from analytics_etl.channel import pipe
from analytics_etl.types import TIMESTAMPTZ
from analytics_shared.logging import get_logger

log = get_logger(__name__)

_DIALECT_TEXT_TEMPORAL = {"sqlite"}  # stores dates as text; DuckDB casts them on load


def transport_type(duck: str, dialect: str) -> pa.DataType:
    """The Arrow type a column travels in between the driver and DuckDB."""
    if duck in ("BIGINT", "SMALLINT", "UTINYINT", "UBIGINT"):
        return pa.int64() if duck != "UBIGINT" else pa.uint64()
    if duck == "DOUBLE":
        return pa.float64()
    if duck.startswith("DECIMAL"):
        if dialect == "sqlite":
            return pa.float64()
        precision, scale = (int(x) for x in duck[8:-1].split(","))
        return pa.decimal128(precision, scale)
    if duck == "BOOLEAN":
        return pa.int64() if dialect == "sqlite" else pa.bool_()
    if duck == "BLOB":
        return pa.binary()
    if dialect not in _DIALECT_TEXT_TEMPORAL:
        if duck == "TIMESTAMP":
            return pa.timestamp("us")
        if duck == TIMESTAMPTZ:
            return pa.timestamp("us", tz="UTC")
        if duck == "DATE":
            return pa.date32()
        if duck == "TIME":
            return pa.time64("us")
    return pa.string()


def _to_text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return str(value)


# SQLite keeps a DATETIME as the text written, which may end in a UTC offset (SQLite's date
# functions read '2026-02-03 04:05:06+02:00' as 02:05:06 UTC). DuckDB's cast to TIMESTAMP drops
# the offset (04:05:06): such texts are turned into the UTC time they name before the cast.
_OFFSET = r"[ T]\d\d:\d\d(:\d\d(\.\d+)?)?([zZ]|[+-]\d\d:\d\d)$"


def _utc_text(value: str | None) -> str | None:
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return value  # DuckDB's cast reports what it cannot read
    if moment.tzinfo is None:
        return value
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ")


def _offsets_to_utc(batch: pa.RecordBatch, columns: list[int]) -> pa.RecordBatch:
    for i in columns:
        values = batch.column(i)
        if not pa.types.is_string(values.type):
            continue
        marked = pc.match_substring_regex(values, _OFFSET)
        if not pc.any(marked).as_py():  # one vectorised scan; the usual batch ends here
            continue
        texts = [_utc_text(v) if m else v for v, m in zip(values.to_pylist(), marked.to_pylist())]
        batch = batch.set_column(i, batch.schema.field(i), pa.array(texts, type=pa.string()))
    return batch


def _rowversion_int(value: Any) -> Any:
    return int.from_bytes(value, "big") if isinstance(value, (bytes, bytearray)) else value


@dataclass
class BatchBuilder:
    """Turns lists of DBAPI tuples into Arrow record batches of stable transport types."""

    names: list[str]
    types: list[pa.DataType]
    converters: dict[int, Any]
    utc_columns: list[int] = field(default_factory=list)  # SQLite TIMESTAMP columns (_offsets_to_utc)

    @classmethod
    def for_columns(cls, columns: list[tuple[str, str]], dialect: str, cursor: str | None = None) -> "BatchBuilder":
        names = [n for n, _ in columns]
        types = [transport_type(d, dialect) for _, d in columns]
        converters = {i: _rowversion_int for i, (_, d) in enumerate(columns) if d == "UBIGINT"}
        # PostgreSQL json/jsonb columns are selected as text (source.select_rows), so psycopg
        # hands over the server's JSON text, as connectorx does: no re-serialising here.
        # Not the cursor: SQLite compares it as the text written, so the watermark taken from the
        # snapshot must stay in that text's terms (UTC from '08:00:00-02:00' would be 10:00, and a
        # later row written '09:00:00-02:00' would sort below it and never be read).
        utc = ([i for i, (n, d) in enumerate(columns) if d == "TIMESTAMP" and n != cursor]
               if dialect in _DIALECT_TEXT_TEMPORAL else [])
        return cls(names, types, converters, utc)

    def build(self, rows: list[tuple]) -> pa.RecordBatch:
        batch = self._build(rows)
        return _offsets_to_utc(batch, self.utc_columns) if self.utc_columns else batch

    def _build(self, rows: list[tuple]) -> pa.RecordBatch:
        if self.converters:
            rows = [tuple(self.converters[i](v) if i in self.converters else v
                          for i, v in enumerate(r)) for r in rows]
        struct = pa.struct(list(zip(self.names, self.types)))
        try:
            # One C-level pass over the tuples: far cheaper than transposing in Python.
            return pa.RecordBatch.from_struct_array(pa.array(rows, type=struct))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError, ValueError):
            return self._build_slow(rows)

    def _build_slow(self, rows: list[tuple]) -> pa.RecordBatch:
        # A driver handed us values the transport type cannot take (UUID objects, JSON dicts,
        # mixed numbers in SQLite): that column travels as text and DuckDB casts it on load.
        arrays = []
        for i, values in enumerate(zip(*rows)) if rows else enumerate([()] * len(self.names)):
            try:
                arrays.append(pa.array(values, type=self.types[i]))
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError, ValueError):
                self.types[i] = pa.string()
                arrays.append(pa.array([_to_text(v) for v in values], type=pa.string()))
        return pa.RecordBatch.from_arrays(arrays, names=self.names)


def prefetch(batches: Iterator[pa.RecordBatch], depth: int = 2) -> Iterator[pa.RecordBatch]:
    """Build the next batches in a thread while the caller loads the current one into DuckDB.

    DuckDB releases the GIL while it inserts, so fetching and loading overlap on two
    cores; memory stays bounded at `depth` + 1 batches.
    """
    return pipe([batches], depth, "extract-prefetch")


def stream_batches(conn: sa.Connection, stmt: sa.Executable, builder: BatchBuilder,
                   batch_size: int) -> Iterator[pa.RecordBatch | pa.Table]:
    return prefetch(_fetch_batches(conn, stmt, builder, batch_size))


# Rows fetched and converted per call. Both calls keep the GIL for their whole duration
# (psycopg: ~1.7 us a row), so slices this size let a thread that waits for the GIL (the
# run merging the previous table in DuckDB) in every few milliseconds, not every 30 ms.
SLICE_ROWS = 2048


def _fetch_batches(conn: sa.Connection, stmt: sa.Executable, builder: BatchBuilder,
                   batch_size: int) -> Iterator[pa.RecordBatch | pa.Table]:
    """Batches of up to batch_size rows, each a table of slices (one DuckDB statement)."""
    result = conn.execution_options(stream_results=True, max_row_buffer=batch_size).execute(stmt)
    cursor = result.cursor  # the DBAPI cursor: plain tuples, no per-row wrapping
    # With stream_results SQLAlchemy pre-reads a few rows into its own buffer; take them
    # first or they would be silently skipped. They start the first slice.
    buffer = getattr(result.cursor_strategy, "_rowbuffer", None)
    slice_rows = min(SLICE_ROWS, batch_size)
    try:
        rows = list(buffer) if buffer else []
        if buffer:
            buffer.clear()
        slices: list[pa.RecordBatch] = []
        pending = 0
        while True:
            if len(rows) < slice_rows:
                rows += cursor.fetchmany(min(slice_rows, batch_size - pending) - len(rows))
            if not rows:
                break
            built = builder.build(rows)
            rows = []
            if slices and built.schema != slices[0].schema:  # a column fell back to text
                yield pa.Table.from_batches(slices)
                slices, pending = [], 0
            slices.append(built)
            pending += built.num_rows
            if pending >= batch_size:
                yield pa.Table.from_batches(slices)
                slices, pending = [], 0
        if slices:
            yield pa.Table.from_batches(slices)
    finally:
        result.close()
