"""The issuer's signing keys, fetched from its JWKS and cached.

An unknown `kid` triggers at most one refetch per cooldown, so a flood of tokens
with random kids cannot turn into a flood of requests to the issuer. The set is also
refetched once it is older than max_age, so a key the issuer revoked stops verifying
without a restart.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse

import jwt
from jwt.algorithms import RSAAlgorithm

from analytics_api.errors import Unauthorized
from analytics_shared.logging import get_logger

log = get_logger(__name__)

FETCH_TIMEOUT_SECONDS = 5
# PyJWT only warns when it verifies with a shorter key; a 1024-bit modulus is within reach of
# factoring, and whoever factors it signs tokens. Auth0's keys are 2048 bits.
MIN_RSA_BITS = 2048


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Keys come from AUTH0_JWKS_URL itself. urllib would follow a 3xx to any host and from
    https:// down to http://, past the checks settings made on that URL, and the keys found there
    would be trusted: a redirect is a failed fetch instead (the cached keys stay)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201, PLR0913
        raise urllib.error.HTTPError(req.full_url, code, f"redirect to {newurl!r} refused", headers, fp)


_opener = urllib.request.build_opener(_RefuseRedirects)


def read_jwks(url: str) -> dict:
    """Fetch a JWKS document from https:// (or http:// on loopback) or file://."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return json.loads(Path(unquote(parsed.netloc + parsed.path)).read_text())
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "analytics-api"})
    with _opener.open(request, timeout=FETCH_TIMEOUT_SECONDS) as response:  # scheme and host checked in settings
        return json.loads(response.read(1 << 20))


def parse_rsa_keys(document: object) -> dict[str, object]:
    """Public RSA signing keys by kid; other key types and uses are ignored.

    ValueError when the document is no JWKS at all (not an object, `keys` not a list): that is a
    failed fetch, which keeps the cached keys, not an AttributeError that 500s every request."""
    if not isinstance(document, dict) or not isinstance(document.get("keys", []), list):
        raise ValueError("the JWKS is not an object with a list of keys")
    keys: dict[str, object] = {}
    for jwk in document.get("keys", []):
        if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or not jwk.get("kid"):
            continue
        if jwk.get("use", "sig") != "sig" or jwk.get("alg", "RS256") != "RS256":
            continue
        try:
            key = RSAAlgorithm.from_jwk(jwk)
        except (jwt.InvalidKeyError, ValueError, KeyError, TypeError):
            log.warning("jwks.key_skipped", kid=jwk.get("kid"))
            continue
        if getattr(key, "key_size", 0) < MIN_RSA_BITS:
            log.warning("jwks.key_skipped", kid=jwk.get("kid"), reason=f"shorter than {MIN_RSA_BITS} bits")
            continue
        try:
            keys[jwk["kid"]] = key
        except TypeError:  # an unhashable kid
            log.warning("jwks.key_skipped", kid=jwk.get("kid"))
    return keys


class JwksCache:
    def __init__(self, url: str, cooldown_seconds: float = 30.0, max_age_seconds: float = 600.0) -> None:
        self.url = url
        self.cooldown = cooldown_seconds
        self.max_age = max_age_seconds
        self._keys: dict[str, object] = {}
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")  # the last fetch, good or failed: the cooldown counts from it
        self._lock = threading.Lock()
        self.fetch_count = 0
        self.generation = 0  # bumped whenever the key set changes: verified-token caches drop out

    def is_fresh(self) -> bool:
        return time.monotonic() - self._fetched_at <= self.max_age

    def cached_key(self, kid: str) -> object | None:
        """The key when it is cached and the set is fresh; None means: call get_key (blocking)."""
        return self._keys.get(kid) if self.is_fresh() else None

    def get_key(self, kid: str) -> object:
        """The key for kid, refetching the JWKS (at most once per cooldown) when unknown.

        Blocking: call from a worker thread, not the event loop, when cached_key misses.
        """
        with self._lock:
            now = time.monotonic()
            key = self._keys.get(kid)
            # An unknown kid waits out the cooldown since the last *attempt*. Measured from
            # _fetched_at, which a failed fetch sets to max_age - cooldown ago, every unknown kid
            # refetched while the issuer was failing: one request to it per attacker request.
            if now - self._fetched_at > self.max_age or (key is None and now - self._attempted_at >= self.cooldown):
                self._refresh()
                key = self._keys.get(kid)
        if key is None:
            raise Unauthorized("token signed with an unknown key (kid)")
        return key

    def _refresh(self) -> None:
        self.fetch_count += 1
        try:
            keys = parse_rsa_keys(read_jwks(self.url))
            if not keys:  # an issuer always publishes its signing key: an empty set is a broken answer
                raise ValueError("the JWKS holds no usable RSA signing key")
        except (OSError, ValueError) as exc:
            self._attempted_at = time.monotonic()
            # Keep the keys we had (an issuer hiccup must not log everyone out), and retry
            # after the cooldown rather than on every request.
            self._fetched_at = time.monotonic() - max(0.0, self.max_age - self.cooldown)
            log.error("jwks.fetch_failed", url=self.url, error=str(exc))
            return
        self._fetched_at = self._attempted_at = time.monotonic()
        # New key material under a kid it already had counts as a change too: tokens verified
        # with the old material must be checked again, not served from the verified-token cache.
        if _material(keys) != _material(self._keys):
            self.generation += 1
        self._keys = keys
        log.info("jwks.fetched", url=self.url, kids=sorted(keys))


def _material(keys: dict[str, object]) -> dict[str, object]:
    return {kid: key.public_numbers() for kid, key in keys.items()}  # type: ignore[attr-defined]
