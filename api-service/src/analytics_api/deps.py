"""FastAPI dependencies: services, IP limit, bearer auth, scope checks, user limit."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from analytics_api.auth.tokens import Principal
from analytics_api.errors import Forbidden, Unauthorized
from analytics_api.services import Services


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


async def limit_by_ip(request: Request, services: ServicesDep) -> None:
    """Before authentication, so guessing tokens costs quota too."""
    quota = services.limiter.check_ip(request)
    if quota is not None:
        request.state.quota = quota


async def authenticate(request: Request, services: ServicesDep,
                       _: Annotated[None, Depends(limit_by_ip)]) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    principal = await services.verifier.verify(token.strip())
    request.state.user = principal.sub
    return principal


def _require(scope_of) -> object:  # noqa: ANN001 - scope_of(whitelist) -> scope name
    async def dependency(request: Request, services: ServicesDep,
                         principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        needed = scope_of(services.whitelist)
        if not principal.has(needed):
            raise Forbidden(f"token lacks the {needed!r} scope")
        quota = services.limiter.check_user(request, principal.sub)
        if quota is not None:
            request.state.quota = quota
        return principal

    return dependency


QueryUser = Annotated[Principal, Depends(_require(lambda w: w.query_scope))]
SchemaUser = Annotated[Principal, Depends(_require(lambda w: w.schema_scope))]
