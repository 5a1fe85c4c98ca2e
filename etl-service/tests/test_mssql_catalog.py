"""The SQL Server statements doctor and SELECT sources use, compiled with the mssql dialect
(the `mssql` suite runs them against a server), and the parts that need no server."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql
from sqlalchemy.dialects.mssql import pyodbc

from analytics_etl import mssql_catalog as catalog
from analytics_etl.describe import describe_first_result_set_sql, type_from_name
from analytics_etl.doctor.mssql import client_checks
from analytics_etl.types import duckdb_type

DIALECT = pyodbc.dialect(paramstyle="qmark")


def compile_(stmt: sa.ClauseElement) -> sa.engine.Compiled:
    return stmt.compile(dialect=DIALECT)


def test_catalog_queries_compile_and_bind_names():
    assert str(compile_(catalog.database_change_tracking_sql())) == (
        "SELECT retention_period, retention_period_units_desc, is_auto_cleanup_on "
        "FROM sys.change_tracking_databases WHERE database_id = DB_ID()")
    assert "FROM sys.change_tracking_tables" in str(compile_(catalog.tracked_tables_sql()))
    assert "snapshot_isolation_state_desc FROM sys.databases" in str(compile_(catalog.snapshot_isolation_sql()))
    perm = compile_(catalog.view_change_tracking_sql("sales.orders"))
    assert str(perm) == "SELECT HAS_PERMS_BY_NAME(?, 'OBJECT', 'VIEW CHANGE TRACKING')"
    assert perm.params == {"object_name": "sales.orders"}
    assert "@@SPID" in str(compile_(catalog.connection_encryption_sql()))
    described = compile_(describe_first_result_set_sql("SELECT 1 AS x; DROP TABLE t"))
    assert "sys.dm_exec_describe_first_result_set(?, NULL, 0)" in str(described)
    assert described.params == {"tsql": "SELECT 1 AS x; DROP TABLE t"}  # bound, never spliced


@pytest.mark.parametrize(("period", "unit", "seconds"), [(2, "DAYS", 172800), (90, "MINUTES", 5400), (3, "HOURS", 10800)])
def test_retention_in_seconds(period, unit, seconds):
    assert catalog.retention_seconds(period, unit) == seconds


@pytest.mark.parametrize(("name", "expected"), [
    ("datetime2(7)", "TIMESTAMP"), ("datetimeoffset(7)", "TIMESTAMP WITH TIME ZONE"), ("decimal(12,2)", "DECIMAL(12,2)"),
    ("money", "DECIMAL(19,4)"), ("bit", "BOOLEAN"), ("uniqueidentifier", "UUID"), ("nvarchar(max)", "VARCHAR"),
    ("varbinary(max)", "BLOB"), ("timestamp", "UBIGINT"), ("int", "BIGINT"), ("geography", "VARCHAR"),
])
def test_result_set_type_names_map_like_reflected_types(name, expected):
    assert duckdb_type(type_from_name("mssql", name)) == expected


def test_nvarchar_max_has_no_length():
    assert type_from_name("mssql", "nvarchar(max)").length is None
    assert isinstance(type_from_name("mssql", "datetime2(3)"), mssql.DATETIME2)


@pytest.mark.parametrize(("query", "expected"), [
    ("driver=ODBC+Driver+18+for+SQL+Server&TrustServerCertificate=yes", ("WARN", "not verified")),
    ("driver=ODBC+Driver+18+for+SQL+Server&Encrypt=no", ("WARN", "not encrypted")),
    ("driver=ODBC+Driver+18+for+SQL+Server", ("OK", "certificate verified")),
])
def test_tls_settings_are_judged_from_the_url(query, expected):
    url = sa.engine.make_url(f"mssql+pyodbc://u:p@db:1433/ops?{query}")
    checks = list(client_checks(url, drivers=lambda: ["ODBC Driver 18 for SQL Server"]))
    assert (checks[0].status, checks[0].message) == ("OK", "ODBC driver 'ODBC Driver 18 for SQL Server' installed")
    assert checks[-1].status == expected[0] and expected[1] in checks[-1].message


def test_a_missing_odbc_driver_fails_with_the_fix():
    url = sa.engine.make_url("mssql+pyodbc://u:p@db:1433/ops?driver=ODBC+Driver+18+for+SQL+Server")
    checks = list(client_checks(url, drivers=lambda: ["ODBC Driver 17 for SQL Server"]))
    assert checks[0].status == "FAIL" and "msodbcsql18" in checks[0].fix

    def no_unixodbc() -> list[str]:
        raise ImportError("libodbc.so.2: cannot open shared object file")

    checks = list(client_checks(url, drivers=no_unixodbc))
    assert checks[0].status == "FAIL" and "pyodbc cannot load" in checks[0].message
