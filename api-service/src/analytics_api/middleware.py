"""Per-request context: request id, one JSON access-log line, metrics, rate-limit headers."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from analytics_api.metrics import LATENCY, REQUESTS
from analytics_shared.logging import get_logger

log = get_logger("analytics_api.access")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_QUIET = {"/health", "/metrics"}
# The largest honest body, a batch of BATCH_MAX_QUERIES (at most 100) statements of 20,000
# characters, is about 2 MB of JSON.
MAX_BODY_BYTES = 8 << 20


class BodyLimitMiddleware:
    """A request body larger than max_bytes is a JSON 413 (`request_too_large`).

    FastAPI reads and parses a JSON body before any dependency runs, so before the IP limit and
    the token check: without a cap anyone could make a worker buffer and parse gigabytes. The
    HTTPException raised from receive() reaches the app's JSON error handler (FastAPI re-raises
    an HTTPException met while reading the body); FastAPI's own max_body_size answers in plain
    text from outside every middleware, without the error shape or X-Request-ID.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length") or ""
        received = int(declared) if declared.isdigit() else 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            # Only body messages: an http.disconnect must reach whoever waits for it.
            if message["type"] == "http.request":
                if not declared.isdigit():
                    received += len(message.get("body", b""))  # chunked: counted as it arrives
                if received > self.max_bytes:  # a declared length is refused at its first chunk
                    raise HTTPException(413, f"request body larger than {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _SAFE_ID.match(incoming) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                quota = state.get("quota")
                if quota is not None and "x-ratelimit-limit" not in headers:
                    for name, value in quota.headers().items():
                        headers[name] = value
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            REQUESTS.labels(scope["method"], template, str(status)).inc()
            LATENCY.labels(template).observe(elapsed)
            if scope["path"] not in _QUIET or status >= 400:
                log.info("request", method=scope["method"], path=scope["path"], status=status,
                         duration_ms=round(elapsed * 1000, 2), user=state.get("user"),
                         rows=state.get("rows"), cache=state.get("cache"), error=state.get("error_code"))
            structlog.contextvars.unbind_contextvars("request_id")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None
