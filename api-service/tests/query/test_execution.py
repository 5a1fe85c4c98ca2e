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
