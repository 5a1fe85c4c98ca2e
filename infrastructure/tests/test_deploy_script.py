"""scripts/deploy.sh: a clear failure without the Railway CLI, and the right `railway up` calls with
one (a stand-in `railway` on PATH records its arguments)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

# What deploy.sh may call besides `railway`; the test PATH holds nothing else.
TOOLS = ("bash", "dirname", "cat")


@pytest.fixture
def bare_path(tmp_path: Path) -> Path:
    """A PATH directory with only the basic tools the script needs (and no railway)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is needed to run deploy.sh"
        (bin_dir / tool).symlink_to(found)
    return bin_dir


def _run(repo: Path, path_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(path_dir / "bash"), str(repo / "scripts" / "deploy.sh"), *args],
        env={"PATH": str(path_dir), "HOME": str(path_dir), **env},
        capture_output=True, text=True, timeout=30, check=False,
    )


def _fake_railway(bin_dir: Path, log: Path, exit_code: int = 0) -> None:
    script = bin_dir / "railway"
    script.write_text(f'#!{bin_dir / "bash"}\necho "$*" >> "{log}"\nexit {exit_code}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_executable_and_strict(repo: Path) -> None:
    script = repo / "scripts" / "deploy.sh"
    assert os.access(script, os.X_OK), "scripts/deploy.sh must be executable"
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)


def test_without_railway_cli_fails_with_install_hint(repo: Path, bare_path: Path) -> None:
    assert shutil.which("railway", path=str(bare_path)) is None
    result = _run(repo, bare_path, "all")
    assert result.returncode != 0
    assert "Railway CLI" in result.stderr and "not installed" in result.stderr
    assert "npm install -g @railway/cli" in result.stderr
    assert "railway login" in result.stderr and "railway link" in result.stderr


def test_usage(repo: Path, bare_path: Path) -> None:
    helped = _run(repo, bare_path, "--help")
    assert helped.returncode == 0 and "Usage: scripts/deploy.sh" in helped.stdout
    missing = _run(repo, bare_path)
    assert missing.returncode != 0 and "Usage:" in missing.stderr
    unknown = _run(repo, bare_path, "everything")
    assert unknown.returncode != 0 and "unknown argument: everything" in unknown.stderr


def test_deploys_each_service_with_railway_up(repo: Path, bare_path: Path, tmp_path: Path) -> None:
    log = tmp_path / "railway.log"
    _fake_railway(bare_path, log)
    assert _run(repo, bare_path, "etl").returncode == 0
    assert _run(repo, bare_path, "--environment", "staging", "api").returncode == 0
    assert _run(repo, bare_path, "-d", "all").returncode == 0
    assert _run(repo, bare_path, "all", RAILWAY_API_SERVICE="analytics-api").returncode == 0
    assert log.read_text().splitlines() == [
        "up --service etl-service",
        "up --service api-service --environment staging",
        "up --service etl-service --detach",   # the ETL first: the API's /ready needs a snapshot
        "up --service api-service --detach",
        "up --service etl-service --ci",       # `all` never blocks on streaming deploy logs
        "up --service analytics-api --ci",
    ]


def test_a_failed_upload_fails_the_script(repo: Path, bare_path: Path, tmp_path: Path) -> None:
    log = tmp_path / "railway.log"
    _fake_railway(bare_path, log, exit_code=1)
    result = _run(repo, bare_path, "all")
    assert result.returncode != 0
    assert "railway login" in result.stderr and "railway link" in result.stderr
    assert log.read_text().splitlines() == ["up --service etl-service --ci"], "stop after the first failure"
