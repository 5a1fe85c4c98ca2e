"""Execution limits: a runaway query is stopped (408) without hurting other requests."""

from __future__ import annotations

import threading

RUNAWAY = ("SELECT count(*) AS n FROM transactions a, transactions b, transactions c "
           "WHERE a.amount + b.amount > c.amount")


def test_runaway_query_times_out_and_the_worker_stays_healthy(make_client, auth) -> None:  # noqa: ANN001
    client = make_client(query_timeout_seconds=0.5)
    results: dict[str, object] = {}

    def runaway() -> None:
        results["slow"] = client.get("/query", params={"q": RUNAWAY}, headers=auth)

    thread = threading.Thread(target=runaway)
    thread.start()
    quick = [client.get("/query", params={"q": f"SELECT * FROM orders WHERE id = {i}"}, headers=auth)
             for i in range(1, 21)]
    thread.join(timeout=60)
    slow = results["slow"]
    assert slow.status_code == 408, slow.text
    assert slow.json()["error"]["code"] == "query_timeout"
    assert all(r.status_code == 200 and r.json()["row_count"] == 1 for r in quick)
    after = client.get("/query", params={"q": "SELECT count(*) AS n FROM orders"}, headers=auth)
    assert after.status_code == 200
    assert client.app.state.services.watchdog.pending() == 0


def test_memory_limit_breach_is_a_clean_error(make_client, auth) -> None:  # noqa: ANN001
    client = make_client(duckdb_memory_limit="20MB", query_timeout_seconds=30)
    r = client.get("/query", params={"q": "SELECT list(t.reference ORDER BY t.reference) AS x FROM transactions t, "
                                          "orders o GROUP BY o.status"}, headers=auth)
    assert r.status_code in (400, 413), r.text
    assert r.json()["success"] is False
    assert client.get("/query", params={"q": "SELECT 1 AS one FROM orders LIMIT 1"}, headers=auth).status_code == 200


def test_small_and_large_results_format_temporal_values_identically() -> None:
    import duckdb
    import pyarrow as pa

    from analytics_api.query import serialize

    con = duckdb.connect()
    table = con.sql(
        "SELECT * FROM (VALUES (TIMESTAMP '2026-01-02 03:04:05', TIMESTAMPTZ '2026-01-02 03:04:05.5+02', "
        "DATE '0999-12-31', TIME '01:02:03.25', TIMESTAMP '1970-01-01 00:00:00.000001'), "
        "(TIMESTAMP '2026-01-02 03:04:05.123456', TIMESTAMPTZ '2026-06-30 23:59:59+00', DATE '2026-02-28', "
        "TIME '23:59:59', NULL)) v(ts, tstz, d, t, tiny)").to_arrow_table()
    small = [serialize._json_column(c) for c in table.columns]
    large = [serialize._iso_text(c).to_pylist() for c in table.columns]
    assert small == large
    assert small[1] == ["2026-01-02T01:04:05.500000Z", "2026-06-30T23:59:59Z"]
    assert isinstance(table.column(0).type, pa.TimestampType)
