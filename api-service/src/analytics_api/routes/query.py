"""Ad-hoc SQL (`/query`) and named queries (`/queries/{name}`)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from analytics_api.deps import QueryUser, ServicesDep
from analytics_api.errors import BadRequest, NotFound
from analytics_api.query.answer import answer_query
from analytics_api.query.serialize import choose_format
from analytics_api.responses import JsonResponse

router = APIRouter(tags=["query"])

Scalar = str | int | float | bool | None


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sql: str = Field(..., description="One SELECT over whitelisted tables; $1 / $name placeholders")
    params: list[Scalar] | dict[str, Scalar] | None = Field(None, description="Values bound to the placeholders")
    format: str | None = Field(None, description="json (default), csv, arrow or parquet")
    max_rows: int | None = Field(None, ge=1, description="Lower the row cap for this request")


class NamedQueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    params: dict[str, Scalar] = {}
    format: str | None = None


def _parse_params(raw: str | None) -> list | dict | None:
    if raw is None or raw == "":
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("params must be a JSON array or object") from None
    if isinstance(value, list) and all(isinstance(v, Scalar) for v in value):
        return value
    if isinstance(value, dict) and all(isinstance(v, Scalar) for v in value.values()):
        return value
    raise BadRequest("params must be a JSON array or object of scalar values")


@router.get("/query", summary="Run a read-only SQL query (GET)")
async def query_get(request: Request, services: ServicesDep, principal: QueryUser,
                    q: Annotated[str, Query(description="the SQL", max_length=20_000)],
                    params: Annotated[str | None, Query(description="JSON array or object of bind values")] = None,
                    format: Annotated[str | None, Query()] = None,
                    max_rows: Annotated[int | None, Query(ge=1)] = None) -> Response:
    fmt = choose_format(format, request.headers.get("accept"))
    return await answer_query(request, services, principal, q, _parse_params(params), fmt, max_rows=max_rows)


@router.post("/query", summary="Run a read-only SQL query (POST)")
async def query_post(request: Request, services: ServicesDep, principal: QueryUser,
                     body: Annotated[QueryRequest, Body()]) -> Response:
    fmt = choose_format(body.format, request.headers.get("accept"))
    return await answer_query(request, services, principal, body.sql, body.params, fmt, max_rows=body.max_rows)


@router.get("/queries", summary="List the named queries and their parameters")
async def list_named(services: ServicesDep, principal: QueryUser) -> JsonResponse:
    return JsonResponse({"success": True, "queries": {
        name: {"description": q.description,
               "params": {p: {**spec.model_dump(exclude_none=True), "required": spec.required and spec.default is None}
                          for p, spec in q.params.items()}}
        for name, q in services.whitelist.queries.items()}})


async def _named(request: Request, services: ServicesDep, principal, name: str,  # noqa: ANN001
                 raw: dict[str, Any], fmt_raw: str | None) -> Response:
    named = services.whitelist.queries.get(name)
    if named is None:
        raise NotFound(f"no named query {name!r}")
    values = named.bind(raw)
    validated = services.guard.validate(named.sql)
    services.guard.authorize(validated, principal.scopes)
    fmt = choose_format(fmt_raw, request.headers.get("accept"))
    return await answer_query(request, services, principal, named.sql, values, fmt, validated=validated)


@router.get("/queries/{name}", summary="Run a named query; parameters in the query string")
async def named_get(request: Request, services: ServicesDep, principal: QueryUser, name: str,
                    format: Annotated[str | None, Query()] = None) -> Response:
    raw = {k: v for k, v in request.query_params.items() if k != "format"}
    return await _named(request, services, principal, name, raw, format)


@router.post("/queries/{name}", summary="Run a named query; parameters in the JSON body")
async def named_post(request: Request, services: ServicesDep, principal: QueryUser, name: str,
                     body: Annotated[NamedQueryRequest, Body()] = NamedQueryRequest()) -> Response:
    return await _named(request, services, principal, name, body.params, body.format)
