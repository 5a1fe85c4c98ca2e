"""The client address behind proxies: the per-IP limit counts the address the trusted proxy saw
(the right-most untrusted X-Forwarded-For entry), so a client that writes its own
X-Forwarded-For cannot get a fresh pre-auth bucket per request. Through the real app (the
end-to-end Gunicorn case is in test_gunicorn.py), and the header rules one by one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from analytics_api.proxy import ForwardedClientMiddleware


@pytest.fixture
def client_from(make_client: Callable[..., TestClient]) -> Callable[..., TestClient]:
    """An app with an IP limit of 3 per window, reached from the TCP peer `peer`."""
    return lambda peer, forwarded_allow_ips: make_client(peer=peer, forwarded_allow_ips=forwarded_allow_ips,
                                                         rate_limit_ip_requests=3)


def statuses(client: TestClient, forwarded_for: list[str]) -> list[int]:
    """Unauthenticated requests: 401 while the address has quota left, 429 once it has not."""
    return [client.get("/query", params={"q": "SELECT 1"}, headers={"X-Forwarded-For": xff}).status_code
            for xff in forwarded_for]


def test_behind_a_proxy_trusted_as_star_spoofed_entries_share_one_bucket(client_from) -> None:  # noqa: ANN001
    client = client_from("10.1.2.3", "*")  # the deployment guide's setting for Railway
    spoofed = [f"198.51.100.{i}, 203.0.113.7" for i in range(4)] + ["203.0.113.7"]
    assert statuses(client, spoofed) == [401, 401, 401, 429, 429]
    # The address the proxy saw for another client is another bucket.
    assert statuses(client, ["198.51.100.1, 203.0.113.8", "203.0.113.8"]) == [401, 401]


def test_trusted_proxy_chain_is_skipped_from_the_right(client_from) -> None:  # noqa: ANN001
    client = client_from("10.0.0.5", "10.0.0.0/8, 192.168.0.0/16")
    chains = ["203.0.113.9", "1.1.1.1, 203.0.113.9, 10.0.0.8", "203.0.113.9, 192.168.1.1, 10.0.0.8",
              "10.9.9.9, 203.0.113.9, 192.168.1.1"]
    assert statuses(client, chains) == [401, 401, 401, 429]
    assert statuses(client, ["203.0.113.9, 203.0.113.10, 10.0.0.8"]) == [401]  # a new right-most client


def test_an_untrusted_peer_cannot_name_its_address(client_from) -> None:  # noqa: ANN001
    client = client_from("192.0.2.50", "127.0.0.1")
    assert statuses(client, [f"203.0.113.{i}" for i in range(5)]) == [401, 401, 401, 429, 429]


CASES = [  # (peer, FORWARDED_ALLOW_IPS, X-Forwarded-For values, X-Forwarded-Proto, client host, scheme)
    ("10.0.0.1", "*", ["6.6.6.6, 203.0.113.1"], None, "203.0.113.1", "http"),
    ("10.0.0.1", "*", ["6.6.6.6", "203.0.113.1"], "https", "203.0.113.1", "https"),  # two header lines
    ("10.0.0.1", "*", ["203.0.113.1:5123"], None, "203.0.113.1", "http"),
    ("10.0.0.1", "*", ["[2001:db8::1]:443"], None, "2001:db8::1", "http"),
    ("10.0.0.1", "*", ["2001:db8::1"], None, "2001:db8::1", "http"),
    ("10.0.0.1", "*", ["203.0.113.1, not-an-address"], None, "10.0.0.1", "http"),  # keep the peer
    ("10.0.0.1", "*", ["", " "], None, "10.0.0.1", "http"),
    ("10.0.0.1", "*", [], "ftp", "10.0.0.1", "http"),
    ("127.0.0.1", "127.0.0.1", ["6.6.6.6, 203.0.113.1"], "https", "203.0.113.1", "https"),
    ("127.0.0.1", "127.0.0.1", ["203.0.113.1, 127.0.0.1"], None, "203.0.113.1", "http"),
    ("127.0.0.1", "127.0.0.1", ["127.0.0.1, 127.0.0.1"], None, "127.0.0.1", "http"),  # all hops inside
    ("192.0.2.9", "127.0.0.1", ["203.0.113.1"], "https", "192.0.2.9", "http"),  # untrusted peer
    ("10.2.3.4", "10.0.0.0/8", ["203.0.113.1, 10.3.3.3, 10.4.4.4"], None, "203.0.113.1", "http"),
    ("10.2.3.4", "10.0.0.0/8", ["10.3.3.3, 203.0.113.1, 10.4.4.4"], None, "203.0.113.1", "http"),
    ("::1", "::1", ["203.0.113.1"], None, "203.0.113.1", "http"),
]


@pytest.mark.parametrize(("peer", "trusted", "forwarded", "proto", "host", "scheme"), CASES)
def test_forwarded_headers_rules(peer: str, trusted: str, forwarded: list[str], proto: str | None, host: str,
                                 scheme: str) -> None:
    seen: dict = {}

    async def app(scope, receive, send) -> None:  # noqa: ANN001
        seen.update(scope)

    headers = [(b"x-forwarded-for", v.encode()) for v in forwarded]
    if proto is not None:
        headers.append((b"x-forwarded-proto", proto.encode()))
    scope = {"type": "http", "client": (peer, 1234), "scheme": "http", "headers": headers}
    asyncio.run(ForwardedClientMiddleware(app, trusted)(scope, None, None))
    assert seen["client"][0] == host and seen["scheme"] == scheme


@pytest.mark.parametrize("header", [b"forwarded", b"x-real-ip", b"x-client-ip", b"true-client-ip", b"cf-connecting-ip"])
def test_other_client_address_headers_are_ignored(header: bytes) -> None:
    """Only X-Forwarded-For is read, and only from a trusted peer: `Forwarded: for=...` (RFC 7239) and
    the vendor headers are all written by the client as far as we know, so they name no bucket."""
    seen: dict = {}

    async def app(scope, receive, send) -> None:  # noqa: ANN001
        seen.update(scope)

    value = b"for=198.51.100.7" if header == b"forwarded" else b"198.51.100.7"
    scope = {"type": "http", "client": ("10.0.0.1", 1234), "scheme": "http", "headers": [(header, value)]}
    asyncio.run(ForwardedClientMiddleware(app, "*")(scope, None, None))
    assert seen["client"] == ("10.0.0.1", 1234)
