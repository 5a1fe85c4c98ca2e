"""The one JSON error shape: {"success": false, "error": {"code", "message"}}."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from analytics_api.responses import JsonResponse
from starlette.exceptions import HTTPException

from analytics_api.errors import ApiError
from analytics_api.metrics import REJECTED
from analytics_shared.errors import AnalyticsError
from analytics_shared.logging import get_logger

log = get_logger(__name__)


def error_response(request: Request, status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> JsonResponse:
    request.state.error_code = code
    if status in (400, 403, 408, 413, 429):
        REJECTED.labels(code).inc()
    return JsonResponse({"success": False, "error": {"code": code, "message": message}},
                          status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JsonResponse:
        return error_response(request, exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(AnalyticsError)
    async def _analytics_error(request: Request, exc: AnalyticsError) -> JsonResponse:
        log.error("request.failed", code=exc.code, error=exc.message)
        status = 503 if exc.transient else 500
        return error_response(request, status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JsonResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"] if p not in ("body", "query"))
        return error_response(request, 400, "bad_request", f"{where}: {first['msg']}" if where else first["msg"])

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JsonResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
        code = codes.get(exc.status_code, "http_error")
        return error_response(request, exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JsonResponse:
        log.exception("request.crashed", error=type(exc).__name__)
        return error_response(request, 500, "internal_error",
                              f"internal error (request id {getattr(request.state, 'request_id', '?')})")
