"""A whitelist's row filters and claims are checked at start: one clear line per mistake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analytics_api.main import create_app
from analytics_shared.errors import ConfigError

WHITELIST = Path(__file__).resolve().parents[2] / "shared" / "schemas" / "query_whitelist.json"


def _document(row_filter: str, claims: dict | None = None, **extra: object) -> dict:
    document = json.loads(WHITELIST.read_text())
    document["tables"]["orders"]["row_filter"] = row_filter
    document["claims"] = {"customer_id": "https://example.com/customer_id"} if claims is None else claims
    document.update(extra)
    return document


@pytest.mark.parametrize(("document", "fragment"), [
    (_document("customer_id = :tenant"), "uses :tenant, which `claims` does not map to a token claim"),
    (_document("customer_id IN (SELECT id FROM customers)"), "may not contain a subquery"),
    (_document("orders.customer_id = :customer_id"), "must name its own columns without a table"),
    (_document("customer_id = $1"), "must use :name placeholders"),
    (_document("customer_id = ?"), "must use :name placeholders"),
    (_document("customer_id = = :customer_id"), "row_filter of table 'orders' does not parse"),
    (_document("read_text(:customer_id) <> ''"), "a row_filter is not allowed: function READ_TEXT is not allowed"),
    (_document("customer_id = :customer_id", {"customer_id": {"claim": "x", "shape": "list"}}), "claims.customer_id"),
    (_document("customer_id = :customer_id", queries={"q": {"sql": "SELECT 1", "params": {"rls_x": {"type": "integer"}}}}),
     "parameter names starting with 'rls_' are reserved"),
])
def test_a_bad_row_filter_stops_the_start(make_settings, tmp_path, document: dict, fragment: str) -> None:  # noqa: ANN001
    path = tmp_path / "whitelist.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ConfigError) as info:
        create_app(make_settings(query_whitelist_path=path))
    assert fragment in info.value.message and info.value.message.startswith("QUERY_WHITELIST_PATH")
    assert "\n" not in info.value.message


def test_a_good_row_filter_starts(make_settings, tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "whitelist.json"
    path.write_text(json.dumps(_document("customer_id = :customer_id AND status <> 'void'")))
    app = create_app(make_settings(query_whitelist_path=path))
    rule = app.state.services.whitelist.tables["orders"]
    assert rule.filter_tree.sql(dialect="duckdb") == "customer_id = $rls_customer_id AND status <> 'void'"
