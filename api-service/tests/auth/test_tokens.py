"""JWT attacks against a real RSA issuer and a real JWKS endpoint: every one is a JSON 401/403."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from analytics_api.auth.local_issuer import LOCAL_AUDIENCE, LOCAL_ISSUER, LocalIssuer

QUERY = {"q": "SELECT count(*) AS n FROM orders"}


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims(**over: object) -> dict:
    now = int(time.time())
    base = {"iss": LOCAL_ISSUER, "aud": LOCAL_AUDIENCE, "sub": "attacker", "iat": now, "exp": now + 600,
            "scope": "read:analytics read:schema"}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def call(client, token: str):  # noqa: ANN001, ANN201
    return client.get("/query", params=QUERY, headers={"Authorization": f"Bearer {token}"})


def assert_denied(response, status: int, fragment: str) -> None:  # noqa: ANN001
    assert fragment.strip(), "name the reason the message must give: an empty fragment matches anything"
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["error"]["code"] in ("unauthorized", "forbidden")
    assert fragment in body["error"]["message"], body["error"]["message"]


def test_valid_token_is_accepted(client, token) -> None:  # noqa: ANN001
    r = call(client, token())
    assert r.status_code == 200 and r.json()["data"][0]["n"] > 0


def test_permissions_claim_grants_scopes_like_auth0_rbac(client, token) -> None:  # noqa: ANN001
    r = call(client, token(scopes="", permissions=["read:analytics"]))
    assert r.status_code == 200


@pytest.mark.parametrize(("header", "fragment"), [
    ({}, "missing bearer token"),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing bearer token"),
    ({"Authorization": "Bearer "}, "missing bearer token"),
    ({"Authorization": "Bearer not.a.jwt"}, "malformed"),
    ({"Authorization": "Bearer ......"}, "malformed"),
])
def test_missing_or_garbage_credentials(client, header, fragment) -> None:  # noqa: ANN001
    assert_denied(client.get("/query", params=QUERY, headers=header), 401, fragment)


def test_expired_token(client, issuer) -> None:  # noqa: ANN001
    assert_denied(call(client, issuer.mint(ttl_seconds=-3600)), 401, "expired")


def test_small_clock_skew_is_tolerated(client, issuer) -> None:  # noqa: ANN001
    assert call(client, issuer.mint(ttl_seconds=-5)).status_code == 200


def test_wrong_audience_and_issuer(client, issuer) -> None:  # noqa: ANN001
    assert_denied(call(client, issuer.mint(audience="https://some-other-api")), 401, "audience")
    other = LocalIssuer(issuer.key, issuer.kid, "https://evil.example/")
    assert_denied(call(client, other.mint()), 401, "issuer")


@pytest.mark.parametrize("missing", ["exp", "iss", "aud", "sub"])
def test_required_claims(client, issuer, missing) -> None:  # noqa: ANN001
    token = jwt.encode(claims(**{missing: None}), issuer.key, algorithm="RS256", headers={"kid": issuer.kid})
    assert_denied(call(client, token), 401, f"token lacks the {missing!r} claim")


def signed(issuer: LocalIssuer, payload: dict) -> str:
    """RS256 over any JSON payload, even one PyJWT's encoder would refuse to build."""
    return jwt.api_jws.PyJWS().encode(json.dumps(payload).encode(), issuer.key, algorithm="RS256",
                                      headers={"kid": issuer.kid})


@pytest.mark.parametrize("exp", [10**400, "4102444800", float("inf"), True, [4102444800], None],
                         ids=["huge-int", "string", "infinity", "bool", "list", "null"])
def test_exp_that_is_no_finite_number_is_401(client, issuer, exp) -> None:  # noqa: ANN001
    """RFC 7519 makes exp a NumericDate (a JSON number). A huge integer passed PyJWT's check and then
    500ed when the verified-token cache turned it into a float; a string passed as a number."""
    payload = claims(exp=None)
    payload["exp"] = exp
    r = call(client, signed(issuer, payload))
    assert r.status_code == 401, r.text


def test_alg_none_is_refused(client, issuer) -> None:  # noqa: ANN001
    token = f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': issuer.kid})}.{b64(claims())}."
    assert_denied(call(client, token), 401, "'none' is not accepted")


def test_hs256_signed_with_the_public_key_is_refused(client, issuer) -> None:  # noqa: ANN001
    """The classic key-confusion attack: HMAC keyed with the RSA public key the JWKS publishes."""
    import hashlib
    import hmac

    public_pem = issuer.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT', 'kid': issuer.kid})}.{b64(claims())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    assert_denied(call(client, token), 401, "'HS256' is not accepted")


def test_forged_signature_and_tampered_payload(client, issuer) -> None:  # noqa: ANN001
    forger = LocalIssuer.generate()
    forged = jwt.encode(claims(), forger.key, algorithm="RS256", headers={"kid": issuer.kid})
    assert_denied(call(client, forged), 401, "signature")
    head, _, sig = issuer.mint(scopes="read:schema").split(".")
    tampered = f"{head}.{b64(claims(scope='read:analytics read:admin'))}.{sig}"
    assert_denied(call(client, tampered), 401, "signature")


def test_unknown_kid_refetches_once_per_cooldown(make_client, jwks_server, issuer) -> None:  # noqa: ANN001
    client = make_client(jwks_refresh_cooldown_seconds=3600)
    assert call(client, issuer.mint()).status_code == 200
    fetches = jwks_server.fetches
    for _ in range(25):  # random kids must not become one JWKS fetch per request
        stranger = LocalIssuer.generate()
        assert_denied(call(client, stranger.mint()), 401, "unknown key")
    assert jwks_server.fetches - fetches <= 1


def test_key_rotation_is_picked_up_on_the_next_unknown_kid(make_client, jwks_server, issuer) -> None:  # noqa: ANN001
    client = make_client(jwks_refresh_cooldown_seconds=0)
    assert call(client, issuer.mint()).status_code == 200
    rotated = LocalIssuer.generate()
    jwks_server.document = {"keys": issuer.jwks()["keys"] + rotated.jwks()["keys"]}
    assert call(client, rotated.mint()).status_code == 200


def test_missing_scope_is_403(client, token) -> None:  # noqa: ANN001
    assert_denied(call(client, token(scopes="read:schema")), 403, "read:analytics")
    assert_denied(call(client, token(scopes="")), 403, "read:analytics")


def test_jwks_outage_keeps_cached_keys(make_client, jwks_server, issuer) -> None:  # noqa: ANN001
    client = make_client(jwks_refresh_cooldown_seconds=0)
    jwks = client.app.state.services.verifier.jwks
    assert call(client, issuer.mint(jti="before")).status_code == 200
    jwks_server.close()
    fetches = jwks.fetch_count
    # An unknown kid makes the worker refetch the JWKS, and the issuer is down: the refresh fails.
    assert_denied(call(client, LocalIssuer.generate().mint()), 401, "unknown key")
    assert jwks.fetch_count == fetches + 1
    # After that failed refresh the cached key still verifies a token it has never seen (a new
    # jti, so no verified-token cache can answer for it).
    assert call(client, issuer.mint(jti="after")).status_code == 200


def test_file_jwks_for_a_local_issuer(make_client, issuer, tmp_path) -> None:  # noqa: ANN001
    jwks_path = issuer.save(tmp_path / "issuer")
    client = make_client(auth0_jwks_url=f"file://{jwks_path}")
    assert call(client, issuer.mint()).status_code == 200
    assert LocalIssuer.load(tmp_path / "issuer").kid == issuer.kid


def test_revoked_key_stops_verifying_after_the_max_age(make_client, jwks_server, issuer) -> None:  # noqa: ANN001
    client = make_client(jwks_max_age_seconds=0.2, jwks_refresh_cooldown_seconds=3600)
    assert call(client, issuer.mint()).status_code == 200
    replacement = LocalIssuer.generate()
    jwks_server.document = replacement.jwks()  # the issuer revoked our key
    time.sleep(0.3)
    assert_denied(call(client, issuer.mint()), 401, "unknown key")
    assert call(client, replacement.mint()).status_code == 200


def test_an_empty_jwks_keeps_the_cached_keys(make_client, jwks_server, issuer) -> None:  # noqa: ANN001
    """A JWKS answer with no usable key (`{"keys": []}`, or only keys we skip) is a broken answer,
    not a revocation of every key: replacing the cache with it logged everyone out."""
    client = make_client(jwks_refresh_cooldown_seconds=0)
    jwks = client.app.state.services.verifier.jwks
    assert call(client, issuer.mint(jti="before")).status_code == 200
    jwks_server.document = {"keys": []}
    fetches = jwks.fetch_count
    assert_denied(call(client, LocalIssuer.generate().mint()), 401, "unknown key")  # makes it refetch
    assert jwks.fetch_count == fetches + 1
    assert call(client, issuer.mint(jti="after")).status_code == 200


def test_new_key_material_under_a_known_kid_is_checked_again(make_client, jwks_server, issuer) -> None:  # noqa: ANN001
    """The issuer replaced the key behind a kid (a compromised key, re-issued under its name).
    A token verified with the old key must not be answered from the verified-token cache."""
    client = make_client(jwks_refresh_cooldown_seconds=0)
    token = issuer.mint()
    assert call(client, token).status_code == 200
    replacement = LocalIssuer.generate()
    document = replacement.jwks()
    document["keys"][0]["kid"] = issuer.kid
    jwks_server.document = document
    assert_denied(call(client, LocalIssuer.generate().mint()), 401, "unknown key")  # makes it refetch
    assert_denied(call(client, token), 401, "signature")


class FaultyJwks:
    """A JWKS endpoint on loopback whose answer the test chooses: status, body, extra headers."""

    def __init__(self, status: int = 200, body: bytes = b"", headers: tuple = ()) -> None:
        self.status, self.body, self.headers, self.fetches = status, body, headers, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                outer.fetches += 1
                self.send_response(outer.status)
                for name, value in (("Content-Length", str(len(outer.body))), *outer.headers):
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize(("status", "body"), [
    (500, b"upstream error"),
    (200, b"<html>maintenance</html>"),
    (200, b"[]"),                  # JSON, but not a JWKS object
    (200, b'{"keys": 5}'),         # an object whose keys are no list
])
def test_a_failing_jwks_is_refetched_once_per_cooldown_and_never_500s(make_client, status, body) -> None:  # noqa: ANN001
    """Random kids while the issuer answers garbage: each is a 401, and the worker asks the issuer
    once per cooldown, not once per request (an attacker must not be able to make us hammer it)."""
    server = FaultyJwks(status, body)
    try:
        # The shipped cooldown and max age (30 s, 600 s): a failed fetch must not leave the set
        # looking old enough (600 - 30 s) for every unknown kid to refetch at once.
        client = make_client(auth0_jwks_url=server.url, jwks_refresh_cooldown_seconds=30, jwks_max_age_seconds=600)
        for _ in range(6):
            assert_denied(call(client, LocalIssuer.generate().mint()), 401, "unknown key")
        assert server.fetches == 1
    finally:
        server.close()


def test_a_jwks_redirect_is_not_followed(make_client) -> None:  # noqa: ANN001
    """AUTH0_JWKS_URL names the one origin keys come from (https, or http on loopback only). A
    redirect to another host (or from https down to http) must not become a source of keys."""
    attacker = LocalIssuer.generate()
    elsewhere = FaultyJwks(200, json.dumps(attacker.jwks()).encode())
    redirect = FaultyJwks(302, b"", (("Location", elsewhere.url),))
    try:
        client = make_client(auth0_jwks_url=redirect.url)
        assert_denied(call(client, attacker.mint()), 401, "unknown key")
        assert elsewhere.fetches == 0
    finally:
        redirect.close()
        elsewhere.close()


def test_a_weak_rsa_key_in_the_jwks_is_not_trusted(make_client) -> None:  # noqa: ANN001
    """A 1024-bit modulus is within reach of factoring: tokens it signs are refused (PyJWT only
    warns about short keys when verifying, so the JWKS reader has to skip them)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    weak = LocalIssuer(rsa.generate_private_key(public_exponent=65537, key_size=1024), "weak-1024")
    server = FaultyJwks(200, json.dumps(weak.jwks()).encode())
    try:
        client = make_client(auth0_jwks_url=server.url)
        signing_input = f"{b64({'alg': 'RS256', 'typ': 'JWT', 'kid': weak.kid})}.{b64(claims())}".encode()
        signature = weak.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())  # RS256, by hand
        token = f"{signing_input.decode()}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
        assert_denied(call(client, token), 401, "unknown key")
    finally:
        server.close()


@pytest.mark.parametrize("header", ["jwk", "jku", "x5u"])
def test_keys_named_by_the_token_itself_are_never_used(make_client, jwks_server, issuer, header) -> None:  # noqa: ANN001
    """A token that carries its own key (jwk) or points at one (jku, x5u), with our kid: the key
    comes only from AUTH0_JWKS_URL, and the place the token names is never fetched."""
    attacker = LocalIssuer.generate()
    elsewhere = FaultyJwks(200, json.dumps(attacker.jwks()).encode())
    try:
        client = make_client()
        named = attacker.jwks()["keys"][0] if header == "jwk" else elsewhere.url
        forged = jwt.encode(claims(), attacker.key, algorithm="RS256", headers={"kid": issuer.kid, header: named})
        assert_denied(call(client, forged), 401, "signature")
        assert elsewhere.fetches == 0
    finally:
        elsewhere.close()


@pytest.mark.parametrize(("payload", "status", "fragment"), [
    (claims(nbf=int(time.time()) + 3600), 401, "invalid"),
    (claims(iat=int(time.time()) + 3600), 401, "invalid"),
    (claims(iss=LOCAL_ISSUER.rstrip("/")), 401, "issuer"),         # the issuer is compared exactly
    (claims(iss=LOCAL_ISSUER[:20]), 401, "issuer"),                # not as a substring
    (claims(aud=["https://some-other-api"]), 401, "audience"),
    (claims(scope=["read:analytics"]), 403, "read:analytics"),     # scope is a space-separated string
    (claims(scope=None, scp="read:analytics"), 403, "read:analytics"),
    (claims(scope=None, permissions="read:analytics"), 403, "read:analytics"),  # permissions is a list
], ids=["nbf-future", "iat-future", "iss-no-slash", "iss-prefix", "aud-list-without-us", "scope-list", "scp",
        "permissions-string"])
def test_claims_that_do_not_match_the_contract_exactly_are_refused(client, issuer, payload, status, fragment) -> None:  # noqa: ANN001
    assert_denied(call(client, signed(issuer, payload)), status, fragment)


def test_an_audience_list_that_includes_ours_is_accepted(client, issuer) -> None:  # noqa: ANN001
    assert call(client, signed(issuer, claims(aud=["https://other-api", LOCAL_AUDIENCE]))).status_code == 200


def test_a_critical_header_extension_we_do_not_implement_is_refused(client, issuer) -> None:  # noqa: ANN001
    token = jwt.api_jws.PyJWS().encode(json.dumps(claims()).encode(), issuer.key, algorithm="RS256",
                                       headers={"kid": issuer.kid, "crit": ["exp"], "exp": 1})
    r = call(client, token)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", r.text


def test_a_refused_token_is_not_echoed(client, issuer) -> None:  # noqa: ANN001
    """Error bodies name the reason, never the credential (they end up in client logs)."""
    for token in (issuer.mint(ttl_seconds=-3600), issuer.mint(audience="https://some-other-api"),
                  LocalIssuer.generate().mint(), issuer.mint() + "x"):
        r = call(client, token)
        assert r.status_code == 401
        assert token.split(".")[1] not in r.text and token.split(".")[2] not in r.text
