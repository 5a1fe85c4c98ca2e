"""Bearer token verification: RS256 only, exp/iss/aud required, scopes extracted."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import anyio.to_thread
import jwt
from cachetools import LRUCache

from analytics_api.auth.jwks import JwksCache
from analytics_api.errors import Unauthorized

ALGORITHMS = ["RS256"]
TOKEN_CACHE_SIZE = 4096


@dataclass(frozen=True)
class Principal:
    sub: str
    scopes: frozenset[str]
    claims: dict

    def has(self, scope: str) -> bool:
        return scope in self.scopes


def read_scopes(claims: dict) -> frozenset[str]:
    """Auth0 puts OAuth scopes in `scope` (space-separated) and RBAC ones in `permissions`."""
    scopes: set[str] = set()
    scope = claims.get("scope")
    if isinstance(scope, str):
        scopes.update(scope.split())
    permissions = claims.get("permissions")
    if isinstance(permissions, list):
        scopes.update(p for p in permissions if isinstance(p, str))
    return frozenset(scopes)


class TokenVerifier:
    def __init__(self, jwks: JwksCache, *, audience: str, issuer: str, leeway: int = 30) -> None:
        self.jwks = jwks
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway
        # A frontend sends the same token for an hour: verify its signature once, not per request.
        # Entries die with the token's exp and with any change of the key set (revocation).
        self._verified: LRUCache[str, tuple[Principal, float, int]] = LRUCache(TOKEN_CACHE_SIZE)

    async def verify(self, token: str) -> Principal:
        hit = self._verified.get(token)
        if hit is not None:
            principal, expires, generation = hit
            if (time.time() < expires + self.leeway and generation == self.jwks.generation
                    and self.jwks.is_fresh()):  # a stale key set is refetched on the slow path
                return principal
            del self._verified[token]
        principal = await self._verify_uncached(token)
        self._verified[token] = (principal, float(principal.claims["exp"]), self.jwks.generation)
        return principal

    async def _verify_uncached(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("malformed bearer token") from None
        if header.get("alg") not in ALGORITHMS:
            raise Unauthorized(f"token algorithm {header.get('alg')!r} is not accepted (RS256 only)")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("token header has no kid")
        key = self.jwks.cached_key(kid)
        if key is None:
            key = await anyio.to_thread.run_sync(self.jwks.get_key, kid)
        return self.decode(token, key)

    def decode(self, token: str, key: object) -> Principal:
        try:
            claims = jwt.decode(token, key=key, algorithms=ALGORITHMS, audience=self.audience,
                                issuer=self.issuer, leeway=self.leeway,
                                options={"require": ["exp", "iss", "aud", "sub"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token has expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("token audience is not this API") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("token issuer is not trusted") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"token lacks the {exc.claim!r} claim") from None
        except jwt.PyJWTError:
            raise Unauthorized("token signature or claims are invalid") from None
        # PyJWT takes any exp that int() takes: a string, and integers too large for a float, which
        # the verified-token cache (float(exp)) then turned into a 500. RFC 7519: a JSON number.
        exp = claims["exp"]
        try:
            numeric = isinstance(exp, int | float) and not isinstance(exp, bool) and math.isfinite(exp)
        except OverflowError:
            numeric = False
        if not numeric:
            raise Unauthorized("token exp is not a NumericDate (a finite number of seconds)")
        return Principal(sub=str(claims["sub"]), scopes=read_scopes(claims), claims=claims)
