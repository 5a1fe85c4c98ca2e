"""Tests for the demo SQLite source generator."""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime, timezone

import pytest

from analytics_etl.demo_source import DEMO_TABLES, create_demo_source, mutate_demo_source

TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$")


def count_rows(path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_row_counts_sum_to_requested_total(tmp_path):
    path = tmp_path / "src.db"
    counts = create_demo_source(path, rows=10_000)

    assert set(counts) == set(DEMO_TABLES)
    assert sum(counts.values()) == 10_000
    for table, expected in counts.items():
        assert count_rows(path, table) == expected
    assert counts["orders"] > counts["customers"] > counts["products"]
    assert counts["transactions"] > counts["inventory"]


def test_tiny_budget_gives_every_table_a_row(tmp_path):
    counts = create_demo_source(tmp_path / "tiny.db", rows=5)
    assert counts == {table: 1 for table in DEMO_TABLES}
    with pytest.raises(ValueError):
        create_demo_source(tmp_path / "too_small.db", rows=4)


def test_tables_have_key_and_audit_columns(tmp_path):
    path = tmp_path / "src.db"
    create_demo_source(path, rows=2_000)

    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert set(DEMO_TABLES) <= tables
        for table in DEMO_TABLES:
            info = {r[1]: r for r in conn.execute(f"PRAGMA table_info({table})")}
            assert info["id"][2] == "INTEGER" and info["id"][5] == 1  # primary key
            assert info["created_at"][2] == "DATETIME" and info["created_at"][3] == 1  # NOT NULL
            assert info["updated_at"][2] == "DATETIME" and info["updated_at"][3] == 1
            indexed = {
                r[2]
                for idx in conn.execute(f"PRAGMA index_list({table})")
                for r in conn.execute(f"PRAGMA index_info({idx[1]})")
            }
            assert "updated_at" in indexed
            created, updated = conn.execute(
                f"SELECT created_at, updated_at FROM {table} ORDER BY id LIMIT 1"
            ).fetchone()
            assert TIMESTAMP_RE.match(created) and TIMESTAMP_RE.match(updated)
            assert updated >= created
            bad = conn.execute(f"SELECT COUNT(*) FROM {table} WHERE updated_at < created_at").fetchone()[0]
            assert bad == 0


def test_generation_is_deterministic_and_overwrites(tmp_path):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    create_demo_source(a, rows=1_000, seed=3)
    create_demo_source(b, rows=1_000, seed=3)
    create_demo_source(b, rows=1_000, seed=3)  # overwrite must not append
    with sqlite3.connect(a) as ca, sqlite3.connect(b) as cb:
        for table in DEMO_TABLES:
            assert ca.execute(f"SELECT * FROM {table} ORDER BY id").fetchall() == cb.execute(
                f"SELECT * FROM {table} ORDER BY id"
            ).fetchall()


def test_unicode_survives_round_trip(tmp_path):
    path = tmp_path / "src.db"
    create_demo_source(path, rows=2_000)
    with sqlite3.connect(path) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM products")}
        customers = [r[0] for r in conn.execute("SELECT full_name FROM customers")]
    assert "Café crème" in names
    assert "東京 tea" in names
    assert any(any(ord(ch) > 127 for ch in name) for name in customers)


def test_nullable_columns_contain_nulls(tmp_path):
    path = tmp_path / "src.db"
    create_demo_source(path, rows=5_000)
    with sqlite3.connect(path) as conn:
        for table, column in [
            ("products", "category"),
            ("customers", "country"),
            ("inventory", "last_counted_at"),
            ("orders", "shipped_at"),
            ("transactions", "reference"),
        ]:
            nulls = conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {column} IS NULL").fetchone()[0]
            non_nulls = conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {column} IS NOT NULL").fetchone()[0]
            assert nulls > 0, f"{table}.{column} has no NULLs"
            assert non_nulls > 0, f"{table}.{column} is all NULL"


def test_mutate_updates_inserts_and_deletes(tmp_path):
    path = tmp_path / "src.db"
    before = create_demo_source(path, rows=20_000)
    with sqlite3.connect(path) as conn:
        max_ids = {t: conn.execute(f"SELECT MAX(id) FROM {t}").fetchone()[0] for t in DEMO_TABLES}

    now = datetime(2030, 6, 1, 12, 30, 45, 123456)
    result = mutate_demo_source(path, fraction=0.02, seed=11, now=now)

    assert result["updated"] > 0 and result["inserted"] > 0 and result["deleted"] > 0
    stamp = "2030-06-01 12:30:45.123456"
    with sqlite3.connect(path) as conn:
        stamped = {
            t: conn.execute(f"SELECT COUNT(*) FROM {t} WHERE updated_at = ?", (stamp,)).fetchone()[0]
            for t in DEMO_TABLES
        }
        # Every table gets some changes, and only mutated rows carry the new stamp.
        assert all(n > 0 for n in stamped.values())
        assert sum(stamped.values()) == result["updated"] + result["inserted"]
        # Roughly `fraction` of each table is touched, not the whole table.
        for table in DEMO_TABLES:
            assert stamped[table] <= before[table] * 0.05 + 2

        new_rows = {
            t: conn.execute(f"SELECT COUNT(*) FROM {t} WHERE id > ?", (max_ids[t],)).fetchone()[0]
            for t in DEMO_TABLES
        }
        assert sum(new_rows.values()) == result["inserted"]
        assert all(n > 0 for n in new_rows.values())
        new_created = conn.execute(
            "SELECT created_at FROM orders WHERE id > ?", (max_ids["orders"],)
        ).fetchall()
        assert all(row[0] == stamp for row in new_created)

        after = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in DEMO_TABLES}
    assert sum(after.values()) == sum(before.values()) + result["inserted"] - result["deleted"]
    for table in ("orders", "transactions"):
        assert after[table] < before[table] + new_rows[table]  # some old rows deleted
    for table in ("products", "customers", "inventory"):
        assert after[table] == before[table] + new_rows[table]  # no deletes outside orders/transactions


def test_mutate_default_now_is_current_utc(tmp_path):
    path = tmp_path / "src.db"
    create_demo_source(path, rows=1_000)
    start = datetime.now(timezone.utc).replace(tzinfo=None)
    result = mutate_demo_source(path, seed=1)
    with sqlite3.connect(path) as conn:
        recent = conn.execute(
            "SELECT COUNT(*) FROM orders WHERE updated_at >= ?", (start.isoformat(" ", "microseconds"),)
        ).fetchone()[0]
        latest = conn.execute("SELECT MAX(updated_at) FROM customers").fetchone()[0]
    assert result["updated"] > 0
    assert recent > 0
    assert TIMESTAMP_RE.match(latest)
    assert latest >= start.isoformat(" ", "microseconds")


def test_mutate_accepts_aware_now(tmp_path):
    path = tmp_path / "src.db"
    create_demo_source(path, rows=1_000)
    now = datetime(2031, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
    mutate_demo_source(path, seed=2, now=now)
    with sqlite3.connect(path) as conn:
        hits = conn.execute(
            "SELECT COUNT(*) FROM products WHERE updated_at = '2031-01-02 03:04:05.000006'"
        ).fetchone()[0]
    assert hits > 0
