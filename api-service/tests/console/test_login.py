"""Login paths beyond the dev token: Auth0 Universal Login with PKCE (the tenant is stood in for
by Playwright's request routing, since no Auth0 is reachable here: the test checks the request
the real SDK makes), and the row-filtered flag that /schema may carry."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from analytics_api.main import create_app

from .console_page import TIMEOUT_MS, login_with_dev_token, open_console, table_names
from .live import LiveServer

TENANT = "console-test.tenant.invalid"


def test_auth0_login_sends_an_authorization_code_request_with_pkce_for_the_api_audience(
        page, make_settings: Callable) -> None:  # noqa: ANN001
    settings = make_settings(auth0_domain=TENANT, auth0_console_client_id="spa-client-id")
    authorize: list[str] = []

    def tenant(route) -> None:  # noqa: ANN001
        if "/authorize" in route.request.url and "prompt=none" not in route.request.url:
            authorize.append(route.request.url)
        # The silent check (prompt=none, in a hidden iframe) and the login page: an empty page.
        route.fulfill(status=200, content_type="text/html", body="<!doctype html><title>tenant</title>")

    page.route(f"https://{TENANT}/**", tenant)
    with LiveServer(create_app(settings)) as live:
        open_console(page, live.url, "sql=SELECT%201")
        page.wait_for_selector("#login-auth0:not([hidden])", timeout=TIMEOUT_MS)
        page.click("#login-auth0")
        page.wait_for_url(f"https://{TENANT}/authorize**", timeout=TIMEOUT_MS)
    params = parse_qs(urlsplit(authorize[-1]).query)
    assert params["client_id"] == ["spa-client-id"]
    assert params["response_type"] == ["code"]
    assert params["code_challenge_method"] == ["S256"] and len(params["code_challenge"][0]) >= 43
    assert params["audience"] == [settings.auth0_api_audience]
    assert params["redirect_uri"] == [f"{live.url}/console/"]
    assert "client_secret" not in params


def test_without_a_console_client_id_there_is_no_auth0_button(page, live) -> None:  # noqa: ANN001
    open_console(page, live.url)
    assert page.is_hidden("#login-auth0")
    assert page.is_visible("#paste-token")


def test_a_row_filtered_table_is_marked(page, live, full_token: str) -> None:  # noqa: ANN001
    """Row-level security is being added to /schema concurrently; when a table carries
    `row_filtered: true`, the schema browser says so. The real /schema answer is fetched and
    only that one flag added to it."""
    def add_flag(route) -> None:  # noqa: ANN001
        response = route.fetch()
        body = response.json()
        body["tables"]["orders"]["row_filtered"] = True
        route.fulfill(response=response, body=json.dumps(body))

    page.route(f"{live.url}/schema", add_flag)
    login_with_dev_token(page, live.url, full_token)
    assert "orders" in table_names(page)
    assert page.inner_text("details[data-table=orders] summary .badge") == "row-filtered"
    assert page.locator("details[data-table=products] .badge").count() == 0
