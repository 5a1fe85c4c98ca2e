"""Key ranges of a partitioned full load: the splitting on its own, every row exactly once on
a real SQLite table, and on real PostgreSQL: partitioned loads equal to the one-stream load,
small ranges for skewed keys, a failing range failing only its table."""

from __future__ import annotations

import threading

import psycopg
import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.mssql import pyodbc

from analytics_etl.extract import BatchBuilder
from analytics_etl.native import read_key_ranges, stream_full_table
from analytics_etl.partitioned import literal_sql, range_select, split_key_range
from analytics_etl.pipeline import run_sync
from analytics_etl.source import reflect_tables
from analytics_etl.table_config import TableOptions
from analytics_etl.working import WorkingDatabase
from analytics_shared.manifest import read_manifest


def test_ranges_follow_the_estimate_and_cover_every_integer():
    ranges = split_key_range(1, 1_000_000, 1_000_000, 200_000, min_ranges=2)
    assert ranges == [(None, 200_001), (200_001, 400_001), (400_001, 600_001), (600_001, 800_001),
                      (800_001, None)]


def test_at_least_min_ranges_for_a_table_smaller_than_one_range():
    assert split_key_range(-50, 49, 100, 200_000, min_ranges=4) == [(None, -25), (-25, 0), (0, 25), (25, None)]


def test_a_key_span_smaller_than_the_worker_count_gives_one_range_per_key():
    assert split_key_range(7, 8, 2_000_000, 1000, min_ranges=4) == [(None, 8), (8, None)]
    assert split_key_range(5, 5, 10, 1, min_ranges=3) == [(None, None)]


def test_the_histogram_cuts_where_the_rows_are():
    # 1000 rows at keys 1..1000 and one at 10**12: even cuts would put them all in one range.
    histogram = [*range(1, 1001, 50), 1000, 10**12]  # 21 buckets of about 48 rows
    ranges = split_key_range(1, 10**12, 1001, 200, min_ranges=2, histogram=histogram)
    assert ranges == [(None, 201), (201, 401), (401, 601), (601, 801), (801, 1000), (1000, None)]


def test_keys_beyond_the_histogram_are_cut_evenly():
    # Analyzed at 0..1000 (1000 rows), grown to 2000 since: the new keys are still split by
    # width, as wide as the statistics' row count makes a range of 300 rows.
    histogram = list(range(0, 1001, 100))
    ranges = split_key_range(0, 2000, 1000, 300, min_ranges=2, histogram=histogram)
    assert ranges == [(None, 300), (300, 600), (600, 900), (900, 1500), (1500, None)]


def test_an_empty_table_is_one_unbounded_range():
    assert split_key_range(None, None, 5_000_000, 1000, min_ranges=2) == [(None, None)]


@pytest.mark.parametrize("low, high, rows, histogram", [
    (-10**12, 10**12, 1000, ()), (0, 3, 50, ()), (-3, -1, 9, ()), (1, 997, 997, ()),
    (1, 997, 997, (5, 100, 101, 500, 990)), (-10**12, 10**12, 1000, (-10**12, 0, 7, 10**12))])
def test_every_row_lands_in_exactly_one_range(tmp_path, low, high, rows, histogram):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    keys = sorted({low, high, *range(low, high + 1, max(1, (high - low) // 37))})
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (k INTEGER)"))
        conn.execute(sa.text("INSERT INTO t VALUES (:k)"), [{"k": k} for k in [*keys, None, None]])
        # Rows outside the min/max the ranges were cut from (inserted since) are read too.
        conn.execute(sa.text("INSERT INTO t VALUES (:k)"), [{"k": low - 1}, {"k": high + 1}])
    stmt = sa.select(sa.column("k")).select_from(sa.table("t"))
    seen: list[int | None] = []
    with engine.connect() as conn:
        for key_range in split_key_range(low, high, rows, 7, min_ranges=3, histogram=histogram):
            seen += [r[0] for r in conn.execute(range_select(stmt, sa.column("k"), key_range))]
    engine.dispose()
    assert sorted(seen, key=lambda k: (k is not None, k)) == [None, None, low - 1, *keys, high + 1]


def test_range_sql_for_sql_server_binds_no_values():
    stmt = sa.select(sa.column("id"), sa.column("v")).select_from(sa.table("orders", schema="sales"))
    key = sa.column("id")
    sql = [literal_sql(range_select(stmt, key, r), pyodbc.dialect()).split("WHERE ")[-1]
           for r in [(None, -5), (-5, 10**12), (10**12, None)]]
    assert sql == ["id < -5 OR id IS NULL", "id >= -5 AND id < 1000000000000", "id >= 1000000000000"]


def _load(engine: sa.Engine, spec, tmp_path, name: str, partitions: int) -> tuple[object, list[tuple]]:  # noqa: ANN001
    """Full load of one table into a fresh DuckDB file; (what the reader returned, rows in key order)."""
    columns = [(c.name, c.duckdb_type) for c in spec.columns]
    db = WorkingDatabase(tmp_path / f"{name}-{partitions}.duckdb")
    try:
        with engine.connect() as conn:
            batches = stream_full_table(conn, spec, BatchBuilder.for_columns(columns, "postgresql"), 1000,
                                        partitions=partitions, partition_min_rows=0)
            db.replace_table(spec.target, columns, batches)
        rows = db.conn.execute(f'SELECT * FROM "{spec.target}" ORDER BY ALL NULLS FIRST').fetchall()
    finally:
        db.close()
    return batches, rows


@pytest.mark.postgres
def test_partitioned_loads_equal_one_stream(pg: psycopg.Connection, schema: str, pg_url: str, tmp_path):
    pg.execute(f"CREATE TABLE {schema}.gaps (id bigint PRIMARY KEY, v text, n numeric(12,2), t timestamp, b boolean)")
    # Negative keys, gaps, far outliers and NULLs in every other column.
    pg.execute(f"INSERT INTO {schema}.gaps SELECT i, CASE WHEN i % 5 <> 0 THEN 'v' || i END, "
               f"CASE WHEN i % 3 <> 0 THEN i / 7.0 END, CASE WHEN i % 4 <> 0 THEN "
               f"timestamp '2024-01-01' + i * interval '1 second' END, i % 2 = 0 "
               f"FROM generate_series(-6000, 6000) i WHERE i % 11 <> 0")
    pg.execute(f"INSERT INTO {schema}.gaps (id, v) VALUES (-9000000000000, 'low'), (9000000000000, 'high')")
    pg.execute(f"CREATE TABLE {schema}.tiny (id int PRIMARY KEY, v text)")
    pg.execute(f"INSERT INTO {schema}.tiny VALUES (41, 'a'), (42, 'b')")
    # A key the tables file declares, without a constraint: NULL keys must still arrive.
    pg.execute(f"CREATE TABLE {schema}.loose (k bigint, v text)")
    pg.execute(f"INSERT INTO {schema}.loose SELECT CASE WHEN i % 100 = 0 THEN NULL ELSE i END, 'x' || i "
               f"FROM generate_series(1, 3000) i")
    # Emptied after its statistics were taken: the catalog still says 3000 rows.
    pg.execute(f"CREATE TABLE {schema}.emptied (id bigint PRIMARY KEY, v text)")
    pg.execute(f"INSERT INTO {schema}.emptied SELECT i, 'e' FROM generate_series(1, 3000) i")
    for table in ("gaps", "tiny", "loose", "emptied"):
        pg.execute(f"ANALYZE {schema}.{table}")
    pg.execute(f"DELETE FROM {schema}.emptied")
    engine = sa.create_engine(pg_url)
    try:
        names = [f"{schema}.{t}" for t in ("gaps", "tiny", "loose", "emptied")]
        specs, missing = reflect_tables(engine, names, requested="full", cursor_column="updated_at",
                                        options=lambda q: TableOptions(primary_key=("k",)) if q.endswith("loose")
                                        else TableOptions())
        assert not missing
        for name, spec in specs.items():
            single, want = _load(engine, spec, tmp_path, name, partitions=1)
            ranged, got = _load(engine, spec, tmp_path, name, partitions=3)
            assert isinstance(single, pa.RecordBatchReader) and not isinstance(ranged, pa.RecordBatchReader), name
            assert got == want, name
        assert len(want) == 0  # emptied: the last one
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_skewed_keys_are_still_read_in_small_ranges(pg: psycopg.Connection, schema: str, pg_url: str):
    pg.execute(f"CREATE TABLE {schema}.skewed (id bigint PRIMARY KEY, v text)")
    pg.execute(f"INSERT INTO {schema}.skewed SELECT i, 'v' FROM generate_series(1, 20000) i")
    pg.execute(f"INSERT INTO {schema}.skewed VALUES (1000000000000000, 'far')")
    pg.execute(f"ANALYZE {schema}.skewed")
    engine = sa.create_engine(pg_url)
    try:
        specs, _ = reflect_tables(engine, [f"{schema}.skewed"], requested="full", cursor_column="updated_at")
        with engine.connect() as conn:
            sizes = [t.num_rows for t in read_key_ranges(conn, specs["skewed"], 20001, 2, 2000)]
    finally:
        engine.dispose()
    assert sum(sizes) == 20001 and len(sizes) >= 8
    assert max(sizes) <= 4000  # ~2000 a range; by the key's width alone, one range of 20000


@pytest.mark.postgres
def test_a_range_that_fails_fails_its_table_only_and_stops_the_workers(
        pg: psycopg.Connection, schema: str, pg_url: str, make_settings, store):
    # connectorx cannot convert a NaN numeric: the range holding key 700 fails mid-load.
    pg.execute(f"CREATE TABLE {schema}.bad (id bigint PRIMARY KEY, n numeric(12,2))")
    pg.execute(f"INSERT INTO {schema}.bad SELECT i, i FROM generate_series(1, 3000) i")
    pg.execute(f"UPDATE {schema}.bad SET n = 'NaN' WHERE id = 700")
    pg.execute(f"CREATE TABLE {schema}.good (id bigint PRIMARY KEY, n numeric(12,2))")
    pg.execute(f"INSERT INTO {schema}.good SELECT i, i / 3.0 FROM generate_series(1, 3000) i")
    for table in ("bad", "good"):
        pg.execute(f"ANALYZE {schema}.{table}")
    settings = make_settings(source_url=pg_url, tables_to_sync=f"{schema}.bad,{schema}.good",
                             read_partitions=2, partition_min_rows=0, batch_size=100)
    result = run_sync(settings)
    assert result["status"] == "published_with_stale_tables"
    assert "NaN" in result["errors"]["bad"] and result["tables"]["good"]["rows"] == 3000
    assert not [t.name for t in threading.enumerate() if t.name.startswith("extract-range")]
    manifest, _ = read_manifest(store)
    assert set(manifest.tables) == {"good"}
