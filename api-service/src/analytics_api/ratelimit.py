"""Rate limits: per client IP before authentication, per user (sub) after it.

slowapi's Limiter builds the `limits` storage and strategy from RATE_LIMIT_STORAGE_URL
(memory:// per worker, redis:// shared by every worker and replica). Its route decorator
runs either before FastAPI's dependencies (middleware) or after them (decorator), never
both for one route, so the two checks are called here explicitly, in order, on its limiter.
A storage outage fails open with an error log: an unreachable Redis must not take the
API down with it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerSecond
from slowapi import Limiter
from starlette.requests import Request

from analytics_api.config import ApiSettings
from analytics_api.errors import ApiError
from analytics_shared.logging import get_logger

log = get_logger(__name__)


class RateLimited(ApiError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.headers = headers


@dataclass(frozen=True)
class Quota:
    limit: int
    remaining: int
    reset_at: float

    def headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": str(math.ceil(self.reset_at))}


def client_ip(request: Request) -> str:
    # Behind a trusted proxy (FORWARDED_ALLOW_IPS), analytics_api.proxy has set request.client
    # to the address that proxy saw, the right-most untrusted X-Forwarded-For entry, which
    # the client cannot choose: entries it writes itself sit further left.
    return request.client.host if request.client else "unknown"


class RateLimiter:
    def __init__(self, settings: ApiSettings) -> None:
        options = {}
        if settings.rate_limit_storage_url.startswith("redis"):
            options = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}
        self._slowapi = Limiter(key_func=client_ip, storage_uri=settings.rate_limit_storage_url,
                                storage_options=options, strategy=settings.rate_limit_strategy,
                                key_prefix="analytics-api", headers_enabled=True)
        window = settings.rate_limit_window_seconds
        self.user_item: RateLimitItem = RateLimitItemPerSecond(settings.rate_limit_requests, window)
        self.ip_item: RateLimitItem = RateLimitItemPerSecond(settings.ip_limit, window)
        self.storage_url = settings.rate_limit_storage_url

    def check_ip(self, request: Request) -> Quota | None:
        return self._hit(self.ip_item, "ip", client_ip(request), "too many requests from this address")

    def check_user(self, request: Request, sub: str, cost: int = 1) -> Quota | None:
        """cost: queries this request runs (a batch counts each of its queries)."""
        return self._hit(self.user_item, "user", sub, "rate limit exceeded for this user", cost)

    def _hit(self, item: RateLimitItem, kind: str, key: str, message: str, cost: int = 1) -> Quota | None:
        strategy = self._slowapi.limiter
        try:
            allowed = strategy.hit(item, "analytics-api", kind, key, cost=cost)
            stats = strategy.get_window_stats(item, "analytics-api", kind, key)
        except Exception as exc:  # storage down: fail open, loudly
            log.error("ratelimit.storage_failed", storage=self.storage_url.split("@")[-1], error=str(exc))
            return None
        quota = Quota(limit=item.amount, remaining=max(0, stats.remaining), reset_at=stats.reset_time)
        if not allowed:
            headers = quota.headers()
            headers["Retry-After"] = str(max(1, math.ceil(stats.reset_time - time.time())))
            raise RateLimited(f"{message}: {item.amount} requests per {item.multiples} s", headers)
        return quota
