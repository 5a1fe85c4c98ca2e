"""Row-level security holds against every way of naming a table, through the real app.

The whitelist here filters `orders` and `customers` by the caller's customer id (an integer
claim) and `inventory` by a list of warehouses (a list claim); `products` and `transactions`
are not filtered. Each attempt is sent to POST /query (Arrow) with a customer's token and run
by DuckDB on a database that physically holds only that customer's rows of the filtered
tables (the oracle). The API must answer exactly what the oracle answers, or refuse where
`expect` says so (and the oracle fails too, unless the attempt is marked "strict").
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from fastapi.testclient import TestClient

from analytics_api.auth.local_issuer import LocalIssuer
from analytics_api.query.guard import SqlGuard
from analytics_api.whitelist import Whitelist

from .oracle import assert_same_rows, oracle_answer

WHITELIST_PATH = Path(__file__).resolve().parents[3] / "shared" / "schemas" / "query_whitelist.json"
CUSTOMER_CLAIM = "https://analytics.example.com/customer_id"
WAREHOUSE_CLAIM = "https://analytics.example.com/warehouses"
FILTERS = {"orders": "customer_id = :customer_id", "customers": "id = :customer_id",
           "inventory": "warehouse = ANY(:warehouses)"}

# (sql, expect): "rows" = answered and equal to the oracle; "refused" = 400/403 and the oracle
# fails too; "strict" = refused although the oracle would answer (a limitation, not a leak).
ATTEMPTS: list[tuple[str, str]] = [
    # --- the table as written, every spelling ---
    ("SELECT * FROM orders", "rows"),
    ("SELECT count(*) AS n FROM orders", "rows"),
    ("SELECT * FROM main.orders", "rows"),
    ('SELECT * FROM "main"."orders"', "rows"),
    ('SELECT * FROM "ORDERS"', "rows"),
    ("SELECT * FROM Orders", "rows"),
    ("SELECT * FROM OrDeRs o", "rows"),
    ("TABLE orders", "rows"),
    ("FROM orders", "rows"),
    ("FROM orders SELECT count(*) AS n", "rows"),
    ("SELECT * FROM orders AS customers", "rows"),
    ("SELECT * FROM customers AS orders", "rows"),
    ("SELECT * FROM orders AS o(a, b, c)", "rows"),
    ("SELECT orders.* FROM orders", "rows"),
    ("SELECT o FROM orders o", "rows"),
    ("SELECT to_json(o) AS j FROM orders o", "rows"),
    ("SELECT * FROM snap.orders", "refused"),
    ("SELECT * FROM memory.main.orders", "strict"),
    # --- aggregates over the whole table ---
    ("SELECT sum(total) AS s, max(id) AS m, min(id) AS lo FROM orders", "rows"),
    ("SELECT approx_count_distinct(id) AS n FROM orders", "rows"),
    ("SELECT count(DISTINCT customer_id) AS n FROM orders", "rows"),
    ("SELECT histogram(customer_id) AS h FROM orders", "rows"),
    ("SELECT list(id ORDER BY id) AS ids FROM orders", "rows"),
    ("SELECT status, count(*) AS n FROM orders GROUP BY ALL ORDER BY ALL", "rows"),
    ("SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id", "rows"),
    ("SELECT status, count(*) AS n FROM orders GROUP BY ROLLUP (status) ORDER BY ALL", "rows"),
    ("SELECT count(*) FILTER (WHERE customer_id <> 0) AS n FROM orders", "rows"),
    ("SELECT max(total) AS m FROM orders HAVING count(*) > 0", "rows"),
    ("SELECT count(*) AS n FROM customers", "rows"),
    # --- the caller's own WHERE cannot widen the filter ---
    ("SELECT count(*) AS n FROM orders WHERE true OR customer_id <> 0", "rows"),
    ("SELECT count(*) AS n FROM orders WHERE customer_id <> (SELECT min(id) FROM customers)", "rows"),
    ("SELECT * FROM orders WHERE 1 = 1 -- ) OR (1 = 1", "rows"),
    ("SELECT * FROM orders /* ) WHERE true OR ( */", "rows"),
    # --- windows over the whole table ---
    ("SELECT id, count(*) OVER () AS n FROM orders", "rows"),
    ("SELECT id, sum(total) OVER (PARTITION BY customer_id) AS s FROM orders", "rows"),
    ("SELECT id, row_number() OVER (ORDER BY id) AS rn FROM orders QUALIFY rn <= 5", "rows"),
    ("SELECT id, lag(id) OVER (ORDER BY id) AS prev FROM orders", "rows"),
    # --- CTEs, including ones named like the table ---
    ("WITH orders AS (SELECT * FROM orders) SELECT count(*) AS n FROM orders", "rows"),
    ("WITH orders AS (SELECT * FROM main.orders) SELECT count(*) AS n FROM orders", "rows"),
    ("WITH x AS (SELECT * FROM orders) SELECT count(*) AS n FROM x", "rows"),
    ("WITH x AS MATERIALIZED (SELECT * FROM orders) SELECT count(*) AS n FROM x", "rows"),
    ("WITH a AS (SELECT * FROM orders), b AS (SELECT * FROM a) SELECT count(*) AS n FROM b", "rows"),
    ("WITH orders(id) AS (VALUES (1), (2)) SELECT count(*) AS n FROM orders", "rows"),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < (SELECT count(*) FROM orders)) "
     "SELECT max(n) AS m FROM r", "rows"),
    ("WITH RECURSIVE r(i) AS (SELECT min(id) FROM orders UNION ALL SELECT (SELECT min(id) FROM orders o "
     "WHERE o.id > r.i) FROM r WHERE r.i IS NOT NULL) SELECT count(i) AS n FROM r", "rows"),
    # --- subqueries at any depth ---
    ("SELECT (SELECT count(*) FROM orders) AS n", "rows"),
    ("SELECT * FROM (SELECT * FROM (SELECT * FROM (SELECT * FROM orders) a) b) c", "rows"),
    ("SELECT count(*) AS n FROM products WHERE id IN (SELECT customer_id FROM orders)", "rows"),
    ("SELECT count(*) AS n FROM products p WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = p.id)", "rows"),
    ("SELECT c.id, (SELECT count(*) FROM orders o WHERE o.customer_id <> c.id) AS others FROM customers c", "rows"),
    ("SELECT id FROM products ORDER BY (SELECT count(*) FROM orders WHERE customer_id = products.id), id "
     "LIMIT 5", "rows"),
    ("SELECT count(*) AS n FROM (FROM orders)", "rows"),
    ("SELECT p.id, l.n FROM products p, LATERAL (SELECT count(*) AS n FROM orders o WHERE o.id > p.id) l "
     "ORDER BY p.id LIMIT 5", "rows"),
    ("SELECT count(*) AS n FROM customers c WHERE EXISTS (SELECT 1 FROM orders WHERE orders.customer_id = c.id)",
     "rows"),
    ("SELECT count(*) AS n FROM orders WHERE customer_id IN (SELECT id FROM main.customers)", "rows"),
    ("SELECT count(*) AS n FROM orders WHERE id IN (SELECT max(id) FROM main.orders)", "rows"),
    # --- joins, self-joins ---
    ("SELECT count(*) AS n FROM orders o1 JOIN orders o2 ON o1.id <> o2.id", "rows"),
    ("SELECT count(*) AS n FROM orders, orders AS o2", "rows"),
    ("SELECT o.id, c.country FROM orders o JOIN customers c ON c.id = o.customer_id", "rows"),
    ("SELECT count(*) AS n FROM orders o RIGHT JOIN customers c ON c.id = o.customer_id", "rows"),
    ("SELECT count(*) AS n FROM orders o FULL OUTER JOIN main.customers c ON c.id = o.customer_id", "rows"),
    ("SELECT count(*) AS n FROM orders NATURAL JOIN customers", "rows"),
    ("SELECT count(*) AS n FROM orders POSITIONAL JOIN customers", "rows"),
    ("SELECT count(*) AS n FROM (orders o JOIN customers c ON c.id = o.customer_id)", "rows"),
    ("SELECT count(*) AS n FROM range(3) r, orders", "rows"),
    ("SELECT count(*) AS n FROM orders o ASOF JOIN orders p ON o.customer_id = p.customer_id AND o.id >= p.id",
     "rows"),
    ("SELECT t.id FROM transactions t JOIN orders o ON o.id = t.order_id", "rows"),
    # --- set operations with an unfiltered copy ---
    ("SELECT id FROM orders UNION ALL SELECT id FROM main.orders", "rows"),
    ("SELECT * FROM orders UNION SELECT * FROM (TABLE orders)", "rows"),
    ("SELECT customer_id FROM orders EXCEPT SELECT id FROM customers", "rows"),
    ("SELECT customer_id FROM orders INTERSECT SELECT id FROM customers", "rows"),
    ("SELECT id FROM orders UNION ALL BY NAME SELECT id FROM customers", "rows"),
    ("SELECT count(*) AS n FROM (SELECT * FROM orders UNION ALL SELECT * FROM orders)", "rows"),
    # --- pivot, unpivot, sampling ---
    ("PIVOT orders ON status USING count(*)", "strict"),
    ("SELECT * FROM orders PIVOT (count(*) FOR status IN ('shipped', 'pending'))", "rows"),
    ("SELECT count(*) AS n FROM (UNPIVOT orders ON status, currency INTO NAME k VALUE v)", "rows"),
    ("SELECT count(*) AS n FROM orders USING SAMPLE 100 PERCENT (bernoulli)", "rows"),
    ("SELECT count(*) AS n FROM orders TABLESAMPLE 100%", "rows"),
    ("SELECT DISTINCT ON (customer_id) customer_id, id FROM orders ORDER BY customer_id, id", "rows"),
    # --- the list claim ---
    ("SELECT count(*) AS n FROM inventory", "rows"),
    ("SELECT DISTINCT warehouse FROM inventory", "rows"),
    ("SELECT i.warehouse, count(*) AS n FROM inventory i JOIN products p ON p.id = i.product_id GROUP BY ALL", "rows"),
    ("SELECT count(*) AS n FROM main.inventory WHERE warehouse <> ''", "rows"),
    # --- unfiltered tables stay whole ---
    ("SELECT count(*) AS n FROM products", "rows"),
    ("SELECT count(*) AS n FROM transactions", "rows"),
    # --- the filters' own parameters cannot be reached ---
    ("SELECT $rls_customer_id AS v", "refused"),
    ("SELECT * FROM orders WHERE customer_id = $rls_customer_id", "refused"),
    ("SELECT * FROM orders WHERE customer_id = ?", "refused"),
    # --- time travel and table functions on a filtered table ---
    ("SELECT * FROM orders AT (VERSION => 1)", "refused"),
    ("SELECT * FROM query_table('orders')", "strict"),
    ("SELECT * FROM duckdb_tables()", "strict"),
    # --- star modifiers and the whole row ---
    ("SELECT * EXCLUDE (customer_id) FROM orders", "rows"),
    ("SELECT * REPLACE (customer_id + 1 AS customer_id) FROM orders", "rows"),
    ("SELECT * RENAME (customer_id AS c) FROM orders", "rows"),
    ("SELECT COLUMNS(*) FROM orders", "strict"),  # COLUMNS is not an allowed function
    ("SELECT struct_pack(o := o) AS s FROM orders o", "rows"),
    ("SELECT o::VARCHAR AS s FROM orders o", "rows"),
    ("SELECT typeof(o) AS t FROM orders o LIMIT 1", "rows"),
    # --- PIVOT whose columns come from the data: DuckDB refuses a parameterised source ---
    ("SELECT * FROM (PIVOT orders ON customer_id USING count(*))", "strict"),
    ("SELECT * FROM (PIVOT inventory ON warehouse USING sum(quantity))", "strict"),
    ("PIVOT inventory ON warehouse USING count(*)", "strict"),
    ("UNPIVOT orders ON status INTO NAME k VALUE v", "strict"),
    ("SELECT * FROM orders PIVOT (count(*) FOR customer_id IN (SELECT id FROM customers))", "refused"),
    # --- DESCRIBE / SUMMARIZE-like statements (SUMMARIZE shows min and max of every column) ---
    ("SUMMARIZE orders", "strict"),
    ("SUMMARIZE SELECT * FROM orders", "strict"),
    ("SELECT * FROM (SUMMARIZE orders)", "strict"),
    ("DESCRIBE SELECT * FROM orders", "strict"),
    # --- an outer column, lambda parameter or CTE named like the filter's column or the table ---
    ("SELECT (SELECT count(*) FROM orders) AS n FROM (SELECT 999 AS customer_id) x", "rows"),
    ("SELECT n FROM (SELECT 1 AS customer_id) x, LATERAL (SELECT count(*) AS n FROM orders) l", "rows"),
    ("SELECT count(*) AS n FROM orders NATURAL JOIN (SELECT 546 AS customer_id)", "rows"),
    ("SELECT list_transform([1, 2], lambda customer_id: (SELECT count(*) FROM orders)) AS l", "refused"),
    ("SELECT * FROM (VALUES (1)) orders(customer_id)", "rows"),
    ("SELECT * FROM unnest([1]) AS orders(customer_id)", "rows"),
    ('WITH "ORDERS" AS (SELECT 1 AS x) SELECT * FROM orders', "rows"),
    ('WITH "ordeRS" AS (SELECT 1 AS x) SELECT count(*) AS n FROM main.orders', "rows"),
    ('SELECT * FROM "ORDERS" AS "orders"', "rows"),
    ("SELECT count(*) AS n FROM orders AS main", "rows"),
    ("SELECT count(*) AS n FROM orders o(a, b) WHERE b <> 0", "rows"),
    ('SELECT * FROM "orders\u200b"', "refused"),  # zero-width space
    ('SELECT * FROM "\uff4frders"', "refused"),  # full-width o
    # --- more joins and set operations ---
    ("SELECT count(*) AS n FROM customers c ANTI JOIN orders o ON o.customer_id = c.id", "rows"),
    ("SELECT count(*) AS n FROM orders o SEMI JOIN customers c ON c.id = o.customer_id", "rows"),
    ("SELECT count(*) AS n FROM orders WHERE id IN (SELECT id FROM orders UNION BY NAME SELECT id FROM main.orders)",
     "rows"),
    ("WITH RECURSIVE r AS (SELECT 1 AS i UNION ALL SELECT i + 1 FROM r, orders WHERE i < 2) SELECT count(*) AS n FROM r",
     "rows"),
    ("SELECT (SELECT note FROM orders) AS v", "refused"),  # more than one row: names no value
    ("SELECT * FROM orders ORDER BY id LIMIT 3 OFFSET 2", "rows"),
    # --- sampling and approximate aggregates run on the view's rows only ---
    ("SELECT count(*) AS n FROM orders USING SAMPLE 5 ROWS", "rows"),
    ("SELECT approx_quantile(customer_id, 0.5) AS q FROM orders", "rows"),
    ("SELECT approx_count_distinct(warehouse) AS n FROM inventory", "rows"),
    # --- literals that look like SQL (the literal-template path fills them in verbatim) ---
    ("SELECT 'x''); SELECT * FROM main.orders; --' AS s FROM orders", "rows"),
    ("SELECT count(*) AS n FROM orders WHERE customer_id::VARCHAR <> '1'' OR ''1''=''1'", "rows"),
    ("SELECT count(*) AS n FROM orders WHERE note LIKE '%' ESCAPE '\\'", "rows"),
    ("SELECT count(*) AS n FROM orders WHERE customer_id <> 1e1", "rows"),
]


@pytest.fixture(scope="module")
def people(snapshot_copy: tuple[Path, Path]) -> dict[str, dict]:
    """Two customers with orders, and their warehouses: the claims of two users."""
    with duckdb.connect(str(snapshot_copy[1]), read_only=True) as conn:
        top = [r[0] for r in conn.execute("SELECT customer_id FROM orders GROUP BY 1 ORDER BY count(*) DESC, 1 "
                                          "LIMIT 2").fetchall()]
        houses = [r[0] for r in conn.execute("SELECT DISTINCT warehouse FROM inventory ORDER BY 1").fetchall()]
    assert len(top) == 2 and len(houses) >= 3
    return {"alice": {CUSTOMER_CLAIM: top[0], WAREHOUSE_CLAIM: houses[:2]},
            "bob": {CUSTOMER_CLAIM: top[1], WAREHOUSE_CLAIM: houses[2:3]}}


def oracle_for(path: Path, claims: dict) -> duckdb.DuckDBPyConnection:
    """The snapshot with only the rows these claims may read, physically."""
    conn = duckdb.connect(config={"threads": 1})
    conn.execute(f"ATTACH '{path}' AS snap (READ_ONLY)")
    for (table,) in conn.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = 'snap'").fetchall():
        where = {"orders": "customer_id = $c", "customers": "id = $c", "inventory": "list_contains($w, warehouse)"}
        params = {"orders": {"c": claims[CUSTOMER_CLAIM]}, "customers": {"c": claims[CUSTOMER_CLAIM]},
                  "inventory": {"w": claims[WAREHOUSE_CLAIM]}}
        conn.execute(f"CREATE TABLE main.{table} AS SELECT * FROM snap.{table} WHERE {where.get(table, 'true')}",
                     params.get(table))
    conn.execute("DETACH snap")
    return conn


@pytest.fixture(scope="module")
def oracles(snapshot_copy: tuple[Path, Path], people: dict[str, dict]) -> Iterator[dict[str, duckdb.DuckDBPyConnection]]:
    conns = {who: oracle_for(snapshot_copy[1], claims) for who, claims in people.items()}
    yield conns
    for conn in conns.values():
        conn.close()


def whitelist_document() -> dict:
    document = json.loads(WHITELIST_PATH.read_text())
    for table, row_filter in FILTERS.items():
        document["tables"][table]["row_filter"] = row_filter
    document["claims"] = {"customer_id": {"claim": CUSTOMER_CLAIM, "type": "integer", "list": False},
                          "warehouses": {"claim": WAREHOUSE_CLAIM, "list": True}}
    document["unfiltered_scope"] = "read:all_rows"
    document["functions"] = sorted({*document["functions"], "QUERY_TABLE", "DUCKDB_TABLES"})
    document["queries"]["my_orders"] = {"sql": "SELECT id, total FROM orders WHERE total > $min ORDER BY id",
                                        "params": {"min": {"type": "number", "default": 0}}}
    return document


@pytest.fixture(scope="module")
def api(snapshot_copy: tuple[Path, Path], issuer: LocalIssuer, serving) -> Iterator[TestClient]:  # noqa: ANN001
    root, _ = snapshot_copy
    with serving(root, whitelist_document()) as client:
        yield client


@pytest.fixture(scope="module")
def tokens(issuer: LocalIssuer, people: dict[str, dict]) -> dict[str, dict[str, str]]:
    def bearer(**claims: object) -> dict[str, str]:
        return {"Authorization": f"Bearer {issuer.mint(**claims)}"}

    scopes = "read:analytics read:schema"
    return {"alice": bearer(sub="alice", scopes=scopes, **people["alice"]),
            "bob": bearer(sub="bob", scopes=scopes, **people["bob"]),
            "staff": bearer(sub="staff", scopes=f"{scopes} read:all_rows"),
            "nobody": bearer(sub="nobody", scopes=scopes)}


def assert_same(response, want: pa.Table | str, sql: str) -> None:  # noqa: ANN001
    assert response.status_code == 200, response.text
    assert not isinstance(want, str), f"the API answered what fails on the filtered rows: {want}"
    assert_same_rows(ipc.open_stream(response.content).read_all(), want, sql)


@pytest.mark.parametrize(("sql", "expect"), ATTEMPTS, ids=[ascii(s[:70]) for s, _ in ATTEMPTS])
@pytest.mark.parametrize("who", ["alice", "bob"])
def test_attempt_answers_only_the_callers_rows(api: TestClient, oracles: dict, tokens: dict, who: str,
                                               sql: str, expect: str) -> None:
    response = api.post("/query", json={"sql": sql, "format": "arrow"}, headers=tokens[who])
    want = oracle_answer(oracles[who], sql)
    if expect == "rows":
        assert_same(response, want, sql)
        return
    assert response.status_code in (400, 403), response.text[:300]
    if expect == "refused":
        assert isinstance(want, str), "refused, but the oracle answers: mark it 'strict' if that is meant"


def test_attempt_corpus_is_large_and_mostly_answered() -> None:
    assert len(ATTEMPTS) >= 60
    assert len({s for s, _ in ATTEMPTS}) == len(ATTEMPTS), "duplicate attempts"
    assert sum(e == "rows" for _, e in ATTEMPTS) >= 80


def test_the_filter_really_removes_rows(oracles: dict, snapshot_copy: tuple[Path, Path]) -> None:
    """The oracles must differ from the whole table, or the suite above would prove nothing."""
    with duckdb.connect(str(snapshot_copy[1]), read_only=True) as conn:
        whole = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in FILTERS}
    for oracle in oracles.values():
        for table, total in whole.items():
            mine = oracle.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            assert 0 < mine < total, table


def test_unfiltered_scope_reads_every_row(api: TestClient, tokens: dict, snapshot_copy: tuple[Path, Path]) -> None:
    with duckdb.connect(str(snapshot_copy[1]), read_only=True) as conn:
        total = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    response = api.post("/query", json={"sql": "SELECT count(*) AS n FROM orders"}, headers=tokens["staff"])
    assert response.status_code == 200 and response.json()["data"] == [{"n": total}]


def test_two_users_asking_the_same_sql_never_share_an_answer(api: TestClient, tokens: dict, oracles: dict) -> None:
    sql = "SELECT id, total FROM orders ORDER BY id LIMIT 5"
    first = {who: api.get("/query", params={"q": sql}, headers=tokens[who]) for who in ("alice", "bob")}
    again = {who: api.get("/query", params={"q": sql}, headers=tokens[who]) for who in ("alice", "bob")}
    for who in ("alice", "bob"):
        want = [dict(zip(("id", "total"), row)) for row in oracles[who].execute(sql).fetchall()]
        assert [r["id"] for r in first[who].json()["data"]] == [r["id"] for r in want]
        assert again[who].headers["x-cache"] == "hit"
        assert again[who].json()["data"] == first[who].json()["data"]
    assert first["alice"].headers["etag"] != first["bob"].headers["etag"]
    # Bob presenting Alice's ETag gets his own answer, not a 304 for hers.
    response = api.get("/query", params={"q": sql}, headers={**tokens["bob"], "If-None-Match": first["alice"].headers["etag"]})
    assert response.status_code == 200 and response.json()["data"] == first["bob"].json()["data"]


def test_point_lookups_through_the_template_path_stay_filtered(api: TestClient, tokens: dict, oracles: dict) -> None:
    """The small-result (tuple) path and the literal template path, warmed by Alice, serving Bob."""
    ids = [row[0] for row in oracles["alice"].execute("SELECT id FROM orders ORDER BY id LIMIT 4").fetchall()]
    for order_id in ids:  # warms the shape: the later lookups are filled into the template and fetched as tuples
        response = api.get("/query", params={"q": f"SELECT id, customer_id FROM orders WHERE id = {order_id}"},
                           headers=tokens["alice"])
        assert len(response.json()["data"]) == 1
    for order_id in ids:
        response = api.get("/query", params={"q": f"SELECT id, customer_id FROM orders WHERE id = {order_id}"},
                           headers=tokens["bob"])
        assert response.status_code == 200 and response.json()["data"] == []


def test_named_queries_and_positional_parameters_are_filtered(api: TestClient, tokens: dict, oracles: dict) -> None:
    want = oracles["bob"].execute("SELECT id FROM orders WHERE total > 1 ORDER BY id").fetchall()
    named = api.get("/queries/my_orders", params={"min": 1}, headers=tokens["bob"])
    assert named.status_code == 200 and [r["id"] for r in named.json()["data"]] == [r[0] for r in want]
    positional = api.post("/query", json={"sql": "SELECT id FROM orders WHERE total > $1 ORDER BY id", "params": [1]},
                          headers=tokens["bob"])
    assert positional.status_code == 200 and [r["id"] for r in positional.json()["data"]] == [r[0] for r in want]
    by_name = api.post("/query", json={"sql": "SELECT id FROM orders WHERE total > $t ORDER BY id", "params": {"t": 1}},
                       headers=tokens["bob"])
    assert by_name.json()["data"] == positional.json()["data"]
    smuggled = api.post("/query", json={"sql": "SELECT count(*) FROM orders", "params": {"rls_customer_id": 1}},
                        headers=tokens["bob"])
    assert smuggled.status_code == 400 and "reserved" in smuggled.json()["error"]["message"]


@pytest.mark.parametrize(("claims", "message"), [
    ({}, f"token lacks the '{CUSTOMER_CLAIM}' claim this table's row filter needs"),
    ({CUSTOMER_CLAIM: "42"}, f"claim '{CUSTOMER_CLAIM}' must be integer"),
    ({CUSTOMER_CLAIM: True}, f"claim '{CUSTOMER_CLAIM}' must be integer"),
    ({CUSTOMER_CLAIM: [1, 2]}, f"claim '{CUSTOMER_CLAIM}' must be a single value"),
    ({CUSTOMER_CLAIM: {"id": 1}}, f"claim '{CUSTOMER_CLAIM}' must be integer"),
])
def test_a_missing_or_ill_typed_claim_is_a_403_naming_it(api: TestClient, issuer: LocalIssuer, claims: dict,
                                                          message: str) -> None:
    token = issuer.mint(sub="mallory", **claims)
    response = api.get("/query", params={"q": "SELECT count(*) FROM orders"}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert response.json()["error"]["message"] == message
    unfiltered = api.get("/query", params={"q": "SELECT count(*) FROM products"},
                         headers={"Authorization": f"Bearer {token}"})
    assert unfiltered.status_code == 200  # tables without a filter need no claim


@pytest.mark.parametrize("value", [[], [""], ""])
def test_an_empty_list_claim_is_refused(api: TestClient, issuer: LocalIssuer, value: object) -> None:
    token = issuer.mint(sub="mallory", **{CUSTOMER_CLAIM: 1, WAREHOUSE_CLAIM: value})
    response = api.get("/query", params={"q": "SELECT count(*) FROM inventory"},
                       headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert WAREHOUSE_CLAIM in response.json()["error"]["message"]


def test_schema_and_snapshot_say_what_is_filtered_and_hide_totals(api: TestClient, tokens: dict) -> None:
    schema = api.get("/schema", headers=tokens["alice"]).json()["tables"]
    assert schema["orders"]["row_filtered"] is True and schema["orders"]["row_count"] is None
    assert schema["products"]["row_filtered"] is False and schema["products"]["row_count"] > 0
    staff = api.get("/schema", headers=tokens["staff"]).json()["tables"]
    assert staff["orders"]["row_filtered"] is False and staff["orders"]["row_count"] > 0
    tables = api.get("/snapshot", headers=tokens["alice"]).json()["tables"]
    assert "rows" not in tables["orders"] and "last_error" not in tables["orders"]
    assert tables["orders"]["status"] == "ok" and tables["products"]["rows"] > 0
    assert "rows" in api.get("/snapshot", headers=tokens["staff"]).json()["tables"]["orders"]


# Statements that fail on a row where a value is cast: if DuckDB evaluated the caller's
# condition before the row filter, the error would quote another user's row.
ERROR_PROBES = [
    "SELECT count(*) AS n FROM orders WHERE CAST('leak:' || customer_id AS INTEGER) = 1",
    "SELECT count(*) AS n FROM orders WHERE CASE WHEN id % 7 = 3 THEN CAST('leak:' || customer_id AS INTEGER) END = 1",
    "SELECT count(*) AS n FROM orders WHERE customer_id <> 0 AND CAST('leak:' || customer_id AS INTEGER) = 1",
    "SELECT count(*) AS n FROM orders o JOIN products p ON CAST('leak:' || o.customer_id AS INTEGER) = p.id",
    "SELECT CAST('leak:' || customer_id AS INTEGER) AS v FROM orders",
    "SELECT count(*) AS n FROM inventory WHERE CAST('leak:' || warehouse AS INTEGER) = 1",
    "SELECT count(*) AS n FROM inventory WHERE warehouse LIKE '%' AND CAST('leak:' || warehouse AS INTEGER) = 1",
    "SELECT count(*) AS n FROM inventory WHERE quantity >= 0 AND CAST('leak:' || warehouse AS INTEGER) = 1",
    "SELECT count(*) AS n FROM (SELECT * FROM inventory) i WHERE CAST('leak:' || i.warehouse AS INTEGER) = 1",
    # the caller's condition names another user's value, or sits in a join, subquery or other clause
    "SELECT count(*) AS n FROM orders WHERE customer_id = 149 AND CAST('leak:' || customer_id AS INTEGER) = 1",
    "SELECT count(*) AS n FROM orders WHERE customer_id = 1 OR CAST('leak:' || customer_id AS INTEGER) = 1",
    "SELECT count(*) AS n FROM inventory WHERE warehouse = 'west-1' AND CAST('leak:' || warehouse AS INTEGER) = 1",
    "SELECT count(*) AS n FROM inventory WHERE warehouse > 'm' AND CAST('leak:' || warehouse AS INTEGER) = 1",
    "SELECT count(*) AS n FROM inventory WHERE warehouse IN ('north-2', 'south-1', 'west-1') "
    "OR CAST('leak:' || warehouse AS INTEGER) = 1",
    "SELECT count(*) AS n FROM inventory i JOIN products p ON p.id = i.product_id "
    "WHERE CAST('leak:' || i.warehouse AS INTEGER) = 1",
    "SELECT count(*) AS n FROM products p LEFT JOIN inventory i ON i.product_id = p.id "
    "AND CAST('leak:' || i.warehouse AS INTEGER) = 1",
    "SELECT count(*) AS n FROM products p WHERE EXISTS (SELECT 1 FROM inventory i WHERE i.product_id = p.id "
    "AND CAST('leak:' || i.warehouse AS INTEGER) = 1)",
    "SELECT count(*) AS n FROM inventory i, range(2) r WHERE CAST('leak:' || i.warehouse AS INTEGER) = r.range",
    "SELECT count(*) AS n FROM transactions t JOIN orders o ON o.id = t.order_id "
    "WHERE CAST('leak:' || o.customer_id AS INTEGER) = 1",
    "SELECT (SELECT CAST('leak:' || o.customer_id AS INTEGER)) AS v FROM orders o",
    "SELECT * FROM orders o, LATERAL (SELECT CAST('leak:' || o.customer_id AS INTEGER) AS x) l",
    "SELECT id FROM orders ORDER BY CAST('leak:' || customer_id AS INTEGER)",
    "SELECT count(*) AS n FROM orders GROUP BY CAST('leak:' || customer_id AS INTEGER)",
    "SELECT id FROM orders LIMIT (SELECT CAST('leak:' || max(customer_id) AS INTEGER) FROM orders)",
    "SELECT CAST('leak:' || lead(customer_id) OVER (ORDER BY id) AS INTEGER) AS v FROM orders",
    "SELECT sum(total) OVER (ORDER BY id ROWS BETWEEN CAST('leak:' || customer_id AS INTEGER) PRECEDING "
    "AND CURRENT ROW) AS s FROM orders",
]


@pytest.mark.parametrize("sql", ERROR_PROBES, ids=[ascii(s[:70]) for s in ERROR_PROBES])
@pytest.mark.parametrize("who", ["alice", "bob"])
def test_errors_never_carry_another_users_values(api: TestClient, oracles: dict, tokens: dict, people: dict,
                                                 who: str, sql: str) -> None:
    response = api.post("/query", json={"sql": sql, "format": "arrow"}, headers=tokens[who])
    want = oracle_answer(oracles[who], sql)
    if not isinstance(want, str):  # the caller's own rows do not fail: neither may the API
        assert_same(response, want, sql)
        return
    assert response.status_code == 400, response.text[:300]
    quoted = re.findall(r"'leak:([^']*)'", response.json()["error"]["message"])
    own = {str(people[who][CUSTOMER_CLAIM]), *people[who][WAREHOUSE_CLAIM]}
    assert quoted and set(quoted) <= own, response.json()["error"]["message"]


# Engine errors that quote the value they failed on (casts, overflow, JSON, regex, dates,
# formats), on columns other than the filter's: the oracle holds only the caller's rows, so
# the API's error must be the oracle's, word for word: the same row of the caller's own.
ENGINE_ERROR_PROBES = [
    "SELECT count(*) AS n FROM orders WHERE CAST(note AS INTEGER) IS NOT NULL",
    "SELECT count(*) AS n FROM orders WHERE CAST(status AS INTEGER) IS NOT NULL",
    "SELECT count(*) AS n FROM orders WHERE CAST(total AS TINYINT) IS NOT NULL",
    "SELECT count(*) AS n FROM orders WHERE CAST(id AS TINYINT) IS NOT NULL",
    "SELECT count(*) AS n FROM orders WHERE id * 9223372036854775 > 0",
    "SELECT count(*) AS n FROM orders WHERE CAST(note AS JSON) IS NOT NULL",
    "SELECT count(*) AS n FROM orders WHERE json_extract(note, '$.a') IS NOT NULL",
    "SELECT count(*) AS n FROM orders WHERE regexp_matches('x', '(' || note)",
    "SELECT count(*) AS n FROM orders WHERE strptime(note, '%Y') IS NOT NULL",
    "SELECT count(*) AS n FROM orders WHERE make_date(id, 99, 99) IS NOT NULL",
    "SELECT count(*) AS n FROM orders WHERE CAST(note AS DATE) IS NOT NULL",
    "SELECT count(*) AS n FROM orders WHERE CAST(note AS UUID) IS NOT NULL",
    "SELECT count(*) AS n FROM orders WHERE CAST(note AS INTERVAL) IS NOT NULL",
    "SELECT count(*) AS n FROM orders WHERE CAST(total AS DECIMAL(3, 1)) IS NOT NULL",
    "SELECT count(*) AS n FROM orders WHERE date_part(note, ordered_at) IS NOT NULL",
    "SELECT count(*) AS n FROM orders WHERE strftime(ordered_at, note) IS NOT NULL",
    "SELECT count(*) AS n FROM orders WHERE CAST(currency AS INTEGER) = 1 AND customer_id <> 0",
    "SELECT CAST(note AS INTEGER) AS v FROM orders",
    "SELECT count(*) AS n FROM products p JOIN orders o ON CAST(o.note AS INTEGER) = p.id",
    "SELECT count(*) AS n FROM orders WHERE EXISTS (SELECT 1 WHERE CAST(orders.note AS INTEGER) = 1)",
    "SELECT count(*) AS n FROM orders o JOIN customers c ON c.id = o.customer_id WHERE CAST(c.email AS INTEGER) = 1",
    "SELECT count(*) AS n FROM customers WHERE CAST(full_name AS INTEGER) IS NOT NULL",
    "SELECT count(*) AS n FROM customers WHERE strptime(email, '%Y') IS NOT NULL",
    "SELECT count(*) AS n FROM inventory WHERE CAST(quantity AS TINYINT) IS NOT NULL",
    "SELECT count(*) AS n FROM inventory WHERE quantity + 9223372036854775000 > 0",
    "SELECT count(*) AS n FROM inventory WHERE CAST(price AS TINYINT) IS NOT NULL",
    "SELECT count(*) AS n FROM inventory WHERE CAST(product_id * 1000 AS TINYINT) IS NOT NULL",
    "SELECT count(*) AS n FROM inventory WHERE make_date(quantity, 99, 99) IS NOT NULL",
    "SELECT count(*) AS n FROM inventory WHERE quantity > 0 AND CAST(warehouse AS DATE) IS NULL",
    "SELECT count(*) AS n FROM inventory i1 JOIN inventory i2 ON i1.id = i2.id "
    "WHERE CAST(i2.warehouse || i1.quantity AS INTEGER) = 1",
    "SELECT count(*) AS n FROM (SELECT * FROM inventory LIMIT 1000) WHERE CAST(warehouse AS INTEGER) = 1",
    "SELECT warehouse, CAST(warehouse AS INTEGER) AS v FROM inventory GROUP BY ALL",
]


@pytest.mark.parametrize("sql", ENGINE_ERROR_PROBES, ids=[ascii(s[:70]) for s in ENGINE_ERROR_PROBES])
@pytest.mark.parametrize("who", ["alice", "bob"])
def test_engine_errors_quote_only_the_callers_rows(api: TestClient, oracles: dict, tokens: dict, who: str,
                                                   sql: str) -> None:
    response = api.post("/query", json={"sql": sql, "format": "arrow"}, headers=tokens[who])
    want = oracle_answer(oracles[who], sql)
    if not isinstance(want, str):
        assert_same(response, want, sql)
        return
    assert response.status_code == 400, response.text[:300]
    assert response.json()["error"]["message"] == f"query failed: {want}"


def test_a_cte_named_with_a_kelvin_sign_does_not_stand_in_for_a_filtered_table() -> None:
    """DuckDB matches names folding ASCII letters only; Python's lower() also folds the Kelvin
    sign (U+212A) to 'k'. None of this suite's tables has a 'k', so a table of its own: the CTE
    `"stocK"` (Kelvin) is not `stock` to DuckDB, so `stock` must still be read through its view."""
    whitelist = Whitelist.model_validate({
        "tables": {"stock": {"columns": ["id", "owner"], "row_filter": "owner = :owner"}},
        "claims": {"owner": {"claim": "owner", "type": "integer", "list": False}},
        "unfiltered_scope": "read:all_rows",
        "functions": json.loads(WHITELIST_PATH.read_text())["functions"],
    })
    guard = SqlGuard(whitelist)
    conn = duckdb.connect()
    conn.execute("CREATE TABLE stock AS SELECT * FROM (VALUES (1, 1, 'mine'), (2, 2, 'LEAK')) t(id, owner, secret)")
    schema = {"stock": {"id": "INTEGER", "owner": "INTEGER", "secret": "VARCHAR"}}
    for sql in ('WITH "stoc\u212a" AS (SELECT 1 AS x) SELECT * FROM stock',
                'WITH "STOC\u212a" AS (SELECT 1 AS x) SELECT * FROM main.stock',
                'WITH "stoc\u212a" AS (SELECT 1 AS x) SELECT * FROM "stoc\u212a", stock'):
        validated = guard.validate(sql, schema, filtered=True)
        assert validated.tables == {"stock"} and validated.claims == {"owner"}, sql
        rows = conn.execute(validated.sql, {"rls_owner": 1}).fetchall()
        assert "LEAK" not in repr(rows) and all(2 not in row for row in rows), (sql, rows)


def _cursor_body(cursor: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


def _cursor(body: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


def test_a_cursor_handed_to_another_user_or_forged_reads_only_their_rows(api: TestClient, tokens: dict,
                                                                         oracles: dict) -> None:
    sql = "SELECT id, customer_id FROM orders ORDER BY id"
    first = api.post("/query", json={"sql": sql, "page_size": 3, "count": "exact"}, headers=tokens["alice"])
    assert first.status_code == 200 and first.json()["total_rows"] == len(oracles["alice"].execute(sql).fetchall())
    cursor = first.json()["next"]
    bobs = [dict(zip(("id", "customer_id"), row)) for row in oracles["bob"].execute(sql).fetchall()]
    replayed = api.get("/query", params={"cursor": cursor}, headers=tokens["bob"])
    assert replayed.status_code == 200
    assert replayed.json()["data"] == bobs[3:6] and replayed.json()["total_rows"] == len(bobs)
    body = _cursor_body(cursor)
    forged = {  # each field of the cursor, as an attacker would rewrite it
        "far offset": ({**body, "o": 10**12}, 200),
        "claim as a param": ({**body, "p": {"rls_customer_id": 546}}, 400),
        "claim, upper case": ({**body, "p": {"RLS_CUSTOMER_ID": 546}}, 400),
        "filter param in SQL": ({**body, "q": "SELECT id FROM orders WHERE customer_id = $rls_customer_id"}, 400),
        "unfiltered table": ({**body, "q": "SELECT id FROM main.orders ORDER BY id"}, 200),
        "named query": ({**body, "q": None, "name": "my_orders", "p": {"min": 0}}, 200),
        "unknown format": ({**body, "f": "xml"}, 400),
    }
    for what, (fields, status) in forged.items():
        response = api.get("/query", params={"cursor": _cursor(fields)}, headers=tokens["bob"])
        assert response.status_code == status, (what, response.text[:300])
        if status == 200:
            ids = {row["id"] for row in response.json()["data"]}
            assert ids <= {row["id"] for row in bobs}, what


def test_batch_queries_are_filtered_and_keep_the_claims_reserved(api: TestClient, tokens: dict, oracles: dict) -> None:
    queries = [{"sql": "SELECT count(*) AS n FROM orders"},
               {"sql": "SELECT count(*) AS n FROM main.orders WHERE customer_id <> $c", "params": {"c": 0}},
               {"sql": "SELECT count(*) AS n FROM orders", "params": {"rls_customer_id": 546}},
               {"sql": "SELECT $rls_customer_id AS v"}]
    response = api.post("/query/batch", json={"queries": queries}, headers=tokens["bob"])
    assert response.status_code == 200
    results = response.json()["results"]
    n = oracles["bob"].execute("SELECT count(*) FROM orders").fetchone()[0]
    assert results[0]["data"] == [{"n": n}] and results[1]["data"] == [{"n": n}]
    assert [r["success"] for r in results[2:]] == [False, False]
    assert all("reserved" in r["error"]["message"] for r in results[2:])


@pytest.mark.parametrize(("sql", "params"), [
    ("SELECT count(*) AS n FROM orders WHERE customer_id <> $Rls_customer_id", None),
    ('SELECT count(*) AS n FROM orders WHERE customer_id <> $"rls_customer_id"', None),
    ("SELECT count(*) AS n FROM orders WHERE customer_id <> :rls_customer_id", None),
    ("SELECT count(*) AS n FROM products WHERE id <> $1", {"rls_customer_id": 0}),
    ("SELECT count(*) AS n FROM orders WHERE id > $x", {"x": 0, "RLS_customer_id": 546}),
    ("SELECT count(*) AS n FROM orders WHERE id > $x", {"x": 0, "rl\u017f_customer_id": 546}),  # long s: not a name DuckDB binds
    ("SELECT count(*) AS n FROM orders WHERE id > $1", {"p1": 0}),  # $1 is renamed $p1: not by name
    ("SELECT count(*) AS n FROM orders WHERE id > ?", [0]),
])
def test_no_spelling_of_a_parameter_reaches_the_filters_values(api: TestClient, tokens: dict, sql: str,
                                                               params: object) -> None:
    response = api.post("/query", json={"sql": sql, "params": params}, headers=tokens["bob"])
    assert response.status_code == 400, response.text[:300]


def test_positional_and_renamed_parameters_do_not_collide_with_the_filter(api: TestClient, tokens: dict,
                                                                          oracles: dict) -> None:
    """$1 becomes $p1 next to the filter's $rls_ names: a query of its own $p1 gets the same value."""
    response = api.post("/query", json={"sql": "SELECT count(*) AS n FROM orders WHERE id > $p1 AND id > $1",
                                        "params": [0]}, headers=tokens["bob"])
    assert response.json()["data"] == [{"n": oracles["bob"].execute("SELECT count(*) FROM orders").fetchone()[0]}]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "arrow", "json"])
def test_an_etag_never_answers_for_another_user_in_any_format(api: TestClient, tokens: dict, fmt: str) -> None:
    sql = "SELECT id FROM orders ORDER BY id"
    alice = api.get("/query", params={"q": sql, "format": fmt}, headers=tokens["alice"])
    bob = api.get("/query", params={"q": sql, "format": fmt}, headers={**tokens["bob"], "If-None-Match": alice.headers["etag"]})
    assert bob.status_code == 200 and bob.headers["etag"] != alice.headers["etag"]
    assert bob.content != alice.content


def test_warm_literal_templates_keep_a_hostile_literal_a_literal(api: TestClient, tokens: dict, oracles: dict) -> None:
    """Alice warms a shape; Bob's literals are filled into its validated text verbatim."""
    shape = "SELECT count(*) AS n FROM orders WHERE note = {} OR id = {}"
    api.get("/query", params={"q": shape.format("'x'", 1)}, headers=tokens["alice"])
    for note, order_id in (("'x'' OR customer_id <> 0 OR ''1''=''1'", 2), ("'x''; SELECT * FROM main.orders; --'", 3),
                           ("''''", 1e3), ("'\\'' OR true --'", 4)):
        sql = shape.format(note, order_id)
        response = api.get("/query", params={"q": sql}, headers=tokens["bob"])
        want = oracles["bob"].execute(sql).fetchall()
        assert response.status_code == 200 and response.json()["data"] == [{"n": want[0][0]}], sql
