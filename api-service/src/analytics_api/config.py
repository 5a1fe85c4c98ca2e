"""API settings from the environment (names fixed by DESIGN.md).

Auth has no silent defaults: without an audience and a key source the service
refuses to start, with one line naming the variable.
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from analytics_api.compression import parse_encodings
from analytics_api.proxy import parse_trusted_proxies
from analytics_shared.settings import MemorySize, StorageSettings, load_settings

DEFAULT_WHITELIST = Path(__file__).resolve().parents[3] / "shared" / "schemas" / "query_whitelist.json"


class ApiSettings(StorageSettings):
    auth0_domain: str = ""
    auth0_api_audience: str = ""
    auth0_issuer: str = ""
    auth0_jwks_url: str = ""
    jwks_refresh_cooldown_seconds: float = Field(30.0, ge=0)
    jwks_max_age_seconds: float = Field(600.0, gt=0)
    jwt_leeway_seconds: int = Field(30, ge=0, le=300)

    rate_limit_requests: int = Field(50, ge=1)
    rate_limit_window_seconds: int = Field(60, ge=1)
    rate_limit_ip_requests: int = Field(0, ge=0)  # 0: 4 x RATE_LIMIT_REQUESTS
    rate_limit_storage_url: str = "memory://"
    # O(1) per hit in memory and Redis; moving-window keeps one timestamp per request (O(limit)).
    rate_limit_strategy: Literal["fixed-window", "moving-window", "sliding-window-counter"] = "sliding-window-counter"

    cors_origins: str = ""
    # Proxies whose X-Forwarded-For is believed; `*`: whatever connects (a platform proxy such as
    # Railway's). The client is the right-most address in it that is not one of these.
    forwarded_allow_ips: str = "127.0.0.1"
    query_whitelist_path: Path = DEFAULT_WHITELIST
    query_timeout_seconds: float = Field(30.0, gt=0)
    max_result_rows: int = Field(10_000, ge=1)
    result_cache_mb: int = Field(64, ge=0)
    query_concurrency: int = Field(8, ge=1)

    snapshot_poll_seconds: float = Field(10.0, gt=0)
    snapshot_cache_dir: Path = Path(tempfile.gettempdir()) / "analytics-snapshots"
    snapshot_fetch_concurrency: int = Field(8, ge=1, le=64)  # parallel chunk GETs while loading a version
    # Replaced versions kept open so that page cursors pinned to them still work (then 410 Gone).
    snapshot_keep_previous: int = Field(1, ge=0, le=8)
    max_page_size: int = Field(10_000, ge=1)
    batch_max_queries: int = Field(20, ge=1, le=100)
    duckdb_memory_limit: MemorySize = "1GB"
    duckdb_threads: int = Field(0, ge=0)  # 0: the host's cores shared out among WEB_CONCURRENCY workers

    port: int = Field(8000, ge=1, le=65535)
    web_concurrency: int = Field(2, ge=1)
    metrics_enabled: bool = True
    # HTTP compression of JSON and CSV bodies (compression.py): the codings offered (used in the
    # order zstd, br, gzip whatever the order here) and the smallest body worth compressing.
    compression_encodings: str = "zstd,br,gzip"
    compression_min_bytes: int = Field(1024, ge=0)
    # The browser query console at /console (static files; a client of the public API).
    console_enabled: bool = True
    auth0_console_client_id: str = ""  # an Auth0 "Single Page Application"; empty: paste or dev token only

    @model_validator(mode="after")
    def _auth(self):  # noqa: ANN202 - pydantic hook
        domain = self.auth0_domain.strip().removeprefix("https://").rstrip("/")
        self.auth0_domain = domain
        source = "AUTH0_JWKS_URL"
        if not self.auth0_jwks_url:
            if not domain:
                raise ValueError("set AUTH0_DOMAIN (or AUTH0_JWKS_URL and AUTH0_ISSUER)")
            self.auth0_jwks_url = f"https://{domain}/.well-known/jwks.json"
            source = "AUTH0_DOMAIN"
        if (problem := _jwks_url_problem(self.auth0_jwks_url)) is not None:
            raise ValueError(f"{source}: {problem}")
        if not self.auth0_issuer:
            if not domain:
                raise ValueError("set AUTH0_ISSUER when AUTH0_JWKS_URL is given without AUTH0_DOMAIN")
            self.auth0_issuer = f"https://{domain}/"
        if not self.auth0_api_audience:
            raise ValueError("set AUTH0_API_AUDIENCE (the Auth0 API identifier)")
        try:
            parse_trusted_proxies(self.forwarded_allow_ips)
        except ValueError as exc:
            raise ValueError(f"FORWARDED_ALLOW_IPS: {exc} (give `*` or addresses and networks, comma-separated)")
        try:
            parse_encodings(self.compression_encodings)
        except ValueError as exc:
            raise ValueError(f"COMPRESSION_ENCODINGS: {exc}") from None
        if self.auth0_console_client_id and not domain:
            raise ValueError("AUTH0_CONSOLE_CLIENT_ID needs AUTH0_DOMAIN (the tenant the console logs in with)")
        if not self.rate_limit_storage_url.startswith(("memory://", "redis://", "rediss://", "redis+sentinel://")):
            raise ValueError("RATE_LIMIT_STORAGE_URL must be memory:// or redis://")
        return self

    @property
    def engine_threads(self) -> int:
        """DuckDB threads per worker: workers x threads ~ cores, so busy workers do not fight."""
        if self.duckdb_threads:
            return self.duckdb_threads
        return max(1, (os.cpu_count() or 1) // self.web_concurrency)

    @property
    def compression_encoding_list(self) -> tuple[str, ...]:
        return parse_encodings(self.compression_encodings)

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def ip_limit(self) -> int:
        return self.rate_limit_ip_requests or 4 * self.rate_limit_requests


def _jwks_url_problem(url: str) -> str | None:
    """What is wrong with a JWKS URL, or None: https://host, file:// (a local issuer), or plain
    http:// to a loopback address only. Judged on the parsed host, never on a prefix of the text:
    http://127.0.0.1.attacker.example/ and http://localhost@attacker.example/ are other hosts."""
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # .port raises on a malformed one
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    scheme = parts.scheme.lower()
    if scheme == "file":
        return None
    if scheme not in ("https", "http") or not host:
        return "must be https://HOST/... (or file:// for a local issuer)"
    if "@" in parts.netloc:  # the URL is never echoed: a user part may hold a password
        return f"takes no user@ part (this one would fetch from {host!r})"
    if scheme == "http" and not _is_loopback(host):
        return f"plain http:// is only allowed to a loopback host (127.0.0.1, ::1, localhost), not {host!r}"
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name other than localhost: DNS could point it anywhere
        return False


def get_settings(**overrides: object) -> ApiSettings:
    return load_settings(ApiSettings, **overrides)
