"""Dashboard benchmark: a 10-tile batch vs the same 10 requests in a row, and point lookups
while a stream of large unique queries arrives, side by side on one snapshot.

One Gunicorn API (2 workers) on the ETL's demo snapshot.
- dashboards: ten tiles (heavy: whole-table aggregates; light: narrow key ranges), each
  dashboard with literals of its own (no answer from the result cache), as ten sequential
  GET /query requests, as ten GETs spread over 6 keep-alive connections at once (a browser),
  and as one POST /query/batch; wall clock per dashboard, the order rotating. --rtt-ms: also
  through a proxy that delays every byte by half the round trip each way (bench/_netem.py),
  as a client on a real network sees it.
- stall: C clients send point lookups; p50/p99 alone, then while one more client sends
  unique 10-20 kB statements back to back (each one new to the guard). --baseline-src runs
  the same dashboards and stall cells against another api-service/src (e.g. a checkout of an
  earlier commit) in a second server, interleaved.

    .venv/bin/python bench/dashboard_bench.py --rows 3300000 [--rtt-ms 0,20] [--baseline-src /tmp/old/api-service/src]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))
import api_bench as ab  # noqa: E402 - the shared harness: snapshot, Gunicorn server, summaries
from _netem import DelayProxy  # noqa: E402

HEAVY_TILES = [  # each aggregates a whole table (1.3M orders at 3.3M rows): tens of ms of DuckDB
    "SELECT count(*) AS n, sum(total) AS revenue FROM orders WHERE total > {x}",
    "SELECT status, count(*) AS n FROM orders WHERE total > {x} GROUP BY 1 ORDER BY 1",
    "SELECT currency, avg(total) AS avg_total FROM orders WHERE total > {x} GROUP BY 1 ORDER BY 1",
    "SELECT date_trunc('month', ordered_at) AS month, count(*) AS n FROM orders WHERE total > {x} GROUP BY 1 ORDER BY 1",
    "SELECT method, sum(amount) AS amount FROM transactions WHERE amount > {x} GROUP BY 1 ORDER BY 1",
    "SELECT succeeded, count(*) AS n FROM transactions WHERE amount > {x} GROUP BY 1 ORDER BY 1",
    "SELECT category, avg(price) AS price FROM products WHERE price > {x} GROUP BY 1 ORDER BY 1",
    "SELECT warehouse, sum(quantity) AS units FROM inventory WHERE price > {x} GROUP BY 1 ORDER BY 1",
    "SELECT loyalty_tier, count(*) AS n FROM customers WHERE id > {x} GROUP BY 1 ORDER BY 1",
    "SELECT * FROM orders WHERE total > {x} ORDER BY total DESC LIMIT 20",
]
# A customer-facing dashboard: each tile reads a narrow key range (what a row filter or a
# date range leaves), so per-request costs (HTTP, auth, validation, JSON) dominate.
LIGHT_TILES = [
    "SELECT count(*) AS n, sum(total) AS revenue FROM orders WHERE id BETWEEN {i} AND {i} + 500",
    "SELECT status, count(*) AS n FROM orders WHERE id BETWEEN {i} AND {i} + 500 GROUP BY 1 ORDER BY 1",
    "SELECT currency, avg(total) AS avg_total FROM orders WHERE id BETWEEN {i} AND {i} + 500 GROUP BY 1 ORDER BY 1",
    "SELECT date_trunc('month', ordered_at) AS month, count(*) AS n FROM orders WHERE id BETWEEN {i} AND {i} + 500 "
    "GROUP BY 1 ORDER BY 1",
    "SELECT method, sum(amount) AS amount FROM transactions WHERE id BETWEEN {i} AND {i} + 500 GROUP BY 1 ORDER BY 1",
    "SELECT succeeded, count(*) AS n FROM transactions WHERE id BETWEEN {i} AND {i} + 500 GROUP BY 1 ORDER BY 1",
    "SELECT * FROM orders WHERE id = {i}",
    "SELECT * FROM transactions WHERE id = {i}",
    "SELECT id, total FROM orders WHERE id BETWEEN {i} AND {i} + 500 ORDER BY total DESC LIMIT 5",
    "SELECT max(ordered_at) AS last_order FROM orders WHERE id BETWEEN {i} AND {i} + 500",
]
TILES = {"heavy": HEAVY_TILES, "light": LIGHT_TILES}


BROWSER_CONNECTIONS = 6  # what a browser opens to one origin over HTTP/1.1
MODES = ("sequential", "parallel", "batch")


def dashboard(port: int, token: str, tiles: list[str], x: float, i: int, mode: str) -> float:
    """Seconds for one dashboard's ten answers, on keep-alive connections opened beforehand.

    sequential: one GET /query after another; parallel: the ten GETs spread over
    BROWSER_CONNECTIONS connections at once (what a browser's fetch() calls do); batch: one
    POST /query/batch."""
    headers = {"Authorization": f"Bearer {token}"}
    sqls = [t.format(x=f"{x:.2f}", i=i) for t in tiles]
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=300)
             for _ in range(BROWSER_CONNECTIONS if mode == "parallel" else 1)]
    for conn in conns:
        conn.connect()

    def get(conn: http.client.HTTPConnection, todo: list[str]) -> None:
        while todo:
            conn.request("GET", "/query?q=" + quote(todo.pop(0), safe=""), headers=headers)
            response = conn.getresponse()
            assert response.status == 200, response.read()[:300]
            response.read()

    started = time.perf_counter()
    if mode == "batch":
        conns[0].request("POST", "/query/batch", body=json.dumps({"queries": [{"sql": s} for s in sqls]}),
                         headers={**headers, "Content-Type": "application/json"})
        response = conns[0].getresponse()
        body = json.loads(response.read())
        assert response.status == 200 and all(r["success"] for r in body["results"]), body
    elif mode == "sequential":
        get(conns[0], sqls)
    else:
        threads = [threading.Thread(target=get, args=(conn, sqls)) for conn in conns]  # list.pop(0) is atomic
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    elapsed = time.perf_counter() - started
    for conn in conns:
        conn.close()
    return elapsed


def stream_client(task: dict) -> dict:
    """Point lookups (kind=point) or unique large statements (kind=big) until the deadline."""
    rng = random.Random(task["seed"])
    conn = http.client.HTTPConnection("127.0.0.1", task["port"], timeout=300)
    headers = {"Authorization": f"Bearer {task['token']}", "Content-Type": "application/json"}
    latencies: list[float] = []
    while time.time() < task["start_at"]:
        time.sleep(0.002)
    end = task["start_at"] + task["duration"]
    while time.time() < end:
        if task["kind"] == "point":
            sql = f"SELECT * FROM orders WHERE id = {rng.randint(1, task['orders'])}"
            conn.request("GET", "/query?q=" + quote(sql, safe=""), headers=headers)
        else:  # ~15 kB, new to the guard every time (a new shape: no template helps)
            ids = ", ".join(str(rng.randint(1, task["orders"])) for _ in range(rng.randint(1200, 2400)))
            sql = f"SELECT count(*) AS n_{rng.randint(0, 10**9)} FROM orders WHERE id IN ({ids})"
            conn.request("POST", "/query", body=json.dumps({"sql": sql}), headers=headers)
        started = time.perf_counter()
        response = conn.getresponse()
        response.read()
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status == 200, response.status
    conn.close()
    return {"latencies": latencies}


def stall_cell(pool, port: int, token: str, orders: int, clients: int, duration: float, with_stream: bool,
               seed: int) -> dict:
    start_at = time.time() + 0.5
    tasks = [{"kind": "point", "port": port, "token": token, "orders": orders, "seed": seed * 100 + i,
              "start_at": start_at, "duration": duration} for i in range(clients)]
    if with_stream:
        tasks.append({**tasks[0], "kind": "big", "seed": seed * 100 + 99})
    out = pool.map(stream_client, tasks)
    points = [x for o in out[:clients] for x in o["latencies"]]
    return {**ab.summarize(points, duration), "big": len(out[clients]["latencies"]) if with_stream else 0}


def start_server(name: str, store: Path, work: Path, jwks: Path, workers: int, src: str | None,
                 extra_env: dict[str, str] | None = None) -> ab.Server:
    """A Gunicorn API on `store`, tokens from `jwks`, no rate limit to speak of; ready when it returns.
    src: another api-service/src to run instead of this checkout's."""
    from analytics_api.auth.local_issuer import LOCAL_AUDIENCE, LOCAL_ISSUER

    port = ab.free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AUTH0_", "RATE_LIMIT_", "SNAPSHOT_"))},
           "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(workers), "STORAGE_URL": f"file://{store}",
           "AUTH0_JWKS_URL": f"file://{jwks}", "AUTH0_ISSUER": LOCAL_ISSUER, "AUTH0_API_AUDIENCE": LOCAL_AUDIENCE,
           "RATE_LIMIT_REQUESTS": "100000000", "SNAPSHOT_CACHE_DIR": str(work / f"cache-{name}"),
           "PROMETHEUS_MULTIPROC_DIR": str(work / f"prometheus-{name}"),
           "GUNICORN_CMD_ARGS": f"--control-socket {work / f'{name}.ctl'}"}
    env.update(extra_env or {})
    if src:
        env["PYTHONPATH"] = src
    server = ab.Server(name, [str(ab.VENV_BIN / "gunicorn"), "-c", "python:analytics_api.gunicorn_conf"], env, port,
                       work / f"{name}.log")
    server.wait_ready("/ready")
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=3_300_000)
    parser.add_argument("--dashboards", type=int, default=20, help="dashboards per contender")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per stall cell")
    parser.add_argument("--clients", type=int, default=3, help="point-lookup clients in the stall cells")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rtt-ms", type=lambda v: [float(x) for x in v.split(",")], default=[0.0, 20.0],
                        help="client round trips to measure the dashboards at (0: loopback; else a delay proxy)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline-src", default=None, help="another api-service/src to compare with")
    parser.add_argument("--no-stall", dest="stall", action="store_false", help="only the dashboards")
    parser.add_argument("--data-dir", type=Path, default=ab.RESULTS / "api-data")
    args = parser.parse_args()

    from analytics_api.auth.local_issuer import LocalIssuer

    store = ab.etl_snapshot(args.rows, args.data_dir)
    work = Path(tempfile.mkdtemp(prefix="dashboard-bench-"))
    orders = ab.run_child("info", str(ab.snapshot_file(store, work)))["orders"]
    issuer = LocalIssuer.generate()
    jwks = issuer.save(work / "issuer")
    token = issuer.mint(sub="bench", ttl_seconds=7200)
    servers = {"this": start_server("this", store, work, jwks, args.workers, None)}
    if args.baseline_src:
        servers["baseline"] = start_server("baseline", store, work, jwks, args.workers, args.baseline_src)
    pool = multiprocessing.get_context("fork").Pool(args.clients + 1)
    try:
        rng = random.Random(7)
        times: dict[tuple[float, str, str, str], list[float]] = {}
        for rtt in args.rtt_ms:
            proxies = {name: DelayProxy(server.port, rtt) for name, server in servers.items()} if rtt else {}
            ports = {name: (proxies[name] if rtt else server).port for name, server in servers.items()}
            for weight, tiles in TILES.items():
                for n in range(args.dashboards):
                    # Every dashboard gets literals of its own: no answer comes from the result cache.
                    x, i = rng.randint(0, 90_000) / 100, rng.randint(1, orders - 600)
                    for name in (list(ports) if n % 2 == 0 else list(ports)[::-1]):
                        for mode in MODES[n % 3:] + MODES[:n % 3]:
                            x, i = x + 0.01, i + 1
                            times.setdefault((rtt, name, weight, mode), []).append(
                                dashboard(ports[name], token, tiles, x, i, mode))
            for proxy in proxies.values():
                proxy.stop()
        stall: dict[tuple[str, bool], list[dict]] = {}
        seed = 0
        for r in range(args.rounds if args.stall else 0):
            for name, server in (servers.items() if r % 2 == 0 else list(servers.items())[::-1]):
                for with_stream in (False, True):
                    seed += 1
                    cell = stall_cell(pool, server.port, token, orders, args.clients, args.duration / args.rounds,
                                      with_stream, seed)
                    stall.setdefault((name, with_stream), []).append(cell)
                    print(f"# {name} stream={with_stream} {cell['rps']:.0f} lookups/s p50 {cell['p50_ms']:.2f} "
                          f"p99 {cell['p99_ms']:.2f} ms, {cell['big']} large statements", file=sys.stderr)
    finally:
        pool.close()
        for server in servers.values():
            server.stop()
    print(f"\n{args.rows:,}-row demo source, {args.workers} workers\n")
    print("| round trip | server | dashboard of 10 tiles | 10 sequential GET /query | 10 GETs over "
          f"{BROWSER_CONNECTIONS} connections | one POST /query/batch | batch vs sequential | batch vs parallel |\n"
          "|---:|---|---|---:|---:|---:|---:|---:|")
    for rtt in args.rtt_ms:
        for name in servers:
            for weight in TILES:
                seq, par, bat = (statistics.median(times[(rtt, name, weight, m)]) for m in MODES)
                print(f"| {rtt:g} ms | {name} | {weight} tiles | {seq * 1000:.1f} ms | {par * 1000:.1f} ms | "
                      f"{bat * 1000:.1f} ms | **{seq / bat:.2f}×** | {par / bat:.2f}× |")
    if not args.stall:
        return
    print(f"\n| server | point lookups alone: req/s, p50, p99 | with {args.clients} lookup clients + 1 stream of "
          "large unique statements: req/s, p50, p99 (statements answered) |\n|---|---|---|")
    for name in servers:
        alone = [c for c in stall[(name, False)]]
        busy = [c for c in stall[(name, True)]]

        def show(cells: list[dict]) -> str:
            return (f"{sum(c['rps'] for c in cells) / len(cells):,.0f}, {max(c['p50_ms'] for c in cells):.2f} ms, "
                    f"{max(c['p99_ms'] for c in cells):.2f} ms")
        print(f"| {name} | {show(alone)} | {show(busy)} ({sum(c['big'] for c in busy)}) |")


if __name__ == "__main__":
    main()
