"""FastAPI dependencies: services, and the access check every data route runs first.

The check is one dependency, not a chain of four: FastAPI's dependency solving costs tens
of microseconds per node on every request, and the order of the steps is the point:
IP limit (so guessing tokens costs quota too) → bearer token → scope → per-user limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from analytics_api.auth.tokens import Principal
from analytics_api.errors import Forbidden, Unauthorized
from analytics_api.services import Services
from analytics_api.whitelist import Whitelist


async def get_services(request: Request) -> Services:
    # async on purpose: FastAPI runs a plain `def` dependency in its thread pool, which
    # costs a thread hop (~0.1-0.3 ms of CPU) on every request for a dict lookup.
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


async def authenticate(request: Request, services: Services) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    principal = await services.verifier.verify(token.strip())
    request.state.user = principal.sub
    return principal


def _require(scope_of: Callable[[Whitelist], str]) -> Callable:
    async def check_access(request: Request) -> Principal:
        services: Services = request.app.state.services
        quota = services.limiter.check_ip(request)
        if quota is not None:
            request.state.quota = quota
        principal = await authenticate(request, services)
        needed = scope_of(services.whitelist)
        if not principal.has(needed):
            raise Forbidden(f"token lacks the {needed!r} scope")
        quota = services.limiter.check_user(request, principal.sub)
        if quota is not None:
            request.state.quota = quota
        return principal

    return check_access


QueryUser = Annotated[Principal, Depends(_require(lambda w: w.query_scope))]
SchemaUser = Annotated[Principal, Depends(_require(lambda w: w.schema_scope))]
