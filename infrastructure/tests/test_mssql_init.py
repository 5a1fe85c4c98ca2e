"""infrastructure/mssql/init.sql (no SQL Server here): the compose stack's SQL Server gets the same
five tables, with the same columns and DuckDB types, as the ETL's demo source; Change Tracking and
SNAPSHOT isolation are on; every step is idempotent; the ETL's login is read-only."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.mssql.base import ischema_names

from analytics_etl.demo_source import _COLUMNS, DEMO_TABLES, create_demo_source
from analytics_etl.types import duckdb_type

TYPE = re.compile(r"^(\w+)(?:\((\d+)(?:\s*,\s*(\d+))?\))?")


@pytest.fixture(scope="module")
def sql(repo: Path) -> str:
    return (repo / "infrastructure" / "mssql" / "init.sql").read_text(encoding="utf-8")


def _create_tables(sql: str) -> dict[str, list[tuple[str, str]]]:
    """{table: [(column, type text)]} from the CREATE TABLE dbo.x (...) statements."""
    tables = {}
    for match in re.finditer(r"CREATE TABLE dbo\.(\w+) \((.*?)\n    \);", sql, re.S):
        columns = []
        for line in match.group(2).strip().splitlines():
            name, rest = line.strip().rstrip(",").split(" ", 1)
            columns.append((name, rest))
        tables[match.group(1)] = columns
    return tables


def _duckdb_type_of(type_text: str) -> str:
    name, *args = TYPE.match(type_text).groups()
    cls = ischema_names[name.lower()]
    params = [int(a) for a in args if a is not None]
    if name.upper() == "DATETIME2":
        return duckdb_type(cls(precision=params[0]) if params else cls())
    return duckdb_type(cls(*params))


@pytest.fixture(scope="module")
def demo_types(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """The DuckDB types the ETL derives from the SQLite demo source's columns."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    create_demo_source(path, rows=50)
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        inspector = sa.inspect(engine)
        return {t: {c["name"]: duckdb_type(c["type"]) for c in inspector.get_columns(t)} for t in DEMO_TABLES}
    finally:
        engine.dispose()


def test_same_tables_and_columns_as_the_demo_source(sql: str) -> None:
    tables = _create_tables(sql)
    assert set(tables) == set(DEMO_TABLES)
    for table, columns in tables.items():
        assert tuple(c for c, _ in columns) == _COLUMNS[table], table


def test_same_duckdb_types_as_the_demo_source(sql: str, demo_types: dict[str, dict[str, str]]) -> None:
    for table, columns in _create_tables(sql).items():
        mssql_types = {name: _duckdb_type_of(text) for name, text in columns}
        assert mssql_types == demo_types[table], table


def test_every_table_has_an_identity_primary_key_and_an_updated_at_index(sql: str) -> None:
    for table, columns in _create_tables(sql).items():
        first_name, first_type = columns[0]
        assert first_name == "id"
        assert re.match(r"(INT|BIGINT) IDENTITY\(1,1\) NOT NULL CONSTRAINT pk_\w+ PRIMARY KEY", first_type), table
        assert f"CREATE INDEX ix_{table}_updated_at ON dbo.{table} (updated_at);" in sql


def test_database_level_settings(sql: str) -> None:
    assert re.search(r"IF DB_ID\(N'analytics_demo'\) IS NULL\s+CREATE DATABASE analytics_demo;", sql)
    assert re.search(r"snapshot_isolation_state = 0\)\s+ALTER DATABASE analytics_demo SET "
                     r"ALLOW_SNAPSHOT_ISOLATION ON;", sql)
    assert re.search(r"IF NOT EXISTS \(SELECT 1 FROM sys\.change_tracking_databases [^)]*\)\)\s+"
                     r"ALTER DATABASE analytics_demo SET CHANGE_TRACKING = ON", sql)


def test_change_tracking_enabled_on_every_table_idempotently(sql: str) -> None:
    for table in DEMO_TABLES:
        assert re.search(
            rf"IF NOT EXISTS \(SELECT 1 FROM sys\.change_tracking_tables WHERE object_id = "
            rf"OBJECT_ID\(N'dbo\.{table}'\)\)\s+ALTER TABLE dbo\.{table} ENABLE CHANGE_TRACKING", sql), table


def test_creates_and_seeds_only_what_is_missing(sql: str) -> None:
    for table in DEMO_TABLES:
        assert re.search(rf"IF OBJECT_ID\(N'dbo\.{table}', N'U'\) IS NULL\s+BEGIN\s+CREATE TABLE dbo\.{table} ",
                         sql), f"CREATE TABLE {table} is not guarded"
        seed = re.search(rf"IF NOT EXISTS \(SELECT 1 FROM dbo\.{table}\)\s+BEGIN(.*?)\nEND;", sql, re.S)
        assert seed, f"{table} is not seeded, or seeded unconditionally"
        body = seed.group(1)
        assert f"INSERT INTO dbo.{table} (" in body
        count = int(re.search(r"SELECT TOP \((\d+)\)", body).group(1))
        assert 100 <= count <= 10_000, f"{table}: {count} seed rows"
        assert "CROSS JOIN sys.all_objects" in body, "set-based: rows come from a numbers CTE"
    assert sql.count("CREATE TABLE") == len(DEMO_TABLES)
    assert "CREATE OR ALTER PROCEDURE dbo.demo_activity" in sql


def test_the_etl_login_is_read_only(sql: str) -> None:
    assert re.search(r"IF SUSER_ID\(N'analytics_etl'\) IS NULL\s+CREATE LOGIN analytics_etl", sql)
    assert re.search(r"IF DATABASE_PRINCIPAL_ID\(N'analytics_etl'\) IS NULL\s+CREATE USER analytics_etl", sql)
    assert "ALTER ROLE db_datareader ADD MEMBER analytics_etl;" in sql
    assert "GRANT VIEW CHANGE TRACKING ON SCHEMA::dbo TO analytics_etl;" in sql
    grants = re.findall(r"^\s*(GRANT .*|ALTER ROLE .*)$", sql, re.M)
    assert len(grants) == 2, grants
    assert not re.search(r"db_owner|db_datawriter|sysadmin|CONTROL", sql)


def test_scripting_variables_come_from_init_sh(sql: str, repo: Path) -> None:
    used = set(re.findall(r"\$\((\w+)\)", sql))
    assert used == {"MSSQL_ETL_PASSWORD"}, used
    init = (repo / "infrastructure" / "mssql" / "init.sh").read_text()
    assert "export MSSQL_ETL_PASSWORD" in init
    assert 'export SQLCMDPASSWORD="$MSSQL_SA_PASSWORD"' in init
    command = re.search(r'^"\$SQLCMD" .* -i "\$HERE/init\.sql"$', init, re.M)
    assert command, "init.sh must run init.sql with sqlcmd"
    for flag in ("-b", "-I", "-C", "-f 65001"):
        assert f" {flag} " in command.group(0), f"sqlcmd {flag} is needed"
    assert " -P " not in init, "the password must not appear on a command line"


def test_seed_text_is_utf8_with_national_literals(sql: str) -> None:
    assert "N'東京 tea'" in sql and "N'Ødegaard'" in sql
    assert not re.search(r"(?<![N\w])'[^'\n]*[^\x00-\x7f][^'\n]*'", sql), "non-ASCII text needs an N'' literal"


def test_the_shipped_whitelist_serves_these_tables(sql: str, repo: Path) -> None:
    whitelist = json.loads((repo / "shared" / "schemas" / "query_whitelist.json").read_text())
    missing = set(_create_tables(sql)) - set(whitelist["tables"])
    assert not missing, f"the compose stack's tables {sorted(missing)} could not be queried"
