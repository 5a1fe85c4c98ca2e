"""The result columns of a SELECT used as a table's source, with their SQL types.

No table to reflect, so each database is asked in its own way: SQL Server describes the
first result set without running the query, PostgreSQL's driver reports each result
column's type from a zero-row execution, SQLite reflects a TEMP view of the query (the
declared types of the columns it selects; an expression has none and travels as text).
"""

from __future__ import annotations

import re
import uuid

import sqlalchemy as sa
from sqlalchemy.dialects import mssql, postgresql

from analytics_shared.errors import ConfigError

_TYPE = re.compile(r"^\s*([a-z_][a-z0-9_ ]*?)\s*(?:\(([^)]*)\))?\s*(\[\])?\s*$", re.IGNORECASE)
_PG_ALIASES = {"int8": "bigint", "int4": "integer", "int2": "smallint", "float8": "double precision",
               "float4": "real", "bool": "boolean", "varchar": "character varying", "bpchar": "character",
               "timestamptz": "timestamp with time zone", "timetz": "time with time zone"}


def type_from_name(dialect: str, name: str) -> sa.types.TypeEngine:
    """'decimal(12,2)', 'nvarchar(max)', 'timestamptz' -> the dialect's SQLAlchemy type."""
    match = _TYPE.match(name or "")
    if not match:
        return sa.types.NullType()
    base, args, array = match.group(1).lower(), match.group(2), match.group(3)
    if array:
        return postgresql.ARRAY(sa.String())
    if dialect == "postgresql":
        base = _PG_ALIASES.get(base, base)
        if base in ("timestamp with time zone", "time with time zone"):
            return postgresql.TIMESTAMP(timezone=True) if base.startswith("timestamp") else postgresql.TIME(True)
        names = postgresql.base.ischema_names
    elif dialect == "mssql":
        names = mssql.base.ischema_names
    else:
        return sa.types.NullType()
    cls = names.get(base)
    if cls is None:
        return sa.types.NullType()
    values = [None if a.strip().lower() == "max" else int(a) for a in args.split(",")] if args else []
    try:
        return cls(*values)
    except TypeError:
        return cls()


def describe_first_result_set_sql(query: str) -> sa.TextClause:
    return sa.text("SELECT name, system_type_name FROM sys.dm_exec_describe_first_result_set(:tsql, NULL, 0) "
                   "WHERE is_hidden = 0 ORDER BY column_ordinal").bindparams(
        sa.bindparam("tsql", query, type_=sa.Unicode))


def describe_query(conn: sa.Connection, query: str) -> list[tuple[str, sa.types.TypeEngine]]:
    """(name, type) of every column the query returns; ConfigError when the source rejects it."""
    dialect = conn.dialect.name
    try:
        if dialect == "mssql":
            rows = conn.execute(describe_first_result_set_sql(query)).all()
            columns = [(name, type_from_name(dialect, type_name)) for name, type_name in rows]
        elif dialect == "postgresql":
            cursor = conn.exec_driver_sql(f"SELECT * FROM ({query}) AS q LIMIT 0").cursor
            columns = [(d.name, type_from_name(dialect, d.type_display)) for d in cursor.description]
        else:
            columns = _describe_with_temp_view(conn, query)
    except sa.exc.DBAPIError as exc:
        if conn.in_transaction():
            conn.rollback()
        reason = str(exc.orig or exc).strip().splitlines()[0][:300]
        raise ConfigError(f"the source rejects the query: {reason}") from None
    if len({n for n, _ in columns}) != len(columns):
        raise ConfigError("the query returns two columns with the same name: alias them")
    return columns


def _describe_with_temp_view(conn: sa.Connection, query: str) -> list[tuple[str, sa.types.TypeEngine]]:
    view = f"_etl_describe_{uuid.uuid4().hex[:12]}"
    conn.exec_driver_sql(f'CREATE TEMP VIEW "{view}" AS {query}')
    try:
        return [(c["name"], c["type"]) for c in sa.inspect(conn).get_columns(view, schema="temp")]
    finally:
        conn.exec_driver_sql(f'DROP VIEW temp."{view}"')
