"""The query path after auth: validate → authorize → ETag/cache → execute → render."""

from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from analytics_api.auth.tokens import Principal
from analytics_api.metrics import QUERY_ROWS, RESULT_CACHE
from analytics_api.query.cache import CachedResult, result_key
from analytics_api.query.executor import execute_query
from analytics_api.query.guard import ValidatedQuery
from analytics_api.query.serialize import MEDIA_TYPES, Format, render_binary, render_json
from analytics_api.services import Services
from analytics_api.snapshots.database import Snapshot

Params = list | dict | None


async def answer_query(request: Request, services: Services, principal: Principal, sql: str,
                       params: Params, fmt: Format, *, max_rows: int | None = None,
                       validated: ValidatedQuery | None = None) -> Response:
    limit = min(max_rows or services.max_rows, services.max_rows)
    with services.snapshots.use() as snap:
        if validated is None:
            validated = services.guard.validate(sql, snap.schema)
            services.guard.authorize(validated, principal.scopes)
        key = result_key(snap.version, validated.sql, params, fmt, limit)
        if validated.cacheable:
            headers = {"ETag": f'"{key}"', "Cache-Control": "private, no-cache", "X-Snapshot-Version": snap.version}
            if _matches(request.headers.get("if-none-match"), headers["ETag"]):
                request.state.cache = "not-modified"
                return Response(status_code=304, headers=headers)
            cached = services.cache.get(key)
            if cached is not None:
                RESULT_CACHE.labels("hit").inc()
                request.state.cache = "hit"
                request.state.rows = int(cached.headers.get("X-Row-Count", "0"))
                return Response(cached.body, media_type=cached.media_type,
                                headers={**headers, **cached.headers, "X-Cache": "hit"})
            RESULT_CACHE.labels("miss").inc()
            request.state.cache = "miss"
        else:  # now(), random(), uuid(): a fresh answer every time, never a stored one
            headers = {"Cache-Control": "no-store", "X-Snapshot-Version": snap.version}
            request.state.cache = "bypass"
        entry = await anyio.to_thread.run_sync(
            _run_and_render, services, snap, validated.sql, params, fmt, limit, limiter=services.query_slots)
    if validated.cacheable:
        services.cache.put(key, entry)
    request.state.rows = int(entry.headers["X-Row-Count"])
    return Response(entry.body, media_type=entry.media_type,
                    headers={**headers, **entry.headers, "X-Cache": request.state.cache})


def _run_and_render(services: Services, snap: Snapshot, sql: str, params: Params, fmt: Format,
                    limit: int) -> CachedResult:
    """Blocking (worker thread): execution and serialization both stay off the event loop."""
    result = execute_query(snap, sql, params, max_rows=limit, timeout=services.settings.query_timeout_seconds,
                           watchdog=services.watchdog)
    QUERY_ROWS.observe(result.table.num_rows)
    headers = {"X-Row-Count": str(result.table.num_rows), "X-Truncated": str(result.truncated).lower(),
               "X-Execution-Time-Ms": f"{result.elapsed_ms:.3f}"}
    if fmt == "json":
        body = render_json(result.table, columns=result.columns, truncated=result.truncated, elapsed_ms=result.elapsed_ms,
                           version=snap.version)
    else:
        body = render_binary(result.table, fmt)
    return CachedResult(body=body, media_type=MEDIA_TYPES[fmt], headers=headers)


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    candidates = {part.strip().removeprefix("W/") for part in header.split(",")}
    return etag in candidates or "*" in candidates
