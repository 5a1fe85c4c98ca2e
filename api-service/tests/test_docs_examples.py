"""Every curl example in docs/api.md, run with bash against a live Gunicorn-served API.

Conventions the examples follow (and this test enforces):
- a ```bash block containing `curl` is an example; it may use only $API and $TOKEN from the
  environment (it runs under `set -euo pipefail` with nothing else exported);
- a block expecting success calls `curl -sS --fail-with-body` and must exit 0;
- a block whose first line is `# expect: NNN [code]` demonstrates a non-2xx status: its curl
  prints the status with `-w '...HTTP %{http_code}\\n'`, the last line of its output must be
  `HTTP NNN`, and for 4xx/5xx the body must be the JSON error (with `code` when given).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from analytics_api.auth.local_issuer import LOCAL_AUDIENCE, LOCAL_ISSUER, LocalIssuer
from analytics_shared.storage import LocalStore

ROOT = Path(__file__).resolve().parents[2]
API_DOC = ROOT / "docs" / "api.md"
FENCE = re.compile(r"^```bash[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
EXPECT = re.compile(r"^#\s*expect:\s*(\d{3})(?:\s+([a-z_]+))?\s*$")
STATUS_LINE = re.compile(r"^HTTP (\d{3})$")


def curl_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, body) of every ```bash block that runs curl."""
    blocks = []
    for match in FENCE.finditer(text):
        body = match.group(1)
        if re.search(r"(^|[\s|(])curl\s", body):
            blocks.append((text.count("\n", 0, match.start()) + 1, body))
    return blocks


def curl_commands(block: str) -> list[str]:
    """Each curl invocation with its backslash-continued lines joined."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [m.group(0) for m in re.finditer(r"curl\s[^\n]*", joined)]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(base: str, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"gunicorn exited with {proc.returncode} before /ready:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{base}/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.25)
    pytest.fail(f"/ready did not return 200 within {timeout:g} s ({last}):\n{log.read_text()[-4000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_curl_blocks_are_found_and_follow_the_conventions() -> None:
    blocks = curl_blocks(API_DOC.read_text())
    assert len(blocks) >= 20, f"only {len(blocks)} curl examples found in {API_DOC}"
    expecting = [b for _, b in blocks if EXPECT.match(b.splitlines()[0])]
    assert len(expecting) >= 5, "the error examples are missing"
    for line, block in blocks:
        first = block.splitlines()[0]
        for command in curl_commands(block):
            if EXPECT.match(first):
                assert "%{http_code}" in block, f"api.md:{line}: an `# expect:` block must print %{{http_code}}"
            else:
                assert command.startswith("curl -sS --fail-with-body"), (
                    f"api.md:{line}: success examples must use `curl -sS --fail-with-body`: {command[:80]}")


@pytest.mark.slow
def test_every_curl_example_runs_against_a_live_api(demo: Path, store: LocalStore, issuer: LocalIssuer,
                                                     tmp_path: Path) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is not installed: the docs/api.md examples cannot be checked (install curl)")
    assert issuer.issuer == LOCAL_ISSUER
    blocks = curl_blocks(API_DOC.read_text())
    assert blocks, "no curl examples found in docs/api.md"

    issuer_dir = tmp_path / "issuer"
    jwks = issuer.save(issuer_dir)
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    log = tmp_path / "gunicorn.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AUTH0_", "S3_", "RATE_LIMIT_", "SNAPSHOT_", "QUERY_", "DUCKDB_"))
           and k not in ("STORAGE_URL", "PORT", "BIND", "MAX_RESULT_ROWS", "RESULT_CACHE_MB", "CORS_ORIGINS",
                         "WEB_CONCURRENCY", "PROMETHEUS_MULTIPROC_DIR", "METRICS_ENABLED")}
    env.update({
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "STORAGE_URL": store.url,
        "AUTH0_JWKS_URL": f"file://{jwks}",
        "AUTH0_ISSUER": LOCAL_ISSUER,
        "AUTH0_API_AUDIENCE": LOCAL_AUDIENCE,
        "SNAPSHOT_CACHE_DIR": str(tmp_path / "snapshot-cache"),
        "RATE_LIMIT_REQUESTS": "10000",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "LOG_LEVEL": "warning",
    })
    token = issuer.mint(sub="docs-examples", scopes="read:analytics read:schema", audience=LOCAL_AUDIENCE)

    with log.open("wb") as log_fh:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "python:analytics_api.gunicorn_conf"],
                                env=env, cwd=tmp_path, stdout=log_fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_ready(base, proc, log)
        failures = []
        for line, block in blocks:
            expect = EXPECT.match(block.splitlines()[0])
            shell_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work), "LC_ALL": "C.UTF-8",
                         "API": base, "TOKEN": token}
            try:
                run = subprocess.run(["bash", "-c", "set -euo pipefail\n" + block], env=shell_env, cwd=work,
                                     capture_output=True, text=True, timeout=90)
            except subprocess.TimeoutExpired:
                failures.append(f"api.md:{line}: timed out\n{block}")
                continue
            output = run.stdout.strip()
            where = f"api.md:{line} (exit {run.returncode})\n{block}\n--- stdout:\n{run.stdout[-1500:]}\n--- stderr:\n{run.stderr[-1500:]}"
            if expect is None:
                if run.returncode != 0:
                    failures.append(where)
                continue
            status, code = int(expect.group(1)), expect.group(2)
            lines = output.splitlines()
            got = STATUS_LINE.match(lines[-1]) if lines else None
            if run.returncode != 0 or got is None or int(got.group(1)) != status:
                failures.append(f"{where}\n(expected the last line to be 'HTTP {status}')")
                continue
            if status >= 400:
                body = "\n".join(lines[:-1])
                if '"success":false' not in body.replace(" ", ""):
                    failures.append(f"{where}\n(expected the JSON error body)")
                elif code and f'"code":"{code}"' not in body.replace(" ", ""):
                    failures.append(f"{where}\n(expected error code {code!r})")
        assert not failures, f"{len(failures)} of {len(blocks)} docs/api.md examples failed:\n\n" + "\n\n".join(failures)
    finally:
        stop(proc)
        log_text = log.read_text(errors="replace") if log.exists() else ""
    assert proc.returncode is not None
    assert "Traceback" not in log_text, log_text[-4000:]
