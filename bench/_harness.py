"""Pieces every benchmark script uses: the checkout's git state, and JSON-printing child processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]


def git(*args: str) -> str:
    """Output of a git command in the checkout, or "" where git or the repository is missing."""
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def code_state(*paths: str) -> dict:
    """Which code a benchmark measured: the commit, and the files under `paths` changed since."""
    return {"commit": git("rev-parse", "--short", "HEAD"), "uncommitted": git("status", "--porcelain", *paths).splitlines()}


def run_json_child(script: str, *args: str, env: dict[str, str] | None = None, stderr: IO | None = None,
                   what: str = "worker") -> dict:
    """Run `script` as a child process; its last stdout line is JSON. Returns it plus the child's
    own peak RSS in MB (`wait4`), so each measured run's memory is its own."""
    proc = subprocess.Popen([sys.executable, script, *args], stdout=subprocess.PIPE, stderr=stderr, text=True,
                            env={**os.environ, **(env or {})})
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{what} failed with status {status}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mb"] = round(usage.ru_maxrss / 1024)
    return result
