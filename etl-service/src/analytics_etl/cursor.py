"""Cursor reads: `cursor >= since` compared the way the source stores the cursor.

A watermark is the largest cursor value the snapshot holds, so a row written later at that
same instant must still satisfy `cursor >= since`. That holds only when `since` is compared in
the column's own representation; otherwise the parameter can sort above a stored value of the
same instant, and those rows are skipped for good (reconciliation only removes rows):

- SQLite keeps a DATETIME value as the text it was written in and compares text:
  '10:00:00' < '10:00:00.000000'. A text cursor (TEXT, VARCHAR, untyped) is the same.
  `since` is bound as its shortest spelling, which sorts at or below every spelling of
  its instant and above every earlier one.
- Server databases compare a parameter of another type by converting the column: SQL Server
  turns a DATETIME (1/300 s ticks) into DATETIME2 exactly, so .007 becomes .0066667 and
  is below a .007000 parameter. `since` is CAST to the column's own type, where it rounds
  as a stored value does. A text cursor is bound as text, spelled like the watermark.

The comparison stays a plain `column >= <constant>`, so an index on the cursor answers it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles

from analytics_etl.source import TableSpec, select_rows


def shortest_timestamp_text(value: datetime, separator: str = " ") -> str:
    """A naive time's text without a fraction at .000000 and without the fraction's trailing zeros."""
    text = value.replace(tzinfo=None).isoformat(separator)
    return text.rstrip("0") if "." in text else text


def is_text(col_type: sa.types.TypeEngine) -> bool:
    return isinstance(col_type, (sa.String, sa.types.NullType))


class CursorBound(sa.types.TypeDecorator):
    """`since` as the source stores the cursor: shortest text for text comparisons, else the column's type."""

    impl = sa.types.NullType
    cache_ok = False  # holds the reflected type, which has no cache key of its own

    def __init__(self, source_type: sa.types.TypeEngine, separator: str = " ") -> None:
        super().__init__()
        self.source_type = source_type
        self.separator = separator

    def compares_as_text(self, dialect: sa.Dialect) -> bool:
        return is_text(self.source_type) or (dialect.name == "sqlite" and isinstance(self.source_type, sa.DateTime))

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine:
        return dialect.type_descriptor(sa.String() if self.compares_as_text(dialect) else self.source_type)

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if isinstance(value, datetime):
            if self.compares_as_text(dialect):
                # A text cursor's watermark is the source's own text, separator included; a
                # typed one's is DuckDB's ISO form, and SQLite's date functions write ' '.
                return shortest_timestamp_text(value, self.separator if is_text(self.source_type) else " ")
            if value.tzinfo is not None:
                # pyodbc drops the offset of an aware datetime: hand over the UTC instant.
                return value.astimezone(UTC)
        return value


class _Since(sa.sql.expression.ColumnElement):
    """The bound `since`, CAST to the column's type where the source compares typed values."""

    inherit_cache = False

    def __init__(self, bound: sa.BindParameter, col_type: sa.types.TypeEngine) -> None:
        self.bound, self.col_type, self.type = bound, col_type, bound.type


@compiles(_Since)
def _compile_since(element: _Since, compiler: sa.sql.compiler.SQLCompiler, **kw: Any) -> str:
    if compiler.dialect.name == "sqlite" or is_text(element.col_type):
        return compiler.process(element.bound, **kw)
    return compiler.process(sa.cast(element.bound, element.col_type), **kw)


def select_since_timestamp(spec: TableSpec, since: datetime | date | str, separator: str = " ") -> sa.Select:
    col = spec.column(spec.cursor)
    bound = sa.bindparam("since", since, type_=CursorBound(col.sa_type, separator))
    return select_rows(spec).where(sa.column(col.name, col.sa_type) >= _Since(bound, col.sa_type))


def select_since_rowversion(spec: TableSpec, last: bytes) -> sa.Select:
    rv = sa.column(spec.cursor, sa.LargeBinary)
    return select_rows(spec).where(
        rv > sa.bindparam("last_rowversion", last, type_=sa.LargeBinary),
        rv < sa.func.MIN_ACTIVE_ROWVERSION(),
    )


def since_value(watermark: str | int, lag_seconds: int) -> tuple[datetime, str]:
    """(watermark minus the lag, the separator the watermark was spelled with)."""
    text = str(watermark)
    separator = "T" if len(text) > 10 and text[10] == "T" else " "
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"the cursor's watermark {text!r} is not an ISO timestamp") from None
    return value - timedelta(seconds=lag_seconds), separator


def encode_watermark(value: Any) -> str | int | None:
    """A cursor value as the manifest stores it (JSON)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, int):
        return value
    return str(value)


def watermark_order(value: Any) -> Any:
    """Sort key of a stored watermark: timestamps by time, not by text."""
    return datetime.fromisoformat(value) if isinstance(value, str) else (value or 0)
