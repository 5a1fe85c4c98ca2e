"""`/console`: the browser query console, as static files (issue 11).

The page is a client of the public API only: it sends the user's bearer token to /schema,
/snapshot, /query and /queries like any frontend app. Nothing here reads a token, a session or
data; every route below answers the same bytes to everyone, which is why none of them needs auth.
The one generated file, config.json, holds what any single-page app ships in its bundle anyway
(the Auth0 domain, the console's public client id, the API audience).
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from analytics_api.config import ApiSettings
from analytics_api.console.assets import Asset, load_assets, make_asset
from analytics_api.console.policy import security_headers
from analytics_api.errors import NotFound

PREFIX = "/console"


def console_config(settings: ApiSettings) -> dict:
    auth0 = None
    if settings.auth0_console_client_id:
        auth0 = {"domain": settings.auth0_domain, "client_id": settings.auth0_console_client_id,
                 "audience": settings.auth0_api_audience}
    return {"auth0": auth0}


def build_router(settings: ApiSettings) -> APIRouter:
    assets = load_assets()
    assets["config.json"] = make_asset(json.dumps(console_config(settings)).encode(), "config.json")
    headers = security_headers(settings)
    router = APIRouter(include_in_schema=False)

    def serve(request: Request, asset: Asset, cache: str) -> Response:
        common = {**headers, "ETag": asset.etag, "Cache-Control": cache, "Vary": "Accept-Encoding"}
        if request.headers.get("if-none-match") == asset.etag:
            return Response(status_code=304, headers=common)
        if asset.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
            return Response(asset.gzipped, media_type=asset.media_type,
                            headers={**common, "Content-Encoding": "gzip"})
        return Response(asset.body, media_type=asset.media_type, headers=common)

    @router.get(PREFIX)
    async def console_root() -> Response:
        # The page loads its modules by relative URL, so it must be addressed as a directory.
        return RedirectResponse(f"{PREFIX}/", status_code=308, headers=headers)

    @router.get(PREFIX + "/")
    async def console_index(request: Request) -> Response:
        return serve(request, assets["index.html"], "no-cache")

    @router.get(PREFIX + "/{path:path}")
    async def console_file(path: str, request: Request) -> Response:
        asset = assets.get(path)
        if asset is None:
            raise NotFound(f"no console file {path!r}")
        # Revalidated, not cached blind: a deploy changes files without renaming them, and the
        # ETag makes the check a 304 that costs a few hundred bytes.
        return serve(request, asset, "no-cache")

    return router
