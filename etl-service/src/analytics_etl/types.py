"""Source column types -> DuckDB types, decided from SQLAlchemy's reflected types.

SQL Server specifics come first (their SQLAlchemy classes subclass the generic
ones, so order matters): datetimeoffset keeps its offset as TIMESTAMPTZ, money
keeps four decimals, rowversion becomes an orderable UBIGINT.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mssql, postgresql


# DuckDB's own spelling, as information_schema reports it: schema-drift checks compare
# these strings with the working table's columns, so an alias would look like drift.
TIMESTAMPTZ = "TIMESTAMP WITH TIME ZONE"


def is_rowversion(col_type: sa.types.TypeEngine) -> bool:
    return isinstance(col_type, (mssql.TIMESTAMP, mssql.ROWVERSION))


def duckdb_type(col_type: sa.types.TypeEngine) -> str:
    t = col_type
    if is_rowversion(t):
        return "UBIGINT"
    if isinstance(t, mssql.DATETIMEOFFSET):
        return TIMESTAMPTZ
    if isinstance(t, mssql.MONEY):
        return "DECIMAL(19,4)"
    if isinstance(t, mssql.SMALLMONEY):
        return "DECIMAL(10,4)"
    if isinstance(t, (mssql.UNIQUEIDENTIFIER, sa.Uuid)):
        return "UUID"
    if isinstance(t, mssql.BIT) or isinstance(t, sa.Boolean):
        return "BOOLEAN"
    if isinstance(t, mssql.TINYINT):
        return "UTINYINT"
    if isinstance(t, sa.SmallInteger):
        return "SMALLINT"
    if isinstance(t, sa.BigInteger):
        return "BIGINT"
    if isinstance(t, sa.Integer):
        # SQLite reports every INTEGER column this way and may hold 64-bit values.
        return "BIGINT"
    if isinstance(t, (sa.Float, sa.REAL)) or (isinstance(t, sa.Numeric) and t.asdecimal is False):
        return "DOUBLE"
    if isinstance(t, sa.Numeric):
        precision, scale = t.precision, t.scale
        if precision is None:
            return "DECIMAL(38,10)"
        precision = min(int(precision), 38)
        return f"DECIMAL({precision},{min(int(scale or 0), precision)})"
    if isinstance(t, sa.DateTime):
        return TIMESTAMPTZ if t.timezone else "TIMESTAMP"
    if isinstance(t, sa.Date):
        return "DATE"
    if isinstance(t, sa.Time):
        return "TIME"
    if isinstance(t, sa.Interval):
        return "INTERVAL"
    if isinstance(t, (sa.LargeBinary, sa.types._Binary)):
        return "BLOB"
    if isinstance(t, (sa.JSON, postgresql.JSONB)):
        return "JSON"
    if isinstance(t, postgresql.ARRAY):
        return "VARCHAR"
    # String, Text, Unicode, nvarchar(max), xml, enum and anything unknown: text keeps every value.
    return "VARCHAR"


def maps_exactly(col_type: sa.types.TypeEngine) -> bool:
    """False for a type with no DuckDB counterpart, synced as text (text types themselves map)."""
    if duckdb_type(col_type) != "VARCHAR":
        return True
    return isinstance(col_type, (sa.String, sa.Enum, postgresql.ARRAY, mssql.XML))


def read_as(col_type: sa.types.TypeEngine) -> sa.types.TypeEngine | None:
    """PostgreSQL: the type a column is selected as (CAST), so that every read path hands its
    values over alike, or None. Text for JSON and for a type synced as text that is not text
    at the source (an array, an interval, anything unknown); float8 for real (float4)."""
    if duckdb_type(col_type) in ("JSON", "VARCHAR") and not isinstance(col_type, (sa.String, sa.Enum)):
        return sa.Text()
    if isinstance(col_type, sa.REAL):
        return postgresql.DOUBLE_PRECISION()
    return None
