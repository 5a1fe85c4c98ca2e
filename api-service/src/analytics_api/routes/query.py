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
from analytics_api.query.pages import Cursor, decode, page_of
from analytics_api.query.serialize import MEDIA_TYPES, choose_format
from analytics_api.responses import JsonResponse
from analytics_api.services import Services

router = APIRouter(tags=["query"])
MAX_SQL_LENGTH = 20_000

Scalar = str | int | float | bool | None


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sql: str | None = Field(None, description="One SELECT over whitelisted tables; $1 / $name placeholders")
    params: list[Scalar] | dict[str, Scalar] | None = Field(None, description="Values bound to the placeholders")
    format: str | None = Field(None, description="json (default), csv, arrow or parquet")
    max_rows: int | None = Field(None, ge=1, description="Lower the row cap for this request")
    page_size: int | None = Field(None, ge=1, description="Rows per page; the answer carries a `next` cursor")
    count: str | None = Field(None, description="'exact': a page also reports total_rows")
    cursor: str | None = Field(None, description="A `next` cursor from the previous page (alone)")


class NamedQueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    params: dict[str, Scalar] = {}
    format: str | None = None
    page_size: int | None = Field(None, ge=1)
    count: str | None = None


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
    {"name": "page_size", "in": "query", "required": False, "description": "rows per page (a `next` cursor follows)",
     "schema": {"type": "integer", "minimum": 1}},
    {"name": "count", "in": "query", "required": False, "schema": {"type": "string", "enum": ["exact"]}},
    {"name": "cursor", "in": "query", "required": False, "description": "the previous page's `next`, alone",
     "schema": {"type": "string"}},
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
    if args.get("cursor"):
        return await _follow(request, services, principal, args.get("cursor"), set(args) - {"cursor"})
    q = args.get("q")
    if q is None:
        raise BadRequest("q: the SQL query is required (GET /query?q=SELECT ...)")
    if len(q) > MAX_SQL_LENGTH:
        raise BadRequest(f"q: longer than {MAX_SQL_LENGTH} characters")
    fmt = choose_format(args.get("format"), request.headers.get("accept"))
    params = _parse_params(args.get("params"))
    page = page_of(args.get("page_size"), args.get("count"), services.settings.max_page_size)
    return await answer_query(request, services, principal, q, params, fmt,
                              max_rows=_parse_max_rows(args.get("max_rows")),
                              cursor=page and Cursor(page=page, format=fmt, sql=q, params=params))


@router.post("/query", summary="Run a read-only SQL query (POST)")
async def query_post(request: Request, services: ServicesDep, principal: QueryUser,
                     body: Annotated[QueryRequest, Body()]) -> Response:
    if body.cursor:
        return await _follow(request, services, principal, body.cursor, body.model_fields_set - {"cursor"})
    if body.sql is None:
        raise BadRequest("sql: the SQL query is required")
    fmt = choose_format(body.format, request.headers.get("accept"))
    page = page_of(body.page_size, body.count, services.settings.max_page_size)
    return await answer_query(request, services, principal, body.sql, body.params, fmt, max_rows=body.max_rows,
                              cursor=page and Cursor(page=page, format=fmt, sql=body.sql, params=body.params))


async def _follow(request: Request, services: Services, principal, text: str, others: set[str]) -> Response:  # noqa: ANN001
    """The next page of a paged request: everything comes from the cursor, checked again."""
    if others:
        raise BadRequest(f"cursor: send it alone, without {', '.join(sorted(others))}")
    cursor = decode(text, services.settings.max_page_size)
    sql, params = cursor.sql, cursor.params
    if cursor.name is not None:
        named = services.whitelist.queries.get(cursor.name)
        if named is None:
            raise NotFound(f"no named query {cursor.name!r}")
        sql, params = named.sql, named.bind(params if isinstance(params, dict) else {})
    return await answer_query(request, services, principal, sql, params, cursor.format, cursor=cursor)


@router.get("/queries", summary="List the named queries and their parameters")
async def list_named(services: ServicesDep, principal: QueryUser) -> JsonResponse:
    return JsonResponse({"success": True, "queries": {
        name: {"description": q.description,
               "params": {p: {**spec.model_dump(exclude_none=True), "required": spec.required and spec.default is None}
                          for p, spec in q.params.items()}}
        for name, q in services.whitelist.queries.items()}})


async def _named(request: Request, services: ServicesDep, principal, name: str,  # noqa: ANN001
                 raw: dict[str, Any], fmt_raw: str | None, page_size: object = None, count: object = None) -> Response:
    named = services.whitelist.queries.get(name)
    if named is None:
        raise NotFound(f"no named query {name!r}")
    values = named.bind(raw)
    fmt = choose_format(fmt_raw, request.headers.get("accept"))
    page = page_of(page_size, count, services.settings.max_page_size)
    # Validated on the snapshot it runs on, like any query: column views and row filters apply.
    return await answer_query(request, services, principal, named.sql, values, fmt,
                              cursor=page and Cursor(page=page, format=fmt, name=name, params=raw))


_PAGING = ("format", "page_size", "count", "cursor")


@router.get("/queries/{name}", summary="Run a named query; parameters in the query string")
async def named_get(request: Request, services: ServicesDep, principal: QueryUser, name: str,
                    format: Annotated[str | None, Query()] = None) -> Response:
    args = request.query_params
    if args.get("cursor"):
        return await _follow(request, services, principal, args["cursor"], set(args) - {"cursor"})
    raw = {k: v for k, v in args.items() if k not in _PAGING}
    return await _named(request, services, principal, name, raw, format, args.get("page_size"), args.get("count"))


@router.post("/queries/{name}", summary="Run a named query; parameters in the JSON body")
async def named_post(request: Request, services: ServicesDep, principal: QueryUser, name: str,
                     body: Annotated[NamedQueryRequest, Body()] = NamedQueryRequest()) -> Response:
    return await _named(request, services, principal, name, body.params, body.format, body.page_size, body.count)
