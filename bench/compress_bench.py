"""Compression benchmark: bytes on the wire and server CPU per request, by Accept-Encoding.

One Gunicorn API (2 workers, the shipped compression settings) serves the ETL's demo snapshot.
Every request asks for a 5,000-row JSON page, `SELECT * FROM transactions WHERE id BETWEEN x
AND x + 4999`; the contenders differ only in Accept-Encoding (identity, gzip, br, zstd), plus
two Arrow rows for scale (plain, and with zstd-compressed IPC buffers). They take turns, round
by round, in one run. Two workloads:
- fresh:  a new x every request, so each answer is executed, rendered and compressed;
- cached: one x, so after the first request a worker answers from its result cache and the
          difference between contenders is the compression alone.
Bytes are what the client read off the socket (status line, headers, body as sent). CPU is the
workers' user+system time (/proc) over a contender's requests, divided by their count; the
requests are sequential on one keep-alive connection, so nothing else runs in the workers.

    .venv/bin/python bench/compress_bench.py --rows 300000
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))
import api_bench as ab  # noqa: E402 - the shared harness: snapshot, Gunicorn server, /proc readers

SQL = "SELECT * FROM transactions WHERE id BETWEEN {x} AND {x} + 4999"
# (label, Accept-Encoding, Accept)
CONTENDERS = [("identity", "identity", "application/json"), ("gzip", "gzip", "application/json"),
              ("br", "br", "application/json"), ("zstd", "zstd", "application/json"),
              ("arrow", "identity", "application/vnd.apache.arrow.stream"),
              ("arrow, zstd buffers", "identity", "application/vnd.apache.arrow.stream; codecs=zstd")]


def decode(encoding: str | None, raw: bytes) -> bytes:
    import brotli
    import zstandard

    if encoding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    return {"gzip": gzip.decompress, "br": brotli.decompress}.get(encoding or "", lambda b: b)(raw)


def run_cell(conn: http.client.HTTPConnection, server: ab.Server, token: str, contender: tuple, xs: list[int]) -> dict:
    """Sequential requests on one connection; wire bytes, worker CPU and latency per request."""
    label, accept_encoding, accept = contender
    headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": accept_encoding, "Accept": accept}
    pids = [w.pid for w in server.workers()]
    cpu_before = sum(ab.worker_cpu_seconds(p) for p in pids)
    wire, latencies = 0, []
    for x in xs:
        started = time.perf_counter()
        conn.request("GET", "/query?q=" + quote(SQL.format(x=x), safe=""), headers=headers)
        response = conn.getresponse()
        raw = response.read()
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status != 200:
            raise SystemExit(f"{label}: HTTP {response.status}: {raw[:300]!r}")
        # status line + header lines + blank line + body, as they crossed the socket
        wire += len(f"HTTP/1.1 {response.status} {response.reason}\r\n") + len(bytes(response.msg)) + len(raw)
    cpu = sum(ab.worker_cpu_seconds(p) for p in pids) - cpu_before
    return {"requests": len(xs), "wire": wire, "cpu": cpu, "latencies": latencies}


def check(conn: http.client.HTTPConnection, token: str, x: int) -> None:
    """Every JSON contender decodes to the same 5,000 rows; the Arrow ones to 5,000 rows."""
    import pyarrow.ipc as ipc

    rows = {}
    for label, accept_encoding, accept in CONTENDERS:
        conn.request("GET", "/query?q=" + quote(SQL.format(x=x), safe=""),
                     headers={"Authorization": f"Bearer {token}", "Accept-Encoding": accept_encoding, "Accept": accept})
        response = conn.getresponse()
        body = decode(response.getheader("Content-Encoding"), response.read())
        rows[label] = (ipc.open_stream(body).read_all().num_rows if "arrow" in accept
                       else json.dumps(json.loads(body)["data"]))
        want = label if label in ("gzip", "br", "zstd") else None
        if response.getheader("Content-Encoding") != want:
            raise SystemExit(f"{label}: Content-Encoding {response.getheader('Content-Encoding')}, not {want}")
    if len({rows[c[0]] for c in CONTENDERS[:4]}) != 1 or {rows["arrow"], rows["arrow, zstd buffers"]} != {5000}:
        raise SystemExit("contenders disagree on the result")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300_000, help="demo source rows (transactions: ~40%%)")
    parser.add_argument("--requests", type=int, default=120, help="measured requests per contender and workload")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=ab.RESULTS / "api-data")
    args = parser.parse_args()

    from analytics_api.auth.local_issuer import LOCAL_AUDIENCE, LOCAL_ISSUER, LocalIssuer
    from analytics_api.compression import BROTLI_QUALITY, GZIP_LEVEL, ZSTD_LEVEL

    store = ab.etl_snapshot(args.rows, args.data_dir)
    work = Path(tempfile.mkdtemp(prefix="compress-bench-"))
    issuer = LocalIssuer.generate()
    jwks = issuer.save(work / "issuer")
    token = issuer.mint(sub="bench", ttl_seconds=7200)
    port = ab.free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AUTH0_", "RATE_LIMIT_", "SNAPSHOT_",
                                                                       "COMPRESSION_"))},
           "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2", "STORAGE_URL": f"file://{store}",
           "AUTH0_JWKS_URL": f"file://{jwks}", "AUTH0_ISSUER": LOCAL_ISSUER, "AUTH0_API_AUDIENCE": LOCAL_AUDIENCE,
           "RATE_LIMIT_REQUESTS": "100000000", "SNAPSHOT_POLL_SECONDS": "3600",
           "SNAPSHOT_CACHE_DIR": str(work / "cache"), "PROMETHEUS_MULTIPROC_DIR": str(work / "prometheus"),
           "GUNICORN_CMD_ARGS": f"--control-socket {work / 'api.ctl'}"}
    (work / "prometheus").mkdir()
    server = ab.Server("api", [str(ab.VENV_BIN / "gunicorn"), "-c", "python:analytics_api.gunicorn_conf"], env, port,
                       work / "api.log")
    rng = random.Random(1)
    cells: dict[tuple[str, str], list[dict]] = {}
    try:
        server.wait_ready("/ready")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        check(conn, token, 1)
        cached_x = 50_001
        for contender in CONTENDERS:  # warm both workers' caches for the cached workload
            run_cell(conn, server, token, contender, [cached_x] * 6)
        per_round = max(1, args.requests // args.rounds)
        for r in range(args.rounds):
            order = CONTENDERS if r % 2 == 0 else CONTENDERS[::-1]
            for workload in ("fresh", "cached"):
                for contender in order:
                    xs = ([rng.randint(1, 110_000) for _ in range(per_round)] if workload == "fresh"
                          else [cached_x] * per_round)
                    cells.setdefault((workload, contender[0]), []).append(
                        run_cell(conn, server, token, contender, xs))
            print(f"# round {r + 1}/{args.rounds} done", file=sys.stderr)
        conn.close()
    finally:
        server.stop()

    print(f"\n{args.rows:,}-row demo source; 5,000-row pages of transactions; levels zstd {ZSTD_LEVEL}, "
          f"br {BROTLI_QUALITY}, gzip {GZIP_LEVEL}; {per_round * args.rounds} requests per cell\n")
    print("| workload | contender | bytes on the wire / request | identity JSON ÷ this | server CPU ms / request "
          "| client p50 ms |\n|---|---|---:|---:|---:|---:|")
    for workload in ("fresh", "cached"):
        base = None
        for label, _, _ in CONTENDERS:
            runs = cells[(workload, label)]
            n = sum(c["requests"] for c in runs)
            wire = sum(c["wire"] for c in runs) / n
            cpu = sum(c["cpu"] for c in runs) / n * 1000
            p50 = statistics.median(x for c in runs for x in c["latencies"])
            base = base or wire
            print(f"| {workload} | {label} | {wire:,.0f} | {base / wire:.1f}× | {cpu:.1f} | {p50:.1f} |")

if __name__ == "__main__":
    main()
