"""Small results fetched as tuples render exactly as the Arrow path renders them."""

from __future__ import annotations

from pathlib import Path

import duckdb
import orjson
import pytest

from analytics_api.query.executor import execute_query, execute_small
from analytics_api.query.serialize import _json_default, rows_as_dicts
from analytics_api.query.small_results import ShapeHints, is_plain
from analytics_api.query.watchdog import Watchdog
from analytics_api.snapshots.database import Snapshot
from analytics_api.snapshots.files import LocalCopy
from analytics_shared.assemble import FetchStats
from analytics_shared.chunks import LocalChunks
from analytics_shared.manifest import read_manifest
from analytics_shared.storage import LocalStore

PLAIN = [
    "SELECT * FROM orders ORDER BY id LIMIT 5",
    "SELECT * FROM customers ORDER BY id LIMIT 5",
    "SELECT * FROM products ORDER BY id LIMIT 5",
    "SELECT * FROM inventory ORDER BY id LIMIT 5",
    "SELECT * FROM transactions ORDER BY id LIMIT 5",
    "SELECT * FROM orders WHERE id = 17",
    "SELECT * FROM orders WHERE id = -1",  # no rows
    "SELECT status, sum(total) AS total, count(*) AS n, avg(total) AS mean FROM orders GROUP BY ALL ORDER BY 1",
    "SELECT sum(id) AS s, sum(id)::HUGEINT * 100000000000000000000 AS huge, max(id)::DECIMAL(38,0) AS d0 "
    "FROM orders",
    "SELECT 123456789012345678901234567890::DECIMAL(38,0) AS big, 1::DECIMAL(38,0) AS small FROM orders LIMIT 1",
    "SELECT 894.56::DECIMAL(10,2) AS price, 0.1::DECIMAL(5,3) AS tenth, -0.005::DECIMAL(4,3) AS neg FROM orders LIMIT 1",
    "SELECT 1.1::FLOAT AS f, 0.1::DOUBLE AS d, 'nan'::DOUBLE AS nan, 'inf'::DOUBLE AS inf, true AS b, "
    "255::UTINYINT AS u8, 18446744073709551615::UBIGINT AS u64, (-128)::TINYINT AS i8 FROM orders LIMIT 1",
    "SELECT TIMESTAMP '2026-01-02 03:04:05' AS whole, TIMESTAMP '2026-01-02 03:04:05.5' AS half, "
    "TIMESTAMP '1970-01-01 00:00:00.000001' AS tiny, DATE '0999-12-31' AS old, TIME '01:02:03.25' AS t, "
    "TIME '23:59:59' AS t2 FROM orders LIMIT 1",
    "SELECT 'ümlaut ✓ \"quoted\"' AS s, ''::VARCHAR AS empty, NULL AS n, NULL::DATE AS nd, "
    "'\\x00\\xff'::BLOB AS blob FROM orders LIMIT 1",
    "SELECT a.id, b.id, a.total FROM orders a JOIN orders b ON b.id = a.id + 1 ORDER BY a.id LIMIT 3",
    "SELECT id FROM orders ORDER BY id LIMIT 64",
]
LEFT_TO_ARROW = [
    "SELECT 'infinity'::DATE AS d FROM orders LIMIT 1",  # DuckDB's Python value is clamped to date.max
    "SELECT '-infinity'::TIMESTAMP AS ts FROM orders LIMIT 1",
    "SELECT TIME '24:00:00' AS t FROM orders LIMIT 1",  # not a Python time
    "SELECT id FROM orders ORDER BY id LIMIT 65",  # not small
]


@pytest.fixture(scope="module")
def snapshot(snapshot_file: Path, hardened: duckdb.DuckDBPyConnection, demo_template: Path,
             snapshot_schema: dict[str, dict[str, str]]) -> Snapshot:
    manifest, _ = read_manifest(LocalStore(demo_template / "store"))
    return Snapshot(manifest=manifest, local=LocalCopy(snapshot_file, LocalChunks(snapshot_file), FetchStats()),
                    conn=hardened, schema=snapshot_schema)


@pytest.fixture(scope="module")
def watchdog() -> Watchdog:
    return Watchdog()


def _json(data: list[dict]) -> bytes:
    # Bytes, not ==: 1 == 1.0 in Python, but "1" and "1.0" are different JSON.
    return orjson.dumps(data, default=_json_default, option=orjson.OPT_NON_STR_KEYS)


@pytest.mark.parametrize("sql", PLAIN)
def test_small_path_renders_what_the_arrow_path_renders(snapshot: Snapshot, watchdog: Watchdog, sql: str) -> None:
    arrow = execute_query(snapshot, sql, None, max_rows=1000, timeout=30, watchdog=watchdog)
    small = execute_small(snapshot, sql, None, max_rows=1000, timeout=30, watchdog=watchdog)
    assert small is not None
    assert _json(small.data) == _json(rows_as_dicts(arrow.table))
    assert small.columns == arrow.columns
    assert small.truncated is arrow.truncated is False


@pytest.mark.parametrize("sql", LEFT_TO_ARROW)
def test_values_python_cannot_render_faithfully_are_left_to_arrow(snapshot: Snapshot, watchdog: Watchdog,
                                                                 sql: str) -> None:
    assert execute_small(snapshot, sql, None, max_rows=1000, timeout=30, watchdog=watchdog) is None
    arrow = execute_query(snapshot, sql, None, max_rows=1000, timeout=30, watchdog=watchdog)
    assert arrow.table.num_rows >= 1


def test_small_path_caps_rows_and_binds_parameters(snapshot: Snapshot, watchdog: Watchdog) -> None:
    small = execute_small(snapshot, "SELECT id FROM orders WHERE id <= $1 ORDER BY id", [10], max_rows=3,
                          timeout=30, watchdog=watchdog)
    assert small is not None and small.truncated is True
    assert small.data == [{"id": 1}, {"id": 2}, {"id": 3}]


def test_small_path_raises_the_query_s_own_errors(snapshot: Snapshot, watchdog: Watchdog) -> None:
    from analytics_api.errors import QueryRejected

    with pytest.raises(QueryRejected, match="query failed"):
        execute_small(snapshot, "SELECT no_such_column FROM orders", None, max_rows=10, timeout=30, watchdog=watchdog)
    assert watchdog.pending() == 0


def test_small_path_keeps_the_time_limit(snapshot: Snapshot, watchdog: Watchdog) -> None:
    from analytics_api.errors import QueryTimeout

    slow = ("SELECT count(*) AS n FROM transactions a, transactions b, transactions c "
            "WHERE a.amount + b.amount > c.amount")
    with pytest.raises(QueryTimeout, match="time limit"):
        execute_small(snapshot, slow, None, max_rows=10, timeout=0.05, watchdog=watchdog)
    assert watchdog.pending() == 0


def test_hints_remember_only_small_plain_shapes() -> None:
    hints = ShapeHints(capacity=2)
    hints.record("a", rows=1, types=["BIGINT", "DECIMAL(12,2)", "TIMESTAMP"])
    hints.record("b", rows=65, types=["BIGINT"])
    assert hints.expects_small("a") and not hints.expects_small("b")
    hints.record("c", rows=1, types=["BIGINT", "INTERVAL"])
    assert not hints.expects_small("c")
    assert not hints.expects_small("a")  # evicted: capacity 2
    for kind in ("TIMESTAMP WITH TIME ZONE", "INTERVAL", "INTEGER[]", "UUID", "STRUCT(a INTEGER)", "TIMESTAMP_NS"):
        assert not is_plain(kind), kind
    hints.record("d", rows=1, types=["BIGINT"])
    hints.forget("d")
    assert not hints.expects_small("d")
