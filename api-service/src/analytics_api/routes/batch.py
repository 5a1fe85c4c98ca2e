"""`POST /query/batch`: a dashboard's tiles in one request, all answered from one snapshot version.

Each query is validated, authorized, cached and run exactly as `/query` runs it (json), and
they run concurrently (execution shares the worker's query slots). One query's error is its
own result object; the others still answer. The rate limit counts every query in the batch.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import orjson
from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.responses import Response

from analytics_api.auth.tokens import Principal
from analytics_api.deps import QueryUser, ServicesDep
from analytics_api.errors import ApiError, BadRequest, NotFound
from analytics_api.metrics import RESULT_CACHE
from analytics_api.query.answer import compute, prepare
from analytics_api.routes.query import Scalar
from analytics_api.services import Services
from analytics_api.snapshots.database import Snapshot

router = APIRouter(tags=["query"])


class BatchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sql: str | None = Field(None, description="One SELECT (or give `name`)")
    name: str | None = Field(None, description="A named query (or give `sql`)")
    params: list[Scalar] | dict[str, Scalar] | None = None
    max_rows: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one_kind(self) -> BatchQuery:
        if (self.sql is None) == (self.name is None):
            raise ValueError("each query needs exactly one of `sql` and `name`")
        return self


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    queries: list[BatchQuery] = Field(..., min_length=1)


@router.post("/query/batch", summary="Run up to BATCH_MAX_QUERIES queries on one snapshot version (JSON)")
async def batch(request: Request, services: ServicesDep, principal: QueryUser,
                body: Annotated[BatchRequest, Body()]) -> Response:
    count = len(body.queries)
    if count > services.settings.batch_max_queries:
        raise BadRequest(f"queries: at most {services.settings.batch_max_queries} per batch, got {count}")
    if count > 1:  # the access check counted the request as one query
        quota = services.limiter.check_user(request, principal.sub, cost=count - 1)
        if quota is not None:
            request.state.quota = quota
    with services.snapshots.use() as snap:
        results = await asyncio.gather(*(_answer(services, principal, snap, q) for q in body.queries))
        version = snap.version
    request.state.rows = count
    payload = b"".join((b'{"success":true,"snapshot_version":', orjson.dumps(version), b',"results":[',
                        b",".join(results), b"]}"))
    return Response(payload, media_type="application/json", headers={"X-Snapshot-Version": version})


async def _answer(services: Services, principal: Principal, snap: Snapshot, query: BatchQuery) -> bytes:
    """One result object: the JSON body /query would give, or {"success": false, "error": ...}."""
    try:
        sql, params = query.sql, query.params
        if query.name is not None:
            named = services.whitelist.queries.get(query.name)
            if named is None:
                raise NotFound(f"no named query {query.name!r}")
            if isinstance(params, list):
                raise BadRequest("params: a named query takes an object")
            sql, params = named.sql, named.bind(params or {})
        limit = min(query.max_rows or services.max_rows, services.max_rows)
        prepared = await prepare(services, principal, snap, sql, params, "json", limit)
        cached = services.cache.get(prepared.key) if prepared.cacheable else None
        RESULT_CACHE.labels("hit" if cached else "miss" if prepared.cacheable else "bypass").inc()
        return (cached or await compute(services, snap, prepared, "json", limit)).body
    except ApiError as exc:
        return orjson.dumps({"success": False, "error": {"code": exc.code, "message": exc.message}})
