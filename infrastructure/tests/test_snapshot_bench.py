"""Smoke tests of bench/snapshot_bench.py's pure helpers: request classification, cost
extrapolation and the source changes it applies (the benchmark itself is run by hand)."""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "snapshot_bench.py"


@pytest.fixture(scope="module")
def bench():  # noqa: ANN201
    spec = importlib.util.spec_from_file_location("snapshot_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["snapshot_bench"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("snapshot_bench", None)


def test_parse_size(bench) -> None:  # noqa: ANN001
    assert bench.parse_size("256KiB") == 256 * 1024
    assert bench.parse_size("1MiB") == 1 << 20
    assert bench.parse_size("4096") == 4096
    assert bench.size_label(256 * 1024) == "256KiB" and bench.size_label(1 << 20) == "1MiB"
    with pytest.raises(ValueError):
        bench.parse_size("1 parsec")


@pytest.mark.parametrize(("method", "path", "query", "headers", "expected"), [
    ("PUT", "/b/snap/chunks/ab12", "", {}, ("PutObject", "chunk")),
    ("GET", "/b/snap/chunks/ab12", "", {}, ("GetObject", "chunk")),
    ("PUT", "/b/snap/history/analytics_x.db", "partNumber=3&uploadId=u", {}, ("UploadPart", "history")),
    ("POST", "/b/snap/history/analytics_x.db", "uploads", {}, ("CreateMultipartUpload", "history")),
    ("POST", "/b/snap/history/analytics_x.db", "uploadId=u", {}, ("CompleteMultipartUpload", "history")),
    ("GET", "/b/snap/history/analytics_x.db", "", {"range": "bytes=0-9"}, ("GetObject(range)", "history")),
    ("HEAD", "/b/snap/history/analytics_x.db", "", {}, ("HeadObject", "history")),
    ("PUT", "/b/snap/history/analytics_x.index.json", "", {}, ("PutObject", "index")),
    ("PUT", "/b/snap/current/manifest.json", "", {}, ("PutObject", "manifest")),
    ("PUT", "/b/snap/runs/2026-11-30/r.json", "", {}, ("PutObject", "run")),
    ("GET", "/b", "list-type=2&prefix=snap%2Fhistory%2F", {}, ("ListObjectsV2", "history")),
    ("GET", "/b", "list-type=2&prefix=snap%2Fchunks%2F", {}, ("ListObjectsV2", "chunk")),
    ("POST", "/b", "delete", {}, ("DeleteObjects", "bucket")),
])
def test_classify_request(bench, method, path, query, headers, expected) -> None:  # noqa: ANN001
    assert bench.classify_request(method, path, query, headers) == expected


def test_price_tiers(bench) -> None:  # noqa: ANN001
    assert [bench.price_tier(op) for op in ("PutObject", "UploadPart", "ListObjectsV2", "CompleteMultipartUpload",
                                            "GetObject", "GetObject(range)", "HeadObject", "DeleteObjects")] \
        == ["put", "put", "put", "put", "get", "get", "get", "free"]


def test_scale_sync_grows_only_what_scales_with_the_file(bench) -> None:  # noqa: ANN001
    ops = {"PutObject chunk": {"count": 10, "bytes_in": 1000, "bytes_out": 0, "seconds": 0},
           "PutObject index": {"count": 1, "bytes_in": 50, "bytes_out": 0, "seconds": 0},
           "PutObject manifest": {"count": 1, "bytes_in": 7, "bytes_out": 0, "seconds": 0},
           "GetObject manifest": {"count": 1, "bytes_in": 0, "bytes_out": 7, "seconds": 0},
           "DeleteObjects bucket": {"count": 1, "bytes_in": 3, "bytes_out": 0, "seconds": 0}}
    scaled = bench.scale_sync(ops, 10)
    assert scaled["put"] == 100 + 1 + 1  # chunks x10; one index, one manifest
    assert scaled["get"] == 1
    assert scaled["bytes_in"] == 10_000 + 500 + 7 + 3  # the index's bytes grow with its chunk count
    assert scaled["bytes_out"] == 7


def test_daily_cost(bench) -> None:  # noqa: ANN001
    gib = bench.GIB
    per_sync = {"etl": {"put": 1000, "get": 0, "bytes_in": gib}, "api": {"put": 0, "get": 1000, "bytes_out": gib}}
    cost = bench.daily_cost(per_sync, syncs_per_day=10, hosts=2, polls_per_day_per_host=500, poll_bytes=0,
                            prices={"put_per_1k": 0.005, "get_per_1k": 0.0004, "egress_per_gib": 0.09})
    assert cost["uploaded_gib"] == 10 and cost["downloaded_gib"] == 20
    assert cost["put_requests"] == 10_000 and cost["get_requests"] == 20_000 + 1000
    assert cost["egress_usd"] == pytest.approx(1.8)
    assert cost["requests_usd"] == pytest.approx(0.05 + 21 * 0.0004)


@pytest.mark.parametrize("mode", ["update", "append"])
def test_mutate_source_modes(bench, tmp_path: Path, mode: str) -> None:  # noqa: ANN001
    from analytics_etl.demo_source import create_demo_source

    path = tmp_path / "src.db"
    counts = create_demo_source(path, rows=2000)
    changes = bench.mutate_source(path, mode, fraction=0.05, seed=1)
    with sqlite3.connect(path) as conn:
        after = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in counts}
        stamped = sum(conn.execute(f"SELECT count(*) FROM {t} WHERE updated_at > '2025-01-01 00:00:00'").fetchone()[0]
                      for t in counts)
    assert changes["deleted"] == 0
    if mode == "update":
        assert after == counts and changes["inserted"] == 0
        assert changes["updated"] == stamped == sum(max(1, round(n * 0.05)) for n in counts.values())
    else:
        assert changes["updated"] == 0
        assert {t: after[t] - counts[t] for t in counts} == {t: max(1, round(n * 0.05)) for t, n in counts.items()}
        assert changes["inserted"] == stamped
