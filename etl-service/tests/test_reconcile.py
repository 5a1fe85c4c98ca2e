"""Primary-key reconciliation on real SQLite sources: the summary shortcut and its fallbacks."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql

from analytics_etl import reconcile
from analytics_etl.pipeline import run_sync
from analytics_etl.source import SourceColumn, TableSpec
from analytics_etl.working import WorkingDatabase
from analytics_shared.manifest import read_manifest

BIG = 2**62  # two of these overflow SQLite's 64-bit sum(): the summary is unavailable


def make_parts(path: Path, first_key: int = 1) -> None:
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE parts (part_id INTEGER PRIMARY KEY, label TEXT, weight NUMERIC(8,3), "
                    "updated_at DATETIME NOT NULL)")
        con.executemany("INSERT INTO parts VALUES (?, ?, ?, ?)",
                        [(first_key + i, None if i % 4 == 0 else f"part {i}", i / 8 if i % 3 else None,
                          f"2026-04-01 12:00:{i % 60:02d}") for i in range(120)])


@pytest.fixture
def parts(make_settings, tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    """(path, settings) for a parts table reconciled every run, with the full key reads counted."""
    path = tmp_path / "parts.db"
    # Batches of 100 keys: the 120 parts are compared in two key ranges.
    settings = make_settings(source_url=f"sqlite:///{path}", tables_to_sync="parts", delete_reconcile_every=1,
                             batch_size=100)
    key_reads: list[str] = []
    real = reconcile.stream_keys

    def counting(conn, stmt, builder, batch_size):  # noqa: ANN001, ANN202
        key_reads.append(str(stmt))
        return real(conn, stmt, builder, batch_size)

    monkeypatch.setattr(reconcile, "stream_keys", counting)
    return path, settings, key_reads


def snapshot_keys(store) -> int:  # noqa: ANN001
    manifest, _ = read_manifest(store)
    return manifest.tables["parts"].rows


def test_equal_summaries_skip_reading_every_key(parts, store):
    path, settings, key_reads = parts
    make_parts(path)
    run_sync(settings)
    assert run_sync(settings)["status"] == "unchanged"
    assert key_reads == []  # count and key sum agreed: no key crossed the driver


def test_a_delete_changes_the_summary_and_every_key_is_compared(parts, store):
    path, settings, key_reads = parts
    make_parts(path)
    run_sync(settings)
    with sqlite3.connect(path) as con:
        con.execute("DELETE FROM parts WHERE part_id IN (60, 100, 101, 120)")
        # Stamped below the lookback, so never merged: the count matches again, the key sum does not.
        con.executemany("INSERT INTO parts VALUES (?, 'old stamp', NULL, '2026-04-01 11:00:00')",
                        [(k,) for k in range(500, 504)])
    result = run_sync(settings)
    assert result["status"] == "published"
    assert len(key_reads) == 1 and "ORDER BY part_id" in key_reads[0]
    assert snapshot_keys(store) == 116


def test_without_a_summary_every_key_is_compared(parts, store):
    path, settings, key_reads = parts
    make_parts(path, first_key=BIG)
    run_sync(settings)
    with sqlite3.connect(path) as con:
        con.execute("DELETE FROM parts WHERE part_id IN (?, ?)", [BIG + 7, BIG + 119])
    assert run_sync(settings)["status"] == "published"
    assert len(key_reads) == 1
    assert snapshot_keys(store) == 118


def test_only_one_integer_key_is_summarised():
    def spec(*pk: tuple[str, str]) -> TableSpec:
        columns = tuple(SourceColumn(n, sa.Integer() if t == "BIGINT" else sa.String(), t) for n, t in pk)
        return TableSpec(target="t", schema=None, name="t", columns=columns, primary_key=tuple(n for n, _ in pk),
                         detection="timestamp")

    assert reconcile.summarised_key(spec(("id", "BIGINT"))) == "id"
    assert reconcile.summarised_key(spec(("code", "VARCHAR"))) is None
    assert reconcile.summarised_key(spec(("a", "BIGINT"), ("b", "BIGINT"))) is None


def test_sql_server_sums_the_key_as_bigint():
    columns = (SourceColumn("order", mssql.INTEGER(), "BIGINT"),)
    spec = TableSpec(target="user", schema="sales", name="user", columns=columns, primary_key=("order",),
                     detection="rowversion")
    sql = str(reconcile.select_key_summary(spec, "order", "mssql").compile(dialect=mssql.dialect()))
    assert " ".join(sql.split()) == "SELECT count(*) AS count_1, sum(CAST([order] AS BIGINT)) AS sum_1 FROM sales.[user]"


def keys_batch(*keys: int, as_text: bool = False) -> pa.RecordBatch:
    values = [str(k) for k in keys] if as_text else list(keys)
    return pa.RecordBatch.from_pydict({"sku_no": pa.array(values, pa.string() if as_text else pa.int64())})


@pytest.fixture
def skus(tmp_path: Path) -> WorkingDatabase:
    db = WorkingDatabase(tmp_path / "skus.duckdb")
    db.conn.execute("CREATE TABLE skus (sku_no BIGINT, label VARCHAR)")
    db.conn.execute("INSERT INTO skus SELECT range, NULL FROM range(-5, 40)")
    yield db
    db.close()


def remaining(db: WorkingDatabase) -> list[int]:
    return [r[0] for r in db.conn.execute("SELECT sku_no FROM skus ORDER BY 1").fetchall()]


def test_sorted_key_batches_delete_below_between_and_above_them(skus):
    # Batches (…, 3], (3, 1000] and the tail above 1000: the table's -5..-3 lie below the first
    # batch's smallest key, 4..9 and 30..39 in gaps, nothing of it above the last batch.
    deleted = reconcile.delete_missing_sorted_keys(skus, "skus", "sku_no", [
        keys_batch(-2, -1, 0, 1, 2, 3), keys_batch(10, 11, 12, as_text=True), keys_batch(), keys_batch(13, 20, 1000)])
    assert remaining(skus) == [-2, -1, 0, 1, 2, 3, 10, 11, 12, 13, 20]
    assert deleted == 45 - 11


def test_no_source_keys_delete_every_row(skus):
    assert reconcile.delete_missing_sorted_keys(skus, "skus", "sku_no", []) == 45
    assert remaining(skus) == []


def test_keys_out_of_order_fail_and_delete_nothing(skus):
    with pytest.raises(ValueError, match="ascending"):
        reconcile.delete_missing_sorted_keys(skus, "skus", "sku_no", [keys_batch(1, 2, 30), keys_batch(5, 31)])
    assert remaining(skus) == list(range(-5, 40))
