"""Full loads that connectorx cannot do end on the driver path, as docs/etl.md promises
("a type connectorx does not know: the table is read through the SQLAlchemy driver"),
instead of failing the table or the whole run.

connectorx refuses in two ways the earlier checks did not meet: it panics (pyo3's
PanicException, a BaseException) on a PostgreSQL type it lacks, and on SQLite it checks a
DATETIME/DATE value only when it reaches it, so one value it cannot parse fails the load
part-way.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import psycopg
import pytest

from analytics_etl.pipeline import run_sync
from analytics_shared.manifest import read_manifest
from analytics_shared.snapshot_files import fetch_snapshot


def _published(store, tmp_path: Path, sql: str) -> list[tuple]:  # noqa: ANN001
    manifest, _ = read_manifest(store)
    local = tmp_path / f"published-{manifest.version.replace(':', '')}.db"
    fetch_snapshot(store, manifest, local)
    with duckdb.connect(str(local), read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.mark.postgres
def test_a_postgres_interval_column_does_not_fail_the_run(pg: psycopg.Connection, schema: str, pg_url: str,
                                                          make_settings, store, tmp_path: Path):
    # connectorx panics on `interval` ("not implemented: interval"); the PanicException is a
    # BaseException, which escaped read_native's `except Exception` and every table handler:
    # run_sync raised and no table (not even `plain`) was ever published.
    pg.execute(f'CREATE TABLE {schema}.shifts ("ShiftKey" bigint PRIMARY KEY, length interval, '
               f"note text, updated_at timestamp NOT NULL)")
    pg.execute(f"INSERT INTO {schema}.shifts SELECT g, g * interval '1 hour 30 minutes', 'n' || g, "
               f"timestamp '2026-01-01' FROM generate_series(1, 50) g")
    pg.execute(f"CREATE TABLE {schema}.plain (id bigint PRIMARY KEY, v text)")
    pg.execute(f"INSERT INTO {schema}.plain VALUES (1, 'a'), (2, 'b')")
    settings = make_settings(source_url=pg_url, tables_to_sync=f"{schema}.shifts,{schema}.plain",
                             cursor_lag_seconds=0)
    result = run_sync(settings)
    assert result["status"] == "published", result
    assert _published(store, tmp_path, "SELECT count(*), min(\"ShiftKey\"), max(\"ShiftKey\") FROM shifts") == [(50, 1, 50)]
    assert _published(store, tmp_path, "SELECT * FROM plain ORDER BY id") == [(1, "a"), (2, "b")]
    # Incremental runs read through the driver as before.
    pg.execute(f"UPDATE {schema}.shifts SET note = 'changed', updated_at = timestamp '2026-01-02' WHERE \"ShiftKey\" = 7")
    assert run_sync(settings)["status"] == "published"
    assert _published(store, tmp_path, "SELECT note FROM shifts WHERE \"ShiftKey\" = 7") == [("changed",)]
