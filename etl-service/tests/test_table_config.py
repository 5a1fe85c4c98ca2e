"""The tables file (TABLES_CONFIG_PATH): parsing, one line per mistake, and real syncs from
SQLite and PostgreSQL with excluded columns, views, SELECT sources, per-table cursors and
every_n_runs."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import connectorx
import psycopg
import pytest
import sqlalchemy as sa

from analytics_etl.pipeline import run_sync
from analytics_etl.table_config import load_table_config, parse_table_config
from analytics_shared.errors import ConfigError
from analytics_shared.manifest import read_manifest


def test_every_mistake_is_one_line():
    with pytest.raises(ConfigError) as err:
        parse_table_config({
            "orders": {"cursor_colum": "modified_at", "every_n_runs": 0},
            "customers": {"include_columns": ["id"], "exclude_columns": ["email"]},
            "v_sales": {"source": "SELECT * FROM sales", "change_detection": "change_tracking"},
            "bad name": {},
            "items": {"exclude_columns": ["id"], "primary_key": ["id"], "change_detection": "sometimes"},
            "dbo.orders": {},
        }, "tables.yaml")
    lines = err.value.message.splitlines()
    assert len(lines) == 7, lines
    assert all(line.startswith("TABLES_CONFIG_PATH tables.yaml: ") for line in lines)
    text = err.value.message
    assert "table orders: cursor_colum: unknown key (known: change_detection" in text
    assert "table orders: every_n_runs: Input should be greater than or equal to 1" in text
    assert "include_columns and exclude_columns together" in text
    assert "change_detection change_tracking needs a table, not a SELECT source" in text
    assert "table bad name: not a [schema.]table name" in text
    assert "table items: change_detection: Input should be" in text
    assert "two tables called orders" in text


def test_yaml_and_json_files_read_alike(tmp_path: Path):
    yaml_file, json_file = tmp_path / "tables.yaml", tmp_path / "tables.json"
    yaml_file.write_text("orders: {change_detection: timestamp, cursor_column: modified_at, cursor_lag_seconds: 60}\n"
                         "customers:\n  exclude_columns: [email, phone]\n")
    json_file.write_text(json.dumps({"orders": {"change_detection": "timestamp", "cursor_column": "modified_at",
                                                "cursor_lag_seconds": 60},
                                     "customers": {"exclude_columns": ["email", "phone"]}}))
    assert load_table_config(yaml_file) == load_table_config(json_file)
    assert load_table_config(yaml_file)["customers"].keeps("country")
    assert not load_table_config(yaml_file)["customers"].keeps("email")
    (tmp_path / "broken.yaml").write_text("orders: {change_detection: [\n")
    with pytest.raises(ConfigError, match="not YAML or JSON"):
        load_table_config(tmp_path / "broken.yaml")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_table_config(tmp_path / "absent.yaml")


@pytest.fixture
def statements(monkeypatch):  # noqa: ANN001, ANN201
    """Every statement sent to the source: through SQLAlchemy and through connectorx."""
    seen: list[str] = []

    def record(conn, cursor, statement, params, context, many) -> None:  # noqa: ANN001
        seen.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    real = connectorx.read_sql
    monkeypatch.setattr(connectorx, "read_sql", lambda conn, query, **kw: seen.append(query) or real(conn, query, **kw))
    yield seen
    sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)


def _sqlite_extras(path: Path) -> None:
    with sqlite3.connect(path) as con:
        con.execute("CREATE VIEW v_paid AS SELECT o.id, o.total, o.updated_at, c.country FROM orders o "
                    "JOIN customers c ON c.id = o.customer_id WHERE o.status <> 'cancelled'")
        con.execute("ALTER TABLE products ADD COLUMN modified_at DATETIME")
        con.execute("UPDATE products SET modified_at = updated_at, updated_at = '2000-01-01 00:00:00'")


def test_a_tables_file_shapes_a_real_sync(source_path: Path, make_settings, store, published, tmp_path: Path, statements):
    _sqlite_extras(source_path)
    tables = tmp_path / "tables.yaml"
    tables.write_text(
        "customers: {exclude_columns: [email, full_name]}\n"
        "products: {cursor_column: modified_at, cursor_lag_seconds: 0}\n"
        "v_paid: {primary_key: [id]}\n"
        "by_country:\n"
        "  source: SELECT country, count(*) AS customers FROM customers WHERE country IS NOT NULL GROUP BY country\n"
        "  primary_key: [country]\n"
        "  every_n_runs: 2\n")
    settings = make_settings(tables_to_sync="customers,products", tables_config_path=tables,
                             delete_reconcile_every=1)
    assert settings.table_names == ["customers", "products", "v_paid", "by_country"]
    assert run_sync(settings)["status"] == "published"
    manifest, _ = read_manifest(store)
    assert [c.name for c in manifest.tables["customers"].columns] == [
        "id", "country", "signup_date", "loyalty_tier", "created_at", "updated_at"]
    assert manifest.tables["products"].change_detection == "timestamp"
    assert manifest.tables["v_paid"].change_detection == "timestamp"  # a view, keyed by the file
    assert manifest.tables["by_country"].change_detection == "full"
    with sqlite3.connect(source_path) as con:
        paid = con.execute("SELECT count(*) FROM orders WHERE status <> 'cancelled'").fetchone()[0]
        countries = con.execute("SELECT country, count(*) FROM customers WHERE country IS NOT NULL "
                                "GROUP BY country ORDER BY 1").fetchall()
    assert manifest.tables["v_paid"].rows == paid
    # SQLite declares no type for an expression: the count travels as text.
    assert published("SELECT * FROM by_country ORDER BY 1") == [(c, str(n)) for c, n in countries]

    # Changes: the product's own cursor column, the view's rows, a new customer.
    with sqlite3.connect(source_path) as con:
        con.execute("UPDATE products SET name = 'renamed', modified_at = '2030-01-01 00:00:00' WHERE id = 1")
        con.execute("UPDATE orders SET total = 12345.67, updated_at = '2030-01-01 00:00:00' WHERE id = 2")
        con.execute("INSERT INTO customers SELECT 100000, 'new@example.com', 'New', 'ZZ', signup_date, "
                    "loyalty_tier, created_at, '2030-01-01 00:00:00' FROM customers WHERE id = 1")
    second = run_sync(settings)
    assert second["status"] == "published"
    assert published("SELECT name FROM products WHERE id = 1") == [("renamed",)]
    assert float(published("SELECT total FROM v_paid WHERE id = 2")[0][0]) == 12345.67
    # every_n_runs: 2: the SELECT source was not read this run, so it still lacks 'ZZ'.
    assert ("ZZ", "1") not in published("SELECT * FROM by_country")
    assert run_sync(settings)["status"] == "published"
    assert ("ZZ", "1") in published("SELECT * FROM by_country")

    # The excluded columns never left the source: no statement the ETL sent names them.
    # (The tables file's own SELECT is the only text it did not build.)
    assert any("FROM customers" in s for s in statements)
    sent = [s for s in statements if "full_name" in s or "email" in s]
    assert sent == [], sent


def test_tables_the_source_lacks_stop_the_start_one_line_each(source_path: Path, store, tmp_path: Path):
    tables = tmp_path / "tables.json"
    tables.write_text(json.dumps({"orders": {"primary_key": ["order_no"]}, "gone": {},
                                  "v_x": {"source": "dbo_missing_view"}, "customers": {}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MSSQL_", "SOURCE_", "STORAGE_", "S3_"))}
    env.update(SOURCE_URL=f"sqlite:///{source_path}", STORAGE_URL=store.url, ETL_STATE_DIR=str(tmp_path / "state"),
               TABLES_CONFIG_PATH=str(tables))
    proc = subprocess.run([str(Path(sys.executable).parent / "analytics-etl"), "sync"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"analytics-etl: TABLES_CONFIG_PATH {tables}: table orders: column order_no not found in source",
        f"TABLES_CONFIG_PATH {tables}: table gone not found in source",
        f"TABLES_CONFIG_PATH {tables}: table dbo_missing_view (source of v_x) not found in source",
    ]
    assert read_manifest(store)[0] is None  # nothing was synced

    # A source that is down is not a mistake in the file: the start goes on, the sync fails as usual.
    env["SOURCE_URL"] = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    proc = subprocess.run([str(Path(sys.executable).parent / "analytics-etl"), "sync"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert '"event": "tables_file.unverified"' in proc.stderr


@pytest.mark.postgres
def test_postgres_view_and_select_sources(pg: psycopg.Connection, schema: str, pg_url: str, make_settings, store, published,
                                          tmp_path: Path, statements):
    pg.execute(f"CREATE TABLE {schema}.people (id int PRIMARY KEY, name text, ssn text, salary numeric(10,2), "
               f"modified timestamptz NOT NULL DEFAULT now())")
    pg.execute(f"INSERT INTO {schema}.people (id, name, ssn, salary) "
               f"SELECT i, 'p' || i, 'secret-' || i, i * 10.5 FROM generate_series(1, 300) i")
    pg.execute(f"CREATE VIEW {schema}.v_people AS SELECT id, name, ssn, modified FROM {schema}.people")
    tables = tmp_path / "tables.yaml"
    tables.write_text(
        f"{schema}.v_people: {{primary_key: [id], cursor_column: modified, include_columns: [id, name, modified]}}\n"
        f"payroll: {{source: 'SELECT id, salary * 2 AS doubled FROM {schema}.people', primary_key: [id]}}\n")
    settings = make_settings(source_url=pg_url, tables_to_sync=f"{schema}.people", tables_config_path=tables,
                             delete_reconcile_every=1)
    assert run_sync(settings)["status"] == "published"
    manifest, _ = read_manifest(store)
    assert [c.name for c in manifest.tables["v_people"].columns] == ["id", "name", "modified"]
    assert manifest.tables["v_people"].change_detection == "timestamp"
    assert {c.name: c.type for c in manifest.tables["payroll"].columns} == {"id": "BIGINT", "doubled": "DECIMAL(38,10)"}
    pg.execute(f"DELETE FROM {schema}.people WHERE id = 7")
    pg.execute(f"UPDATE {schema}.people SET name = 'changed', modified = now() + interval '1 hour' WHERE id = 8")
    assert run_sync(settings)["status"] == "published"
    rows = dict(published("SELECT id, name FROM v_people"))
    assert 7 not in rows and rows[8] == "changed" and len(rows) == 299
    assert float(published("SELECT doubled FROM payroll WHERE id = 3")[0][0]) == 63.0
    view_reads = [s for s in statements if "v_people" in s]
    assert view_reads and not any("ssn" in s for s in view_reads)
