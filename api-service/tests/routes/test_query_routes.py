"""The /query endpoints end to end on a real published snapshot."""

from __future__ import annotations

import duckdb
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import io

from analytics_shared.manifest import read_manifest
from analytics_shared.snapshot_files import fetch_snapshot


def snapshot_rows(store, tmp_path, sql: str, params=None) -> list[tuple]:  # noqa: ANN001
    manifest, _ = read_manifest(store)
    path = tmp_path / "direct.db"
    fetch_snapshot(store, manifest, path)
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, params).fetchall()


def test_get_query_returns_the_seed_shape(client, auth) -> None:  # noqa: ANN001
    r = client.get("/query", params={"q": "SELECT status, count(*) AS n FROM orders GROUP BY 1 ORDER BY 1"}, headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"success", "data", "columns", "row_count", "execution_time_ms", "snapshot_version", "truncated"}
    assert body["success"] is True and body["truncated"] is False
    assert body["columns"] == [{"name": "status", "type": "VARCHAR"}, {"name": "n", "type": "BIGINT"}]
    assert body["row_count"] == len(body["data"]) > 0
    assert r.headers["x-snapshot-version"] == body["snapshot_version"]


def test_results_equal_duckdb_on_the_same_snapshot(client, auth, store, tmp_path) -> None:  # noqa: ANN001
    sql = "SELECT id, customer_id, status, total FROM orders WHERE total > $1 ORDER BY id"
    r = client.post("/query", json={"sql": sql, "params": [500]}, headers=auth)
    assert r.status_code == 200, r.text
    got = [(d["id"], d["customer_id"], d["status"], d["total"]) for d in r.json()["data"]]
    want = [(a, b, c, float(d)) for a, b, c, d in snapshot_rows(store, tmp_path, sql, [500])]
    assert got == want and len(got) > 10


def test_named_parameters_are_bound_not_interpolated(client, auth) -> None:  # noqa: ANN001
    hostile = "x' OR '1'='1"
    r = client.post("/query", json={"sql": "SELECT count(*) AS n FROM customers WHERE email = $email",
                                    "params": {"email": hostile}}, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["data"] == [{"n": 0}]


def test_row_cap_truncates(make_client, auth) -> None:  # noqa: ANN001
    client = make_client(max_result_rows=25)
    r = client.get("/query", params={"q": "SELECT id FROM orders ORDER BY id"}, headers=auth)
    body = r.json()
    assert r.status_code == 200 and body["truncated"] is True and body["row_count"] == 25
    assert [d["id"] for d in body["data"]] == sorted(d["id"] for d in body["data"])


def test_formats_csv_arrow_parquet(client, auth) -> None:  # noqa: ANN001
    q = "SELECT id, full_name, signup_date FROM customers ORDER BY id LIMIT 7"
    csv = client.get("/query", params={"q": q, "format": "csv"}, headers=auth)
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0] == '"id","full_name","signup_date"' and len(csv.text.splitlines()) == 8
    arrow = client.get("/query", params={"q": q}, headers={**auth, "Accept": "application/vnd.apache.arrow.stream"})
    table = ipc.open_stream(arrow.content).read_all()
    assert table.num_rows == 7 and table.column_names == ["id", "full_name", "signup_date"]
    parquet = client.post("/query", json={"sql": q, "format": "parquet"}, headers=auth)
    assert pq.read_table(io.BytesIO(parquet.content)).num_rows == 7
    bad = client.get("/query", params={"q": q, "format": "xml"}, headers=auth)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_request"


def test_etag_and_result_cache(client, auth) -> None:  # noqa: ANN001
    q = {"q": "SELECT warehouse, sum(quantity) AS q FROM inventory GROUP BY 1 ORDER BY 1"}
    first = client.get("/query", params=q, headers=auth)
    assert first.headers["x-cache"] == "miss"
    second = client.get("/query", params=q, headers=auth)
    assert second.headers["x-cache"] == "hit" and second.content == first.content
    assert second.headers["etag"] == first.headers["etag"]
    again = client.get("/query", params=q, headers={**auth, "If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    other = client.get("/query", params={"q": q["q"] + " LIMIT 1"}, headers=auth)
    assert other.headers["etag"] != first.headers["etag"]


def test_named_queries(client, auth) -> None:  # noqa: ANN001
    listed = client.get("/queries", headers=auth).json()["queries"]
    assert "low_stock" in listed and listed["low_stock"]["params"]["limit"]["type"] == "integer"
    r = client.get("/queries/low_stock", params={"threshold": 50, "limit": 5}, headers=auth)
    assert r.status_code == 200, r.text
    rows = r.json()["data"]
    assert len(rows) == 5 and all(row["quantity"] <= 50 for row in rows)
    r = client.post("/queries/order_by_id", json={"params": {"id": 3}}, headers=auth)
    assert r.status_code == 200 and r.json()["data"][0]["id"] == 3
    assert client.get("/queries/low_stock", params={"limit": "ten"}, headers=auth).status_code == 400
    assert client.get("/queries/low_stock", params={"limit": 10**6}, headers=auth).status_code == 400
    assert client.get("/queries/low_stock", params={"bogus": 1}, headers=auth).status_code == 400
    assert client.post("/queries/order_by_id", json={"params": {}}, headers=auth).status_code == 400
    missing = client.get("/queries/nope", headers=auth)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_schema_and_snapshot(client, auth, token) -> None:  # noqa: ANN001
    schema = client.get("/schema", headers=auth).json()
    assert set(schema["tables"]) == {"inventory", "products", "orders", "transactions", "customers"}
    orders = schema["tables"]["orders"]
    assert {"name": "total", "type": "DECIMAL(12,2)"} in orders["columns"] and orders["row_count"] > 0
    snap = client.get("/snapshot", headers=auth).json()
    assert snap["version"] == schema["snapshot_version"] and snap["tables"]["orders"]["status"] == "ok"
    only_query = {"Authorization": f"Bearer {token('read:analytics')}"}
    r = client.get("/schema", headers=only_query)
    assert r.status_code == 403 and "read:schema" in r.json()["error"]["message"]


def test_engine_errors_are_400_with_the_reason(client, auth) -> None:  # noqa: ANN001
    r = client.get("/query", params={"q": "SELECT no_such_column FROM orders"}, headers=auth)
    assert r.status_code == 400 and "no_such_column" in r.json()["error"]["message"]
    r = client.post("/query", json={"sql": "SELECT * FROM orders WHERE id = $1", "params": []}, headers=auth)
    assert r.status_code == 400


def test_health_ready_and_openapi(client) -> None:  # noqa: ANN001
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["status"] == "ready" and ready["snapshot_version"]
    assert "/query" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200


def test_unknown_route_is_json_404(client) -> None:  # noqa: ANN001
    r = client.get("/nope")
    assert r.status_code == 404 and r.json()["success"] is False


def test_cors_preflight_and_exposed_headers(make_client, auth) -> None:  # noqa: ANN001
    client = make_client(cors_origins="https://app.example.com, https://admin.example.com")
    pre = client.options("/query", headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
                                            "Access-Control-Request-Headers": "authorization,content-type"})
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "https://app.example.com"
    r = client.get("/query", params={"q": "SELECT 1 AS one FROM orders LIMIT 1"},
                   headers={**auth, "Origin": "https://app.example.com"})
    exposed = r.headers["access-control-expose-headers"].lower()
    assert "x-ratelimit-remaining" in exposed and "etag" in exposed
    denied = client.options("/query", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in denied.headers


def test_request_id_is_echoed_or_generated(client, auth) -> None:  # noqa: ANN001
    mine = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert mine.headers["x-request-id"] == "abc-123"
    hostile = client.get("/health", headers={"X-Request-ID": "x" * 500})
    assert hostile.headers["x-request-id"] != "x" * 500 and len(hostile.headers["x-request-id"]) == 32
    r = client.get("/query", params={"q": "SELECT 1 AS one FROM orders LIMIT 1"}, headers=auth)
    assert int(r.headers["x-ratelimit-remaining"]) < int(r.headers["x-ratelimit-limit"])


def test_json_types_survive(client, auth) -> None:  # noqa: ANN001
    q = ("SELECT sum(quantity) AS total_qty, max(price) AS max_price, INTERVAL 1 DAY + INTERVAL 90 MINUTE AS span, "
         "DATE '2026-01-02' AS d, TIMESTAMP '2026-01-02 03:04:05.123456' AS ts, 'ünï 東京' AS text, NULL AS nothing "
         "FROM inventory")
    body = client.get("/query", params={"q": q}, headers=auth).json()
    row = body["data"][0]
    assert isinstance(row["total_qty"], int)  # a HUGEINT sum stays an integer, not 52103.0
    assert isinstance(row["max_price"], float) and round(row["max_price"], 2) == row["max_price"]
    assert row["span"] == "P1DT5400S"
    assert row["d"] == "2026-01-02" and row["ts"] == "2026-01-02T03:04:05.123456"
    assert row["text"] == "ünï 東京" and row["nothing"] is None


def test_volatile_queries_are_never_cached(client, auth) -> None:  # noqa: ANN001
    for sql in ("SELECT random() AS r FROM orders LIMIT 1", "SELECT now() AS t, id FROM orders LIMIT 1",
                "SELECT current_date AS d FROM orders LIMIT 1"):
        first = client.get("/query", params={"q": sql}, headers=auth)
        second = client.get("/query", params={"q": sql}, headers=auth)
        assert first.status_code == second.status_code == 200, first.text
        assert first.headers["x-cache"] == second.headers["x-cache"] == "bypass"
        assert "etag" not in first.headers and first.headers["cache-control"] == "no-store"
    a = client.get("/query", params={"q": "SELECT random() AS r FROM orders LIMIT 1"}, headers=auth).json()
    b = client.get("/query", params={"q": "SELECT random() AS r FROM orders LIMIT 1"}, headers=auth).json()
    assert a["data"] != b["data"]


def test_literal_variations_share_one_validation(client, auth) -> None:  # noqa: ANN001
    guard = client.app.state.services.guard
    calls = []
    original = guard._check
    guard._check = lambda sql, schema, filtered=False: calls.append(sql) or original(sql, schema, filtered)
    for i in range(1, 21):
        r = client.get("/query", params={"q": f"SELECT id, status FROM orders WHERE id = {i} AND status <> 'x{i}'"},
                       headers=auth)
        assert r.status_code == 200 and r.json()["data"][0]["id"] == i
    assert len(calls) == 1  # the shape was checked once; the other 19 only tokenized and filled in
    tricky = "x' UNION SELECT * FROM secrets --"
    r = client.post("/query", json={"sql": f"SELECT id, status FROM orders WHERE id = 1 AND status <> '{tricky.replace(chr(39), chr(39) * 2)}'"},
                    headers=auth)
    assert r.status_code == 200 and r.json()["row_count"] == 1  # still one string literal, not a UNION


def test_temporal_values_are_iso_8601(client, auth) -> None:  # noqa: ANN001
    q = ("SELECT TIMESTAMP '2026-01-02 03:04:05' AS whole, TIMESTAMPTZ '2026-01-02 03:04:05.5+02' AS instant, "
         "TIME '01:02:03.25' AS t, NULL::TIMESTAMP AS missing FROM orders LIMIT 1")
    row = client.get("/query", params={"q": q}, headers=auth).json()["data"][0]
    assert row == {"whole": "2026-01-02T03:04:05", "instant": "2026-01-02T01:04:05.500000Z",
                   "t": "01:02:03.250000", "missing": None}


def _small(result: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("analytics_api_small_results_total", {"result": result}) or 0.0


def test_point_lookups_are_fetched_as_tuples_after_the_first_and_answer_the_same(client, auth) -> None:  # noqa: ANN001
    sql = "SELECT * FROM orders WHERE id = 7"
    served = _small("served")
    first = client.get("/query", params={"q": sql}, headers=auth)  # unknown shape: Arrow
    assert _small("served") == served
    # Another literal, and max_rows so that the result cache does not answer the repeat.
    other = client.get("/query", params={"q": "SELECT * FROM orders WHERE id = 8"}, headers=auth)
    again = client.get("/query", params={"q": sql, "max_rows": "5"}, headers=auth)
    assert _small("served") == served + 2
    assert first.status_code == other.status_code == again.status_code == 200
    assert again.json()["data"] == first.json()["data"] and again.json()["columns"] == first.json()["columns"]
    assert other.json()["data"][0]["id"] == 8


def _watch_loop(owner: object, name: str, monkeypatch, on_loop: list[bool]) -> None:  # noqa: ANN001
    """Wrap owner.name to record, per call, whether it ran on the event loop's thread."""
    import asyncio

    original = getattr(owner, name)

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)


def test_queries_never_run_on_the_event_loop(client, auth, monkeypatch) -> None:  # noqa: ANN001
    """A point lookup included: one slow lookup on the loop would delay every other request."""
    from analytics_api.query import answer

    on_loop: list[bool] = []
    for name in ("execute_small", "execute_query"):
        _watch_loop(answer, name, monkeypatch, on_loop)
    for i in (11, 12, 13):
        assert client.get("/query", params={"q": f"SELECT * FROM orders WHERE id = {i}"}, headers=auth).status_code == 200
    body = {"queries": [{"sql": f"SELECT * FROM orders WHERE id = {i}"} for i in (14, 15)]}
    assert client.post("/query/batch", json=body, headers=auth).status_code == 200
    assert len(on_loop) == 5 and not any(on_loop)


def test_new_statements_are_validated_off_the_event_loop(client, auth, monkeypatch) -> None:  # noqa: ANN001
    """Parsing a 10-20 kB statement takes tens of ms: on the loop it would stall every lookup."""
    on_loop: list[bool] = []
    _watch_loop(client.app.state.services.guard, "validate", monkeypatch, on_loop)
    big = "SELECT count(*) AS n FROM orders WHERE id IN (" + ", ".join(str(i) for i in range(2500)) + ")"
    assert len(big) > 10_000
    assert client.get("/query", params={"q": big}, headers=auth).status_code == 200
    assert client.get("/query", params={"q": "SELECT * FROM orders WHERE id = 3"}, headers=auth).status_code == 200
    assert on_loop == [False, False]  # both new: both parsed in a worker thread
    assert client.get("/query", params={"q": "SELECT * FROM orders WHERE id = 4"}, headers=auth).status_code == 200
    assert on_loop == [False, False]  # a known shape, another literal: filled in on the loop, no parse


def test_a_small_shape_that_turns_large_is_fetched_again_as_arrow(client, auth) -> None:  # noqa: ANN001
    services = client.app.state.services
    large = "SELECT id FROM orders WHERE id <= {} ORDER BY id"
    shape = services.guard.validate(large.format(1)).shape
    services.hints.record(shape, rows=1, types=["BIGINT"])  # as if it had been a lookup
    rerun = _small("rerun")
    r = client.get("/query", params={"q": large.format(200)}, headers=auth)  # 200 rows: not small
    assert r.status_code == 200, r.text
    assert [d["id"] for d in r.json()["data"]] == list(range(1, 201))
    assert _small("rerun") == rerun + 1
    assert not services.hints.expects_small(shape)
    assert services.watchdog.pending() == 0


def test_get_query_parameters_are_checked_and_documented(client, auth) -> None:  # noqa: ANN001
    cases = [({}, "q: the SQL query is required"), ({"q": "SELECT 1 AS x FROM orders", "max_rows": "0"}, "max_rows"),
             ({"q": "SELECT 1 AS x FROM orders", "max_rows": "ten"}, "max_rows"),
             ({"q": "SELECT 1" + " " * 20_000}, "longer than 20000"),
             ({"q": "SELECT 1 AS x FROM orders", "format": "xml"}, "format must be one of")]
    for params, message in cases:
        r = client.get("/query", params=params, headers=auth)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["error"]["code"] == "bad_request" and message in r.json()["error"]["message"]
    documented = client.get("/openapi.json").json()["paths"]["/query"]["get"]["parameters"]
    assert [p["name"] for p in documented] == ["q", "params", "format", "max_rows", "page_size", "count", "cursor"]


def test_a_truncated_result_does_not_mark_its_shape_small(client, auth) -> None:  # noqa: ANN001
    services = client.app.state.services
    services.hints._fast_ms = 60_000  # speed is not the point here: a loaded machine must not decide
    sql = "SELECT id FROM orders WHERE id > 0 ORDER BY id"
    r = client.get("/query", params={"q": sql, "max_rows": "2"}, headers=auth)
    assert r.status_code == 200 and r.json()["truncated"] is True and r.json()["row_count"] == 2
    assert not services.hints.expects_small(services.guard.validate(sql).shape)
    r = client.get("/query", params={"q": "SELECT id FROM orders WHERE id > 100000 ORDER BY id"}, headers=auth)
    assert r.status_code == 200 and r.json()["row_count"] == 0  # an empty answer is small
    assert services.hints.expects_small(services.guard.validate(sql).shape)


def test_a_swap_empties_the_result_cache_of_the_retired_version(client, auth, demo, publish) -> None:  # noqa: ANN001
    """Keys carry the version: after a swap no request can hit the old entries, so they go."""
    import sqlite3

    services = client.app.state.services
    old = services.snapshots.current.version
    for i in range(1, 6):
        client.get("/query", params={"q": f"SELECT * FROM orders WHERE id = {i}"}, headers=auth)
    q = {"q": "SELECT status, count(*) AS n FROM orders GROUP BY 1 ORDER BY 1"}
    assert client.get("/query", params=q, headers=auth).headers["x-cache"] == "miss"
    assert client.get("/query", params=q, headers=auth).headers["x-cache"] == "hit"
    assert len(services.cache) == 6 and services.cache.version == old
    with sqlite3.connect(demo / "source.db") as con:
        con.execute("UPDATE orders SET status = 'refunded', updated_at = datetime('now') WHERE id <= 3")
    assert publish()["status"] == "published"
    assert services.snapshots.refresh() is True
    new = services.snapshots.current.version
    assert new != old and services.cache.version == new
    assert len(services.cache) == 0 and services.cache.size == 0
    again = client.get("/query", params=q, headers=auth)
    assert again.headers["x-cache"] == "miss" and again.headers["x-snapshot-version"] == new
    assert client.get("/query", params=q, headers=auth).headers["x-cache"] == "hit"


def test_a_huge_body_is_refused_before_it_is_read_or_parsed(client, auth) -> None:  # noqa: ANN001
    """FastAPI reads and parses a JSON body before any dependency runs, so before the IP limit and
    the token check: without a cap, anyone could make a worker buffer and parse gigabytes."""
    huge = b'{"sql": "SELECT 1", "params": ["' + b"a" * (64 << 20) + b'"]}'
    for headers in ({}, auth):
        r = client.post("/query", content=huge, headers={**headers, "Content-Type": "application/json"})
        assert r.status_code == 413, r.text[:200]
        assert r.json()["error"]["code"] == "request_too_large"
    largest_batch = {"queries": [{"sql": "SELECT 1 AS one FROM orders WHERE order_id > 0" + " " * 19_900}] * 20}
    assert client.post("/query/batch", json=largest_batch, headers=auth).status_code == 200
