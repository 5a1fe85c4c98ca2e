"""The query path after auth: validate → authorize → ETag/cache → execute → render.

Validating a statement the guard has not seen (parsing costs milliseconds per kB) and every
execution run in worker threads, bounded by the worker's query slots: the event loop only
moves bytes, so a slow query never delays another request's answer. A shape that returned a
few plain rows last time (a point lookup) is fetched as Python tuples instead of Arrow, which
for one row costs a tenth as much; if the answer is not small after all, it is fetched again
the Arrow way and the shape forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import anyio.to_thread
import orjson
from starlette.requests import Request
from starlette.responses import Response

from analytics_api import rls
from analytics_api.auth.tokens import Principal
from analytics_api.errors import BadRequest
from analytics_api.metrics import QUERY_ROWS, RESULT_CACHE, SMALL_RESULTS
from analytics_api.query.cache import CachedResult, result_key
from analytics_api.query.executor import QueryResult, SmallResult, execute_query, execute_small
from analytics_api.query.guard import ValidatedQuery
from analytics_api.query.pages import Cursor, Page
from analytics_api.query.serialize import (MEDIA_TYPES, SMALL_RESULT, Format, render_binary, render_json,
                                           rows_as_dicts)
from analytics_api.services import Services
from analytics_api.snapshots.database import Snapshot

Params = list | dict | None


@dataclass(frozen=True)
class Prepared:
    """A query checked for this caller on one snapshot: what runs, with what, under which key."""
    sql: str
    params: Params  # the caller's own values and its row filters' claim values
    shape: str  # the small-result memory's key: bound claim values included
    key: str  # the result cache's key and the ETag
    cacheable: bool


async def prepare(services: Services, principal: Principal, snap: Snapshot, sql: str, params: Params,
                  fmt: Format, limit: int, page: Page | None = None) -> Prepared:
    filtered = not rls.is_unfiltered(principal, services.whitelist.unfiltered_scope)
    validated = services.guard.known(sql, snap.schema, filtered=filtered)
    if validated is None:  # parsing a new statement costs ms per kB: never on the event loop
        validated = await anyio.to_thread.run_sync(partial(services.guard.validate, sql, snap.schema, filtered=filtered))
    services.guard.authorize(validated, principal.scopes)
    params = bind_row_filters(principal, validated, params, services.whitelist.claims)
    # The bound claim values are part of every key: no cached answer crosses users.
    key = result_key(snap.version, validated.sql, params, fmt, limit, page and (page.offset, page.size, page.count))
    # The shape memory is per user too, but not per value of the query's own parameters.
    shape = validated.shape if not validated.claims else validated.shape + "\x00" + orjson.dumps(
        {k: v for k, v in params.items() if k.startswith(rls.PREFIX)}, option=orjson.OPT_SORT_KEYS).decode()
    return Prepared(sql=validated.sql, params=params, shape=shape, key=key, cacheable=validated.cacheable)


async def compute(services: Services, snap: Snapshot, prepared: Prepared, fmt: Format, limit: int,
                  cursor: Cursor | None = None) -> CachedResult:
    """Run and render in a worker thread; cache the answer when it may be."""
    entry = await anyio.to_thread.run_sync(_run_and_render, services, snap, prepared, fmt, limit, cursor,
                                           limiter=services.query_slots)
    if prepared.cacheable:
        services.cache.put(snap.version, prepared.key, entry)
    return entry


async def answer_query(request: Request, services: Services, principal: Principal, sql: str,
                       params: Params, fmt: Format, *, max_rows: int | None = None,
                       cursor: Cursor | None = None) -> Response:
    """One query as one HTTP response: ETag/304, result cache, then compute."""
    page = cursor.page if cursor else None
    limit = page.size if page else min(max_rows or services.max_rows, services.max_rows)
    with services.snapshots.use(page.version if page else None) as snap:
        prepared = await prepare(services, principal, snap, sql, params, fmt, limit, page)
        if prepared.cacheable:
            # Weak: one result, several content codings (compression.py) share the tag.
            headers = {"ETag": f'W/"{prepared.key}"', "Cache-Control": "private, no-cache",
                       "X-Snapshot-Version": snap.version}
            if _matches(request.headers.get("if-none-match"), headers["ETag"]):
                request.state.cache = "not-modified"
                return Response(status_code=304, headers=headers)
            cached = services.cache.get(prepared.key)
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
        entry = await compute(services, snap, prepared, fmt, limit, cursor)
    request.state.rows = int(entry.headers["X-Row-Count"])
    return Response(entry.body, media_type=entry.media_type,
                    headers={**headers, **entry.headers, "X-Cache": request.state.cache})


def bind_row_filters(principal: Principal, validated: ValidatedQuery, params: Params,
                     claims: dict[str, rls.ClaimSpec]) -> Params:
    """The query's own values plus its row filters' claim values, all by name."""
    if isinstance(params, dict) and any(str(k).lower().startswith(rls.PREFIX) for k in params):
        raise BadRequest(f"params: names starting with {rls.PREFIX!r} are reserved for row filters")
    if not validated.claims:
        return params
    if validated.numbered:
        if isinstance(params, dict):
            raise BadRequest("params: this query's $1, $2 placeholders take a JSON array")
        own = {f"p{i}": value for i, value in enumerate(params or [], 1)}
    elif isinstance(params, list) and params:
        raise BadRequest("params: a JSON array needs $1, $2 placeholders in the query")
    else:
        own = dict(params or {})
    return {**own, **rls.claim_values(principal, validated.claims, claims)}


def _run_small(services: Services, snap: Snapshot, prepared: Prepared, limit: int) -> CachedResult | None:
    """Rows as tuples for a shape expected to be small; None: it was not, take the Arrow path."""
    result = execute_small(snap, prepared.sql, prepared.params, max_rows=limit,
                           timeout=services.settings.query_timeout_seconds, watchdog=services.watchdog)
    if result is None:
        SMALL_RESULTS.labels("rerun").inc()
        services.hints.forget(prepared.shape)
        return None
    SMALL_RESULTS.labels("served").inc()
    return _entry(snap, result, result.data, "json")


def _run_and_render(services: Services, snap: Snapshot, prepared: Prepared, fmt: Format, limit: int,
                    cursor: Cursor | None) -> CachedResult:
    """Blocking (worker thread): execution and serialization both stay off the event loop."""
    if fmt == "json" and cursor is None and services.hints.expects_small(prepared.shape):
        entry = _run_small(services, snap, prepared, limit)
        if entry is not None:
            return entry
    page = cursor.page if cursor else None
    result = execute_query(snap, prepared.sql, prepared.params, max_rows=limit,
                           timeout=services.settings.query_timeout_seconds, watchdog=services.watchdog,
                           offset=page.offset if page else 0, count_all=bool(page and page.count))
    if page is None:  # a truncated result says nothing about the shape's real size: treat it as large
        rows = SMALL_RESULT + 1 if result.truncated else result.table.num_rows
        services.hints.record(prepared.shape, rows=rows, types=[c["type"] for c in result.columns])
    more = {}
    if cursor is not None:  # a page: "truncated" means there is a next one
        more["next"] = cursor.following(snap.version) if result.truncated else None
        if page.count:
            more["total_rows"] = result.total_rows
    return _entry(snap, result, rows_as_dicts(result.table) if fmt == "json" else None, fmt, more)


def _entry(snap: Snapshot, result: QueryResult | SmallResult, data: list[dict] | None, fmt: Format,
           more: dict | None = None) -> CachedResult:
    rows = len(data) if data is not None else result.table.num_rows  # type: ignore[union-attr]
    QUERY_ROWS.observe(rows)
    truncated = result.truncated and not more  # a page with a next one is not a truncated result
    headers = {"X-Row-Count": str(rows), "X-Truncated": str(truncated).lower(),
               "X-Execution-Time-Ms": f"{result.elapsed_ms:.3f}"}
    if more and more.get("next"):
        headers["X-Next-Cursor"] = more["next"]
    if more and more.get("total_rows") is not None:
        headers["X-Total-Rows"] = str(more["total_rows"])
    if data is not None:
        body = render_json(data, columns=result.columns, truncated=truncated, elapsed_ms=result.elapsed_ms,
                           version=snap.version, more=more)
    else:
        body = render_binary(result.table, fmt)  # type: ignore[union-attr]
    return CachedResult(body=body, media_type=MEDIA_TYPES[fmt], headers=headers)


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    candidates = {part.strip().removeprefix("W/") for part in header.split(",")}
    return etag.removeprefix("W/") in candidates or "*" in candidates
