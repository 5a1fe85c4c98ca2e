"""The worker's HTTP side: /health, /ready and /metrics on ETL_HTTP_PORT (on Railway, $PORT).

The standard library's ThreadingHTTPServer in a daemon thread: three read-only routes need
no framework, and prometheus_client's own server serves only the metrics. A scrape or probe
never waits for a sync (each answer is read from WorkerStatus under its lock), and a port
that cannot be bound is logged once at start while the worker goes on syncing without it.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from analytics_etl.metrics import EtlMetrics
from analytics_etl.status import WorkerStatus
from analytics_shared.logging import get_logger

log = get_logger(__name__)


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        path = self.path.split("?", 1)[0]
        status = self.server.status
        if path == "/health":
            alive = status.scheduler_alive()
            self._send_json(HTTPStatus.OK if alive else HTTPStatus.SERVICE_UNAVAILABLE,
                            {"status": "ok" if alive else "scheduler not running"})
        elif path == "/ready":
            ready, body = status.readiness()
            self._send_json(HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE, body)
        elif path == "/metrics":
            payload, content_type = self.server.metrics.render()
            self._send(HTTPStatus.OK, payload, content_type)
        else:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": "not found", "routes": ["/health", "/ready", "/metrics"]})

    def _send_json(self, code: HTTPStatus, body: dict) -> None:
        self._send(code, json.dumps(body).encode(), "application/json")

    def _send(self, code: HTTPStatus, payload: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - probes every few seconds: not logged
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a slow client never holds up the worker's exit

    def __init__(self, address: tuple[str, int], status: WorkerStatus, metrics: EtlMetrics) -> None:
        super().__init__(address, _Handler)
        self.status = status
        self.metrics = metrics


def start_http_server(port: int, status: WorkerStatus, metrics: EtlMetrics,
                      host: str = "0.0.0.0") -> _Server | None:  # noqa: S104 - probes come from outside the container
    """Serve in a daemon thread; None (and one error line) when the port cannot be bound."""
    try:
        server = _Server((host, port), status, metrics)
    except OSError as exc:
        log.error("http.unavailable", port=port, error=str(exc),
                  hint="another process holds the port: set ETL_HTTP_PORT to a free one; syncing continues")
        return None
    threading.Thread(target=server.serve_forever, name="etl-http", daemon=True).start()
    log.info("http.listening", port=server.server_address[1], routes=["/health", "/ready", "/metrics"])
    return server
