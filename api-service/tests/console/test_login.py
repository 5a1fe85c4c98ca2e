"""Login paths beyond the dev token: Auth0 Universal Login with PKCE (the tenant is stood in for
by Playwright's request routing, since no Auth0 is reachable here: the test checks the request
the real SDK makes), and a token whose claims row-level security filters by."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from analytics_api.main import create_app

from .console_page import TIMEOUT_MS, grid_rows, login_with_dev_token, open_console, run_and_wait, set_sql
from .live import LiveServer

TENANT = "console-test.tenant.invalid"
CUSTOMER_CLAIM = "https://analytics.example.com/customer_id"


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


def test_a_row_filtered_table_is_marked_and_shows_only_the_callers_rows(
        page, make_settings: Callable, scoped_whitelist: Path, token: Callable[..., str]) -> None:  # noqa: ANN001
    """Row-level security: `orders` filtered by a customer claim. /schema flags it (and hides its
    total); the console shows the badge, and a query returns only that customer's orders."""
    document = json.loads(scoped_whitelist.read_text())
    document["tables"]["orders"]["row_filter"] = "customer_id = :customer_id"
    document["claims"] = {"customer_id": {"claim": CUSTOMER_CLAIM, "type": "integer", "list": False}}
    document["unfiltered_scope"] = "read:all_rows"
    scoped_whitelist.write_text(json.dumps(document))
    settings = make_settings(query_whitelist_path=scoped_whitelist)
    customer = token("read:analytics read:schema", **{CUSTOMER_CLAIM: 7})
    with LiveServer(create_app(settings)) as live:
        login_with_dev_token(page, live.url, customer)
        assert page.inner_text("details[data-table=orders] summary .badge") == "row-filtered"
        assert page.locator("details[data-table=products] .badge").count() == 0
        set_sql(page, "SELECT DISTINCT customer_id FROM orders")
        run_and_wait(page)
        assert grid_rows(page) == [["7"]]
