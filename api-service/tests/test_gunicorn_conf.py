"""Gunicorn hooks that set up each worker process."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture
def gunicorn_conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Imported with the metrics directory set: on import the module sets PROMETHEUS_MULTIPROC_DIR
    for Gunicorn's processes, and in the test process that would leak into every later test's
    subprocesses (a directory nobody creates)."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    return importlib.import_module("analytics_api.gunicorn_conf")


def test_each_worker_hands_the_gil_back_to_its_event_loop_every_millisecond(gunicorn_conf: ModuleType) -> None:
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        gunicorn_conf.post_fork(server=None, worker=None)
        assert sys.getswitchinterval() == gunicorn_conf.GIL_SWITCH_INTERVAL_SECONDS == 0.001
    finally:
        sys.setswitchinterval(before)


def test_the_repository_config_file_exports_every_hook(gunicorn_conf: ModuleType) -> None:
    """api-service/gunicorn.conf.py re-exports the package's settings; hooks must be named there."""
    text = (Path(__file__).resolve().parents[1] / "gunicorn.conf.py").read_text()
    hooks = [name for name in ("on_starting", "post_fork", "child_exit", "on_exit") if hasattr(gunicorn_conf, name)]
    assert hooks == ["on_starting", "post_fork", "child_exit", "on_exit"]
    assert all(name in text for name in hooks), text
