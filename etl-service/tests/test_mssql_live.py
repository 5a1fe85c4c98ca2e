"""SQL Server for real: `./scripts/test-mssql.sh` (or `pytest -m mssql` with MSSQL_TEST_URL, a
login that may create databases). Not part of the default run; asked for without a server, it
fails. Every statement it sends is built here and compiled with the mssql dialect by
test_every_statement_compiles, which the default run includes.

Each session creates its own database (Change Tracking and ALLOW_SNAPSHOT_ISOLATION on) and
drops it at the end.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql
from sqlalchemy.dialects.mssql import pyodbc

from analytics_etl.doctor import doctor
from analytics_etl.pipeline import run_sync
from analytics_shared.manifest import read_manifest

META = sa.MetaData()
ORDERS = sa.Table("orders", META, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False), sa.Column("status", mssql.NVARCHAR(20)),
                  sa.Column("total", mssql.DECIMAL(12, 2)))
LEDGER = sa.Table("ledger", META, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False), sa.Column("memo", mssql.NVARCHAR(100)),
                  sa.Column("rv", mssql.ROWVERSION, nullable=False))
KINDS = sa.Table("kinds", META, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                 sa.Column("at", mssql.DATETIME2(7)), sa.Column("seen", mssql.DATETIMEOFFSET(7)),
                 sa.Column("amount", mssql.DECIMAL(18, 4)), sa.Column("price", mssql.MONEY),
                 sa.Column("flag", mssql.BIT), sa.Column("ref", mssql.UNIQUEIDENTIFIER),
                 sa.Column("body", mssql.NVARCHAR(None)), sa.Column("blob", mssql.VARBINARY(None)))
KIND_ROWS = [
    {"id": 1, "at": datetime(2026, 3, 1, 10, 0, 0, 123456), "seen": datetime(2026, 3, 1, 10, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))),
     "amount": Decimal("12345678901234.5678"), "price": Decimal("-922337203685477.5808"), "flag": True,
     "ref": uuid.UUID("6f1c3a52-9d0e-4f7b-8a11-2b3c4d5e6f70"), "body": "Zürich 東京 " + "x" * 9000, "blob": bytes(range(256)) * 40},
    {"id": 2, "at": None, "seen": None, "amount": None, "price": None, "flag": None, "ref": None, "body": None, "blob": None},
]


def create_database_sql(name: str) -> list[sa.TextClause]:
    q = mssql.dialect().identifier_preparer.quote_identifier(name)
    return [sa.text(f"CREATE DATABASE {q}"), sa.text(f"ALTER DATABASE {q} SET ALLOW_SNAPSHOT_ISOLATION ON"),
            sa.text(f"ALTER DATABASE {q} SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 2 DAYS, AUTO_CLEANUP = ON)")]


def drop_database_sql(name: str) -> list[sa.TextClause]:
    q = mssql.dialect().identifier_preparer.quote_identifier(name)
    return [sa.text(f"ALTER DATABASE {q} SET SINGLE_USER WITH ROLLBACK IMMEDIATE"), sa.text(f"DROP DATABASE {q}")]


def snapshot_isolation_sql(name: str, on: bool) -> sa.TextClause:
    q = mssql.dialect().identifier_preparer.quote_identifier(name)
    return sa.text(f"ALTER DATABASE {q} SET ALLOW_SNAPSHOT_ISOLATION {'ON' if on else 'OFF'}")


def change_tracking_sql(table: sa.Table, on: bool) -> sa.TextClause:
    return sa.text(f"ALTER TABLE dbo.[{table.name}] {'ENABLE' if on else 'DISABLE'} CHANGE_TRACKING")


def statements(db: str = "etl_suite") -> list[sa.ClauseElement]:
    """Every statement the suite sends, for the compile test."""
    return [*create_database_sql(db), *drop_database_sql(db), snapshot_isolation_sql(db, False),
            *(sa.schema.CreateTable(t) for t in (ORDERS, LEDGER, KINDS)), change_tracking_sql(ORDERS, True),
            change_tracking_sql(ORDERS, False), *(sa.schema.DropTable(t) for t in (ORDERS, LEDGER, KINDS)),
            ORDERS.insert(), ORDERS.update().where(ORDERS.c.id == sa.bindparam("key")).values(status=sa.bindparam("s")),
            ORDERS.delete().where(ORDERS.c.id.in_([1, 2])), LEDGER.insert(), KINDS.insert(),
            LEDGER.update().where(LEDGER.c.id == 3).values(memo="changed"), LEDGER.delete().where(LEDGER.c.id == 4),
            sa.text("ALTER TABLE dbo.kinds DROP COLUMN body")]


def test_every_statement_compiles():
    dialect = pyodbc.dialect(paramstyle="qmark")
    compiled = {str(s.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})).strip()
                for s in statements()}
    kinds = next(c for c in compiled if c.startswith("CREATE TABLE kinds"))
    for column in ("id INTEGER NOT NULL,", "at DATETIME2(7) NULL", "seen DATETIMEOFFSET(7) NULL",
                   "amount DECIMAL(18, 4) NULL", "price MONEY NULL", "flag BIT NULL", "ref UNIQUEIDENTIFIER NULL",
                   "body NVARCHAR(max) NULL", "blob VARBINARY(max) NULL"):
        assert column in kinds, (column, kinds)  # explicit ids: no IDENTITY
    assert any("rv ROWVERSION NOT NULL" in c for c in compiled)
    assert "DELETE FROM orders WHERE orders.id IN (?, ?)" in compiled
    assert "ALTER DATABASE [etl_suite] SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 2 DAYS, AUTO_CLEANUP = ON)" in compiled


# ------------------------------------------------------------------ live (marker mssql)

@pytest.fixture(scope="session")
def server() -> sa.Engine:
    url = os.environ.get("MSSQL_TEST_URL")
    if not url:
        pytest.fail("the mssql suite needs MSSQL_TEST_URL (a login that may create databases); "
                    "./scripts/test-mssql.sh starts the compose stack's SQL Server and sets it")
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError as exc:
        pytest.fail(f"SQL Server at MSSQL_TEST_URL is not reachable: {exc.orig}")
    return engine


@pytest.fixture
def database(server: sa.Engine):  # noqa: ANN201
    name = f"etl_suite_{uuid.uuid4().hex[:10]}"
    with server.connect() as conn:
        for stmt in create_database_sql(name):
            conn.execute(stmt)
    url = server.url.set(database=name)
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    yield name, url.render_as_string(hide_password=False), engine
    engine.dispose()
    with server.connect() as conn:
        for stmt in drop_database_sql(name):
            conn.execute(stmt)


@pytest.mark.mssql
def test_change_tracking_inserts_updates_deletes_and_an_expired_version(database, make_settings, store, published, tmp_path):
    name, url, engine = database
    with engine.connect() as conn:
        conn.execute(sa.schema.CreateTable(ORDERS))
        conn.execute(change_tracking_sql(ORDERS, True))
        conn.execute(ORDERS.insert(), [{"id": i, "status": "new", "total": Decimal(i)} for i in range(1, 101)])
    settings = make_settings(source_url=url, tables_to_sync="orders", sync_interval_seconds=60)
    assert run_sync(settings)["status"] == "published"
    assert read_manifest(store)[0].tables["orders"].change_detection == "change_tracking"
    with engine.connect() as conn:
        conn.execute(ORDERS.insert(), [{"id": 101, "status": "late", "total": Decimal("1.5")}])
        conn.execute(ORDERS.update().where(ORDERS.c.id == sa.bindparam("key")).values(status=sa.bindparam("s")),
                     [{"key": 5, "s": "paid"}])
        conn.execute(ORDERS.delete().where(ORDERS.c.id.in_([1, 2])))
    assert run_sync(settings)["status"] == "published"
    rows = dict(published("SELECT id, status FROM orders"))
    assert len(rows) == 99 and rows[101] == "late" and rows[5] == "paid" and 1 not in rows
    # Rows deleted while Change Tracking is off are in no change history; re-enabling it moves
    # CHANGE_TRACKING_MIN_VALID_VERSION past the stored version (the update makes sure the
    # database's version moved on first), so only a whole reload can see those deletes.
    with engine.connect() as conn:
        conn.execute(ORDERS.update().where(ORDERS.c.id == sa.bindparam("key")).values(status=sa.bindparam("s")),
                     [{"key": 6, "s": "moved"}])
        conn.execute(change_tracking_sql(ORDERS, False))
        conn.execute(ORDERS.delete().where(ORDERS.c.id.in_([3, 4])))
        conn.execute(change_tracking_sql(ORDERS, True))
    run_sync(settings)
    rows = dict(published("SELECT id, status FROM orders"))
    assert len(rows) == 97 and 3 not in rows and 4 not in rows and rows[6] == "moved"


@pytest.mark.mssql
def test_rowversion_and_native_reads(database, make_settings, store, published, tmp_path, monkeypatch):
    import connectorx

    name, url, engine = database
    urls: list[str] = []
    real = connectorx.read_sql
    monkeypatch.setattr(connectorx, "read_sql", lambda conn, q, **kw: urls.append(conn) or real(conn, q, **kw))
    with engine.connect() as conn:
        conn.execute(sa.schema.CreateTable(LEDGER))
        conn.execute(LEDGER.insert(), [{"id": i, "memo": f"m{i}"} for i in range(1, 51)])
    settings = make_settings(source_url=url, tables_to_sync="ledger", delete_reconcile_every=1)
    run_sync(settings)
    assert read_manifest(store)[0].tables["ledger"].change_detection == "rowversion"
    with engine.connect() as conn:
        conn.execute(LEDGER.update().where(LEDGER.c.id == 3).values(memo="changed"))
        conn.execute(LEDGER.delete().where(LEDGER.c.id == 4))
    run_sync(settings)
    rows = dict(published("SELECT id, memo FROM ledger"))
    assert rows[3] == "changed" and 4 not in rows and len(rows) == 49
    assert urls and all(u.startswith("mssql://") for u in urls)  # full load and key reconciliation


@pytest.mark.mssql
def test_every_mapped_type(database, make_settings, store, published, tmp_path):
    name, url, engine = database
    with engine.connect() as conn:
        conn.execute(sa.schema.CreateTable(KINDS))
        conn.execute(KINDS.insert(), KIND_ROWS)
    settings = make_settings(source_url=url, tables_to_sync="kinds")
    assert run_sync(settings)["status"] == "published"
    types = {c.name: c.type for c in read_manifest(store)[0].tables["kinds"].columns}
    assert types == {"id": "BIGINT", "at": "TIMESTAMP", "seen": "TIMESTAMP WITH TIME ZONE", "amount": "DECIMAL(18,4)",
                     "price": "DECIMAL(19,4)", "flag": "BOOLEAN", "ref": "UUID", "body": "VARCHAR", "blob": "BLOB"}
    got = published("SELECT id, at, epoch_us(seen), amount, price, flag, ref, body, blob FROM kinds "
                                     "ORDER BY id")
    first = KIND_ROWS[0]
    assert got[0] == (1, first["at"], int(first["seen"].timestamp() * 1_000_000), first["amount"], first["price"],
                      True, first["ref"], first["body"], first["blob"])
    assert got[1] == (2, None, None, None, None, None, None, None, None)
    # A dropped column reloads the table without it.
    with engine.connect() as conn:
        conn.execute(sa.text("ALTER TABLE dbo.kinds DROP COLUMN body"))
    run_sync(settings)
    assert "body" not in [c.name for c in read_manifest(store)[0].tables["kinds"].columns]


@pytest.mark.mssql
def test_a_dropped_table_goes_stale_and_snapshot_isolation_is_checked(database, make_settings, store):
    name, url, engine = database
    with engine.connect() as conn:
        conn.execute(sa.schema.CreateTable(ORDERS))
        conn.execute(change_tracking_sql(ORDERS, True))
        conn.execute(sa.schema.CreateTable(LEDGER))
        conn.execute(sa.schema.CreateTable(KINDS))  # stays healthy: the run still publishes
        conn.execute(ORDERS.insert(), [{"id": 1, "status": "new", "total": Decimal(1)}])
        conn.execute(LEDGER.insert(), [{"id": 1, "memo": "m"}])
        conn.execute(KINDS.insert(), KIND_ROWS)
    settings = make_settings(source_url=url, tables_to_sync="orders,ledger,kinds")
    out: list[str] = []
    assert doctor(settings, out.append) == 0, out
    assert any("Change Tracking on, retention 2 days" in line for line in out)
    assert any(line.startswith("OK   table orders: VIEW CHANGE TRACKING granted") for line in out)
    run_sync(settings)
    with engine.connect() as conn:
        conn.execute(sa.schema.DropTable(LEDGER))
        conn.execute(snapshot_isolation_sql(name, False))
    result = run_sync(settings)
    assert result["status"] == "published_with_stale_tables" and set(result["errors"]) == {"orders", "ledger"}
    manifest, _ = read_manifest(store)
    assert manifest.tables["ledger"].status == "stale" and "not found" in manifest.tables["ledger"].last_error
    assert manifest.tables["orders"].status == "stale"  # CHANGETABLE needs snapshot isolation
    out.clear()
    assert doctor(settings, out.append) == 1
    assert any(line.startswith("FAIL sql server: ALLOW_SNAPSHOT_ISOLATION is OFF") for line in out)
