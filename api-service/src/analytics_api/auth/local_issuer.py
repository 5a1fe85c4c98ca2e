"""A local token issuer for development and tests: a real RSA key, a real JWKS, real RS256 tokens.

The API validates these exactly as it validates Auth0's (point AUTH0_JWKS_URL at the JWKS
file and AUTH0_ISSUER at ISSUER); nothing in the API knows this issuer exists.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

LOCAL_ISSUER = "https://local-issuer.analytics.invalid/"
LOCAL_AUDIENCE = "https://analytics-api"
KEY_FILE = "issuer-key.pem"
JWKS_FILE = "jwks.json"


@dataclass
class LocalIssuer:
    key: rsa.RSAPrivateKey
    kid: str
    issuer: str = LOCAL_ISSUER

    @classmethod
    def generate(cls, issuer: str = LOCAL_ISSUER) -> LocalIssuer:
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048), uuid.uuid4().hex[:16], issuer)

    def jwks(self) -> dict:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def mint(self, *, sub: str = "dev-user", scopes: str = "read:analytics read:schema",
             audience: str = LOCAL_AUDIENCE, ttl_seconds: int = 3600, **claims: object) -> str:
        now = int(time.time())
        payload = {"iss": self.issuer, "sub": sub, "aud": audience, "iat": now, "exp": now + ttl_seconds,
                   "scope": scopes, **claims}
        return jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": self.kid})

    def save(self, directory: Path) -> Path:
        """Write the private key (0600) and the JWKS; returns the JWKS path."""
        directory.mkdir(parents=True, exist_ok=True)
        pem = self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
        key_path = directory / KEY_FILE
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        (directory / "issuer.json").write_text(json.dumps({"kid": self.kid, "issuer": self.issuer}))
        jwks_path = directory / JWKS_FILE
        jwks_path.write_text(json.dumps(self.jwks(), indent=2))
        return jwks_path

    @classmethod
    def load(cls, directory: Path) -> LocalIssuer:
        meta = json.loads((directory / "issuer.json").read_text())
        key = serialization.load_pem_private_key((directory / KEY_FILE).read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{directory / KEY_FILE} is not an RSA private key")
        return cls(key, meta["kid"], meta["issuer"])

    @classmethod
    def load_or_create(cls, directory: Path) -> LocalIssuer:
        if (directory / KEY_FILE).exists() and (directory / "issuer.json").exists():
            return cls.load(directory)
        issuer = cls.generate()
        issuer.save(directory)
        return issuer
