"""POST /query/batch: a dashboard's tiles in one request, one snapshot version, one error each."""

from __future__ import annotations

import orjson

TILES = [
    {"sql": "SELECT count(*) AS n FROM orders"},
    {"sql": "SELECT status, count(*) AS n FROM orders GROUP BY 1 ORDER BY 1"},
    {"sql": "SELECT * FROM orders WHERE id = $1", "params": [7]},
    {"sql": "SELECT * FROM orders WHERE id = $id", "params": {"id": 8}},
    {"name": "order_by_id", "params": {"id": 9}},
    {"sql": "SELECT * FROM secrets"},  # refused: the others still answer
    {"sql": "SELECT sum(amount) AS s FROM transactions", "max_rows": 1},
    {"name": "no_such_query"},
    {"sql": "SELECT id FROM orders ORDER BY id", "max_rows": 3},
    {"sql": "SELECT CAST('x' AS INTEGER) AS boom FROM orders"},  # fails in DuckDB, not in the guard
]


def test_each_tile_answers_as_query_would_on_one_version(client, auth) -> None:  # noqa: ANN001
    response = client.post("/query/batch", json={"queries": TILES}, headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    version = body["snapshot_version"]
    assert response.headers["x-snapshot-version"] == version and len(body["results"]) == len(TILES)
    for tile, result in zip(TILES, body["results"], strict=True):
        if tile.get("name") == "no_such_query" or tile.get("sql") == "SELECT * FROM secrets" or "boom" in tile.get(
                "sql", ""):
            assert result["success"] is False, (tile, result)
            continue
        if "name" in tile:
            assert result["data"][0]["id"] == 9
            continue
        assert result["success"] is True and result["snapshot_version"] == version, (tile, result)
        alone = client.post("/query", json={"sql": tile["sql"], "params": tile.get("params"),
                                            "max_rows": tile.get("max_rows")}, headers=auth).json()
        assert result["data"] == alone["data"] and result["truncated"] == alone["truncated"]
    errors = {r["error"]["code"] for r in body["results"] if not r["success"]}
    assert errors == {"query_rejected", "not_found"}


def test_a_named_tile_binds_its_typed_parameters(client, auth) -> None:  # noqa: ANN001
    results = client.post("/query/batch", json={"queries": [{"name": "order_by_id", "params": {"id": "9"}},
                                                            {"name": "order_by_id", "params": {"id": 0}},
                                                            {"name": "order_by_id", "params": [9]}]},
                          headers=auth).json()["results"]
    assert results[0]["success"] is True and results[0]["data"][0]["id"] == 9
    assert results[1]["error"]["code"] == "bad_request" and ">= 1" in results[1]["error"]["message"]
    assert results[2]["error"] == {"code": "bad_request", "message": "params: a named query takes an object"}


def test_limits_and_shape_of_the_request(client, auth) -> None:  # noqa: ANN001
    too_many = client.post("/query/batch", json={"queries": [{"sql": "SELECT 1 AS x FROM orders"}] * 21},
                           headers=auth)
    assert too_many.status_code == 400 and "at most 20" in too_many.json()["error"]["message"]
    for bad in ({"queries": []}, {"queries": [{"sql": "SELECT 1", "name": "x"}]}, {"queries": [{}]}, {}):
        assert client.post("/query/batch", json=bad, headers=auth).status_code in (400, 422), bad
    assert client.post("/query/batch", json={"queries": TILES[:1]}).status_code == 401


def test_the_rate_limit_counts_every_query_in_the_batch(make_client, auth) -> None:  # noqa: ANN001
    client = make_client(rate_limit_requests=12)
    five = {"queries": [{"sql": f"SELECT {i} AS x FROM orders LIMIT 1"} for i in range(5)]}
    assert client.post("/query/batch", json=five, headers=auth).status_code == 200  # 5 of 12
    assert client.post("/query/batch", json=five, headers=auth).status_code == 200  # 10 of 12
    refused = client.post("/query/batch", json=five, headers=auth)  # would be 15
    assert refused.status_code == 429 and refused.headers["retry-after"]
    # the refused batch was counted as the one request it was (11 of 12): one more query fits
    single = {"q": "SELECT 1 AS x FROM orders LIMIT 1"}
    assert client.get("/query", params=single, headers=auth).status_code == 200
    assert client.get("/query", params=single, headers=auth).status_code == 429


def test_results_are_json_objects_even_for_errors(client, auth) -> None:  # noqa: ANN001
    raw = client.post("/query/batch", json={"queries": [{"sql": "SELECT 'a\"b' AS s FROM orders LIMIT 1"},
                                                        {"sql": "DROP TABLE orders"}]}, headers=auth).content
    body = orjson.loads(raw)
    assert body["results"][0]["data"] == [{"s": 'a"b'}]
    assert body["results"][1] == {"success": False, "error": {
        "code": "query_rejected", "message": body["results"][1]["error"]["message"]}}
    assert "DROP" in body["results"][1]["error"]["message"]
