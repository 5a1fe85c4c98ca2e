"""Full loads that connectorx cannot do end on the driver path, as docs/etl.md promises
("a type connectorx does not know: the table is read through the SQLAlchemy driver"),
instead of failing the table or the whole run.

connectorx refuses in two ways the earlier checks did not meet: it panics (pyo3's
PanicException, a BaseException) on a PostgreSQL type it lacks, and on SQLite it checks a
DATETIME/DATE value only when it reaches it, so one value it cannot parse fails the load
part-way.
"""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from analytics_etl.pipeline import run_sync


@pytest.mark.postgres
def test_a_postgres_interval_column_does_not_fail_the_run(pg: psycopg.Connection, schema: str, pg_url: str,
                                                          make_settings, store, published, tmp_path: Path):
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
    assert published("SELECT count(*), min(\"ShiftKey\"), max(\"ShiftKey\") FROM shifts") == [(50, 1, 50)]
    assert published("SELECT * FROM plain ORDER BY id") == [(1, "a"), (2, "b")]
    # Incremental runs read through the driver as before.
    pg.execute(f"UPDATE {schema}.shifts SET note = 'changed', updated_at = timestamp '2026-01-02' WHERE \"ShiftKey\" = 7")
    assert run_sync(settings)["status"] == "published"
    assert published("SELECT note FROM shifts WHERE \"ShiftKey\" = 7") == [("changed",)]


# (declared type, stored text, what lands): SQLite accepts each of these texts in its date
# functions; connectorx's parser refuses them ("trailing input", "premature end of input").
UNPARSED_BY_CONNECTORX = [
    ("DATETIME", "2026-02-03 04:05", datetime(2026, 2, 3, 4, 5)),
    ("DATETIME", "2026-02-03", datetime(2026, 2, 3)),
    ("DATETIME", "2026-02-03T04:05:06Z", datetime(2026, 2, 3, 4, 5, 6)),
    ("TIMESTAMP", "2026-02-03 04:05:06.250Z", datetime(2026, 2, 3, 4, 5, 6, 250000)),
    ("DATE", "2026-02-03 00:00:00", date(2026, 2, 3)),
]


@pytest.mark.parametrize(("declared", "stored", "lands"), UNPARSED_BY_CONNECTORX)
def test_sqlite_date_texts_connectorx_cannot_parse_are_read_through_the_driver(
        declared, stored, lands, make_settings, store, published, tmp_path: Path):
    # Before: connectorx's stream failed part-way ("cx writer failed: ... ParseError"), the
    # table was never loaded and stayed stale on every run (a new table: absent from the snapshot).
    path = tmp_path / "dates.db"
    with sqlite3.connect(path) as con:
        con.execute(f'CREATE TABLE visits ("VisitKey" TEXT PRIMARY KEY, seen {declared}, updated_at DATETIME)')
        ordinary = datetime(2026, 1, 1, 8) if declared != "DATE" else date(2026, 1, 1)
        con.executemany("INSERT INTO visits VALUES (?, ?, ?)",
                        [(f"k{i:03d}", ordinary.isoformat(" ") if declared != "DATE" else ordinary.isoformat(),
                          "2026-01-01 00:00:00") for i in range(300)])
        con.execute("UPDATE visits SET seen = ? WHERE \"VisitKey\" = 'k250'", [stored])  # past the first batch
    settings = make_settings(source_url=f"sqlite:///{path}", tables_to_sync="visits", batch_size=100)
    result = run_sync(settings)
    assert result["status"] == "published", result.get("errors")
    rows = dict(published('SELECT "VisitKey", seen FROM visits'))
    assert len(rows) == 300
    assert rows["k250"] == lands
    assert rows["k000"] == ordinary


@pytest.mark.postgres
def test_text_synced_postgres_columns_are_spelled_alike_by_full_and_incremental_reads(
        pg: psycopg.Connection, schema: str, pg_url: str, make_settings, store, published, tmp_path: Path):
    # A full load reads through connectorx, an incremental one through psycopg. They spelled the
    # same value differently (int[]: '[1, NULL]' / '[1, null]'; text[]: "[é, 'a,b']" /
    # '["\u00e9", "a,b"]'; jsonb: '{"é":1}' / '{"\u00e9": 1}'), so rows re-read through the lag on
    # a quiet source counted as changed and were published again, and a table mixed both spellings.
    pg.execute(f'CREATE TABLE {schema}.tags ("TagKey" int PRIMARY KEY, labels text[], counts int[], doc jsonb, '
               f"updated_at timestamp NOT NULL)")
    pg.execute(f"""INSERT INTO {schema}.tags SELECT g, ARRAY['é', 'a,b', NULL], ARRAY[g - g + 1, NULL],
                   '{{"é": 1, "k": [true, null]}}', timestamp '2026-01-01' FROM generate_series(1, 3) g""")
    # connectorx lacks interval: this table is read by psycopg, which made it a timedelta ('32 days, ...').
    pg.execute(f"CREATE TABLE {schema}.spans (id int PRIMARY KEY, span interval)")
    pg.execute(f"INSERT INTO {schema}.spans VALUES (1, interval '1 mon 2 days 03:00:00.5')")
    settings = make_settings(source_url=pg_url, tables_to_sync=f"{schema}.tags,{schema}.spans",
                             cursor_lag_seconds=3600)
    assert run_sync(settings)["status"] == "published"
    quiet = run_sync(settings)  # every row is re-read (inside the lag) and equals what is published
    assert quiet["status"] == "unchanged", quiet.get("tables")
    pg.execute(f"UPDATE {schema}.tags SET updated_at = timestamp '2026-01-01 00:00:01' WHERE \"TagKey\" = 2")
    assert run_sync(settings)["status"] == "published"
    rows = published('SELECT labels, counts, doc::VARCHAR FROM tags ORDER BY "TagKey"')
    assert rows[0] == rows[1] == rows[2]  # read by connectorx, by psycopg, and re-read unchanged
    # PostgreSQL's own text of each value, the interval's month kept.
    assert rows[0] == ('{é,"a,b",NULL}', "{1,NULL}", '{"k": [true, null], "é": 1}')
    assert published("SELECT span FROM spans") == [("1 mon 2 days 03:00:00.5",)]


def test_sqlite_datetime_texts_with_an_offset_land_as_the_utc_time_they_name(make_settings, store, published, tmp_path: Path):
    # SQLite reads '2026-02-03 04:05:06+02:00' as 02:05:06 UTC; DuckDB's cast to TIMESTAMP kept
    # 04:05:06, silently two hours off. The cursor column keeps its written time: the watermark
    # must stay comparable with the texts SQLite compares (here with a negative offset).
    path = tmp_path / "offsets.db"
    with sqlite3.connect(path) as con:
        con.execute('CREATE TABLE events ("EventKey" INTEGER PRIMARY KEY, seen DATETIME, updated_at DATETIME)')
        con.executemany("INSERT INTO events VALUES (?, ?, ?)", [
            (1, "2026-02-03 04:05:06+02:00", "2026-01-01 08:00:00-02:00"),
            (2, "2026-02-03T23:30:00-01:30", "2026-01-01 08:00:00-02:00"),
            (3, "2026-02-03 04:05:06.25Z", "2026-01-01 08:00:00-02:00"),
            (4, "2026-02-03 04:05:06", "2026-01-01 08:00:00-02:00"),
            (5, None, "2026-01-01 08:00:00-02:00")])
    settings = make_settings(source_url=f"sqlite:///{path}", tables_to_sync="events", cursor_lag_seconds=0)
    assert run_sync(settings)["status"] == "published"
    with sqlite3.connect(path) as con:  # later than the watermark in its own text and in UTC
        con.execute("INSERT INTO events VALUES (6, '2026-02-03 10:00:00+05:00', '2026-01-01 09:00:00-02:00')")
        con.execute("UPDATE events SET seen = '2026-02-03 12:00:00-03:00', updated_at = '2026-01-01 09:00:00-02:00' "
                    'WHERE "EventKey" = 4')
    assert run_sync(settings)["status"] == "published"
    assert dict(published('SELECT "EventKey", seen FROM events')) == {
        1: datetime(2026, 2, 3, 2, 5, 6), 2: datetime(2026, 2, 4, 1, 0), 3: datetime(2026, 2, 3, 4, 5, 6, 250000),
        4: datetime(2026, 2, 3, 15, 0), 5: None, 6: datetime(2026, 2, 3, 5, 0)}


def test_a_sqlite_numeric_column_holding_integers_and_reals_is_loaded(make_settings, store, published, tmp_path: Path):
    # NUMERIC affinity stores 0 or 12.00 as an INTEGER and 0.25 as a REAL. connectorx takes the
    # column's type from the first row and failed part-way on the first other one
    # ("InvalidColumnType(1, amount, Real)"): the table was never loaded (seen on a 3M-row ledger).
    path = tmp_path / "prices.db"
    with sqlite3.connect(path) as con:
        con.execute('CREATE TABLE prices ("Sku" INTEGER PRIMARY KEY, amount NUMERIC(10,2), ratio REAL, updated_at DATETIME)')
        con.executemany("INSERT INTO prices VALUES (?, ?, ?, ?)",
                        [(i, i / 4, i / 8, "2026-01-01 00:00:00") for i in range(0, 400)])
        assert con.execute("SELECT typeof(amount) FROM prices ORDER BY \"Sku\" LIMIT 2").fetchall() == [
            ("integer",), ("real",)]
    settings = make_settings(source_url=f"sqlite:///{path}", tables_to_sync="prices", batch_size=100)
    result = run_sync(settings)
    assert result["status"] == "published", result.get("errors")
    rows = published('SELECT "Sku", amount, ratio FROM prices ORDER BY "Sku"')
    assert [(k, float(a), r) for k, a, r in rows] == [(i, i / 4, i / 8) for i in range(0, 400)]


@pytest.mark.postgres
def test_a_postgres_real_is_the_same_double_by_full_and_incremental_reads(
        pg: psycopg.Connection, schema: str, pg_url: str, make_settings, store, published, tmp_path: Path):
    # connectorx widens a float4 exactly (0.1428571492433548), psycopg parses its shortest text
    # (0.14285715): the same value landed as two DOUBLEs, and a quiet re-read counted as a change.
    pg.execute(f'CREATE TABLE {schema}.gauges ("GaugeKey" int PRIMARY KEY, reading real, updated_at timestamp NOT NULL)')
    pg.execute(f"INSERT INTO {schema}.gauges SELECT g, 1 / 7.0, timestamp '2026-01-01' FROM generate_series(1, 3) g")
    settings = make_settings(source_url=pg_url, tables_to_sync=f"{schema}.gauges", cursor_lag_seconds=3600)
    assert run_sync(settings)["status"] == "published"
    quiet = run_sync(settings)
    assert quiet["status"] == "unchanged", quiet.get("tables")
    pg.execute(f"UPDATE {schema}.gauges SET updated_at = timestamp '2026-01-01 00:00:01' WHERE \"GaugeKey\" = 2")
    assert run_sync(settings)["status"] == "published"
    readings = published('SELECT reading FROM gauges ORDER BY "GaugeKey"')
    assert readings == [(0.1428571492433548,)] * 3
