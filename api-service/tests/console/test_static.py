"""The console adds nothing to the API's attack surface: every /console route answers only the
packaged static files, the same bytes with or without a token, under a CSP that forbids inline
script and any origin but the API's own and the Auth0 tenant's."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from analytics_api.console import PREFIX, build_router
from analytics_api.console.assets import STATIC_DIR
from analytics_shared.errors import ConfigError

FILES = sorted(p.relative_to(STATIC_DIR).as_posix() for p in STATIC_DIR.rglob("*") if p.is_file())


def console_routes(client: TestClient) -> list[str]:
    """The console's routes as the app serves them (FastAPI wraps included routers, so they are
    rebuilt from the same settings rather than read back from app.routes)."""
    settings = client.app.state.services.settings
    return [r.path for r in build_router(settings).routes] if settings.console_enabled else []


def csp_directives(header: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in (part.strip() for part in header.split(";")) if d}


def test_every_console_route_serves_only_packaged_files_without_a_token(
        client: TestClient, auth: dict[str, str]) -> None:
    assert console_routes(client) == [PREFIX, PREFIX + "/", PREFIX + "/{path:path}"]
    assert client.get(PREFIX, follow_redirects=False).headers["location"] == PREFIX + "/"
    index = client.get(PREFIX + "/")
    assert index.status_code == 200 and index.content == (STATIC_DIR / "index.html").read_bytes()
    for name in FILES:
        anonymous = client.get(f"{PREFIX}/{name}")
        assert anonymous.status_code == 200, name
        assert anonymous.content == (STATIC_DIR / name).read_bytes(), name
        assert "set-cookie" not in anonymous.headers
        with_token = client.get(f"{PREFIX}/{name}", headers=auth)
        assert with_token.content == anonymous.content  # nothing depends on who asks
    config = client.get(f"{PREFIX}/config.json")
    assert config.json() == {"auth0": None}


@pytest.mark.parametrize("path", ["../schema", "..%2Fschema", "%2e%2e/query", "js/../../snapshot", "nope.js",
                                  "vendor/", "/etc/passwd", "js/main.js/x"])
def test_anything_else_under_console_is_a_404(client: TestClient, path: str) -> None:
    response = client.get(f"{PREFIX}/{path}")
    if not response.url.path.startswith(PREFIX + "/"):  # the client resolved ../ out of /console:
        assert response.status_code == 401  # then it is an API route, and the API asks for a token
    elif response.status_code == 200:  # a real file, reached by another spelling
        assert response.content in {(STATIC_DIR / f).read_bytes() for f in FILES} | {b'{"auth0": null}'}
    else:
        assert response.status_code == 404


def test_console_routes_take_only_get(client: TestClient) -> None:
    for method in ("post", "put", "delete"):
        assert getattr(client, method)(f"{PREFIX}/index.html").status_code == 405


def test_csp_forbids_inline_script_and_other_origins(client: TestClient) -> None:
    response = client.get(PREFIX + "/")
    csp = csp_directives(response.headers["content-security-policy"])
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["style-src-attr"] == ["'unsafe-inline'"]  # the only relaxation: style attributes
    assert csp["connect-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert [d for d, values in csp.items() if any("unsafe" in v for v in values)] == ["style-src-attr"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_auth0_client_id_adds_only_the_tenant_origin(make_client: Callable[..., TestClient]) -> None:
    client = make_client(auth0_domain="tenant.eu.auth0.com", auth0_console_client_id="spa-client-id")
    response = client.get(PREFIX + "/")
    csp = csp_directives(response.headers["content-security-policy"])
    assert csp["connect-src"] == ["'self'", "https://tenant.eu.auth0.com"]
    assert csp["frame-src"] == ["https://tenant.eu.auth0.com"]
    assert csp["script-src"] == ["'self'"]
    assert client.get(f"{PREFIX}/config.json").json() == {"auth0": {
        "domain": "tenant.eu.auth0.com", "client_id": "spa-client-id", "audience": client.app.state.services.settings.auth0_api_audience}}


def test_console_can_be_turned_off(make_client: Callable[..., TestClient]) -> None:
    client = make_client(console_enabled=False)
    assert client.get(PREFIX + "/").status_code == 404
    assert client.get(PREFIX + "/js/main.js").status_code == 404
    assert client.get("/health").status_code == 200


def test_files_are_served_gzipped_and_revalidated_by_etag(client: TestClient) -> None:
    response = client.get(f"{PREFIX}/vendor/vendor.js", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["content-type"].startswith("text/javascript")
    raw = client.get(f"{PREFIX}/vendor/vendor.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers
    assert int(raw.headers["content-length"]) > 2 * len(gzip.compress(raw.content))
    again = client.get(f"{PREFIX}/vendor/vendor.js", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {k for k, _ in attrs}
        if tag == "script":
            self._in_script = True
            if "src" not in names:
                self.problems.append("inline <script>")
        self.problems += [f"{tag} {k}=" for k in names if k.startswith("on") or k == "style"]

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("script body")


def test_index_html_has_no_inline_script_or_style() -> None:
    parser = _Scripts()
    parser.feed((STATIC_DIR / "index.html").read_text())
    assert parser.problems == []


def test_console_config_rejects_a_client_id_without_a_tenant(make_settings: Callable) -> None:
    with pytest.raises(ConfigError, match="AUTH0_CONSOLE_CLIENT_ID needs AUTH0_DOMAIN"):
        make_settings(auth0_console_client_id="spa-client-id")
