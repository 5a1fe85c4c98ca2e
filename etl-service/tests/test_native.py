"""connectorx reads: URL translation (SQL Server's TLS settings included) and partitioned full
loads from a real PostgreSQL source."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import connectorx
import duckdb
import psycopg
import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.mssql import pyodbc

from analytics_etl.config import get_settings
from analytics_etl.native import estimated_rows_sql, mssql_native_url, native_source_url, rescale_decimals
from analytics_etl.pipeline import run_sync
from analytics_etl.source import SourceColumn, TableSpec
from analytics_shared.manifest import read_manifest
from analytics_shared.snapshot_files import fetch_snapshot


def _parts(native: str) -> tuple:
    u = urlsplit(native)
    return u.scheme, u.username, u.password, u.hostname, u.port, u.path, parse_qs(u.query)


@pytest.fixture
def mssql_env(monkeypatch):  # noqa: ANN001, ANN201
    monkeypatch.delenv("SOURCE_URL", raising=False)
    for name, value in {"MSSQL_HOST": "db.internal", "MSSQL_DATABASE": "ops", "MSSQL_USERNAME": "etl",
                        "MSSQL_PASSWORD": "p@ss:wo/rd;{x}"}.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_mssql_variables_give_encrypted_verified_urls(mssql_env):
    url = sa.engine.make_url(get_settings().source_url)
    assert url.query["Encrypt"] == "yes" and "TrustServerCertificate" not in url.query
    assert _parts(native_source_url(url)) == (
        "mssql", "etl", "p%40ss%3Awo%2Frd%3B%7Bx%7D", "db.internal", 1433, "/ops", {"encrypt": ["true"]})


def test_trusting_the_certificate_is_a_setting(mssql_env):
    mssql_env.setenv("MSSQL_TRUST_SERVER_CERTIFICATE", "true")
    url = sa.engine.make_url(get_settings().source_url)
    assert url.query["TrustServerCertificate"] == "yes"
    assert _parts(native_source_url(url))[-1] == {"encrypt": ["true"], "trust_server_certificate": ["true"]}


@pytest.mark.parametrize(("source_url", "expected"), [
    ("mssql+pyodbc://u:pw@h:1500/db?driver=ODBC+Driver+18+for+SQL+Server&Encrypt=no",
     ("mssql", "u", "pw", "h", 1500, "/db", {"encrypt": ["false"]})),
    ("mssql+pyodbc://u:pw@h/db?driver=x&TrustServerCertificate=yes",
     ("mssql", "u", "pw", "h", 1433, "/db", {"encrypt": ["true"], "trust_server_certificate": ["true"]})),
    ("mssql+pymssql://u:pw@h:1433/db", ("mssql", "u", "pw", "h", 1433, "/db", {"encrypt": ["true"]})),
    ("mssql+pyodbc:///?odbc_connect=" + "Driver%3D%7BODBC+Driver+18+for+SQL+Server%7D%3BServer%3Dtcp%3Ah2%2C1444%3B"
     "Database%3Dsales%3BUID%3Detl%3BPWD%3D%7Bse%3Bcret%7D%3BEncrypt%3Dyes%3BTrustServerCertificate%3Dyes",
     ("mssql", "etl", "se%3Bcret", "h2", 1444, "/sales", {"encrypt": ["true"], "trust_server_certificate": ["true"]})),
])
def test_source_urls_translate(source_url, expected):
    assert _parts(native_source_url(sa.engine.make_url(source_url))) == expected


def test_windows_authentication_stays_on_odbc():
    url = sa.engine.make_url("mssql+pyodbc://h/db?driver=x&Trusted_Connection=yes")
    assert mssql_native_url(url) is None


def test_row_estimates_bind_the_name():
    spec = TableSpec(target="orders", schema="sales", name="orders",
                     columns=(SourceColumn("id", sa.BigInteger(), "BIGINT"),), primary_key=("id",), detection="full")
    compiled = estimated_rows_sql(spec, "mssql").compile(dialect=pyodbc.dialect(paramstyle="qmark"))
    assert str(compiled) == ("SELECT SUM(row_count) FROM sys.dm_db_partition_stats "
                             "WHERE object_id = OBJECT_ID(?) AND index_id IN (0, 1)")
    assert compiled.params == {"object_name": "sales.orders"}
    assert estimated_rows_sql(TableSpec("v", None, "v", spec.columns, ("id",), "full", query="SELECT 1"),
                              "postgresql") is None


@pytest.mark.postgres
def test_large_postgres_tables_load_in_key_partitions(pg: psycopg.Connection, schema: str, pg_url: str,
                                                      make_settings, store, monkeypatch, tmp_path):
    pg.execute(f"CREATE TABLE {schema}.big (id bigint PRIMARY KEY, v text, n numeric(10,2), "
               f"updated_at timestamp NOT NULL DEFAULT now())")
    pg.execute(f"INSERT INTO {schema}.big (id, v, n) SELECT i * 3, 'v' || i, i / 7.0 FROM generate_series(1, 20000) i")
    pg.execute(f"CREATE TABLE {schema}.pair (a int, b int, PRIMARY KEY (a, b))")
    pg.execute(f"INSERT INTO {schema}.pair SELECT i, i FROM generate_series(1, 5000) i")
    pg.execute(f"ANALYZE {schema}.big")
    pg.execute(f"ANALYZE {schema}.pair")
    calls: list[tuple[str, str]] = []
    real = connectorx.read_sql
    monkeypatch.setattr(connectorx, "read_sql", lambda conn, query, **kw: calls.append(
        (kw["return_type"], query)) or real(conn, query, **kw))
    settings = make_settings(source_url=pg_url, tables_to_sync=f"{schema}.big,{schema}.pair",
                             read_partitions=3, partition_min_rows=10000, batch_size=2500)
    assert run_sync(settings)["status"] == "published"
    # big: a row-less probe, then 20000 / (2 x 2500) = 4 key ranges; pair (composite key): one stream.
    assert [kind for kind, _ in calls] == ["arrow"] * 5 + ["arrow_stream"]
    assert sum("id >= " in query for _, query in calls) == 3 and "pair" in calls[-1][1]
    manifest, _ = read_manifest(store)
    assert manifest.tables["big"].rows == 20000 and manifest.tables["pair"].rows == 5000
    local = tmp_path / "published.db"
    fetch_snapshot(store, manifest, local)
    with duckdb.connect(str(local), read_only=True) as con:
        got = con.execute("SELECT count(DISTINCT id), sum(id), sum(n), max(v) FROM big").fetchone()
    want = pg.execute(f"SELECT count(DISTINCT id), sum(id), sum(n), max(v) FROM {schema}.big").fetchone()
    assert got == tuple(want)  # every range read once: no row lost or doubled at the boundaries


def test_decimals_arrive_at_the_column_scale_unless_a_value_needs_more():
    wide = pa.decimal128(38, 10)
    table = pa.table({"n": pa.array([Decimal("12.34"), None, Decimal("-0.50")], wide),
                      "m": pa.array([Decimal("1.005"), Decimal("2"), None], wide),
                      "k": pa.array([1, 2, 3], pa.int64())})
    out = rescale_decimals(table, [("n", "DECIMAL(12,2)"), ("m", "DECIMAL(12,2)"), ("k", "BIGINT")])
    assert out.schema.field("n").type == pa.decimal128(12, 2)
    assert out.column("n").to_pylist() == [Decimal("12.34"), None, Decimal("-0.50")]
    # 1.005 does not fit two decimals exactly: that column stays as read; DuckDB's cast decides.
    assert out.column("m").equals(table.column("m")) and out.column("k").equals(table.column("k"))
