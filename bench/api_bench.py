"""API benchmark: this API vs the seed plan's API design vs raw DuckDB, side by side on one snapshot.

Contenders, all on the same published snapshot file and (for HTTP) the same authenticated requests:
- api:  analytics_api via `gunicorn -c python:analytics_api.gunicorn_conf`, 2 uvicorn workers, loading
        the snapshot through its normal manifest path (STORAGE_URL=file://...);
- seed: bench/seed_api.py, the seed plan's design (per-request duckdb.connect, fetchdf, to_dict),
        served the same way (gunicorn + uvicorn_worker.UvicornWorker, 2 workers);
- raw:  in-process DuckDB, one read-only connection, a cursor per thread, 2 threads, no HTTP
        (execute + fetch the result as Arrow, the API's own fetch path): the limit.
- api-params (extra): this API with the literal moved into a bind parameter (POST {"sql", "params"}).

Workloads (a fresh random literal per request, so execution figures never come from a cache, except
where said): point lookup by primary key; `hit`, the same lookup over 50 ids, answered from the API's
result cache (its cost per request without DuckDB); a 5,000-row result; a heavy aggregate (GROUP BY
date_trunc over every transaction; --heavy join: over transactions ⋈ orders); and one identical heavy
aggregate repeated (served from the API's result cache; raw DuckDB re-executes it).

One load generator for every HTTP contender: N processes, one keep-alive http.client connection each,
fixed duration after a warm-up; client and servers share the machine's cores. Worker RSS is sampled
(psutil) during every cell. The snapshot is produced by the ETL from the demo source and cached under
bench/results/api-data/; --snapshot-gb adds a second pass on a ~N GB snapshot built by a DuckDB-side
generator (K id-shifted copies of the ETL snapshot) published with its own manifest.

    .venv/bin/python bench/api_bench.py --rows 3300000 [--duration 12] [--snapshot-gb 1]

Soak (--soak SWAPS): two Gunicorn workers under randomised point lookups (wrk -t1 -c8, or the
benchmark's own clients without wrk) for the whole run while the ETL publishes a new snapshot of a
50,000-row demo source every --soak-interval s; each worker's RSS (and its anonymous part) every
--soak-every swaps, and a verdict comparing swap 20 with the last:

    .venv/bin/python bench/api_bench.py --soak 200
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import multiprocessing
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/_harness.py, also when loaded by path
from _harness import code_state  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV_BIN = Path(sys.executable).parent
RESULTS = BENCH / "results"
DEMO_TABLES = ["inventory", "products", "orders", "transactions", "customers"]

HEAVY_SQL = {
    # default: a hash aggregate over every transaction (~1.3M rows at 3.3M total), ~50 ms in DuckDB
    "scan": ("SELECT date_trunc('month', created_at) AS month, method, count(*) AS n, sum(amount) AS amount, "
             "avg(amount) AS avg_amount FROM transactions WHERE amount > {x} GROUP BY 1, 2 ORDER BY 1, 2"),
    # --heavy join: the same shape over transactions ⋈ orders, ~6x the work
    "join": ("SELECT date_trunc('month', t.created_at) AS month, o.status, count(*) AS n, sum(t.amount) AS amount "
             "FROM transactions AS t JOIN orders AS o ON o.id = t.order_id WHERE t.amount > {x} "
             "GROUP BY 1, 2 ORDER BY 1, 2"),
}
HEAVY = HEAVY_SQL[os.environ.get("API_BENCH_HEAVY", "scan")]
CACHED_LITERAL = 25.0
WORKLOADS = {
    "point": "point lookup by primary key (orders, 1 row)",
    "hit": "point lookup of one of 50 ids (API: result cache hits, its cost per request without DuckDB)",
    "range": "5,000-row result (transactions id range)",
    "aggregate": "heavy aggregate (GROUP BY date_trunc('month', ...) over transactions)",
    "cached": "repeated identical heavy aggregate (API: result cache)",
}
TARGETS = {"point": ("seed", 8.0), "range": ("seed", 5.0), "aggregate": ("raw", 0.8), "cached": ("raw", 1.0)}


# ---------------------------------------------------------------- the queries

def make_query(workload: str, rng: random.Random, counts: dict[str, int]) -> tuple[str, str, list]:
    """(SQL with the literal inlined, SQL with placeholders, bind values) for one request."""
    if workload in ("point", "hit"):
        i = rng.randint(1, counts["orders"] if workload == "point" else 50)
        return f"SELECT * FROM orders WHERE id = {i}", "SELECT * FROM orders WHERE id = $1", [i]
    if workload == "range":
        lo = rng.randint(1, counts["transactions"] - 4999)
        return (f"SELECT * FROM transactions WHERE id BETWEEN {lo} AND {lo + 4999}",
                "SELECT * FROM transactions WHERE id BETWEEN $1 AND $2", [lo, lo + 4999])
    x = CACHED_LITERAL if workload == "cached" else rng.randint(0, 5000) / 100
    return HEAVY.format(x=f"{x:.2f}"), HEAVY.format(x="$1"), [x]


# ---------------------------------------------------------------- load generator (HTTP)

def _client(task: dict) -> dict:
    """One client process: one keep-alive connection, back-to-back requests until the deadline."""
    rng = random.Random(task["seed"])
    conn = http.client.HTTPConnection("127.0.0.1", task["port"], timeout=300)
    headers = {"Authorization": f"Bearer {task['token']}"}
    post = task["contender"] == "api-params"
    if post:
        headers["Content-Type"] = "application/json"
    measure_from = task["start_at"] + task["warmup"]
    end = measure_from + task["duration"]
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    cache: dict[str, int] = {}
    received = 0
    cpu_start = None
    while time.time() < task["start_at"]:
        time.sleep(0.005)
    stop_file = task.get("stop_file")  # the soak's clients run until the benchmark creates it
    sent = 0
    while True:
        now = time.time()
        if now >= end or (stop_file and sent % 50 == 0 and os.path.exists(stop_file)):
            break
        sent += 1
        if cpu_start is None and now >= measure_from:
            t = os.times()
            cpu_start = t.user + t.system
        literal_sql, param_sql, params = make_query(task["workload"], rng, task["counts"])
        started = time.perf_counter()
        if post:
            conn.request("POST", "/query", body=json.dumps({"sql": param_sql, "params": params}), headers=headers)
        else:
            conn.request("GET", "/query?q=" + quote(literal_sql, safe=""), headers=headers)
        response = conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        done = time.time()
        if measure_from <= done < end:
            latencies.append(elapsed * 1000)
            statuses[str(response.status)] = statuses.get(str(response.status), 0) + 1
            tag = response.getheader("X-Cache") or "-"
            cache[tag] = cache.get(tag, 0) + 1
            received += len(body)
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", task["port"], timeout=300)
    t = os.times()
    conn.close()
    return {"latencies": latencies, "statuses": statuses, "cache": cache, "bytes": received,
            "cpu": (t.user + t.system) - (cpu_start if cpu_start is not None else t.user + t.system)}


# ---------------------------------------------------------------- raw DuckDB (child process)

def raw_serve(db: str, threads: str) -> None:
    """The raw contender, alive for a whole snapshot (its buffer pool stays warm, like the API workers').

    Reads one JSON job per stdin line, answers one JSON line: one read-only connection, a cursor per
    thread, execute + fetch the result as Arrow (the API's own fetch path), no HTTP."""
    import resource

    import duckdb

    con = duckdb.connect(db, read_only=True)
    cursors = [con.cursor() for _ in range(int(threads))]
    for line in sys.stdin:
        job = json.loads(line)
        start_at = time.time() + 0.1
        measure_from = start_at + job["warmup"]
        end = measure_from + job["duration"]
        results: list[list[float]] = []
        errors: list[str] = []

        def run(i: int) -> None:
            cur = cursors[i]
            rng = random.Random(job["seed"] * 1000 + i)
            mine: list[float] = []
            try:
                while time.time() < start_at:
                    time.sleep(0.005)
                while time.time() < end:
                    sql = make_query(job["workload"], rng, job["counts"])[0]
                    started = time.perf_counter()
                    cur.sql(sql).to_arrow_reader(8192).read_all()
                    elapsed = time.perf_counter() - started
                    if measure_from <= time.time() < end:
                        mine.append(elapsed * 1000)
            except Exception as exc:  # noqa: BLE001 - reported, not swallowed
                errors.append(repr(exc))
            results.append(mine)

        pool = [threading.Thread(target=run, args=(i,)) for i in range(len(cursors))]
        for t in pool:
            t.start()
        while time.time() < measure_from:
            time.sleep(0.001)
        t0 = os.times()
        for t in pool:
            t.join()
        t1 = os.times()
        with open("/proc/self/statm") as fh:
            rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        print(json.dumps({"latencies": [x for r in results for x in r], "errors": errors,
                          "cpu": (t1.user + t1.system) - (t0.user + t0.system), "rss_mb": round(rss),
                          "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}),
              flush=True)


class RawContender:
    def __init__(self, db: Path, threads: int, heavy: str) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "raw-serve", str(db), str(threads)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, "API_BENCH_HEAVY": heavy})

    def run(self, job: dict) -> dict:
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"raw DuckDB contender exited with {self.proc.wait()}")
        return json.loads(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def info_worker(db: str) -> dict:
    import duckdb

    con = duckdb.connect(db, read_only=True)
    out = {}
    for table in ("orders", "transactions"):
        lo, hi, n = con.execute(f"SELECT min(id), max(id), count(*) FROM {table}").fetchone()
        if (lo, hi) != (1, n):
            raise SystemExit(f"{table}: ids are not 1..{n} ({lo}..{hi})")
        out[table] = n
    out["total_rows"] = sum(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in DEMO_TABLES)
    out["aggregate_rows"] = len(con.execute(HEAVY.format(x=f"{CACHED_LITERAL:.2f}")).fetchall())
    return out


def big_worker(template: str, out: str, copies: str) -> dict:
    """A K-times larger snapshot: K id-shifted copies of every table (foreign keys shifted too),
    appended copy by copy so rows stay in id order (zone maps as good as the ETL's file)."""
    import duckdb

    k = int(copies)
    started = time.perf_counter()
    Path(out).unlink(missing_ok=True)
    con = duckdb.connect(out)
    con.execute(f"ATTACH '{template}' AS tmpl (READ_ONLY)")
    n = {t: con.execute(f"SELECT max(id) FROM tmpl.{t}").fetchone()[0] for t in DEMO_TABLES}
    shift = {"id": None, "customer_id": "customers", "order_id": "orders", "product_id": "products"}
    for table in DEMO_TABLES:
        cols = [r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_catalog = 'tmpl' AND table_name = ? "
            "ORDER BY ordinal_position", [table]).fetchall()]
        con.execute(f"CREATE TABLE main.{table} AS SELECT * FROM tmpl.{table} LIMIT 0")
        for c in range(k):
            exprs = []
            for col in cols:
                if col in shift:
                    size = n[table] if col == "id" else n[shift[col]]
                    exprs.append(f'"{col}" + {c * size} AS "{col}"')
                else:
                    exprs.append(f'"{col}"')
            con.execute(f"INSERT INTO main.{table} SELECT {', '.join(exprs)} FROM tmpl.{table}")
    rows = {t: con.execute(f"SELECT count(*) FROM main.{t}").fetchone()[0] for t in DEMO_TABLES}
    con.execute("DETACH tmpl")
    con.execute("CHECKPOINT")
    con.close()
    return {"rows": rows, "seconds": round(time.perf_counter() - started, 1)}


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------- snapshots

def etl_snapshot(rows: int, data_dir: Path) -> Path:
    """The ETL's snapshot of the demo source (rows, seed=1), published to a file:// store; cached."""
    from analytics_shared.manifest import read_manifest
    from analytics_shared.storage import open_store

    home = data_dir / f"demo-{rows}"
    store_dir = home / "store"
    if not (store_dir / "current" / "manifest.json").exists():
        from analytics_etl.config import get_settings
        from analytics_etl.demo_source import create_demo_source
        from analytics_etl.pipeline import run_sync

        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        src = home / "source.db"
        t = time.perf_counter()
        create_demo_source(src, rows=rows, seed=1)
        print(f"# demo source: {rows:,} rows in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        t = time.perf_counter()
        result = run_sync(get_settings(source_url=f"sqlite:///{src}", storage_url=f"file://{store_dir}",
                                       etl_state_dir=str(home / "state"), cursor_lag_seconds=60))
        print(f"# ETL sync: {result['status']} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        src.unlink()
    if read_manifest(open_store(f"file://{store_dir}"))[0] is None:
        raise SystemExit(f"{store_dir}: no snapshot published")
    return store_dir


def snapshot_file(store_dir: Path, work: Path) -> Path:
    """The store's current snapshot as one local file (a format-2 version is assembled)."""
    from analytics_shared.manifest import read_manifest
    from analytics_shared.snapshot_files import fetch_snapshot
    from analytics_shared.storage import open_store

    store = open_store(f"file://{store_dir}")
    manifest, _ = read_manifest(store)
    if manifest.database_key:
        return store_dir / manifest.database_key
    path = work / f"direct-{manifest.sha256[:16]}.db"
    if not path.exists():
        fetch_snapshot(store, manifest, path)
    return path


def big_snapshot(template_store: Path, gb: float, data_dir: Path) -> Path:
    """A ~gb GB snapshot published through a manifest of its own (DuckDB-side generator); cached."""
    import duckdb

    from analytics_shared.manifest import Manifest, new_version, read_manifest, write_manifest
    from analytics_shared.snapshot_files import sha256_file
    from analytics_shared.storage import open_store

    tmpl, _ = read_manifest(open_store(f"file://{template_store}"))
    copies = max(2, math.ceil(gb * 1e9 / tmpl.size_bytes))
    home = data_dir / f"big-{tmpl.version.replace(':', '')}-x{copies}"
    store_dir = home / "store"
    if (store_dir / "current" / "manifest.json").exists():
        return store_dir
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    built = home / "big.db"
    result = run_child("big", str(snapshot_file(template_store, home)), str(built), str(copies))
    print(f"# big snapshot: {copies} copies, {sum(result['rows'].values()):,} rows, "
          f"{built.stat().st_size / 1e9:.2f} GB in {result['seconds']} s", file=sys.stderr)
    store = open_store(f"file://{store_dir}")
    version, key = new_version(format_version=1)  # one whole file: the API reads both formats
    store.upload_file(key, built)
    tables = {name: entry.model_copy(update={"rows": result["rows"][name]}) for name, entry in tmpl.tables.items()}
    manifest = Manifest(format_version=1, version=version, previous_version=None,
                        created_at=datetime.now(UTC), database_key=key, sha256=sha256_file(built),
                        size_bytes=built.stat().st_size, duckdb_version=duckdb.__version__,
                        source={"dialect": "duckdb-generator", "database": f"{copies}x {tmpl.version}"},
                        tables=tables)
    write_manifest(store, manifest, expected_etag=None)
    built.unlink()
    return store_dir


# ---------------------------------------------------------------- servers

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, name: str, cmd: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.name, self.port = name, port
        self.log = log
        with open(log, "wb") as fh:
            self.proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                                         cwd=ROOT)

    def wait_ready(self, path: str, timeout: float = 600) -> None:
        deadline = time.time() + timeout
        ok = 0
        while ok < 20:
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"{self.name} did not start; see {self.log}:\n{self.log.read_text()[-3000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", path)
                status = conn.getresponse().status
                conn.close()
            except OSError:
                status = 0
            ok = ok + 1 if status == 200 else 0
            time.sleep(0.05 if ok else 0.5)
        while len(self.workers()) < 2:
            time.sleep(0.2)
        time.sleep(2)

    def workers(self) -> list:
        import psutil

        try:
            return psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return []

    def rss(self) -> tuple[float, float]:
        values = []
        for w in self.workers():
            try:
                values.append(w.memory_info().rss / 2**20)
            except Exception:  # noqa: BLE001 - a worker restarting between list and read
                pass
        return (sum(values), max(values)) if values else (0.0, 0.0)

    def cpu(self) -> float:
        total = 0.0
        for w in self.workers():
            try:
                t = w.cpu_times()
                total += t.user + t.system
            except Exception:  # noqa: BLE001
                pass
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            except ProcessLookupError:
                pass


class RssSampler(threading.Thread):
    """Peak worker RSS (sum and max over the workers) per server, for the current cell and overall."""

    def __init__(self, servers: list[Server]) -> None:
        super().__init__(daemon=True)
        self.servers = servers
        self.cell: dict[str, list[float]] = {}
        self.overall: dict[str, list[float]] = {s.name: [0.0, 0.0] for s in servers}
        self._stop = threading.Event()

    def reset_cell(self) -> None:
        self.cell = {s.name: [0.0, 0.0] for s in self.servers}

    def run(self) -> None:
        while not self._stop.wait(0.25):
            for s in self.servers:
                total, biggest = s.rss()
                for peaks in (self.cell.get(s.name), self.overall[s.name]):
                    if peaks is not None:
                        peaks[0], peaks[1] = max(peaks[0], total), max(peaks[1], biggest)

    def stop(self) -> None:
        self._stop.set()


# ---------------------------------------------------------------- one cell

def summarize(latencies: list[float], duration: float) -> dict:
    lat = sorted(latencies)
    if not lat:
        return {"requests": 0, "rps": 0.0, "p50_ms": None, "p99_ms": None}

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, max(0, math.ceil(p * len(lat)) - 1))]

    return {"requests": len(lat), "rps": len(lat) / duration, "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "mean_ms": sum(lat) / len(lat)}


def run_http_part(pool, server: Server, contender: str, workload: str, tokens: list[str], counts: dict,
                  args, sampler: RssSampler, seed: int, duration: float) -> dict:
    """One round of one HTTP cell: every client process for `duration` s after the warm-up."""
    start_at = time.time() + 0.5
    tasks = [{"port": server.port, "token": tokens[i % len(tokens)], "contender": contender, "workload": workload,
              "counts": counts, "seed": seed * 1000 + i, "start_at": start_at, "warmup": args.warmup,
              "duration": duration} for i in range(args.connections)]
    cpu_before = None

    def mark() -> None:
        nonlocal cpu_before
        time.sleep(max(0.0, start_at + args.warmup - time.time()))
        sampler.reset_cell()
        cpu_before = server.cpu()

    marker = threading.Thread(target=mark)
    marker.start()
    parts = pool.map(_client, tasks)
    marker.join()
    server_cpu = server.cpu() - (cpu_before or 0.0)
    return {"latencies": [x for p in parts for x in p["latencies"]], "duration": duration,
            "server_cpu": server_cpu, "client_cpu": sum(p["cpu"] for p in parts),
            "statuses": sum_counts(parts, "statuses"), "cache": sum_counts(parts, "cache"),
            "bytes": sum(p["bytes"] for p in parts),
            "rss_sum": sampler.cell[server.name][0], "rss_max": sampler.cell[server.name][1]}


def sum_counts(parts: list[dict], field: str) -> dict[str, int]:
    """Per-key totals of one counter dict (HTTP statuses, X-Cache tags) over clients or rounds."""
    total: dict[str, int] = {}
    for p in parts:
        for k, v in p[field].items():
            total[k] = total.get(k, 0) + v
    return total


def run_raw_part(raw: RawContender, workload: str, counts: dict, args, seed: int, duration: float) -> dict:
    out = raw.run({"workload": workload, "counts": counts, "seed": seed, "warmup": args.warmup, "duration": duration})
    if out["errors"]:
        raise SystemExit(f"raw DuckDB failed: {out['errors'][:3]}")
    return {"latencies": out["latencies"], "duration": duration, "server_cpu": out["cpu"],
            "rss_max": out["rss_mb"], "peak_rss_mb": out["peak_rss_mb"]}


def merge_parts(parts: list[dict]) -> dict:
    """Rounds of one cell → one result: all latencies, rates over the summed measured time."""
    duration = sum(p["duration"] for p in parts)
    latencies = [x for p in parts for x in p["latencies"]]
    result = summarize(latencies, duration)
    n = max(1, result["requests"])
    result["server_cpu_ms_per_req"] = sum(p["server_cpu"] for p in parts) * 1000 / n
    result["rounds_rps"] = [round(len(p["latencies"]) / p["duration"], 1) for p in parts]
    result["rss_peak_max_mb"] = round(max(p["rss_max"] for p in parts))
    if "client_cpu" in parts[0]:
        result.update({"statuses": sum_counts(parts, "statuses"), "cache": sum_counts(parts, "cache"),
                       "mb_per_s": sum(p["bytes"] for p in parts) / 2**20 / duration,
                       "client_cpu_ms_per_req": sum(p["client_cpu"] for p in parts) * 1000 / n,
                       "rss_peak_sum_mb": round(max(p["rss_sum"] for p in parts))})
    return result


def sanity_check(servers: dict[str, Server], token: str, counts: dict, info: dict) -> None:
    """Every HTTP contender answers every workload with the same rows before anything is timed."""
    expected = {"point": 1, "hit": 1, "range": 5000, "aggregate": None, "cached": info["aggregate_rows"]}
    for workload in WORKLOADS:
        literal_sql, param_sql, params = make_query(workload, random.Random(7), counts)
        seen = {}
        for name, server in servers.items():
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
            headers = {"Authorization": f"Bearer {token}"}
            conn.request("GET", "/query?q=" + quote(literal_sql, safe=""), headers=headers)
            response = conn.getresponse()
            payload = response.read()
            if response.status != 200:
                raise SystemExit(f"{name} {workload}: {response.status} {payload[:500]!r}\n"
                                 f"{server.log.read_text()[-3000:]}")
            body = json.loads(payload)
            seen[name] = (body["row_count"], body["data"][0] if body["data"] else None)
            if name == "api":
                conn.request("POST", "/query", body=json.dumps({"sql": param_sql, "params": params}),
                             headers={**headers, "Content-Type": "application/json"})
                response = conn.getresponse()
                post = json.loads(response.read())
                if response.status != 200 or post["row_count"] != body["row_count"]:
                    raise SystemExit(f"api POST {workload}: {response.status} {str(post)[:500]}")
            conn.close()
        counts_seen = {name: s[0] for name, s in seen.items()}
        if len(set(counts_seen.values())) != 1 or (expected[workload] and counts_seen["api"] != expected[workload]):
            raise SystemExit(f"{workload}: row counts differ {counts_seen} (expected {expected[workload]})")
        if set(seen["api"][1] or {}) != set(seen["seed"][1] or {}):
            raise SystemExit(f"{workload}: columns differ {seen}")


# ---------------------------------------------------------------- one snapshot, all contenders

def run_snapshot(label: str, store: Path, args, pool, work: Path) -> dict:
    from analytics_api.auth.local_issuer import LOCAL_AUDIENCE, LOCAL_ISSUER, LocalIssuer
    from analytics_shared.manifest import read_manifest
    from analytics_shared.storage import open_store

    manifest, _ = read_manifest(open_store(f"file://{store}"))
    db = snapshot_file(store, work)
    info = run_child("info", str(db))
    counts = {"orders": info["orders"], "transactions": info["transactions"]}
    print(f"# {label}: {info['total_rows']:,} rows, snapshot {manifest.size_bytes / 2**20:,.0f} MiB ({db})",
          file=sys.stderr)

    issuer_dir = work / f"issuer-{label}"
    issuer = LocalIssuer.generate()
    jwks = issuer.save(issuer_dir)
    tokens = [issuer.mint(sub=f"bench-user-{i}", ttl_seconds=6 * 3600) for i in range(args.connections)]

    base_env = {k: v for k, v in os.environ.items() if not k.startswith(
        ("AUTH0_", "RATE_LIMIT_", "SNAPSHOT_", "STORAGE_", "S3_", "SEED_", "GUNICORN_", "WEB_CONCURRENCY"))}
    api_port, seed_port = free_port(), free_port()
    api_env = {**base_env, "BIND": f"127.0.0.1:{api_port}", "WEB_CONCURRENCY": str(args.workers),
               "STORAGE_URL": f"file://{store}", "AUTH0_JWKS_URL": f"file://{jwks}", "AUTH0_ISSUER": LOCAL_ISSUER,
               "AUTH0_API_AUDIENCE": LOCAL_AUDIENCE, "RATE_LIMIT_REQUESTS": "100000000",
               "SNAPSHOT_CACHE_DIR": str(work / f"snapshot-cache-{label}"),
               "PROMETHEUS_MULTIPROC_DIR": str(work / f"prometheus-{label}")}
    seed_env = {**base_env, "SEED_DB_PATH": str(db), "SEED_JWKS_PATH": str(jwks), "SEED_AUDIENCE": LOCAL_AUDIENCE,
                "SEED_ISSUER": LOCAL_ISSUER}
    # Each gunicorn gets its own control socket (the default, ~/.gunicorn/gunicorn.ctl, is shared).
    api_env["GUNICORN_CMD_ARGS"] = f"--control-socket {work / f'api-{label}.ctl'}"
    seed_env["GUNICORN_CMD_ARGS"] = f"--control-socket {work / f'seed-{label}.ctl'}"
    gunicorn = str(VENV_BIN / "gunicorn")
    servers: dict[str, Server] = {}
    sampler = None
    raw = None
    try:
        servers["api"] = Server("api", [gunicorn, "-c", "python:analytics_api.gunicorn_conf"], api_env, api_port,
                                work / f"api-{label}.log")
        servers["seed"] = Server("seed", [gunicorn, "-k", "uvicorn_worker.UvicornWorker", "-w", str(args.workers),
                                          "-b", f"127.0.0.1:{seed_port}", "--keep-alive", "5", "--timeout", "120",
                                          "--chdir", str(BENCH), "seed_api:app"], seed_env, seed_port,
                                 work / f"seed-{label}.log")
        t = time.perf_counter()
        servers["api"].wait_ready("/ready")
        api_start_s = time.perf_counter() - t
        servers["seed"].wait_ready("/health")
        idle = {name: s.rss() for name, s in servers.items()}
        sanity_check(servers, tokens[0], counts, info)
        sampler = RssSampler(list(servers.values()))
        sampler.start()
        raw = RawContender(db, args.raw_threads, args.heavy)

        cells = []
        seed = 1
        for workload in args.workloads:
            contenders = ["api", "seed", "raw"] + (["api-params"] if args.params and workload != "cached" else [])
            parts: dict[str, list[dict]] = {c: [] for c in contenders}
            for r in range(args.rounds):  # contenders interleaved, order alternating: shared load hits all alike
                for contender in (contenders if r % 2 == 0 else contenders[::-1]):
                    seed += 1
                    piece = args.duration / args.rounds
                    if contender == "raw":
                        parts[contender].append(run_raw_part(raw, workload, counts, args, seed, piece))
                    else:
                        server = servers["seed" if contender == "seed" else "api"]
                        parts[contender].append(run_http_part(pool, server, contender, workload, tokens, counts,
                                                              args, sampler, seed, piece))
            for contender in contenders:
                result = merge_parts(parts[contender])
                result.update({"workload": workload, "contender": contender})
                cells.append(result)
                print(f"# {label} {workload:9s} {contender:10s} {result['rps']:9.1f} req/s  p50 "
                      f"{fmt_ms(result['p50_ms'])} ms  p99 {fmt_ms(result['p99_ms'])} ms  rounds "
                      f"{result['rounds_rps']} {result.get('statuses', '')} {result.get('cache', '')}",
                      file=sys.stderr)
        final = {name: s.rss() for name, s in servers.items()}
        raw_parts = [c for c in cells if c["contender"] == "raw"]
        raw_rss = {"peak_mb": max(c["rss_peak_max_mb"] for c in raw_parts) if raw_parts else None}
        return {"label": label, "rows": info["total_rows"], "orders": counts["orders"],
                "transactions": counts["transactions"], "snapshot_bytes": manifest.size_bytes,
                "snapshot_version": manifest.version, "api_ready_seconds": round(api_start_s, 1),
                "rss_idle_mb": {k: [round(v[0]), round(v[1])] for k, v in idle.items()},
                "rss_peak_mb": {k: [round(v[0]), round(v[1])] for k, v in sampler.overall.items()},
                "rss_final_mb": {k: [round(v[0]), round(v[1])] for k, v in final.items()},
                "raw_rss_mb": raw_rss,
                "cells": cells}
    finally:
        if raw is not None:
            raw.stop()
        if sampler is not None:
            sampler.stop()
        for s in servers.values():
            s.stop()


# ---------------------------------------------------------------- soak: memory over many swaps

SOAK_LUA = """
local n = %(orders)d
math.randomseed(%(seed)d)
wrk.headers["Authorization"] = "Bearer %(token)s"
request = function()
  return wrk.format("GET", "/query?q=SELECT%%20*%%20FROM%%20orders%%20WHERE%%20id%%20%%3D%%20" .. math.random(1, n))
end
local statuses = {}
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
done = function(summary, latency, requests)
  io.write(string.format("SOAK-WRK %%d %%d %%d %%d %%d %%d %%.3f %%.3f\\n", summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write, summary.errors.status,
    summary.errors.timeout, summary.duration, 0, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def _proc_kb(pid: int, name: str, fields: tuple[str, ...]) -> dict[str, float]:
    out = {}
    try:
        with open(f"/proc/{pid}/{name}") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in fields:
                    out[key] = int(rest.split()[0]) / 1024
    except OSError:
        pass
    return out


def worker_memory(pid: int) -> dict[str, float]:
    """RSS of one worker and its split: anonymous (heap, DuckDB's buffers) vs file-backed, in MiB."""
    mem = _proc_kb(pid, "smaps_rollup", ("Rss", "Anonymous", "Private_Dirty"))
    mem.update(_proc_kb(pid, "status", ("VmRSS", "VmHWM", "Threads")))
    return mem


def worker_cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def served_counts(port: int) -> dict[str, int]:
    """Requests answered and result-cache hits so far, summed over the workers (/metrics)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    out = {"requests": 0, "non_200": 0, "cache_hits": 0}
    for line in text.splitlines():
        if line.startswith("analytics_api_requests_total{") and 'route="/query"' in line:
            n = int(float(line.rsplit(" ", 1)[1]))
            out["requests"] += n
            if 'status="200"' not in line:
                out["non_200"] += n
        elif line.startswith('analytics_api_result_cache_total{result="hit"}'):
            out["cache_hits"] += int(float(line.rsplit(" ", 1)[1]))
    return out


def worker_snapshot_files(pid: int, cache_dir: Path) -> list[str]:
    """Names of the snapshot files a worker holds open (its current version, plus any in use)."""
    names = []
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith(str(cache_dir)) and ".duckdb" in target:
                names.append(Path(target.removesuffix(" (deleted)")).name)
    except OSError:
        pass
    return sorted(names)


class SoakLoad:
    """Randomised point lookups for the whole soak: wrk (1 thread, N connections) if installed,
    else the benchmark's own Python clients (one keep-alive connection per process)."""

    def __init__(self, port: int, token: str, orders: int, connections: int, pool, work: Path) -> None:
        self.wrk = shutil.which("wrk")
        self.proc = None
        self.result = None
        if self.wrk:
            script = work / "soak.lua"
            script.write_text(SOAK_LUA % {"orders": orders, "seed": 12, "token": token})
            self.out = open(work / "wrk.out", "w+")  # noqa: SIM115 - closed in stop()
            self.proc = subprocess.Popen([self.wrk, "-t1", f"-c{connections}", "-d24h", "--timeout", "30s",
                                          "-s", str(script), f"http://127.0.0.1:{port}/"],
                                         stdout=self.out, stderr=subprocess.STDOUT)
        else:
            tasks = [{"port": port, "token": token, "contender": "api", "workload": "point",
                      "counts": {"orders": orders}, "seed": 5000 + i, "start_at": time.time(), "warmup": 0.0,
                      "duration": 24 * 3600.0, "stop_file": str(work / "soak.stop")} for i in range(connections)]
            self.stop_file = work / "soak.stop"
            self.async_result = pool.map_async(_client, tasks)

    def stop(self) -> dict:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)  # wrk prints its summary on SIGINT
            self.proc.wait(30)
            self.out.seek(0)
            text = self.out.read()
            self.out.close()
            line = next((x for x in text.splitlines() if x.startswith("SOAK-WRK ")), None)
            if line is None:
                raise SystemExit(f"wrk gave no summary:\n{text[-2000:]}")
            requests, socket_errors, non_2xx, timeouts, duration_us, _, p50, p99 = line.split()[1:]
            return {"generator": "wrk -t1", "requests": int(requests), "socket_errors": int(socket_errors),
                    "non_2xx": int(non_2xx), "timeouts": int(timeouts), "seconds": int(duration_us) / 1e6,
                    "p50_ms": float(p50), "p99_ms": float(p99)}
        self.stop_file.touch()
        parts = self.async_result.get(60)
        statuses = sum_counts(parts, "statuses")
        lat = sorted(x for p in parts for x in p["latencies"])
        return {"generator": "python clients", "requests": len(lat), "socket_errors": 0,
                "non_2xx": sum(v for k, v in statuses.items() if not k.startswith("2")), "timeouts": 0,
                "seconds": None, "p50_ms": summarize(lat, 1)["p50_ms"], "p99_ms": summarize(lat, 1)["p99_ms"]}


def run_soak(args, pool, work: Path) -> dict:
    """Two Gunicorn workers under point lookups for the whole run while the ETL publishes a new
    snapshot every --soak-interval s; worker memory sampled every --soak-every swaps."""
    from analytics_api.auth.local_issuer import LOCAL_AUDIENCE, LOCAL_ISSUER, LocalIssuer
    from analytics_etl.config import get_settings as etl_settings
    from analytics_etl.demo_source import create_demo_source, mutate_demo_source
    from analytics_etl.pipeline import run_sync
    from analytics_shared.logging import configure_logging
    from analytics_shared.manifest import read_manifest
    from analytics_shared.storage import open_store

    configure_logging("WARNING", service="etl-service")
    src, store_dir, cache_dir = work / "soak-source.db", work / "soak-store", work / "soak-cache"
    counts = create_demo_source(src, rows=args.soak_rows, seed=1)
    etl = etl_settings(source_url=f"sqlite:///{src}", storage_url=f"file://{store_dir}",
                       etl_state_dir=str(work / "soak-etl-state"), cursor_lag_seconds=60)
    store = open_store(f"file://{store_dir}")

    def publish(i: int) -> str:
        if i:
            mutate_demo_source(src, fraction=0.01, seed=i)
        result = run_sync(etl)
        if result["status"] != "published":
            raise SystemExit(f"ETL sync {i}: {result['status']} {result.get('errors')}")
        manifest, _ = read_manifest(store)
        return manifest

    first = publish(0)
    print(f"# soak: {sum(counts.values()):,} source rows ({counts['orders']:,} orders), snapshot "
          f"{first.size_bytes / 2**20:.1f} MiB", file=sys.stderr)
    issuer = LocalIssuer.generate()
    jwks = issuer.save(work / "soak-issuer")
    token = issuer.mint(sub="soak", ttl_seconds=48 * 3600)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(
        ("AUTH0_", "RATE_LIMIT_", "SNAPSHOT_", "STORAGE_", "S3_", "GUNICORN_", "WEB_CONCURRENCY"))}
    env.update({"BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(args.workers),
                "STORAGE_URL": f"file://{store_dir}", "AUTH0_JWKS_URL": f"file://{jwks}",
                "AUTH0_ISSUER": LOCAL_ISSUER, "AUTH0_API_AUDIENCE": LOCAL_AUDIENCE,
                "RATE_LIMIT_REQUESTS": "1000000000", "SNAPSHOT_POLL_SECONDS": str(args.soak_poll),
                "SNAPSHOT_CACHE_DIR": str(cache_dir), "LOG_LEVEL": args.soak_log_level,
                "PROMETHEUS_MULTIPROC_DIR": str(work / "soak-prometheus"),
                "GUNICORN_CMD_ARGS": f"--control-socket {work / 'soak.ctl'}"})
    for item in args.soak_env:
        key, _, value = item.partition("=")
        env[key] = value
    server = Server("api", [str(VENV_BIN / "gunicorn"), "-c", "python:analytics_api.gunicorn_conf"], env, port,
                    work / "soak-api.log")
    load = None
    samples: list[dict] = []
    swap_seconds: list[float] = []
    try:
        server.wait_ready("/ready")
        pids = sorted(w.pid for w in server.workers())
        # Each worker must be under load: a worker's event loop may accept every connection that
        # arrives at once, leaving the other idle for the whole run. Start again until both work.
        for attempt in range(10):
            load = SoakLoad(port, token, counts["orders"], args.soak_connections, pool, work)
            before = [worker_cpu_seconds(pid) for pid in pids]
            time.sleep(3)
            used = [worker_cpu_seconds(pid) - b for pid, b in zip(pids, before, strict=True)]
            if min(used) >= 0.25 * max(used) and max(used) > 0:
                break
            print(f"# soak: load reached the workers unevenly (CPU s {used}); starting the load again",
                  file=sys.stderr)
            load.stop()
            load = None
        else:
            raise SystemExit("soak: could not spread the load over every worker")
        time.sleep(args.soak_interval)  # every worker has served lookups on version 0

        def sample(swap: int) -> None:
            now = [w.pid for w in server.workers()]
            if sorted(now) != pids:
                raise SystemExit(f"worker restarted during the soak ({pids} -> {now}); see {server.log}")
            row = {"swap": swap, "workers": [{**worker_memory(pid), "cpu_s": worker_cpu_seconds(pid)}
                                             for pid in pids], **served_counts(port)}
            samples.append(row)
            print(f"# soak swap {swap:4d}: RSS " + " / ".join(f"{m.get('VmRSS', 0):7.1f}" for m in row["workers"])
                  + " MiB (anon " + " / ".join(f"{m.get('Anonymous', 0):.1f}" for m in row["workers"])
                  + "), CPU s " + " / ".join(f"{m['cpu_s']:.0f}" for m in row["workers"]),
                  file=sys.stderr)

        sample(0)
        for swap in range(1, args.soak + 1):
            started = time.monotonic()
            manifest = publish(swap)
            prefix = re.sub(r"[^A-Za-z0-9_.-]", "_", manifest.version)
            deadline = started + 60
            while not all(any(n.startswith(prefix) for n in worker_snapshot_files(pid, cache_dir)) for pid in pids):
                if time.monotonic() > deadline:
                    raise SystemExit(f"swap {swap}: workers did not load {manifest.version} within 60 s; "
                                     f"see {server.log}")
                time.sleep(0.05)
            swap_seconds.append(time.monotonic() - started)
            if swap % args.soak_every == 0 or swap == args.soak:
                sample(swap)
            time.sleep(max(0.0, started + args.soak_interval - time.monotonic()))
        traffic = load.stop()
        load = None
    finally:
        if load is not None:
            try:
                load.stop()
            except Exception:  # noqa: BLE001 - the server is being stopped anyway
                pass
        server.stop()
    return {"rows": sum(counts.values()), "orders": counts["orders"], "snapshot_bytes": first.size_bytes,
            "swaps": args.soak, "interval": args.soak_interval, "poll": args.soak_poll,
            "env": args.soak_env, "samples": samples, "traffic": traffic,
            "swap_seconds_p50": sorted(swap_seconds)[len(swap_seconds) // 2] if swap_seconds else None,
            "swap_seconds_max": max(swap_seconds) if swap_seconds else None}


def soak_verdict(run: dict, base: int = 20) -> tuple[str, bool]:
    by = {s["swap"]: s for s in run["samples"]}
    last = run["samples"][-1]
    first = by.get(base) or run["samples"][0]
    growths = []
    for a, b in zip(first["workers"], last["workers"], strict=True):
        growths.append((b["VmRSS"] - a["VmRSS"]) / a["VmRSS"])
    worst = max(growths)
    ok = worst <= 0.10
    text = (f"RSS swap {first['swap']} → {last['swap']}: "
            + ", ".join(f"worker {i + 1} {a['VmRSS']:.0f} → {b['VmRSS']:.0f} MiB ({g:+.1%})"
                        for i, (a, b, g) in enumerate(zip(first["workers"], last["workers"], growths, strict=True)))
            + f"; {'FLAT' if ok else 'GROWING'} (target: within 10%)")
    return text, ok


def soak_markdown(run: dict) -> str:
    t = run["traffic"]
    lines = [f"{run['rows']:,} source rows ({run['orders']:,} orders), snapshot "
             f"{run['snapshot_bytes'] / 2**20:.1f} MiB, a new snapshot every {run['interval']:g} s, "
             f"SNAPSHOT_POLL_SECONDS={run['poll']:g}" + (f", env {' '.join(run['env'])}" if run["env"] else ""),
             "", "| swaps | " + " | ".join(f"worker {i + 1} RSS (anon) MiB" for i in range(len(run["samples"][0]["workers"])))
             + " | /query requests (cache hits) since the last row | worker CPU s since the last row |",
             "|---:|" + "---:|" * len(run["samples"][0]["workers"]) + "---:|---:|"]
    previous = None
    for s in run["samples"]:
        cpu = " / ".join(f"{m['cpu_s'] - (p['cpu_s'] if previous else 0):.1f}"
                         for m, p in zip(s["workers"], (previous or s)["workers"], strict=True))
        served = (f"{s['requests'] - (previous or {}).get('requests', 0):,} "
                  f"({s['cache_hits'] - (previous or {}).get('cache_hits', 0):,})")
        lines.append(f"| {s['swap']} | " + " | ".join(f"{m['VmRSS']:,.0f} ({m.get('Anonymous', 0):,.0f})"
                                                     for m in s["workers"]) + f" | {served} | {cpu} |")
        previous = s
    lines += ["", f"Load ({t['generator']}): {t['requests']:,} requests, {t['non_2xx']} non-2xx, "
                  f"{t['socket_errors']} socket errors, {t['timeouts']} timeouts; p50 {fmt_ms(t['p50_ms'])} ms, "
                  f"p99 {fmt_ms(t['p99_ms'])} ms. Manifest flip → every worker serving it: p50 "
                  f"{run['swap_seconds_p50']:.2f} s, max {run['swap_seconds_max']:.2f} s.",
              "", soak_verdict(run)[0]]
    return "\n".join(lines)


# ---------------------------------------------------------------- report

def fmt_ms(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def ratios(run: dict) -> dict[str, dict]:
    by = {(c["workload"], c["contender"]): c for c in run["cells"]}
    out = {}
    for workload, (against, target) in TARGETS.items():
        api, base = by.get((workload, "api")), by.get((workload, against))
        if not api or not base or not base["rps"]:
            continue
        ratio = api["rps"] / base["rps"]
        met = ratio >= target
        if workload == "cached":
            met = ratio > 1.0 and api["p50_ms"] < base["p50_ms"]
        out[workload] = {"against": against, "ratio": round(ratio, 2), "target": target, "met": met}
    return out


def markdown(run: dict) -> str:
    by = {(c["workload"], c["contender"]): c for c in run["cells"]}
    lines = [f"**{run['label']}**: {run['rows']:,} rows, snapshot {run['snapshot_bytes'] / 2**20:,.0f} MiB",
             "",
             "| workload | contender | req/s | p50 ms | p99 ms | ÷ seed | ÷ raw | server CPU ms/req | "
             "client CPU ms/req | API cache hit/miss |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for c in run["cells"]:
        seed = by.get((c["workload"], "seed"))
        raw = by.get((c["workload"], "raw"))
        vs_seed = f"{c['rps'] / seed['rps']:.2f}×" if seed and seed["rps"] and c["contender"] != "seed" else ""
        vs_raw = f"{c['rps'] / raw['rps']:.2f}×" if raw and raw["rps"] and c["contender"] != "raw" else ""
        cache = c.get("cache", {})
        hits = f"{cache.get('hit', 0)}/{cache.get('miss', 0)}" if c["contender"].startswith("api") else ""
        bad = {k: v for k, v in c.get("statuses", {}).items() if k != "200"}
        note = f" ⚠ {bad}" if bad else ""
        client = f"{c['client_cpu_ms_per_req']:.2f}" if "client_cpu_ms_per_req" in c else "–"
        lines.append(f"| {c['workload']} | {c['contender']}{note} | {c['rps']:,.1f} | {fmt_ms(c['p50_ms'])} | "
                     f"{fmt_ms(c['p99_ms'])} | {vs_seed} | {vs_raw} | {c['server_cpu_ms_per_req']:.2f} | "
                     f"{client} | {hits} |")
    lines += ["", "| target | measured | met |", "|---|---:|---|"]
    names = {"point": "point lookup ≥ 8× seed", "range": "5,000 rows ≥ 5× seed",
             "aggregate": "heavy aggregate ≥ 0.8× raw DuckDB",
             "cached": "repeated query (API cache) faster than raw DuckDB executes it"}
    for workload, r in ratios(run).items():
        extra = ""
        if workload == "cached":
            api, raw = by[("cached", "api")], by[("cached", "raw")]
            extra = f" (p50 {fmt_ms(api['p50_ms'])} vs {fmt_ms(raw['p50_ms'])} ms)"
        lines.append(f"| {names[workload]} | {r['ratio']:.2f}×{extra} | {'yes' if r['met'] else '**no**'} |")
    rss = run["rss_peak_mb"]
    lines += ["", "| worker RSS (2 workers) | API sum / max | seed sum / max |", "|---|---:|---:|",
              f"| idle, snapshot loaded | {run['rss_idle_mb']['api'][0]} / {run['rss_idle_mb']['api'][1]} MiB | "
              f"{run['rss_idle_mb']['seed'][0]} / {run['rss_idle_mb']['seed'][1]} MiB |",
              f"| peak during the run | {rss['api'][0]} / {rss['api'][1]} MiB | {rss['seed'][0]} / {rss['seed'][1]} MiB |",
              f"| after the run | {run['rss_final_mb']['api'][0]} / {run['rss_final_mb']['api'][1]} MiB | "
              f"{run['rss_final_mb']['seed'][0]} / {run['rss_final_mb']['seed'][1]} MiB |",
              "", f"Raw DuckDB (one process, one connection): peak RSS {run['raw_rss_mb']['peak_mb']} MiB."]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "raw-serve":
        raw_serve(*sys.argv[2:])
        return
    if len(sys.argv) > 1 and sys.argv[1] in ("info", "big"):
        fn = {"info": info_worker, "big": big_worker}[sys.argv[1]]
        print(json.dumps(fn(*sys.argv[2:])))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=3_300_000, help="demo source rows (ETL snapshot)")
    parser.add_argument("--duration", type=float, default=12.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each cell")
    parser.add_argument("--connections", type=int, default=4, help="client processes (one keep-alive connection each)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per server")
    parser.add_argument("--raw-threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2,
                        help="split each cell into rounds, contenders interleaved (evens out shared load)")
    parser.add_argument("--heavy", choices=sorted(HEAVY_SQL), default="scan", help="the heavy aggregate")
    parser.add_argument("--snapshot-gb", type=float, default=0.0, help="also run on a ~N GB snapshot (0: skip)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--no-params", dest="params", action="store_false",
                        help="skip the API-with-bind-parameters variant")
    parser.add_argument("--data-dir", type=Path, default=RESULTS / "api-data", help="cached snapshots")
    parser.add_argument("--out", type=Path, default=None, help="JSON results (default bench/results/api-<time>.json)")
    parser.add_argument("--soak", type=int, default=0, metavar="SWAPS",
                        help="instead: the soak (worker memory over SWAPS snapshot swaps under point lookups)")
    parser.add_argument("--soak-rows", type=int, default=50_000, help="soak: demo source rows (40%% orders)")
    parser.add_argument("--soak-interval", type=float, default=3.5, help="soak: seconds between ETL publishes")
    parser.add_argument("--soak-poll", type=float, default=1.0, help="soak: SNAPSHOT_POLL_SECONDS")
    parser.add_argument("--soak-every", type=int, default=10, help="soak: sample worker memory every N swaps")
    parser.add_argument("--soak-connections", type=int, default=8, help="soak: load generator connections")
    parser.add_argument("--soak-log-level", default="info", help="soak: the API's LOG_LEVEL")
    parser.add_argument("--soak-env", action="append", default=[], metavar="KEY=VALUE",
                        help="soak: extra environment for the API (repeatable), e.g. MALLOC_ARENA_MAX=2")
    args = parser.parse_args()
    if args.soak:
        return soak_main(args)
    args.workloads = [w for w in args.workloads.split(",") if w]
    global HEAVY
    HEAVY = HEAVY_SQL[args.heavy]
    os.environ["API_BENCH_HEAVY"] = args.heavy  # for the info child
    args.data_dir.mkdir(parents=True, exist_ok=True)

    # The servers import the code when they start: record which code that was.
    code = code_state("api-service/src", "shared/src")
    # Client processes are forked first, from a process that has not opened DuckDB or started threads.
    pool = multiprocessing.get_context("fork").Pool(args.connections)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: stop the servers
    work = Path(tempfile.mkdtemp(prefix="api-bench-"))
    runs = []
    try:
        store = etl_snapshot(args.rows, args.data_dir)
        snapshots = [("etl", store)]
        if args.snapshot_gb:
            snapshots.append((f"{args.snapshot_gb:g}gb", big_snapshot(store, args.snapshot_gb, args.data_dir)))
        for label, snap_store in snapshots:
            runs.append(run_snapshot(label, snap_store, args, pool, work))
    finally:
        pool.terminate()
        pool.join()
        shutil.rmtree(work, ignore_errors=True)
    finished = datetime.now(UTC)
    report = {"date": finished.isoformat(), "command": " ".join([Path(sys.executable).name, *sys.argv]), "git": code,
              "cpus": os.cpu_count(), "args": {k: str(v) for k, v in vars(args).items()},
              "runs": [{**r, "targets": ratios(r)} for r in runs]}
    out = args.out or RESULTS / f"api-{finished:%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    if code["uncommitted"]:
        print(f"# measured on {code['commit']} with uncommitted changes: {', '.join(code['uncommitted'])}")
    print(f"# {args.connections} client processes and {args.workers}+{args.workers} server workers share "
          f"{os.cpu_count()} cores; {args.duration:g} s per cell after {args.warmup:g} s warm-up; JSON: {out}\n")
    for r in runs:
        print(markdown(r))
        print()


def soak_main(args) -> None:
    code = code_state("api-service/src", "shared/src")
    pool = multiprocessing.get_context("fork").Pool(args.soak_connections) if not shutil.which("wrk") else None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="api-soak-"))
    try:
        run = run_soak(args, pool, work)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        shutil.rmtree(work, ignore_errors=True)
    finished = datetime.now(UTC)
    verdict, ok = soak_verdict(run)
    report = {"date": finished.isoformat(), "command": " ".join([Path(sys.executable).name, *sys.argv]), "git": code,
              "cpus": os.cpu_count(), "args": {k: str(v) for k, v in vars(args).items()}, "soak": run,
              "verdict": verdict, "flat": ok}
    out = args.out or RESULTS / f"api-soak-{finished:%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    if code["uncommitted"]:
        print(f"# measured on {code['commit']} with uncommitted changes: {', '.join(code['uncommitted'])}")
    print(f"# soak on {code['commit']}; JSON: {out}\n")
    print(soak_markdown(run))


if __name__ == "__main__":
    main()
