"""The editor completes the caller's own table and column names (from /schema), and the result
line says when the API's row cap truncated a result."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from analytics_api.main import create_app

from .console_page import TIMEOUT_MS, login_with_dev_token, run_and_wait, set_sql
from .live import LiveServer

OPTIONS = ".cm-tooltip-autocomplete li"


def completions(page, sql: str) -> list[str]:  # noqa: ANN001
    set_sql(page, sql)
    page.keyboard.press("Control+Space")
    page.wait_for_selector(OPTIONS, timeout=TIMEOUT_MS)
    return page.locator(OPTIONS).all_inner_texts()


def test_completion_offers_tables_then_their_columns(page, live, full_token: str) -> None:  # noqa: ANN001
    login_with_dev_token(page, live.url, full_token)
    assert "orders" in completions(page, "SELECT * FROM ord")
    page.keyboard.press("Escape")
    columns = completions(page, "SELECT orders.")
    assert {"id", "customer_id", "status", "total"} <= set(columns)
    page.keyboard.press("Enter")  # accept the first column
    assert page.locator(".cm-content").inner_text().startswith("SELECT orders.")


def test_a_result_cut_by_the_row_cap_says_so(page, make_settings: Callable, scoped_whitelist: Path,
                                             full_token: str) -> None:  # noqa: ANN001
    settings = make_settings(query_whitelist_path=scoped_whitelist, max_result_rows=100)
    with LiveServer(create_app(settings)) as live:
        login_with_dev_token(page, live.url, full_token)
        set_sql(page, "SELECT id FROM orders ORDER BY id")
        run_and_wait(page)
        meta = page.inner_text("#result-meta")
    assert meta.startswith("100 rows") and "truncated by the row cap" in meta
