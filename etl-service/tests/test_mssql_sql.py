"""SQL Server statements, verified by compiling them with SQLAlchemy's mssql (pyodbc) dialect."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql
from sqlalchemy.dialects.mssql import pyodbc

from analytics_etl import change_tracking as ct
from analytics_etl.config import get_settings
from analytics_etl.cursor import select_since_rowversion, select_since_timestamp
from analytics_etl.source import SourceColumn, TableSpec, choose_detection, select_primary_keys
from analytics_etl.types import duckdb_type
from analytics_shared.errors import ConfigError

# qmark is what pyodbc uses; the dialect only learns it from the driver unless told.
DIALECT = pyodbc.dialect(paramstyle="qmark")


def make_spec(detection: str, cursor: str | None) -> TableSpec:
    cols = [("id", sa.BigInteger()), ("total", mssql.MONEY()), ("updated_at", mssql.DATETIME2(7)),
            ("rv", mssql.ROWVERSION())]
    return TableSpec(target="orders", schema="sales", name="orders",
                     columns=tuple(SourceColumn(n, t, duckdb_type(t)) for n, t in cols),
                     primary_key=("id",), detection=detection, cursor=cursor)


def compile_(stmt: sa.ClauseElement) -> sa.engine.Compiled:
    return stmt.compile(dialect=DIALECT)


def test_timestamp_cursor_is_a_bound_typed_parameter():
    since = datetime(2026, 1, 2, 3, 4, 5, 123456)
    compiled = compile_(select_since_timestamp(make_spec("timestamp", "updated_at"), since))
    sql = str(compiled)
    assert "FROM sales.orders" in sql
    assert "WHERE updated_at >= CAST(? AS DATETIME2(7))" in sql
    assert "2026" not in sql  # never formatted into the text
    assert compiled.params == {"since": since}
    # Bound as the column's own type on SQL Server (only SQLite's text timestamps differ).
    assert isinstance(compiled.binds["since"].type.load_dialect_impl(mssql.dialect()), mssql.DATETIME2)


def test_a_datetime_cursor_is_compared_as_datetime():
    # SQL Server converts a DATETIME column (1/300 s ticks) to DATETIME2 exactly to compare it
    # with a DATETIME2 parameter: a row stored at .007 (.0066667) would sort below a watermark
    # read back as .007000 and be skipped. Cast to DATETIME, the parameter rounds the same way.
    cols = (SourceColumn("id", sa.BigInteger(), "BIGINT"), SourceColumn("modified", mssql.DATETIME(), "TIMESTAMP"),
            SourceColumn("seen", mssql.DATETIMEOFFSET(), "TIMESTAMP WITH TIME ZONE"))
    for cursor, cast in (("modified", "DATETIME"), ("seen", "DATETIMEOFFSET")):
        spec = TableSpec(target="t", schema=None, name="t", columns=cols, primary_key=("id",),
                         detection="timestamp", cursor=cursor)
        since = datetime(2026, 1, 2, 3, 4, 5, 7000, tzinfo=timezone(timedelta(hours=2)))
        compiled = compile_(select_since_timestamp(spec, since))
        assert f"WHERE {cursor} >= CAST(? AS {cast})" in str(compiled)
        # pyodbc would drop the offset of an aware value: the UTC instant is bound instead.
        bound = compiled.binds["since"].type.process_bind_param(since, DIALECT)
        assert bound == since and bound.utcoffset() == timedelta(0)


def test_rowversion_window_stops_below_min_active_rowversion():
    compiled = compile_(select_since_rowversion(make_spec("rowversion", "rv"), (42).to_bytes(8, "big")))
    sql = str(compiled)
    assert "WHERE rv > ? AND rv < MIN_ACTIVE_ROWVERSION()" in sql
    assert compiled.params["last_rowversion"] == (42).to_bytes(8, "big")


def test_changetable_statements_bind_the_version():
    spec = make_spec("change_tracking", None)
    changed = compile_(ct.changed_rows_sql(spec, DIALECT, 17))
    assert ("FROM CHANGETABLE(CHANGES [sales].[orders], ?) AS ct "
            "INNER JOIN [sales].[orders] AS t ON t.[id] = ct.[id]") in str(changed)
    assert "ct.SYS_CHANGE_OPERATION <> 'D'" in str(changed)
    assert changed.params == {"last_version": 17}
    deleted = compile_(ct.deleted_keys_sql(spec, DIALECT, 17))
    assert str(deleted) == ("SELECT ct.[id] FROM CHANGETABLE(CHANGES [sales].[orders], ?) AS ct "
                            "WHERE ct.SYS_CHANGE_OPERATION = 'D'")
    min_valid = compile_(ct.min_valid_version_sql(spec))
    assert str(min_valid) == "SELECT CHANGE_TRACKING_MIN_VALID_VERSION(OBJECT_ID(?))"
    assert min_valid.params == {"table_name": "sales.orders"}


def test_reserved_identifiers_are_bracket_quoted():
    cols = (SourceColumn("order", sa.Integer(), "BIGINT"), SourceColumn("select", sa.String(), "VARCHAR"))
    spec = TableSpec(target="user", schema=None, name="user", columns=cols, primary_key=("order",),
                     detection="change_tracking")
    sql = str(compile_(ct.changed_rows_sql(spec, DIALECT, 1)))
    assert "t.[order], t.[select]" in sql and "[dbo].[user]" in sql
    assert str(compile_(select_primary_keys(spec))) == "SELECT [order] \nFROM [user]"


def test_snapshot_isolation_is_known_to_the_dialect():
    assert ct.ISOLATION in DIALECT._isolation_lookup


@pytest.mark.parametrize(("sa_type", "expected"), [
    (mssql.DATETIME2(7), "TIMESTAMP"), (mssql.DATETIMEOFFSET(), "TIMESTAMP WITH TIME ZONE"), (sa.Date(), "DATE"),
    (mssql.TIME(), "TIME"), (sa.Numeric(18, 4), "DECIMAL(18,4)"), (sa.Numeric(38, 10), "DECIMAL(38,10)"),
    (mssql.MONEY(), "DECIMAL(19,4)"), (mssql.SMALLMONEY(), "DECIMAL(10,4)"), (mssql.BIT(), "BOOLEAN"),
    (mssql.UNIQUEIDENTIFIER(), "UUID"), (mssql.NVARCHAR(None), "VARCHAR"), (mssql.VARBINARY(None), "BLOB"),
    (mssql.ROWVERSION(), "UBIGINT"), (mssql.TIMESTAMP(), "UBIGINT"), (mssql.TINYINT(), "UTINYINT"),
    (sa.SmallInteger(), "SMALLINT"), (sa.BigInteger(), "BIGINT"), (mssql.REAL(), "DOUBLE"),
    (sa.Float(), "DOUBLE"), (mssql.NTEXT(), "VARCHAR"), (mssql.XML(), "VARCHAR"),
])
def test_sql_server_types_map_to_duckdb(sa_type, expected):
    assert duckdb_type(sa_type) == expected


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"has_pk": True, "cursor": "updated_at", "rowversion": "rv", "change_tracked": True}, "change_tracking"),
    ({"has_pk": True, "cursor": "updated_at", "rowversion": "rv", "change_tracked": False}, "rowversion"),
    ({"has_pk": True, "cursor": "updated_at", "rowversion": None, "change_tracked": False}, "timestamp"),
    ({"has_pk": False, "cursor": "updated_at", "rowversion": "rv", "change_tracked": True}, "full"),
    ({"has_pk": True, "cursor": None, "rowversion": None, "change_tracked": False}, "full"),
])
def test_auto_detection_picks_the_best_supported(kwargs, expected):
    assert choose_detection("auto", "mssql", **kwargs) == expected


def test_explicit_detection_falls_back_to_full_when_unsupported():
    assert choose_detection("change_tracking", "postgresql", has_pk=True, cursor="updated_at",
                            rowversion=None, change_tracked=False) == "full"


def test_source_url_is_built_from_mssql_variables(monkeypatch):
    for name, value in {"MSSQL_HOST": "db.internal", "MSSQL_DATABASE": "ops", "MSSQL_USERNAME": "etl",
                        "MSSQL_PASSWORD": "p@ss:word/1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SOURCE_URL", raising=False)
    url = sa.engine.make_url(get_settings().source_url)
    assert (url.drivername, url.host, url.port, url.database) == ("mssql+pyodbc", "db.internal", 1433, "ops")
    assert url.password == "p@ss:word/1"
    assert url.query["driver"] == "ODBC Driver 18 for SQL Server"


def test_missing_source_configuration_is_one_clear_error(monkeypatch):
    for name in ("SOURCE_URL", "MSSQL_HOST"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="SOURCE_URL"):
        get_settings()
    monkeypatch.setenv("MSSQL_HOST", "db")
    with pytest.raises(ConfigError, match="MSSQL_DATABASE"):
        get_settings()


def test_datetimeoffset_wire_value_decodes_with_its_offset():
    import struct

    from analytics_etl.source import decode_datetimeoffset

    raw = struct.pack("<6hI2h", 2026, 11, 22, 10, 15, 30, 123456700, 5, 30)
    value = decode_datetimeoffset(raw)
    assert value.isoformat() == "2026-11-22T10:15:30.123456+05:30"
