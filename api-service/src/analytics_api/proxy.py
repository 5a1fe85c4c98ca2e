"""The client address behind trusted proxies (FORWARDED_ALLOW_IPS).

Only when the TCP peer is a trusted proxy (`*`: whatever connects, e.g. a platform's edge
proxy) are X-Forwarded-For and X-Forwarded-Proto believed. Each proxy appends the address it
saw, so the header is read from the right: the client is the right-most address that is not
itself a trusted proxy. Entries further left were written by the client and are never used;
under `*` no entry is trusted, so the client is the right-most entry.

uvicorn's own handling takes the left-most entry under `*`, so a client could pick a fresh
per-IP rate-limit bucket for every request. Gunicorn's workers run with it off (gunicorn_conf).
"""

from __future__ import annotations

import ipaddress

from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted_proxies(value: str) -> tuple[bool, tuple[Network, ...]]:
    """`*` (any peer) and/or addresses and CIDR networks, comma-separated; ValueError if malformed."""
    entries = [e.strip() for e in value.split(",") if e.strip()]
    return "*" in entries, tuple(ipaddress.ip_network(e) for e in entries if e != "*")


class ForwardedClientMiddleware:
    def __init__(self, app: ASGIApp, trusted: str) -> None:
        self.app = app
        self.any_peer, self.proxies = parse_trusted_proxies(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        peer = scope.get("client")
        if scope["type"] in ("http", "websocket") and peer and (self.any_peer or self._is_proxy(peer[0])):
            forwarded = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"]
            if any(v.strip() for v in forwarded):
                client = self._client(",".join(forwarded).split(","))
                if client is not None:
                    scope["client"] = client
            proto = next((v.decode("latin-1").strip() for k, v in scope["headers"] if k == b"x-forwarded-proto"), "")
            if proto in ("http", "https"):
                scope["scheme"] = proto if scope["type"] == "http" else proto.replace("http", "ws")
        await self.app(scope, receive, send)

    def _client(self, hops: list[str]) -> tuple[str, int] | None:
        """The right-most hop that is not a trusted proxy; None (keep the peer) if it is no address."""
        parsed = [_address(hop.strip()) for hop in hops]
        for address in reversed(parsed):
            if address is None or not self._is_proxy(address[0]):
                return address
        return parsed[0]  # every hop is a trusted proxy: the request started inside

    def _is_proxy(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.proxies)


def _address(hop: str) -> tuple[str, int] | None:
    """`1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]:5678` as (host, port); None for anything else."""
    host, port = hop, 0
    if hop.startswith("[") and "]" in hop:
        host, _, rest = hop[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else 0
    elif hop.count(":") == 1:
        host, _, tail = hop.partition(":")
        port = int(tail) if tail.isdigit() else 0
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        return None
