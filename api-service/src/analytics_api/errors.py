"""HTTP-facing errors: each one maps to a status and a stable `code` in the JSON body."""

from __future__ import annotations

from analytics_shared.errors import AnalyticsError


class ApiError(AnalyticsError):
    status = 500
    code = "internal_error"
    headers: dict[str, str] | None = None


class QueryRejected(ApiError):
    status = 400
    code = "query_rejected"


class BadRequest(ApiError):
    status = 400
    code = "bad_request"


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"
    headers = {"WWW-Authenticate": 'Bearer realm="analytics"'}


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Gone(ApiError):
    status = 410
    code = "gone"


class QueryTimeout(ApiError):
    status = 408
    code = "query_timeout"


class ResultTooLarge(ApiError):
    status = 413
    code = "result_too_large"


class SnapshotUnavailable(ApiError):
    status = 503
    code = "snapshot_unavailable"
    headers = {"Retry-After": "10"}


class SnapshotRejected(AnalyticsError):
    """A published snapshot this worker will not serve (corrupt, incompatible, unreadable)."""

    code = "snapshot_rejected"


class SnapshotCacheError(AnalyticsError):
    """SNAPSHOT_CACHE_DIR cannot take a new version (full, read-only, a name it refuses): the
    version itself may be fine, so it is tried again at the next poll."""

    code = "snapshot_cache_error"
    transient = True
