"""/health, /ready and /metrics over real HTTP, fed by real syncs."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request

import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from analytics_etl.demo_source import mutate_demo_source
from analytics_etl.http_server import start_http_server
from analytics_etl.metrics import EtlMetrics
from analytics_etl.monitor import Monitor
from analytics_etl.scheduler import sync_with_retries
from analytics_etl.status import WorkerStatus


def get(port: int, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def monitor(make_settings):  # noqa: ANN001, ANN201
    monitor = Monitor(make_settings(etl_http_port=0))
    alive = threading.Event()
    monitor.start(scheduler_alive=alive.is_set)
    monitor.alive = alive
    yield monitor
    monitor.stop()


def test_health_ready_and_metrics_follow_the_syncs(monitor, make_settings, source_path):
    port = monitor.http.server_address[1]
    assert get(port, "/health")[0] == 503, "the scheduler is not running yet"
    monitor.alive.set()
    assert get(port, "/health")[:2] == (200, "application/json")
    code, _, body = get(port, "/ready")
    assert code == 503 and json.loads(body)["last_success_at"] is None

    settings = make_settings()
    first = sync_with_retries(settings, threading.Event(), monitor=monitor)
    mutate_demo_source(source_path, fraction=0.05, seed=3)
    second = sync_with_retries(settings, threading.Event(), monitor=monitor)
    assert (first["status"], second["status"]) == ("published", "published")

    code, _, body = get(port, "/ready")
    ready = json.loads(body)
    assert code == 200 and ready["ready"] and ready["stale_tables"] == [] and ready["last_error"] is None
    code, content_type, text = get(port, "/metrics")
    assert code == 200 and content_type.startswith("text/plain")
    values = samples(text)
    assert values[("analytics_etl_sync_duration_seconds_count", (("status", "published"),))] == 2
    for table in first["tables"]:
        read = first["tables"][table]["read"] + second["tables"][table]["read"]
        changed = first["tables"][table]["changed"] + second["tables"][table]["changed"]
        assert values[("analytics_etl_table_rows_read_total", (("table", table),))] == read > 0
        assert values[("analytics_etl_table_rows_changed_total", (("table", table),))] == changed
        assert values[("analytics_etl_table_rows", (("table", table),))] == second["tables"][table]["rows"]
        assert 0 <= values[("analytics_etl_table_staleness_seconds", (("table", table),))] < 600
    # The first run reads whole tables, the second only the changes (deletes count as changed, not read).
    assert 0 < second["tables"]["orders"]["read"] < first["tables"]["orders"]["read"] == 1199
    assert values[("analytics_etl_uploaded_bytes_total", ())] == first["uploaded_bytes"] + second["uploaded_bytes"]
    assert values[("analytics_etl_last_success_timestamp_seconds", ())] == monitor.status.last_success_at
    assert ("process_resident_memory_bytes", ()) in values
    assert get(port, "/nope")[0] == 404


def test_failures_are_counted_by_table_and_error_class(monitor, make_settings, source_path):
    settings = make_settings(max_retries=0)
    sync_with_retries(settings, threading.Event(), monitor=monitor)
    import sqlite3

    with sqlite3.connect(source_path) as con:
        con.execute("DROP TABLE products")
    assert sync_with_retries(settings, threading.Event(), monitor=monitor)["status"] == "published_with_stale_tables"
    source_path.write_bytes(b"not a database " * 1000)
    assert sync_with_retries(settings, threading.Event(), monitor=monitor) is None
    values = samples(get(monitor.http.server_address[1], "/metrics")[2])
    assert values[("analytics_etl_failures_total", (("error_class", "source_error"), ("table", "products")))] == 1
    assert values[("analytics_etl_failures_total", (("error_class", "source_error"), ("table", "")))] == 1
    assert values[("analytics_etl_sync_duration_seconds_count", (("status", "failed"),))] == 1
    code, _, body = get(monitor.http.server_address[1], "/ready")
    assert code == 200, "the last good sync is recent: readers are still current enough"
    assert json.loads(body)["last_error"].startswith("source ")


def test_ready_turns_503_once_the_last_good_sync_is_too_old(tmp_path):
    now = [1_800_000_000.0]
    status = WorkerStatus(tmp_path, max_age_seconds=300, clock=lambda: now[0])
    server = start_http_server(0, status, EtlMetrics(status), host="127.0.0.1")
    try:
        status.record_success({"status": "unchanged", "tables": {"orders": {"rows": 1}}, "errors": {}})
        assert get(server.server_address[1], "/ready")[0] == 200
        now[0] += 301
        code, _, body = get(server.server_address[1], "/ready")
        assert code == 503 and json.loads(body)["age_seconds"] == 301
        staleness = samples(get(server.server_address[1], "/metrics")[2])
        assert staleness[("analytics_etl_table_staleness_seconds", (("table", "orders"),))] == 301
    finally:
        server.shutdown()
        server.server_close()


def test_a_taken_port_is_one_clear_error_and_no_server(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status = WorkerStatus(tmp_path, max_age_seconds=300)
        with structlog.testing.capture_logs() as logs:
            assert start_http_server(port, status, EtlMetrics(status), host="127.0.0.1") is None
    [error] = [e for e in logs if e["log_level"] == "error"]
    assert error["event"] == "http.unavailable" and error["port"] == port
    assert "Address already in use" in error["error"]
