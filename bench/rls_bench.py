"""Row-level security benchmark: what a row filter costs, side by side on one snapshot.

One Gunicorn API (2 workers) serves the ETL's demo snapshot with a whitelist that filters
`orders` by a customer-id claim and `transactions` by a list-of-methods claim. Contenders,
interleaved round by round:
- api-filtered:   a customer's token (the filter is compiled into every query);
- api-unfiltered: a staff token holding the unfiltered scope, the same SQL and literals;
- raw:            in-process DuckDB (its own process, 2 threads, Arrow fetch, no HTTP) running
                  the hand-filtered SQL: the physical limit.
Workloads: a point lookup of one of the customer's orders by id, and a GROUP BY over the
filtered transactions; each request with a fresh literal, so no answer comes from a cache.

    .venv/bin/python bench/rls_bench.py --rows 6000000
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))
import api_bench as ab  # noqa: E402 - the shared harness: snapshot, Gunicorn server, summaries
from dashboard_bench import start_server  # noqa: E402

WHITELIST = ab.ROOT / "shared" / "schemas" / "query_whitelist.json"
CUSTOMER = "https://analytics.example.com/customer_id"
METHODS = "https://analytics.example.com/methods"
# `id <> -n` with a fresh n per request: the customer has only tens of orders, and without it
# most lookups were answered from the API's result cache (raw DuckDB has none).
POINT = "SELECT * FROM orders WHERE id = {x} AND id <> -{n}"
AGGREGATE = ("SELECT date_trunc('month', created_at) AS month, method, count(*) AS n, sum(amount) AS amount "
             "FROM transactions WHERE amount > {x} GROUP BY 1, 2 ORDER BY 1, 2")
# The same queries with the row filters written out by hand, for raw DuckDB.
RAW = {"point": POINT + " AND customer_id = {customer}", "aggregate": AGGREGATE.replace(
    "WHERE amount > {x}", "WHERE amount > {x} AND method IN ({methods})")}
TARGETS = {("point", "api-unfiltered"): 0.9, ("point", "raw"): 0.8, ("aggregate", "raw"): 0.9}


def literals(workload: str, rng: random.Random, ids: list[int]) -> dict[str, str]:
    """A fresh literal per request, so no answer comes from a cache."""
    if workload == "point":
        return {"x": str(rng.choice(ids)), "n": str(rng.randint(1, 10**12))}
    return {"x": f"{rng.randint(0, 5000) / 100:.2f}"}


def client(task: dict) -> dict:
    """One keep-alive connection sending GET /query until the deadline; latencies in ms."""
    rng = random.Random(task["seed"])
    conn = http.client.HTTPConnection("127.0.0.1", task["port"], timeout=300)
    headers = {"Authorization": f"Bearer {task['token']}"}
    measure_from = task["start_at"] + task["warmup"]
    end = measure_from + task["duration"]
    latencies, bad = [], 0
    while time.time() < task["start_at"]:
        time.sleep(0.005)
    while (now := time.time()) < end:
        sql = task["sql"].format(**literals(task["workload"], rng, task["ids"]))
        started = time.perf_counter()
        conn.request("GET", "/query?q=" + quote(sql, safe=""), headers=headers)
        response = conn.getresponse()
        response.read()
        if now >= measure_from:
            latencies.append((time.perf_counter() - started) * 1000)
            bad += response.status != 200
    conn.close()
    return {"latencies": latencies, "bad": bad}


def raw_serve(db: str, threads: str) -> None:
    """Child process: one read-only connection, a cursor per thread, one JSON job per stdin line."""
    import duckdb

    con = duckdb.connect(db, read_only=True)
    cursors = [con.cursor() for _ in range(int(threads))]
    for line in sys.stdin:
        job = json.loads(line)
        start_at = time.time() + 0.1
        measure_from, results = start_at + job["warmup"], []
        end = measure_from + job["duration"]

        def run(i: int, job: dict = job) -> None:
            rng, mine = random.Random(job["seed"] * 100 + i), []
            while time.time() < end:
                sql = job["sql"].format(**literals(job["workload"], rng, job["ids"]))
                started = time.perf_counter()
                cursors[i].sql(sql).to_arrow_reader(8192).read_all()
                if time.time() >= measure_from:
                    mine.append((time.perf_counter() - started) * 1000)
            results.append(mine)

        pool = [threading.Thread(target=run, args=(i,)) for i in range(len(cursors))]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        print(json.dumps({"latencies": [x for r in results for x in r]}), flush=True)


def setup(db: Path, work: Path, rows_wanted: int) -> dict:
    """The customer with the most orders and its order ids; methods covering ~rows_wanted transactions."""
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        customer = con.execute("SELECT customer_id FROM orders GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchone()[0]
        ids = [r[0] for r in con.execute("SELECT id FROM orders WHERE customer_id = ?", [customer]).fetchall()]
        methods, kept = [], 0
        for method, n in con.execute("SELECT method, count(*) FROM transactions GROUP BY 1 ORDER BY 2 DESC").fetchall():
            if abs(kept + n - rows_wanted) < abs(kept - rows_wanted):  # as close to rows_wanted as the methods allow
                methods.append(method)
                kept += n
        total = con.execute("SELECT count(*) FROM transactions").fetchone()[0]
    document = json.loads(WHITELIST.read_text())
    document["tables"]["orders"]["row_filter"] = "customer_id = :customer_id"
    document["tables"]["transactions"]["row_filter"] = "method = ANY(:methods)"
    document["claims"] = {"customer_id": {"claim": CUSTOMER, "type": "integer"}, "methods": {"claim": METHODS, "list": True}}
    document["unfiltered_scope"] = "read:all_rows"
    (work / "whitelist.json").write_text(json.dumps(document))
    return {"customer": customer, "ids": ids, "methods": methods, "kept": kept, "transactions": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=6_000_000, help="demo source rows")
    parser.add_argument("--filtered-rows", type=int, default=2_000_000, help="transactions the list claim keeps")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per cell (over the rounds)")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=ab.RESULTS / "api-data")
    args = parser.parse_args()

    import tempfile

    from analytics_api.auth.local_issuer import LocalIssuer

    store = ab.etl_snapshot(args.rows, args.data_dir)
    work = Path(tempfile.mkdtemp(prefix="rls-bench-"))
    db = ab.snapshot_file(store, work)
    facts = setup(db, work, args.filtered_rows)
    print(f"# customer {facts['customer']}: {len(facts['ids'])} orders; methods {facts['methods']}: "
          f"{facts['kept']:,} of {facts['transactions']:,} transactions", file=sys.stderr)
    issuer = LocalIssuer.generate()
    jwks = issuer.save(work / "issuer")
    tokens = {"api-filtered": issuer.mint(sub="customer", ttl_seconds=7200,
                                          **{CUSTOMER: facts["customer"], METHODS: facts["methods"]}),
              "api-unfiltered": issuer.mint(sub="staff", scopes="read:analytics read:all_rows", ttl_seconds=7200)}
    server = start_server("api", store, work, jwks, args.workers, None,
                          {"QUERY_WHITELIST_PATH": str(work / "whitelist.json")})
    port = server.port
    raw = subprocess.Popen([sys.executable, __file__, "raw-serve", str(db), "2"], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)
    methods = ", ".join(f"'{m}'" for m in facts["methods"])
    results: dict[tuple[str, str], dict] = {}
    try:
        pool = multiprocessing.get_context("fork").Pool(args.connections)
        seed = 0
        for workload, sql in (("point", POINT), ("aggregate", AGGREGATE)):
            raw_sql = RAW[workload].replace("{customer}", str(facts["customer"])).replace("{methods}", methods)
            parts: dict[str, list] = {c: [] for c in ("api-filtered", "api-unfiltered", "raw")}
            for r in range(args.rounds):
                for contender in (list(parts) if r % 2 == 0 else list(parts)[::-1]):
                    seed += 1
                    piece = args.duration / args.rounds
                    job = {"workload": workload, "ids": facts["ids"], "seed": seed, "warmup": args.warmup,
                           "duration": piece}
                    if contender == "raw":
                        raw.stdin.write(json.dumps({**job, "sql": raw_sql}) + "\n")
                        raw.stdin.flush()
                        lat = json.loads(raw.stdout.readline())["latencies"]
                    else:
                        start_at = time.time() + 0.5
                        out = pool.map(client, [{**job, "seed": seed * 100 + i, "port": port, "sql": sql,
                                                 "token": tokens[contender], "start_at": start_at}
                                                for i in range(args.connections)])
                        if sum(o["bad"] for o in out):
                            raise SystemExit(f"{contender} {workload}: non-200 answers; see {work / 'api.log'}")
                        lat = [x for o in out for x in o["latencies"]]
                    parts[contender].append((lat, piece))
            for contender, runs in parts.items():
                summary = ab.summarize([x for lat, _ in runs for x in lat], sum(p for _, p in runs))
                results[(workload, contender)] = summary
                print(f"# {workload:9s} {contender:15s} {summary['rps']:8.1f} req/s  p50 {summary['p50_ms']:.2f} ms"
                      f"  p99 {summary['p99_ms']:.2f} ms", file=sys.stderr)
        pool.close()
    finally:
        raw.stdin.close()
        raw.wait(30)
        server.stop()
    print(f"\n{args.rows:,}-row demo source; filtered aggregate over {facts['kept']:,} transactions\n")
    print("| workload | api-filtered req/s | vs | other req/s | ratio | target |\n|---|---:|---|---:|---:|---:|")
    for (workload, other), target in TARGETS.items():
        mine, theirs = results[(workload, "api-filtered")]["rps"], results[(workload, other)]["rps"]
        ratio = mine / theirs if theirs else float("nan")
        print(f"| {workload} | {mine:,.1f} | {other} | {theirs:,.1f} | **{ratio:.2f}×** | ≥ {target}× "
              f"{'met' if ratio >= target else 'NOT met'} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "raw-serve":
        raw_serve(sys.argv[2], sys.argv[3])
    else:
        main()
