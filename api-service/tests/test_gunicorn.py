"""The API as it runs in production: a real Gunicorn master with two uvicorn workers.

Covers what only separate processes can show: a rate limit shared through the real Redis,
metrics summed over workers, a snapshot hot swap under concurrent load with zero failed
requests, a runaway query that does not hurt other requests, and a graceful SIGTERM.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from analytics_api.auth.local_issuer import LOCAL_AUDIENCE, LOCAL_ISSUER

pytestmark = pytest.mark.slow
REDIS_URL = "redis://127.0.0.1:6379/7"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, proc: subprocess.Popen, base: str, log: Path) -> None:
        self.proc, self.base, self.log = proc, base, log

    def request(self, path: str, token: str | None = None, timeout: float = 30,
                headers: dict[str, str] | None = None) -> tuple[int, dict, dict]:
        """One request on a fresh connection (so the kernel spreads them over the workers)."""
        req = urllib.request.Request(self.base + path, headers=headers or {})
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, _lower(resp.headers), json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, _lower(err.headers), json.loads(err.read() or b"null")

    def query(self, sql: str, token: str) -> tuple[int, dict, dict]:
        return self.request("/query?" + urllib.parse.urlencode({"q": sql}), token)


def _lower(headers) -> dict:  # noqa: ANN001
    return {k.lower(): v for k, v in headers.items()}


@pytest.fixture
def start_gunicorn(tmp_path: Path, store, issuer) -> Iterator[Callable[..., Server]]:  # noqa: ANN001
    jwks = issuer.save(tmp_path / "issuer")
    started: list[Server] = []

    def start(**env_overrides: str) -> Server:
        port = free_port()
        metrics_dir = tmp_path / f"metrics-{port}"
        metrics_dir.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH0_", "RATE_LIMIT", "PROMETHEUS"))}
        env.update(BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="2", STORAGE_URL=store.url,
                   AUTH0_JWKS_URL=f"file://{jwks}", AUTH0_ISSUER=LOCAL_ISSUER, AUTH0_API_AUDIENCE=LOCAL_AUDIENCE,
                   SNAPSHOT_CACHE_DIR=str(tmp_path / "cache"), SNAPSHOT_POLL_SECONDS="0.3",
                   PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), RATE_LIMIT_REQUESTS="100000",
                   GRACEFUL_TIMEOUT="20")
        env.update(env_overrides)
        log = tmp_path / f"gunicorn-{port}.log"
        with log.open("w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "python:analytics_api.gunicorn_conf"],
                                    env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        server = Server(proc, f"http://127.0.0.1:{port}", log)
        started.append(server)
        deadline = time.monotonic() + 60
        pids: set[int] = set()
        while time.monotonic() < deadline and len(pids) < 2:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                status, _, body = server.request("/ready", timeout=2)
                if status == 200:
                    pids.add(body["worker_pid"])
            except (OSError, ValueError):
                time.sleep(0.1)
        assert len(pids) == 2, f"both workers should become ready; saw {pids}\n{log.read_text()[-3000:]}"
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait(timeout=10)


def test_rate_limit_is_shared_by_both_workers_through_redis(start_gunicorn, token) -> None:  # noqa: ANN001
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    client.ping()  # fails, never skips, when Redis is absent
    client.flushdb()
    server = start_gunicorn(RATE_LIMIT_STORAGE_URL=REDIS_URL, RATE_LIMIT_REQUESTS="12",
                            RATE_LIMIT_WINDOW_SECONDS="60", RATE_LIMIT_IP_REQUESTS="1000")
    user = token()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: server.query(f"SELECT {i} AS i FROM orders LIMIT 1", user), range(36)))
    statuses = sorted(status for status, _, _ in results)
    assert statuses.count(200) == 12 and statuses.count(429) == 24, statuses
    status, headers, body = next(r for r in results if r[0] == 429)
    assert body["error"]["code"] == "rate_limited"
    assert int(headers["retry-after"]) >= 1 and headers["x-ratelimit-remaining"] == "0"
    assert headers["x-ratelimit-limit"] == "12"
    # another user has their own quota
    assert server.query("SELECT 1 AS one FROM orders LIMIT 1", token(sub="someone-else"))[0] == 200
    assert any(b"user" in key for key in client.keys("*"))
    client.flushdb()


def test_ip_limit_applies_before_authentication(start_gunicorn) -> None:  # noqa: ANN001
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    client.flushdb()
    server = start_gunicorn(RATE_LIMIT_STORAGE_URL=REDIS_URL, RATE_LIMIT_IP_REQUESTS="10")
    statuses = [server.query("SELECT 1", f"guess-{i}")[0] for i in range(14)]
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429] * 4
    client.flushdb()


def test_ip_limit_behind_a_proxy_counts_the_address_the_proxy_saw(start_gunicorn) -> None:  # noqa: ANN001
    """FORWARDED_ALLOW_IPS=* (the guide's Railway setting): this test is the proxy, on 127.0.0.1.
    The client writes any X-Forwarded-For it likes; the proxy appends the address it saw."""
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    client.flushdb()
    server = start_gunicorn(RATE_LIMIT_STORAGE_URL=REDIS_URL, RATE_LIMIT_IP_REQUESTS="4", FORWARDED_ALLOW_IPS="*")

    def status(forwarded_for: str) -> int:
        return server.request("/query?q=SELECT%201", headers={"X-Forwarded-For": forwarded_for})[0]

    spoofed = [status(f"198.51.100.{i}, 203.0.113.7") for i in range(6)]
    assert spoofed == [401] * 4 + [429] * 2
    assert status("203.0.113.8") == 401  # another client behind the same proxy has its own quota
    assert any(b"203.0.113.7" in key for key in client.keys("*"))
    assert not any(b"198.51.100" in key for key in client.keys("*"))
    client.flushdb()


def test_metrics_are_summed_over_workers(start_gunicorn, token) -> None:  # noqa: ANN001
    server = start_gunicorn()
    user = token()
    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda i: server.query(f"SELECT * FROM orders WHERE id = {i + 1}", user)[0], range(30)))
    assert statuses == [200] * 30
    # Workers count a request after its response is sent: give the last ones a moment.
    deadline, count = time.monotonic() + 10, 0.0
    while time.monotonic() < deadline and count < 30:
        with urllib.request.urlopen(server.base + "/metrics", timeout=10) as resp:
            text = resp.read().decode()
        line = next((l for l in text.splitlines() if l.startswith("analytics_api_requests_total{")
                     and 'route="/query"' in l and 'status="200"' in l), "x 0")
        count = float(line.rsplit(" ", 1)[1])
        time.sleep(0.1)
    assert count == 30.0
    # one JSON access-log line per request, with its request id, user, status, duration and rows
    lines = [json.loads(l) for l in server.log.read_text().splitlines() if l.startswith("{")]
    queries = [l for l in lines if l.get("event") == "request" and l.get("path") == "/query"]
    assert len(queries) == 30
    assert all(l["status"] == 200 and l["user"] == "dev-user" and l["rows"] == 1 and l["request_id"]
               and l["duration_ms"] > 0 and l["service"] == "api-service" for l in queries)


def test_hot_swap_under_load_has_zero_failed_requests(start_gunicorn, token, demo, publish) -> None:  # noqa: ANN001
    server = start_gunicorn()
    user = token()
    _, _, first = server.query("SELECT count(*) AS n FROM orders", user)
    versions: set[str] = set()
    failures: list[object] = []
    stop = time.monotonic() + 8

    def hammer(worker: int) -> int:
        done = 0
        while time.monotonic() < stop:
            status, _, body = server.query(f"SELECT count(*) AS n, {worker * 100000 + done} AS k FROM orders", user)
            if status != 200:
                failures.append((status, body))
            else:
                versions.add(body["snapshot_version"])
            done += 1
        return done

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(hammer, w) for w in range(4)]
        for round_ in range(3):
            time.sleep(1.5)
            with sqlite3.connect(demo / "source.db") as con:
                con.execute("INSERT INTO orders SELECT id + ?, customer_id, status, total, currency, ordered_at, "
                            "shipped_at, note, datetime('now'), datetime('now') FROM orders WHERE id <= 5",
                            ((round_ + 1) * 1_000_000,))
            assert publish()["status"] == "published"
        total = sum(f.result() for f in futures)
    assert failures == [] and total > 50
    assert len(versions) >= 2
    time.sleep(1.0)
    for _ in range(6):  # both workers end on the newest snapshot
        _, _, body = server.query("SELECT count(*) AS n FROM orders", user)
        assert body["data"][0]["n"] == first["data"][0]["n"] + 15


def test_runaway_query_does_not_hurt_other_requests(start_gunicorn, token) -> None:  # noqa: ANN001
    server = start_gunicorn(QUERY_TIMEOUT_SECONDS="1")
    user = token()
    runaway = ("SELECT count(*) AS n FROM transactions a, transactions b, transactions c "
               "WHERE a.amount + b.amount > c.amount")
    with ThreadPoolExecutor(4) as pool:
        slow = [pool.submit(server.query, runaway, user) for _ in range(2)]
        quick = [server.query(f"SELECT * FROM customers WHERE id = {i}", user)[0] for i in range(1, 31)]
        slow_results = [f.result() for f in slow]
    assert quick == [200] * 30
    assert [s for s, _, _ in slow_results] == [408, 408]
    assert server.query("SELECT count(*) AS n FROM orders", user)[0] == 200


def test_sigterm_stops_gracefully(start_gunicorn, token) -> None:  # noqa: ANN001
    server = start_gunicorn()
    assert server.query("SELECT 1 AS one FROM orders LIMIT 1", token())[0] == 200
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=30) == 0
    log = server.log.read_text()
    assert "api.stopped" in log and "Traceback" not in log


def test_row_filters_batches_and_page_cursors_hold_across_workers(start_gunicorn, token, tmp_path) -> None:  # noqa: ANN001
    """Each request on a fresh connection, so both workers answer: a cursor one worker wrote
    is followed by either, and no cached answer crosses from one user to the other."""
    claim = "https://analytics.example.com/customer_id"
    whitelist = json.loads((Path(__file__).resolve().parents[2] / "shared" / "schemas" /
                            "query_whitelist.json").read_text())
    whitelist["tables"]["orders"]["row_filter"] = "customer_id = :customer_id"
    whitelist["claims"] = {"customer_id": {"claim": claim, "type": "integer"}}
    whitelist["unfiltered_scope"] = "read:all_rows"
    (tmp_path / "whitelist.json").write_text(json.dumps(whitelist))
    server = start_gunicorn(QUERY_WHITELIST_PATH=str(tmp_path / "whitelist.json"))
    assert server.query("SELECT count(*) AS n FROM orders", token())[0] == 403  # no claim, no scope
    staff = token(scopes="read:analytics read:all_rows")
    customers = [row["customer_id"] for row in server.query(
        "SELECT customer_id FROM orders GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 2", staff)[2]["data"]]
    assert len(customers) == 2
    users = {c: token(**{claim: c}, sub=f"customer-{c}") for c in customers}
    counts = {}
    for _ in range(3):  # repeated: the second and third answers may come from either worker's cache
        for customer, user in users.items():
            status, _, body = server.query("SELECT count(*) AS n, min(customer_id) AS lo, max(customer_id) AS hi "
                                           "FROM orders", user)
            assert status == 200, body
            row = body["data"][0]
            assert row["lo"] == row["hi"] == customer and row["n"] > 1
            assert counts.setdefault(customer, row["n"]) == row["n"]
    sql = "SELECT id FROM orders ORDER BY id"
    for customer, user in users.items():
        status, _, first = server.query(sql, user)
        pages, body = [], server.request("/query?" + urllib.parse.urlencode({"q": sql, "page_size": 2}), user)[2]
        while True:
            pages.extend(body["data"])
            if body["next"] is None:
                break
            status, _, body = server.request("/query?" + urllib.parse.urlencode({"cursor": body["next"]}), user)
            assert status == 200, body
        assert pages == first["data"] and len(pages) == counts[customer]
    batch = urllib.request.Request(server.base + "/query/batch", method="POST", data=json.dumps({"queries": [
        {"sql": "SELECT count(*) AS n FROM orders"}, {"sql": "SELECT * FROM nowhere"}]}).encode(),
        headers={"Authorization": f"Bearer {users[customers[0]]}", "Content-Type": "application/json"})
    with urllib.request.urlopen(batch, timeout=30) as resp:
        results = json.loads(resp.read())["results"]
    assert results[0]["data"] == [{"n": counts[customers[0]]}] and results[1]["success"] is False


def test_compression_through_gunicorn(start_gunicorn, token) -> None:  # noqa: ANN001
    """Bodies as the server sends them (http.client decodes nothing): zstd and gzip decode to the
    identity body, Content-Length is the compressed length, 304 works across codings, HEAD
    announces the same encoding and length as GET, and Arrow's zstd buffers read in pyarrow."""
    import gzip

    import pyarrow.ipc as ipc
    import zstandard

    server = start_gunicorn()
    auth = {"Authorization": f"Bearer {token()}"}
    port = int(server.base.rsplit(":", 1)[1])

    def send(method: str, path: str, **headers: str) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request(method, path, headers={**auth, **{k.replace("_", "-"): v for k, v in headers.items()}})
            response = conn.getresponse()
            return response.status, _lower(response.headers), response.read()
        finally:
            conn.close()

    def same_result(a: bytes, b: bytes) -> bool:  # another worker may have run it: its own timing
        a_doc, b_doc = json.loads(a), json.loads(b)
        return a_doc.pop("execution_time_ms") >= 0 and b_doc.pop("execution_time_ms") >= 0 and a_doc == b_doc

    path = "/query?" + urllib.parse.urlencode({"q": "SELECT * FROM transactions ORDER BY id LIMIT 1000"})
    status, plain, body = send("GET", path, Accept_Encoding="identity")
    assert status == 200 and "content-encoding" not in plain and len(body) > 50_000
    unzstd = zstandard.ZstdDecompressor().decompressobj
    for encoding, decode in (("zstd", lambda raw: unzstd().decompress(raw)), ("gzip", gzip.decompress)):
        status, headers, raw = send("GET", path, Accept_Encoding=f"{encoding}, identity;q=0.5")
        assert status == 200 and headers["content-encoding"] == encoding and "accept-encoding" in headers["vary"].lower()
        assert int(headers["content-length"]) == len(raw) < len(body) / 3
        assert same_result(decode(raw), body) and headers["etag"] == plain["etag"]
        status, headers, raw = send("GET", path, Accept_Encoding="identity", If_None_Match=headers["etag"])
        assert status == 304 and raw == b"" and "content-encoding" not in headers
    status, got, raw = send("GET", "/openapi.json", Accept_Encoding="gzip")
    assert status == 200 and got["content-encoding"] == "gzip" and b"/query" in gzip.decompress(raw)
    status, head, raw = send("HEAD", "/openapi.json", Accept_Encoding="gzip")
    assert status == 200 and raw == b""
    assert (head["content-encoding"], head["content-length"]) == ("gzip", got["content-length"])
    status, headers, raw = send("GET", path, Accept="application/vnd.apache.arrow.stream; codecs=zstd")
    assert status == 200 and headers["content-type"] == "application/vnd.apache.arrow.stream; codecs=zstd"
    assert ipc.open_stream(raw).read_all().num_rows == 1000
