"""End to end on a real SQLite source and a local store: the snapshot equals the source."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from analytics_etl.demo_source import DEMO_TABLES, mutate_demo_source
from analytics_etl.pipeline import run_sync
from analytics_shared.manifest import HISTORY_PREFIX, RUNS_PREFIX, read_manifest
from analytics_shared.chunks import CHUNKS_PREFIX, chunk_key, read_index
from analytics_shared.snapshot_files import fetch_snapshot



def test_first_sync_publishes_exact_copy_with_manifest(make_settings, store, tmp_path, source_path, assert_snapshot_matches):
    result = run_sync(make_settings())
    assert result["status"] == "published"
    manifest, _ = read_manifest(store)
    assert manifest.format_version == 2 and manifest.index_key.startswith(HISTORY_PREFIX)
    assert set(manifest.tables) == set(DEMO_TABLES)
    assert all(t.change_detection == "timestamp" and t.status == "ok" for t in manifest.tables.values())
    assert manifest.tables["orders"].primary_key == ["id"]
    assert_snapshot_matches()
    assert store.list(RUNS_PREFIX), "a run record is written for a published sync"
    # One version: its index, and every chunk it lists (a snapshot has no WAL beside it).
    assert [o.key for o in store.list(HISTORY_PREFIX)] == [manifest.index_key]
    index = read_index(store, manifest.index_key)
    assert {o.key for o in store.list(CHUNKS_PREFIX)} == {chunk_key(d) for d in index.chunks}
    assert result["uploaded_objects"] == len(set(index.chunks)) + 1


def test_format_1_publishes_whole_files_for_old_readers(make_settings, store, source_path, assert_snapshot_matches):
    settings = make_settings(manifest_format=1)
    result = run_sync(settings)
    manifest, _ = read_manifest(store)
    assert manifest.format_version == 1 and manifest.database_key.endswith(".db")
    assert result["uploaded_objects"] == 1 and result["uploaded_bytes"] == manifest.size_bytes
    assert not store.list(CHUNKS_PREFIX)
    mutate_demo_source(source_path, fraction=0.05, seed=8)
    assert run_sync(settings)["status"] == "published"
    assert_snapshot_matches()
    # Switching to format 2 later uploads every chunk once, then only what changes.
    first_chunked = run_sync(make_settings())
    assert first_chunked["status"] == "unchanged"  # the data did not change: nothing to publish
    mutate_demo_source(source_path, fraction=0.01, seed=9)
    chunked = run_sync(make_settings())
    manifest, _ = read_manifest(store)
    assert manifest.format_version == 2
    assert chunked["uploaded_objects"] == len(set(read_index(store, manifest.index_key).chunks)) + 1
    assert_snapshot_matches()


def test_types_unicode_and_nulls_survive(make_settings, store, tmp_path):
    run_sync(make_settings())
    manifest, _ = read_manifest(store)
    local = tmp_path / "snap.db"
    fetch_snapshot(store, manifest, local)
    with duckdb.connect(str(local), read_only=True) as con:
        types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_name = 'products'").fetchall())
        names = [r[0] for r in con.execute("SELECT name FROM products ORDER BY id LIMIT 2").fetchall()]
        fractional = con.execute("SELECT count(*) FROM orders WHERE microsecond(updated_at) % 1000000 <> 0").fetchone()[0]
    assert types["updated_at"] == "TIMESTAMP" and types["price"].startswith("DECIMAL(12,2)")
    assert types["id"] == "BIGINT"
    assert names == ["Café crème", "東京 tea"]
    assert fractional > 0
    assert {c.name: c.type for c in manifest.tables["products"].columns}["price"] == "DECIMAL(12,2)"


def test_incremental_applies_updates_inserts_and_deletes(make_settings, store, tmp_path, source_path, assert_snapshot_matches):
    settings = make_settings()
    run_sync(settings)
    first, _ = read_manifest(store)
    counts = mutate_demo_source(source_path, fraction=0.05, seed=3)
    assert counts["updated"] and counts["inserted"] and counts["deleted"]
    result = run_sync(settings)
    assert result["status"] == "published"
    second, _ = read_manifest(store)
    assert second.previous_version == first.version
    assert second.tables["orders"].watermark > first.tables["orders"].watermark
    assert_snapshot_matches()


def test_quiet_source_publishes_nothing_new(make_settings, store):
    settings = make_settings()
    run_sync(settings)
    before, etag = read_manifest(store)
    assert run_sync(settings)["status"] == "unchanged"
    after, etag_after = read_manifest(store)
    assert (after.version, etag_after) == (before.version, etag)
    assert len(store.list(HISTORY_PREFIX)) == 1


def test_late_committed_row_inside_lag_is_picked_up(make_settings, store, tmp_path, source_path, assert_snapshot_matches):
    settings = make_settings(cursor_lag_seconds=3600)
    run_sync(settings)
    manifest, _ = read_manifest(store)
    watermark = datetime.fromisoformat(manifest.tables["orders"].watermark)
    late = (watermark - timedelta(minutes=10)).isoformat(" ", timespec="microseconds")
    with sqlite3.connect(source_path) as con:
        con.execute("UPDATE orders SET status = 'late-commit', updated_at = ? WHERE id = 5", [late])
    assert run_sync(settings)["status"] == "published"
    assert_snapshot_matches(["orders"])


def test_schema_drift_added_column_reloads_table(make_settings, store, tmp_path, source_path, assert_snapshot_matches):
    settings = make_settings()
    run_sync(settings)
    with sqlite3.connect(source_path) as con:
        con.execute("ALTER TABLE customers ADD COLUMN vip BOOLEAN DEFAULT 1")
    assert run_sync(settings)["status"] == "published"
    manifest, _ = read_manifest(store)
    assert "vip" in [c.name for c in manifest.tables["customers"].columns]
    assert_snapshot_matches(["customers"])


def test_vanished_table_goes_stale_while_others_publish(make_settings, store, tmp_path, source_path, assert_snapshot_matches, published_rows):
    settings = make_settings()
    run_sync(settings)
    before = published_rows("products")
    with sqlite3.connect(source_path) as con:
        con.execute("DROP TABLE products")
        con.execute("UPDATE orders SET status = 'changed', updated_at = ? WHERE id = 1",
                    [datetime.now(UTC).replace(tzinfo=None).isoformat(" ")])
    result = run_sync(settings)
    assert result["status"] == "published_with_stale_tables"
    manifest, _ = read_manifest(store)
    assert manifest.tables["products"].status == "stale"
    assert "not found" in manifest.tables["products"].last_error
    assert published_rows("products") == before
    assert_snapshot_matches(["orders"])


def test_missing_local_state_restores_from_published_snapshot(make_settings, store, tmp_path, source_path, assert_snapshot_matches):
    settings = make_settings()
    run_sync(settings)
    (settings.etl_state_dir / "snapshot.duckdb").unlink()
    mutate_demo_source(source_path, fraction=0.02, seed=5)
    result = run_sync(settings)
    assert result["status"] == "published"
    assert_snapshot_matches()


def test_corrupt_local_state_is_repaired_from_the_store(make_settings, store, tmp_path, source_path, assert_snapshot_matches):
    settings = make_settings()
    run_sync(settings)
    (settings.etl_state_dir / "snapshot.duckdb").write_bytes(b"this is not a duckdb file" * 100)
    mutate_demo_source(source_path, fraction=0.02, seed=6)
    assert run_sync(settings)["status"] == "published"
    assert_snapshot_matches()


def test_damage_the_sidecar_cannot_see_is_repaired_when_duckdb_refuses_the_file(
        make_settings, store, source_path, assert_snapshot_matches):
    """Same size and mtime, a broken header: only DuckDB notices; the file is repaired by hash."""
    settings = make_settings()
    run_sync(settings)
    path = settings.etl_state_dir / "snapshot.duckdb"
    stat = path.stat()
    with path.open("r+b") as fh:
        fh.write(b"\xff" * 4096)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    mutate_demo_source(source_path, fraction=0.02, seed=7)
    assert run_sync(settings)["status"] == "published"
    assert_snapshot_matches()


def test_retention_keeps_newest_and_the_published_one(make_settings, store, source_path):
    settings = make_settings(history_keep=2, gc_grace_seconds=0)
    for i in range(4):
        with sqlite3.connect(source_path) as con:
            con.execute("UPDATE orders SET status = ?, updated_at = ? WHERE id = 1",
                        [f"s{i}", datetime.now(UTC).replace(tzinfo=None).isoformat(" ")])
        assert run_sync(settings)["status"] == "published"
    manifest, _ = read_manifest(store)
    keys = [o.key for o in store.list(HISTORY_PREFIX)]
    assert len(keys) == 2 and manifest.index_key in keys
    referenced = {d for key in keys for d in read_index(store, key).chunks}
    assert {o.key for o in store.list(CHUNKS_PREFIX)} == {chunk_key(d) for d in referenced}


def test_views_file_is_created_in_each_snapshot(make_settings, store, tmp_path):
    views = tmp_path / "views.sql"
    views.write_text("CREATE VIEW v_inventory_summary AS SELECT count(*) AS total_items, "
                     "sum(quantity) AS total_quantity FROM inventory;")
    run_sync(make_settings(views_path=views))
    manifest, _ = read_manifest(store)
    local = tmp_path / "v.db"
    fetch_snapshot(store, manifest, local)
    with duckdb.connect(str(local), read_only=True) as con:
        total = con.execute("SELECT total_items FROM v_inventory_summary").fetchone()[0]
        assert total == con.execute("SELECT count(*) FROM inventory").fetchone()[0]


@pytest.mark.parametrize("detection", ["full"])
def test_forced_full_detection_reloads(make_settings, store, tmp_path, source_path, detection, assert_snapshot_matches):
    settings = make_settings(change_detection=detection)
    run_sync(settings)
    mutate_demo_source(source_path, fraction=0.05, seed=9)
    assert run_sync(settings)["status"] == "published"
    manifest, _ = read_manifest(store)
    assert {t.change_detection for t in manifest.tables.values()} == {"full"}
    assert_snapshot_matches()


def test_switching_detection_mode_is_published_once_then_incremental(make_settings, store):
    run_sync(make_settings(change_detection="full"))
    settings = make_settings()  # back to auto: timestamp for the demo tables
    assert run_sync(settings)["status"] == "published"  # same rows, but the new mode and cursor
    manifest, _ = read_manifest(store)
    assert {t.change_detection for t in manifest.tables.values()} == {"timestamp"}
    assert all(t.watermark for t in manifest.tables.values())
    assert run_sync(settings)["status"] == "unchanged"  # and from now on incremental, not reloads


def _published_file(store, tmp_path, name: str):  # noqa: ANN001, ANN202
    manifest, _ = read_manifest(store)
    local = tmp_path / f"{name}-{manifest.version}.db"
    fetch_snapshot(store, manifest, local)
    return manifest, local


def test_many_incremental_runs_build_on_copies_and_still_equal_the_source(
        make_settings, store, tmp_path, source_path, assert_snapshot_matches):
    views = tmp_path / "views.sql"
    views.write_text("CREATE VIEW v_orders AS SELECT count(*) AS n FROM orders;")
    settings = make_settings(views_path=views)
    run_sync(settings)
    for seed in range(8):
        mutate_demo_source(source_path, fraction=0.03, seed=100 + seed)
        assert run_sync(settings)["status"] == "published"
        assert_snapshot_matches()
    manifest, local = _published_file(store, tmp_path, "lineage")
    assert not local.with_name(local.name + ".wal").exists()
    with duckdb.connect(str(local), read_only=True) as con:
        # Only what is published: the synced tables and the views, no ETL state of any kind.
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        views_ = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
        assert tables == set(DEMO_TABLES) and views_ == {"v_orders"}
        assert con.execute("SELECT n FROM v_orders").fetchone()[0] == manifest.tables["orders"].rows


def test_snapshot_that_grew_past_the_threshold_is_rewritten_compactly(
        make_settings, store, tmp_path, source_path, monkeypatch, assert_snapshot_matches):
    from analytics_etl import build
    from analytics_etl.local_snapshot import LocalSnapshot

    settings = make_settings()
    run_sync(settings)
    first = LocalSnapshot(settings.etl_state_dir, chunk_size=settings.chunk_size).read_state()
    assert first.compact_size == first.size, "a first load is the compact reference"
    mutate_demo_source(source_path, fraction=0.05, seed=61)
    run_sync(settings)
    copied = LocalSnapshot(settings.etl_state_dir, chunk_size=settings.chunk_size).read_state()
    assert copied.compact_size == first.compact_size, "an ordinary run publishes the grown copy"

    monkeypatch.setattr(build, "COMPACT_GROWTH", 0.5)  # any size is now past the threshold
    mutate_demo_source(source_path, fraction=0.05, seed=62)
    assert run_sync(settings)["status"] == "published"
    compacted = LocalSnapshot(settings.etl_state_dir, chunk_size=settings.chunk_size).read_state()
    manifest, _ = read_manifest(store)
    assert compacted.compact_size == compacted.size == manifest.size_bytes
    assert_snapshot_matches()


def test_table_removed_from_config_leaves_the_snapshot(make_settings, store, tmp_path, source_path):
    run_sync(make_settings())
    mutate_demo_source(source_path, fraction=0.05, seed=63)
    run_sync(make_settings(tables_to_sync="inventory,products,orders,transactions"))
    _, local = _published_file(store, tmp_path, "removed")
    with duckdb.connect(str(local), read_only=True) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert tables == {"inventory", "products", "orders", "transactions"}
