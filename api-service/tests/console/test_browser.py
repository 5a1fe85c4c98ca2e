"""The console in a real headless Chromium against the real API (real JWTs, JWKS and snapshot):
log in, browse the schema, run SQL, read the grid, see errors, chart, download, share."""

from __future__ import annotations

from pathlib import Path

from .console_page import (FIVE_TABLES, api_query, editor_text, grid_header, grid_rows, login_with_dev_token,
                           login_with_pasted_token, open_console, run_and_wait, runs, screenshot, set_sql, table_names)

STATUS_SQL = "SELECT status, count(*) AS orders, sum(total) AS revenue FROM orders GROUP BY status ORDER BY status"


def assert_clean(page) -> None:  # noqa: ANN001
    assert page.csp_violations == [], "the page broke its own Content-Security-Policy"
    assert page.errors == [], "uncaught errors in the page"


def test_dev_token_login_shows_five_tables_and_a_query_reads_into_the_grid(
        page, live, full_token: str, artifacts: Path) -> None:  # noqa: ANN001
    open_console(page, live.url, f"dev-token={full_token}")
    assert "dev-user" in page.inner_text("#dev-token-who")
    assert "dev-token" not in page.url  # taken out of the address bar at once
    assert page.is_hidden("#app")  # nothing but the login panel before a token is chosen
    screenshot(page, artifacts, "login")
    page.click("#use-dev-token")
    page.wait_for_selector("body[data-ready=true]")
    assert page.is_hidden("#login")
    assert table_names(page) == FIVE_TABLES
    assert "Snapshot " in page.inner_text("#snapshot-info")
    page.click("details[data-table=orders] summary")
    assert "synced" in page.inner_text("details[data-table=orders]")
    assert "BIGINT" in page.inner_text("details[data-table=orders] .columns")

    set_sql(page, STATUS_SQL)
    run_and_wait(page)
    expected = api_query(live.url, full_token, STATUS_SQL).json()
    assert grid_header(page) == ["status", "orders", "revenue"]
    assert grid_rows(page) == [[str(r["status"]), str(r["orders"]), str(r["revenue"])] for r in expected["data"]]
    assert f"{expected['row_count']} rows" in page.inner_text("#result-meta")
    assert expected["snapshot_version"] in page.inner_text("#result-meta")
    assert page.get_attribute("#history-list li:first-child button", "title") == STATUS_SQL  # local history
    screenshot(page, artifacts, "results")
    assert_clean(page)


def test_a_table_the_token_may_not_read_shows_the_apis_403(page, live, token) -> None:  # noqa: ANN001
    open_console(page, live.url)
    login_with_pasted_token(page, token("read:analytics read:schema"))  # no read:pii
    assert "customers" not in table_names(page)  # /schema hides it
    set_sql(page, "SELECT id, email FROM customers LIMIT 5")
    run_and_wait(page)
    message = page.inner_text("#error")
    assert "403 forbidden" in message and "read:pii" in message
    assert page.is_hidden("#results")
    assert_clean(page)


def test_an_error_names_its_position_and_selects_it(page, live, full_token: str, artifacts: Path) -> None:  # noqa: ANN001
    login_with_dev_token(page, live.url, full_token)
    set_sql(page, "SELECT id\nFROM orders\nWHERE nosuch_column > 3")
    run_and_wait(page)
    message = page.inner_text("#error")
    assert "400 query_rejected" in message and "nosuch_column" in message
    assert "(line 3, column 7)" in message
    selected = page.evaluate("() => document.querySelector('#editor').shadowRoot.getSelection().toString()")
    assert selected == "nosuch_column"
    screenshot(page, artifacts, "error")
    assert_clean(page)


def test_chart_draws_each_kind_from_the_result(page, live, full_token: str, artifacts: Path) -> None:  # noqa: ANN001
    login_with_dev_token(page, live.url, full_token)
    set_sql(page, STATUS_SQL)
    run_and_wait(page)
    page.click("#tab-chart")
    chart = page.locator("#chart")
    assert chart.get_attribute("data-chart-type") == "bar"  # a text x: bars by default
    assert page.input_value("#chart-x") == "status" and page.input_value("#chart-y") == "orders"
    assert chart.get_attribute("data-points") == "6"
    wait_painted(page, minimum=20_000)  # six bars fill a good part of the canvas
    screenshot(page, artifacts, "chart")
    for kind in ("line", "area", "scatter"):
        page.select_option("#chart-type", kind)
        assert chart.get_attribute("data-chart-type") == kind
        wait_painted(page)
    page.select_option("#chart-x", "orders")  # a numeric x: a true scatter on a linear axis
    page.select_option("#chart-y", "revenue")
    wait_painted(page)
    assert_clean(page)


def wait_painted(page, minimum: int = 40) -> None:  # noqa: ANN001
    """Until the chart canvas has coloured (not white or grey) pixels: Chart.js redraws after a
    resize on the next frame, so this waits for the state rather than reading it once."""
    page.wait_for_function("""(minimum) => {
        const c = document.querySelector('#chart canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) {
            const [r, g, b, a] = [d[i], d[i + 1], d[i + 2], d[i + 3]];
            if (a > 0 && (Math.max(r, g, b) - Math.min(r, g, b)) > 60) n += 1;
        }
        return n > minimum;
    }""", arg=minimum)


def test_csv_download_is_byte_for_byte_the_apis_csv(page, live, full_token: str) -> None:  # noqa: ANN001
    login_with_dev_token(page, live.url, full_token)
    sql = "SELECT id, customer_id, status, total, ordered_at FROM orders ORDER BY id LIMIT 500"
    set_sql(page, sql)
    run_and_wait(page)
    with page.expect_download() as info:
        page.click("[data-download=csv]")
    downloaded = Path(info.value.path()).read_bytes()
    assert info.value.suggested_filename == "query.csv"
    assert downloaded == api_query(live.url, full_token, sql, "csv").content
    assert downloaded.count(b"\n") == 501
    for fmt, magic in (("parquet", b"PAR1"), ("arrow", b"\xff\xff\xff\xff")):
        with page.expect_download() as info:
            page.click(f"[data-download={fmt}]")
        assert Path(info.value.path()).read_bytes()[:4] == magic
    assert_clean(page)


def test_a_share_link_carries_the_sql_to_another_session(browser, live, full_token: str) -> None:  # noqa: ANN001
    sql = "SELECT warehouse, sum(quantity) AS units FROM inventory GROUP BY warehouse ORDER BY warehouse"
    first = browser.new_context(permissions=["clipboard-read", "clipboard-write"]).new_page()
    login_with_dev_token(first, live.url, full_token)
    set_sql(first, sql)
    first.click("#share")
    link = first.input_value("#share-link")
    assert link.startswith(f"{live.url}/console/#sql=") and full_token not in link
    first.context.close()

    second = browser.new_context().new_page()  # someone else, with their own token
    second.goto(link)
    login_with_pasted_token(second, full_token)
    assert editor_text(second) == sql
    run_and_wait(second)
    expected = api_query(live.url, full_token, sql).json()["data"]
    assert [row[0] for row in grid_rows(second)] == [r["warehouse"] for r in expected]
    second.context.close()


def test_named_query_runs_from_a_form_built_from_its_parameters(page, live, full_token: str, artifacts: Path) -> None:  # noqa: ANN001
    login_with_dev_token(page, live.url, full_token)
    page.click("#named details:has(summary:text-is('low_stock')) summary")
    assert page.get_attribute("#named-low_stock-limit", "type") == "number"
    assert page.get_attribute("#named-low_stock-limit", "max") == "10000"
    page.fill("#named-low_stock-threshold", "3")
    page.fill("#named-low_stock-limit", "7")
    before = runs(page)
    page.click("form[data-query=low_stock] button[type=submit]")
    page.wait_for_function("(n) => Number(document.body.dataset.runs || 0) > n", arg=before)
    rows = grid_rows(page)
    assert 0 < len(rows) <= 7 and all(int(r[3]) <= 3 for r in rows)
    assert grid_header(page) == ["warehouse", "sku", "name", "quantity"]
    screenshot(page, artifacts, "named-query")
    assert_clean(page)
