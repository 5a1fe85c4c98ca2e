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
from analytics_api.query.serialize import MEDIA_TYPES, choose_format
from analytics_api.responses import JsonResponse
from analytics_api.services import Services

router = APIRouter(tags=["query"])
MAX_SQL_LENGTH = 20_000

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


# GET /query reads its query string itself: FastAPI's per-parameter validation costs more
# than a point lookup's execution. The parameters are still declared for /docs.
_GET_PARAMETERS = [
    {"name": "q", "in": "query", "required": True, "description": "the SQL",
     "schema": {"type": "string", "maxLength": MAX_SQL_LENGTH}},
    {"name": "params", "in": "query", "required": False, "description": "JSON array or object of bind values",
     "schema": {"type": "string"}},
    {"name": "format", "in": "query", "required": False, "schema": {"type": "string", "enum": list(MEDIA_TYPES)}},
    {"name": "max_rows", "in": "query", "required": False, "description": "lower the row cap for this request",
     "schema": {"type": "integer", "minimum": 1}},
]


def _parse_max_rows(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest("max_rows: must be an integer") from None
    if value < 1:
        raise BadRequest("max_rows: must be at least 1")
    return value


@router.get("/query", summary="Run a read-only SQL query (GET)", openapi_extra={"parameters": _GET_PARAMETERS})
async def query_get(request: Request, principal: QueryUser) -> Response:
    services: Services = request.app.state.services
    args = request.query_params
    q = args.get("q")
    if q is None:
        raise BadRequest("q: the SQL query is required (GET /query?q=SELECT ...)")
    if len(q) > MAX_SQL_LENGTH:
        raise BadRequest(f"q: longer than {MAX_SQL_LENGTH} characters")
    fmt = choose_format(args.get("format"), request.headers.get("accept"))
    return await answer_query(request, services, principal, q, _parse_params(args.get("params")), fmt,
                              max_rows=_parse_max_rows(args.get("max_rows")))


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
    fmt = choose_format(fmt_raw, request.headers.get("accept"))
    # Validated on the snapshot it runs on, like any query: column views and row filters apply.
    return await answer_query(request, services, principal, named.sql, values, fmt)


@router.get("/queries/{name}", summary="Run a named query; parameters in the query string")
async def named_get(request: Request, services: ServicesDep, principal: QueryUser, name: str,
                    format: Annotated[str | None, Query()] = None) -> Response:
    raw = {k: v for k, v in request.query_params.items() if k != "format"}
    return await _named(request, services, principal, name, raw, format)


@router.post("/queries/{name}", summary="Run a named query; parameters in the JSON body")
async def named_post(request: Request, services: ServicesDep, principal: QueryUser, name: str,
                     body: Annotated[NamedQueryRequest, Body()] = NamedQueryRequest()) -> Response:
    return await _named(request, services, principal, name, body.params, body.format)
