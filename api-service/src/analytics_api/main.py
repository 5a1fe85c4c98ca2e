"""The ASGI app: `create_app(settings)`; `analytics_api.main:app` builds one from the environment.

`app` is resolved lazily (module __getattr__) so importing this module never reads
settings or opens a database: Gunicorn imports it in each worker after the fork.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.to_thread
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from analytics_api import console
from analytics_api.compression import install_compression
from analytics_api.config import ApiSettings, get_settings
from analytics_api.handlers import install_error_handlers
from analytics_api.metrics import SNAPSHOT_CREATED, SNAPSHOT_DELAY, SNAPSHOT_SWAPS
from analytics_api.middleware import MAX_BODY_BYTES, BodyLimitMiddleware, RequestContextMiddleware
from analytics_api.proxy import ForwardedClientMiddleware
from analytics_api.routes import batch, health, metrics, query, schema, snapshot
from analytics_api.services import build_services
from analytics_shared.logging import configure_logging, get_logger

log = get_logger(__name__)

EXPOSED_HEADERS = ["ETag", "Retry-After", "X-Request-ID", "X-RateLimit-Limit", "X-RateLimit-Remaining",
                   "X-RateLimit-Reset", "X-Snapshot-Version", "X-Row-Count", "X-Truncated", "X-Cache",
                   "X-Execution-Time-Ms", "X-Next-Cursor", "X-Total-Rows"]


def create_app(settings: ApiSettings) -> FastAPI:
    services = build_services(settings)

    def record_swap(snap) -> None:  # noqa: ANN001
        SNAPSHOT_SWAPS.labels("loaded").inc()
        SNAPSHOT_CREATED.set(snap.manifest.created_at.timestamp())
        published = snap.manifest.published_at or snap.manifest.created_at
        SNAPSHOT_DELAY.observe(max(0.0, (snap.loaded_at - published).total_seconds()))

    services.snapshots.on_swap.append(record_swap)
    services.snapshots.on_reject.append(lambda version, exc: SNAPSHOT_SWAPS.labels("rejected").inc())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services.query_slots = anyio.CapacityLimiter(settings.query_concurrency)
        await anyio.to_thread.run_sync(services.snapshots.start)
        log.info("api.started", snapshot=services.snapshots.status().version, storage=settings.storage_url)
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(services.snapshots.stop)
            log.info("api.stopped")

    app = FastAPI(title="Analytics API", version="1.0",
                  description="Read-only SQL over the latest DuckDB snapshot, for frontend apps. "
                              "Authenticate with an Auth0 access token: `Authorization: Bearer <token>`.",
                  lifespan=lifespan)
    app.state.services = services
    install_error_handlers(app)
    for module in (health, query, batch, schema, snapshot):
        app.include_router(module.router)
    if settings.metrics_enabled:
        app.include_router(metrics.router)
    install_compression(app, settings.compression_encoding_list, settings.compression_min_bytes)
    if settings.console_enabled:
        app.include_router(console.build_router(settings))
    app.add_middleware(BodyLimitMiddleware, max_bytes=MAX_BODY_BYTES)  # inside CORS: a browser can read the 413
    if settings.cors_origin_list:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origin_list, allow_credentials=False,
                           allow_methods=["GET", "POST", "OPTIONS"],
                           allow_headers=["Authorization", "Content-Type", "If-None-Match", "X-Request-ID", "Accept"],
                           expose_headers=EXPOSED_HEADERS, max_age=600)
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(ForwardedClientMiddleware, trusted=settings.forwarded_allow_ips)  # outermost
    return app


def build_app_from_env() -> FastAPI:
    settings = get_settings()
    configure_logging(settings.log_level, service="api-service")
    return create_app(settings)


def __getattr__(name: str) -> FastAPI:
    if name == "app":
        app = build_app_from_env()
        globals()["app"] = app
        return app
    raise AttributeError(name)
