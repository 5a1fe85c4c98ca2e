"""Everything a request needs, built once per worker by create_app(settings)."""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from analytics_api.auth.jwks import JwksCache
from analytics_api.auth.tokens import TokenVerifier
from analytics_api.config import ApiSettings
from analytics_api.errors import QueryRejected
from analytics_api.query.cache import ResultCache
from analytics_api.query.guard import SqlGuard
from analytics_api.query.small_results import ShapeHints
from analytics_api.query.watchdog import Watchdog
from analytics_api.ratelimit import RateLimiter
from analytics_api.snapshots.manager import SnapshotManager
from analytics_api.whitelist import Whitelist, load_whitelist
from analytics_shared.errors import ConfigError
from analytics_shared.storage import open_store


@dataclass
class Services:
    settings: ApiSettings
    whitelist: Whitelist
    guard: SqlGuard
    verifier: TokenVerifier
    limiter: RateLimiter
    snapshots: SnapshotManager
    cache: ResultCache
    watchdog: Watchdog
    hints: ShapeHints
    query_slots: anyio.CapacityLimiter | None = None

    @property
    def max_rows(self) -> int:
        cap = self.whitelist.max_rows
        return min(self.settings.max_result_rows, cap) if cap else self.settings.max_result_rows


def build_services(settings: ApiSettings) -> Services:
    """Validates the whitelist (and its named queries) so a bad file stops the start."""
    whitelist = load_whitelist(settings.query_whitelist_path)
    guard = SqlGuard(whitelist)
    try:
        guard.check_row_filters()
    except QueryRejected as exc:
        raise ConfigError(f"QUERY_WHITELIST_PATH: a row_filter is not allowed: {exc.message}") from None
    for name, named in whitelist.queries.items():
        try:
            guard.check(named.sql)
        except QueryRejected as exc:
            raise ConfigError(f"QUERY_WHITELIST_PATH: named query {name!r} is not allowed: {exc.message}") from None
    store = open_store(settings.storage_url, region=settings.s3_region, endpoint_url=settings.s3_endpoint_url)
    jwks = JwksCache(settings.auth0_jwks_url, cooldown_seconds=settings.jwks_refresh_cooldown_seconds,
                     max_age_seconds=settings.jwks_max_age_seconds)
    verifier = TokenVerifier(jwks, audience=settings.auth0_api_audience, issuer=settings.auth0_issuer,
                             leeway=settings.jwt_leeway_seconds)
    snapshots = SnapshotManager(store, cache_dir=settings.snapshot_cache_dir, tables=sorted(whitelist.tables),
                                poll_seconds=settings.snapshot_poll_seconds,
                                memory_limit=settings.duckdb_memory_limit, threads=settings.engine_threads,
                                fetch_concurrency=settings.snapshot_fetch_concurrency,
                                keep_previous=settings.snapshot_keep_previous)
    cache = ResultCache(settings.result_cache_mb * 1024 * 1024)
    # Keys carry the snapshot version: after a swap the old version's entries can never be hit.
    snapshots.on_swap.append(lambda snap: cache.retain(snap.version))
    return Services(settings=settings, whitelist=whitelist, guard=guard, verifier=verifier,
                    limiter=RateLimiter(settings), snapshots=snapshots, cache=cache, watchdog=Watchdog(),
                    hints=ShapeHints())
