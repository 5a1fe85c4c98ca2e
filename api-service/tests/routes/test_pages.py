"""Pagination: page_size, opaque `next` cursors pinned to a snapshot version, count=exact, 410."""

from __future__ import annotations

import base64
import sqlite3

import orjson

SQL = "SELECT id, status FROM orders WHERE id <= 23 ORDER BY id"


def follow(client, auth, first) -> list[dict]:  # noqa: ANN001
    """Every row of every page, following `next` until it is null."""
    rows, body = [], first.json()
    while True:
        rows.extend(body["data"])
        if body["next"] is None:
            return rows
        response = client.get("/query", params={"cursor": body["next"]}, headers=auth)
        assert response.status_code == 200, response.text
        body = response.json()


def test_pages_add_up_to_the_whole_result(client, auth) -> None:  # noqa: ANN001
    whole = client.get("/query", params={"q": SQL}, headers=auth).json()["data"]
    first = client.get("/query", params={"q": SQL, "page_size": 5, "count": "exact"}, headers=auth)
    body = first.json()
    assert body["row_count"] == 5 and body["truncated"] is False and body["total_rows"] == len(whole) == 23
    assert follow(client, auth, first) == whole
    post = client.post("/query", json={"sql": SQL, "page_size": 10}, headers=auth).json()
    assert post["data"] == whole[:10] and "total_rows" not in post
    again = client.post("/query", json={"cursor": post["next"]}, headers=auth).json()
    assert again["data"] == whole[10:20]
    last = client.get("/query", params={"q": SQL, "page_size": 23}, headers=auth).json()
    assert last["next"] is None and len(last["data"]) == 23


def test_named_queries_and_csv_pages(client, auth) -> None:  # noqa: ANN001
    first = client.get("/queries/order_by_id", params={"id": 3, "page_size": 1}, headers=auth)
    assert first.status_code == 200 and first.json()["data"][0]["id"] == 3 and first.json()["next"] is None
    csv = client.get("/query", params={"q": SQL, "page_size": 4, "format": "csv"}, headers=auth)
    lines = csv.text.strip().splitlines()
    assert len(lines) == 5 and lines[1].startswith("1,") and csv.headers["x-next-cursor"]  # header + 4 rows
    second = client.get("/query", params={"cursor": csv.headers["x-next-cursor"]}, headers=auth)
    assert second.headers["content-type"].startswith("text/csv") and second.text.splitlines()[1].startswith("5,")


def test_a_cursor_reads_its_own_version_after_a_swap_then_410(make_client, auth, demo, publish) -> None:  # noqa: ANN001
    client = make_client(snapshot_keep_previous=1)
    services = client.app.state.services
    first = client.get("/query", params={"q": SQL, "page_size": 10}, headers=auth).json()
    pinned = first["snapshot_version"]

    def change(shift: int) -> None:
        with sqlite3.connect(demo / "source.db") as con:  # new rows that sort among the first 23
            con.execute("UPDATE orders SET status = 'changed', updated_at = datetime('now') WHERE id <= 23")
            con.execute(f"INSERT INTO orders SELECT id + {shift}, customer_id, status, total, currency, ordered_at, "
                        "shipped_at, note, datetime('now'), datetime('now') FROM orders WHERE id <= 3")
        assert publish()["status"] == "published"
        assert services.snapshots.refresh() is True

    change(1_000_000)
    assert services.snapshots.current.version != pinned
    second = client.get("/query", params={"cursor": first["next"]}, headers=auth)
    assert second.status_code == 200 and second.json()["snapshot_version"] == pinned
    assert all(row["status"] != "changed" for row in second.json()["data"])  # the old version's rows
    fresh = client.get("/query", params={"q": SQL, "page_size": 10}, headers=auth).json()
    assert fresh["snapshot_version"] != pinned and fresh["data"][0]["status"] == "changed"
    change(2_000_000)  # the pinned version is now two swaps old: retired
    gone = client.get("/query", params={"cursor": second.json()["next"]}, headers=auth)
    assert gone.status_code == 410
    assert gone.json()["error"] == {"code": "gone", "message": f"snapshot version {pinned} has been retired; "
                                                              "start again from the first page"}


def test_bad_paging_requests_are_400(client, auth) -> None:  # noqa: ANN001
    cases = [({"q": SQL, "page_size": 0}, "page_size"), ({"q": SQL, "page_size": "ten"}, "page_size"),
             ({"q": SQL, "page_size": 100_000}, "page_size"), ({"q": SQL, "count": "exact"}, "only with page_size"),
             ({"q": SQL, "page_size": 2, "count": "roughly"}, "count"), ({"cursor": "not-a-cursor"}, "cursor"),
             ({"cursor": "e30", "q": SQL}, "send it alone")]
    for params, fragment in cases:
        response = client.get("/query", params=params, headers=auth)
        assert response.status_code == 400 and fragment in response.json()["error"]["message"], (params, response.text)


def test_a_forged_cursor_is_checked_like_any_query(client, auth) -> None:  # noqa: ANN001
    first = client.get("/query", params={"q": SQL, "page_size": 2}, headers=auth).json()
    raw = orjson.loads(base64.urlsafe_b64decode(first["next"] + "=" * (-len(first["next"]) % 4)))
    raw["q"] = "SELECT * FROM secrets"
    forged = base64.urlsafe_b64encode(orjson.dumps(raw)).decode()
    response = client.get("/query", params={"cursor": forged}, headers=auth)
    assert response.status_code == 400 and "not in the whitelist" in response.json()["error"]["message"]
