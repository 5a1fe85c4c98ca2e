"""The console script, run as a real process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from analytics_etl.demo_source import mutate_demo_source

BIN = Path(sys.executable).parent / "analytics-etl"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MSSQL_", "SOURCE_", "STORAGE_", "S3_"))}
    base.update(SOURCE_URL=f"sqlite:///{tmp_path / 'src.db'}", STORAGE_URL=f"file://{tmp_path / 'store'}",
                ETL_STATE_DIR=str(tmp_path / "state"), SYNC_INTERVAL_SECONDS="1")
    return base


def etl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True, timeout=120)


def test_demo_source_sync_status_and_rollback(env, tmp_path):
    created = etl(env, "demo-source", str(tmp_path / "src.db"), "--rows", "500")
    assert created.returncode == 0 and sum(json.loads(created.stdout).values()) == 500
    first = etl(env, "sync")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["status"] == "published"
    # Every log line is one JSON object carrying the run id.
    lines = [json.loads(line) for line in first.stderr.splitlines() if line.strip()]
    assert lines and all("run_id" in line for line in lines if line["event"].startswith("table."))
    v1 = json.loads(etl(env, "status").stdout)["version"]
    mutate_demo_source(tmp_path / "src.db", fraction=0.1, seed=1)
    assert etl(env, "sync").returncode == 0
    v2 = json.loads(etl(env, "status").stdout)["version"]
    assert v2 != v1
    rolled = etl(env, "rollback", v1)
    assert rolled.returncode == 0, rolled.stderr
    status = json.loads(etl(env, "status").stdout)
    assert status["version"] == v1 and status["previous_version"] == v2
    # The data's own age stays visible, and the rollback is in the audit trail.
    published = [json.loads(p.read_text()) for p in (tmp_path / "store" / "runs").rglob("*.json")]
    first_publish = next(r for r in published if r["status"] == "published" and r["manifest"]["version"] == v1)
    assert status["created_at"] == first_publish["manifest"]["created_at"]
    record = next(r for r in published if r["status"] == "rolled_back")
    assert record["from_version"] == v2 and record["manifest"]["version"] == v1
    unknown = etl(env, "rollback", "1999-01-01T00:00:00Z-000000")
    assert unknown.returncode == 1 and "no published version" in unknown.stderr


def test_bad_configuration_fails_with_one_line(env):
    env = {**env, "SYNC_INTERVAL_SECONDS": "soon"}
    result = etl(env, "sync")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "SYNC_INTERVAL_SECONDS" in result.stderr
    assert "Traceback" not in result.stderr


def test_status_before_first_publish_is_null(env):
    result = etl(env, "status")
    assert result.returncode == 1 and result.stdout.strip() == "null"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:  # not listening yet
        return 0, str(exc)


def test_run_syncs_on_schedule_serves_http_and_stops_cleanly_on_sigterm(env, tmp_path):
    assert etl(env, "demo-source", str(tmp_path / "src.db"), "--rows", "500").returncode == 0
    port = free_port()
    proc = subprocess.Popen([str(BIN), "run"], env={**env, "ETL_HTTP_PORT": str(port)}, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        while http_get(port, "/ready")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        code, body = http_get(port, "/ready")
        assert code == 200 and json.loads(body)["ready"], body
        assert http_get(port, "/health")[0] == 200
        code, metrics = http_get(port, "/metrics")
        assert code == 200 and 'analytics_etl_sync_duration_seconds_count{status="published"}' in metrics
        healthy = etl(env, "health")
        assert healthy.returncode == 0 and healthy.stdout.startswith("healthy"), healthy.stdout
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0
    events = [json.loads(line)["event"] for line in stderr.splitlines() if line.startswith("{")]
    ours = [e for e in events if "." in e]  # APScheduler's own lines may interleave at shutdown
    assert "scheduler.started" in ours and "manifest.published" in ours and ours[-1] == "scheduler.stopped"
    assert "http.listening" in ours


def test_run_keeps_syncing_when_its_http_port_is_taken(env, tmp_path):
    assert etl(env, "demo-source", str(tmp_path / "src.db"), "--rows", "200").returncode == 0
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.Popen([str(BIN), "run"], env={**env, "PORT": str(port)}, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not (tmp_path / "state" / "last_success").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert (tmp_path / "state" / "last_success").exists(), "the worker syncs without its HTTP side"
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 0
    [error] = [json.loads(line) for line in stderr.splitlines() if '"http.unavailable"' in line]
    assert error["port"] == port and "ETL_HTTP_PORT" in error["hint"]


def test_health_fails_without_or_with_an_old_successful_sync(env, tmp_path):
    missing = etl(env, "health")
    assert missing.returncode == 1 and "no successful sync" in missing.stdout
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "last_success").write_text("2020-01-01T00:00:00+00:00")
    old = etl(env, "health", "--max-age", "600")
    assert old.returncode == 1 and old.stdout.startswith("unhealthy")
