"""The console script, run as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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


def test_run_syncs_on_schedule_and_stops_cleanly_on_sigterm(env, tmp_path):
    assert etl(env, "demo-source", str(tmp_path / "src.db"), "--rows", "500").returncode == 0
    proc = subprocess.Popen([str(BIN), "run"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "state" / "last_success").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (tmp_path / "state" / "last_success").exists()
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


def test_health_fails_without_or_with_an_old_successful_sync(env, tmp_path):
    missing = etl(env, "health")
    assert missing.returncode == 1 and "no successful sync" in missing.stdout
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "last_success").write_text("2020-01-01T00:00:00+00:00")
    old = etl(env, "health", "--max-age", "600")
    assert old.returncode == 1 and old.stdout.startswith("unhealthy")
