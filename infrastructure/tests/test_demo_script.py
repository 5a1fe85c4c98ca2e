"""README command one, for real: ./scripts/demo.sh runs the ETL and the API with a local issuer."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, token: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def wait_ready(base: str, proc: subprocess.Popen, log: Path, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-4000:]
        try:
            if get(base + "/ready")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError("demo never became ready:\n" + log.read_text()[-4000:])


def start_demo(data: Path, port: int, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AUTH0_", "STORAGE_", "SOURCE_", "S3_", "PROMETHEUS", "SNAPSHOT_", "ETL_"))}
    env.update(DEMO_DATA_DIR=str(data), PORT=str(port), SYNC_INTERVAL_SECONDS="2", SNAPSHOT_POLL_SECONDS="0.5",
               DEMO_MUTATE_SECONDS="0", DEMO_ROWS="2000")
    with log.open("w") as out:
        return subprocess.Popen([str(ROOT / "scripts" / "demo.sh")], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def stop_with_ctrl_c(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    try:
        assert proc.wait(timeout=60) == 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
        raise AssertionError("processes of the demo are still running after Ctrl-C")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_demo_serves_queries_sees_source_changes_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "demo.log"
    proc = start_demo(data, port, log)
    try:
        wait_ready(base, proc, log)
        token = (data / "dev-token.txt").read_text().strip()
        sql = "SELECT status FROM orders WHERE id = 1"
        url = f"{base}/query?{urllib.parse.urlencode({'q': sql})}"
        status, body = get(url, token)
        assert status == 200 and body["row_count"] == 1
        assert get(url)[0] == 401  # no bypass: the demo API needs the token too
        for origin, allowed in (("http://localhost:5173", True), ("http://localhost:3000", True),
                                ("https://evil.example", False)):  # a local React/Vite dev server may call it
            preflight = urllib.request.Request(f"{base}/query", method="OPTIONS", headers={
                "Origin": origin, "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization"})
            try:
                with urllib.request.urlopen(preflight, timeout=10) as resp:
                    granted = resp.headers.get("access-control-allow-origin")
            except urllib.error.HTTPError as err:
                granted = err.headers.get("access-control-allow-origin")
            assert (granted == origin) is allowed, (origin, granted)
        # the printed curl command works as printed; the script prints it once its own readiness
        # poll (every 0.5 s, a Python process each) sees the API, which can be after ours did
        deadline, curl = time.monotonic() + 30, None
        while curl is None and time.monotonic() < deadline:
            text = log.read_text()
            curl = re.search(r"(curl -H .*?\n\s+\"http[^\n]+\")", text, re.S)
            time.sleep(0.2)
        assert curl, text[-2000:]
        run = subprocess.run(["bash", "-c", curl.group(1).replace("\\\n", " ")], capture_output=True, text=True,
                             timeout=30)
        assert run.returncode == 0 and json.loads(run.stdout)["success"] is True, run.stdout + run.stderr
        with sqlite3.connect(data / "demo-source.db") as con:
            con.execute("UPDATE orders SET status = 'demo-check', updated_at = datetime('now') WHERE id = 1")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            status, body = get(url, token)
            if status == 200 and body["data"] == [{"status": "demo-check"}]:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"source change never reached the API: {body}\n{log.read_text()[-3000:]}")
    finally:
        stop_with_ctrl_c(proc)
    source_mtime = (data / "demo-source.db").stat().st_mtime
    key = (data / "issuer" / "issuer-key.pem").read_bytes()
    # a second run reuses the source, the issuer and the store
    proc = start_demo(data, port, tmp_path / "demo2.log")
    try:
        wait_ready(base, proc, tmp_path / "demo2.log")
        assert get(url, (data / "dev-token.txt").read_text().strip())[1]["data"] == [{"status": "demo-check"}]
    finally:
        stop_with_ctrl_c(proc)
    assert (data / "issuer" / "issuer-key.pem").read_bytes() == key
    assert "created the demo source" not in (tmp_path / "demo2.log").read_text()
    assert (data / "demo-source.db").stat().st_mtime == source_mtime
