"""Gunicorn settings (api-service/gunicorn.conf.py re-exports these).

Uvicorn workers, 0.0.0.0:$PORT, WEB_CONCURRENCY workers, graceful shutdown. The app is
not preloaded: each worker imports it after the fork, so no DuckDB connection, thread or
socket is ever shared across processes.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from uvicorn_worker import UvicornWorker


class Worker(UvicornWorker):
    """A uvicorn worker that leaves X-Forwarded-For alone: the app reads it itself, from the right
    (analytics_api.proxy). uvicorn's own handling takes the left-most entry when
    FORWARDED_ALLOW_IPS is `*`, and that one the client writes."""

    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "proxy_headers": False}


wsgi_app = "analytics_api.main:app"
worker_class = "analytics_api.gunicorn_conf.Worker"
bind = [os.environ.get("BIND") or f"0.0.0.0:{os.environ.get('PORT', '8000')}"]
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
preload_app = False
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "30"))
keepalive = 5
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")  # validated here; used by the app
accesslog = None  # the app logs one JSON line per request itself
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()

# Prometheus multiprocess mode: set before any worker imports prometheus_client.
_metrics_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", str(Path(tempfile.gettempdir()) / f"analytics-api-metrics-{os.getpid()}"))


def on_starting(server) -> None:  # noqa: ANN001 - gunicorn hook
    # Samples of a previous master's workers would be summed into ours. Remove only
    # prometheus_client's own files: the directory may be one the operator chose.
    directory = Path(_metrics_dir)
    directory.mkdir(parents=True, exist_ok=True)
    for sample in directory.glob("*.db"):
        if sample.name.split("_")[0] in ("counter", "gauge", "histogram", "summary"):
            sample.unlink(missing_ok=True)


# A worker's Python threads (SQL validation, result rendering) hold the GIL for up to this long
# before the event loop gets it back. CPython's 5 ms default let one 15 kB statement being
# validated hold every concurrent point lookup for 5 ms a slice; 1 ms cut their p99 under such
# a stream by a third to a half (docs/benchmarks.md). Set in each worker, after the fork.
GIL_SWITCH_INTERVAL_SECONDS = 0.001


def post_fork(server, worker) -> None:  # noqa: ANN001 - gunicorn hook
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_SECONDS)


def child_exit(server, worker) -> None:  # noqa: ANN001 - gunicorn hook
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:  # noqa: ANN001 - gunicorn hook
    if _metrics_dir.endswith(f"analytics-api-metrics-{os.getpid()}"):  # ours, not the operator's
        shutil.rmtree(_metrics_dir, ignore_errors=True)
