"""Steps a person takes in the console, for the browser tests (Playwright's sync API).

Every wait is for a state of the page (an element, a counter the page sets when a run ends),
bounded by Playwright's timeout; nothing waits for a fixed time or asserts on one.
"""

from __future__ import annotations

from pathlib import Path

import httpx

TIMEOUT_MS = 30_000
FIVE_TABLES = ["customers", "inventory", "orders", "products", "transactions"]


def open_console(page, base: str, fragment: str = "") -> None:  # noqa: ANN001 - Playwright page
    page.goto(f"{base}/console/{'#' + fragment if fragment else ''}")
    page.wait_for_selector("#login:not([hidden])", timeout=TIMEOUT_MS)


def login_with_dev_token(page, base: str, token: str, extra: str = "") -> None:  # noqa: ANN001
    open_console(page, base, f"dev-token={token}{extra}")
    page.click("#use-dev-token")
    wait_ready(page)


def login_with_pasted_token(page, token: str) -> None:  # noqa: ANN001
    page.fill("#paste-token", token)
    page.click("#paste-form button[type=submit]")
    wait_ready(page)


def wait_ready(page) -> None:  # noqa: ANN001
    page.wait_for_selector("body[data-ready=true]", timeout=TIMEOUT_MS)


def table_names(page) -> list[str]:  # noqa: ANN001
    return page.locator("#table-list .table-name").all_inner_texts()


def set_sql(page, sql: str) -> None:  # noqa: ANN001
    page.click(".cm-content")  # Playwright's CSS reaches into the editor's open shadow root
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(sql)


def editor_text(page) -> str:  # noqa: ANN001
    return page.locator(".cm-content").inner_text()


def runs(page) -> int:  # noqa: ANN001
    return int(page.evaluate("document.body.dataset.runs || '0'"))


def run_and_wait(page, how: str = "button") -> None:  # noqa: ANN001
    before = runs(page)
    if how == "button":
        page.click("#run")
    else:
        page.keyboard.press("Control+Enter")
    # A function, not a string: the page's CSP forbids eval, which a string predicate needs.
    page.wait_for_function("(n) => Number(document.body.dataset.runs || 0) > n", arg=before, timeout=TIMEOUT_MS)


def grid_rows(page) -> list[list[str]]:  # noqa: ANN001
    return page.evaluate("""() => [...document.querySelectorAll('#grid .grid-body .grid-row')]
        .map(row => [...row.children].map(cell => cell.textContent))""")


def grid_header(page) -> list[str]:  # noqa: ANN001
    return page.evaluate("""() => [...document.querySelectorAll('#grid .grid-header .cell')]
        .map(cell => cell.firstChild.textContent)""")


def api_query(base: str, token: str, sql: str, fmt: str = "json") -> httpx.Response:
    response = httpx.get(f"{base}/query", params={"q": sql, "format": fmt},
                         headers={"Authorization": f"Bearer {token}"}, timeout=60)
    response.raise_for_status()
    return response


def screenshot(page, directory: Path, name: str) -> None:  # noqa: ANN001
    page.screenshot(path=str(directory / f"{name}.png"), full_page=False)
