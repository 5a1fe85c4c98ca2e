"""Snapshot transfer benchmark (issue 12): chunked snapshots (manifest format 2) against the
whole-file protocol (MANIFEST_FORMAT=1, the baseline), side by side in one run, over S3.

S3 is moto's server mode over real HTTP on loopback, in its own process, wrapped in a WSGI
middleware that counts every request by type and target (chunk, history object, manifest, run
record), the bytes in and out and the server's own time per type. The middleware also serves
byte-range GETs of large objects itself: moto reads the *whole* object for every ranged GET and
slices it, which would make boto3's parallel ranged download of a 1 GB file (128 x 8 MiB ranges)
read 128 GB — a moto artefact that would flatter the chunked path, not something S3 does.

For each source size, every contender is an independent pipeline (its own bucket, ETL state
directory and API host) fed by the same SQLite demo source, in lockstep: after each change to the
source, every pipeline syncs once, then its API host loads the new version. Contenders:

- whole: MANIFEST_FORMAT=1 — the ETL uploads the whole file (boto3 multipart), every API host
  downloads and verifies the whole file;
- chunk-<size>: MANIFEST_FORMAT=2 with CHUNK_SIZE=<size> (the first listed is the one the targets
  are checked on; the ETL's default is 256KiB).

Steps: full load (the API host's first load is the cold host: nothing local), then (c) no change,
(a) 1% of rows updated at random (update only), (b) 1% of rows appended (insert only). Each ETL
sync runs in its own process (imports and the boto3 client's model loading before the timer,
peak RSS from wait4); each API host is a long-lived process driving SnapshotManager.refresh()
directly: the time from the manifest flip to the new version loaded, verified and swapped in.

--link-mbps/--latency-ms model the network to S3 in the middleware (loopback moves a whole file
about as fast as the disk); --series N adds N syncs in a row with 1% updated each (file growth,
compaction). Results: bench/results/snapshot-<time>.json; --render re-prints a saved one.

    flock /tmp/bench.lock .venv/bin/python bench/snapshot_bench.py --rows 3300000,16500000,55000000 \\
        --chunk-sizes 256KiB,1MiB --data-dir /tmp/snapshot-bench-data
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/_harness.py, also when loaded by path
from _harness import code_state, run_json_child  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
DEMO_TABLES = ["inventory", "products", "orders", "transactions", "customers"]
SOURCE_SEED = 1
PREFIX = "snap"  # STORAGE_URL = s3://<bucket>/snap
STATS_PATH = "/__bench__/stats"

# Prices assumed for the cost table (S3 Standard, us-east-1, list prices): requests per 1,000,
# data transfer out to the internet (e.g. an API host on Railway) per GiB, first tier.
PRICES = {"put_per_1k": 0.005, "get_per_1k": 0.0004, "egress_per_gib": 0.09}
# Request classes as S3 bills them: PUT, COPY, POST and LIST in the dearer tier; GET, HEAD and
# the rest in the cheaper one; DELETE and AbortMultipartUpload are free.
PUT_TIER = {"PutObject", "CopyObject", "UploadPart", "CreateMultipartUpload", "CompleteMultipartUpload",
            "ListObjectsV2", "ListObjects", "ListParts", "ListMultipartUploads", "CreateBucket"}
FREE = {"DeleteObject", "DeleteObjects", "AbortMultipartUpload", "DeleteBucket"}
SCENARIOS = [("none", "no change"), ("update", "1% updated"), ("append", "1% appended")]
GIB = 1 << 30
MIB = 1 << 20


# ---------------------------------------------------------------- pure helpers (tested) --

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
          "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


def parse_size(text: str) -> int:
    """'256KiB' -> 262144, '1MiB' -> 1048576, '4096' -> 4096."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (e.g. 256KiB, 1MiB)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def size_label(size: int) -> str:
    return f"{size // MIB}MiB" if size % MIB == 0 else f"{size // 1024}KiB"


def classify_request(method: str, path: str, query: str, headers: dict[str, str]) -> tuple[str, str]:
    """(S3 operation, target) of one path-style request: target is chunk, history, manifest,
    run, index (a format-2 version's index), bucket or other."""
    params = {p.split("=", 1)[0] for p in query.split("&") if p}
    parts = path.lstrip("/").split("/", 1)
    key = parts[1] if len(parts) > 1 else ""
    if not key:
        prefix = re.search(r"(?:^|&)prefix=([^&]*)", query)
        target = _target(urllib.parse.unquote(prefix.group(1)) if prefix else "") if prefix else "bucket"
        if method == "GET":
            op = "ListObjectsV2" if "list-type" in params else "ListMultipartUploads" if "uploads" in params \
                else "ListObjects"
        elif method == "POST" and "delete" in params:
            op = "DeleteObjects"
        else:
            op = {"PUT": "CreateBucket", "HEAD": "HeadBucket", "DELETE": "DeleteBucket"}.get(method, method)
        return op, target
    target = _target(key)
    if method == "GET":
        op = "ListParts" if "uploadId" in params else ("GetObject(range)" if headers.get("range") else "GetObject")
    elif method == "HEAD":
        op = "HeadObject"
    elif method == "PUT":
        op = "UploadPart" if "partNumber" in params else "CopyObject" if headers.get("x-amz-copy-source") \
            else "PutObject"
    elif method == "POST":
        op = "CreateMultipartUpload" if "uploads" in params else "CompleteMultipartUpload" if "uploadId" in params \
            else "PostObject"
    elif method == "DELETE":
        op = "AbortMultipartUpload" if "uploadId" in params else "DeleteObject"
    else:
        op = method
    return op, target


def _target(key: str) -> str:
    rest = key.split("/", 1)[1] if key.startswith(PREFIX + "/") else key
    if rest.startswith("chunks/"):
        return "chunk"
    if rest.startswith("history/"):
        return "index" if rest.endswith(".index.json") else "history"
    if rest.startswith("current/"):
        return "manifest"
    if rest.startswith("runs/"):
        return "run"
    return "other"


def price_tier(op: str) -> str:
    """'put', 'get' or 'free': which S3 request price an operation pays."""
    base = op.split("(")[0]
    if base in FREE:
        return "free"
    if base in PUT_TIER or base.startswith("List") or base in ("PostObject",):
        return "put"
    return "get"


def diff_stats(after: dict, before: dict) -> dict:
    """Per 'op target' counters accumulated between two stats snapshots."""
    out = {}
    for name, cur in after["ops"].items():
        prev = before["ops"].get(name, {"count": 0, "bytes_in": 0, "bytes_out": 0, "seconds": 0.0})
        delta = {k: cur[k] - prev[k] for k in ("count", "bytes_in", "bytes_out", "seconds")}
        if delta["count"]:
            delta["seconds"] = round(delta["seconds"], 3)
            out[name] = delta
    return {"ops": out, "server_cpu_s": round(after["cpu_s"] - before["cpu_s"], 3)}


def summarize_requests(ops: dict) -> dict:
    """Totals of a diff_stats()['ops']: requests by operation, by price tier, bytes in/out."""
    by_op: dict[str, int] = {}
    tiers = {"put": 0, "get": 0, "free": 0}
    bytes_in = bytes_out = 0
    for name, c in ops.items():
        op = name.split(" ")[0]
        by_op[op] = by_op.get(op, 0) + c["count"]
        tiers[price_tier(op)] += c["count"]
        bytes_in += c["bytes_in"]
        bytes_out += c["bytes_out"]
    return {"by_op": dict(sorted(by_op.items())), "tiers": tiers, "bytes_in": bytes_in, "bytes_out": bytes_out,
            "total": sum(by_op.values())}


def format_requests(by_op: dict) -> str:
    short = {"GetObject": "GET", "GetObject(range)": "GET-range", "PutObject": "PUT", "HeadObject": "HEAD",
             "ListObjectsV2": "LIST", "UploadPart": "UploadPart", "CreateMultipartUpload": "CreateMPU",
             "CompleteMultipartUpload": "CompleteMPU", "DeleteObjects": "DELETE-batch", "DeleteObject": "DELETE"}
    return ", ".join(f"{short.get(op, op)} {n:,}" for op, n in by_op.items()) or "none"


def share(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def daily_cost(per_sync: dict, *, syncs_per_day: int, hosts: int, polls_per_day_per_host: int,
               poll_bytes: int, prices: dict = PRICES) -> dict:
    """Daily transfer and S3 bill for one protocol. per_sync: {'etl': {'put', 'get', 'bytes_in'},
    'api': {'put', 'get', 'bytes_out'}} as scale_sync() returns them (api: one host's load of
    the new version); every worker of every host also polls the manifest (a GET of poll_bytes)."""
    etl, api = per_sync["etl"], per_sync["api"]
    polls = hosts * polls_per_day_per_host
    puts = syncs_per_day * (etl["put"] + hosts * api["put"])
    gets = syncs_per_day * (etl["get"] + hosts * api["get"]) + polls
    up = syncs_per_day * etl["bytes_in"]
    down = syncs_per_day * hosts * api["bytes_out"] + polls * poll_bytes
    requests_usd = puts / 1000 * prices["put_per_1k"] + gets / 1000 * prices["get_per_1k"]
    egress_usd = down / GIB * prices["egress_per_gib"]
    return {"uploaded_gib": up / GIB, "downloaded_gib": down / GIB, "put_requests": puts, "get_requests": gets,
            "requests_usd": requests_usd, "egress_usd": egress_usd, "total_usd": requests_usd + egress_usd,
            "per_sync_etl_gib": etl["bytes_in"] / GIB, "per_sync_api_gib": api["bytes_out"] / GIB}


GROWS = ("chunk", "history", "index")  # targets whose bytes grow with the database


def scale_sync(ops: dict, scale: float) -> dict:
    """One measured sync's requests and bytes, extrapolated to a database `scale` times larger.
    Requests on chunks and on a whole file's parts or ranges grow with the file (so does a
    small whole file's single PUT/GET: at >= 16 MiB boto3 moves it in 8 MiB parts and ranges);
    the manifest, the index, the run record, HEADs, multipart start/finish and history/
    listings stay one each. Bytes of chunks, whole files and indexes (one digest per chunk)
    grow; the manifest's and the run record's do not. Returns {'put', 'get', 'bytes_in', 'bytes_out'}."""
    out = {"put": 0.0, "get": 0.0, "bytes_in": 0.0, "bytes_out": 0.0}
    for name, c in ops.items():
        op, target = name.split(" ")
        grows = target in GROWS
        out["bytes_in"] += c["bytes_in"] * (scale if grows else 1)
        out["bytes_out"] += c["bytes_out"] * (scale if grows else 1)
        tier = price_tier(op)
        if tier == "free":
            continue
        many = target in ("chunk", "history") and op in ("PutObject", "UploadPart", "GetObject", "GetObject(range)")
        out[tier] += c["count"] * (scale if many else 1)
    return out


# ------------------------------------------------------------------------ source changes --

def mutate_source(path: Path, mode: str, *, fraction: float = 0.01, seed: int = 42) -> dict[str, int]:
    """Change the demo source between two syncs. mode 'update': ~fraction of each table's rows,
    chosen at random, get a new value in one column and updated_at = now (no insert, no delete);
    'append': round(fraction x rows) new rows per table, ids after the current maximum;
    'mixed': analytics_etl.demo_source.mutate_demo_source (updates, a few inserts and deletes)."""
    import random

    from analytics_etl import demo_source as demo

    if mode == "mixed":
        return demo.mutate_demo_source(path, fraction=fraction, seed=seed)
    if mode not in ("update", "append"):
        raise ValueError(f"unknown change mode {mode!r}")
    rng = random.Random(seed)
    stamp = demo.format_timestamp(demo.to_naive_utc(None))
    totals = {"updated": 0, "inserted": 0, "deleted": 0}
    conn = sqlite3.connect(os.fspath(path), isolation_level=None)
    try:
        conn.execute("BEGIN")
        existing = {t: conn.execute(f"SELECT COUNT(*), MIN(id), MAX(id) FROM {t}").fetchone() for t in DEMO_TABLES}
        factories = demo.make_row_factories({t: existing[t][2] or 1 for t in DEMO_TABLES}, rng)
        for table in DEMO_TABLES:
            count, low, high = existing[table]
            target = max(1, round(count * fraction))
            if mode == "update":
                ids = demo.sample_ids(rng, low, high, target)
                cur = conn.executemany(demo._UPDATE_SQL[table], [(demo.update_value(table, rng), stamp, i) for i in ids])
                totals["updated"] += cur.rowcount
            else:
                columns = demo._COLUMNS[table]
                rows = (factories[table](high + k, stamp, stamp) for k in range(1, target + 1))
                cur = conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) "
                                       f"VALUES ({', '.join('?' * len(columns))})", rows)
                totals["inserted"] += cur.rowcount
        conn.execute("COMMIT")
    finally:
        conn.close()
    return totals


def ensure_source(rows: int, data_dir: Path) -> tuple[Path, float | None]:
    """The pristine generated source for `rows`, cached (generation takes ~5 s per million rows)."""
    from analytics_etl.demo_source import create_demo_source

    path = data_dir / f"source-{rows}.db"
    if path.exists():
        return path, None
    tmp = path.with_suffix(".tmp")
    started = time.perf_counter()
    create_demo_source(tmp, rows=rows, seed=SOURCE_SEED)
    os.replace(tmp, path)
    return path, time.perf_counter() - started


# --------------------------------------------------------------------------- S3 (moto) --

class CountingApp:
    """WSGI middleware around moto: counts requests per 'operation target', bytes in and out and
    server seconds; answers STATS_PATH; serves simple byte-range GETs itself (see module doc)."""

    def __init__(self, app, link: Link | None = None) -> None:  # noqa: ANN001
        self.app = app
        self.link = link
        self.lock = threading.Lock()
        self.ops: dict[str, dict] = {}

    def __call__(self, environ, start_response):  # noqa: ANN001, ANN204
        path = environ.get("PATH_INFO", "")
        if path == STATS_PATH:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            with self.lock:
                body = json.dumps({"ops": self.ops, "cpu_s": usage.ru_utime + usage.ru_stime,
                                   "maxrss_mb": usage.ru_maxrss // 1024}).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        started = time.perf_counter()
        method = environ["REQUEST_METHOD"]
        headers = {"range": environ.get("HTTP_RANGE", ""), "x-amz-copy-source": environ.get("HTTP_X_AMZ_COPY_SOURCE", "")}
        op, target = classify_request(method, path, environ.get("QUERY_STRING", ""), headers)
        bytes_in = int(environ.get("HTTP_X_AMZ_DECODED_CONTENT_LENGTH") or environ.get("CONTENT_LENGTH") or 0)
        if self.link is not None:
            self.link.request()
            if environ.get("wsgi.input") is not None and bytes_in:
                environ["wsgi.input"] = _Throttled(environ["wsgi.input"], self.link)
        body = self._range_get(environ, start_response) if op == "GetObject(range)" else None
        if body is None:
            body = self.app(environ, start_response)
        return _Counted(body, self, f"{op} {target}", bytes_in, started)

    def add(self, name: str, bytes_in: int, bytes_out: int, seconds: float) -> None:
        with self.lock:
            c = self.ops.setdefault(name, {"count": 0, "bytes_in": 0, "bytes_out": 0, "seconds": 0.0})
            c["count"] += 1
            c["bytes_in"] += bytes_in
            c["bytes_out"] += bytes_out
            c["seconds"] += seconds

    @staticmethod
    def _range_get(environ, start_response):  # noqa: ANN001, ANN205
        """bytes=a-b of a stored object, read from its buffer; None: let moto answer."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        match = re.fullmatch(r"bytes=(\d+)-(\d*)", environ.get("HTTP_RANGE", ""))
        bucket, _, key_name = environ.get("PATH_INFO", "").lstrip("/").partition("/")
        if not match or environ.get("QUERY_STRING") or not key_name:
            return None
        try:
            key = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_object(bucket, key_name)
        except Exception:  # noqa: BLE001 - moto produces the proper error response
            return None
        if key is None or not hasattr(key, "_value_buffer"):
            return None
        size, begin = key.size, int(match.group(1))
        end = min(int(match.group(2)) if match.group(2) else size - 1, size - 1)
        if begin > end:
            return None
        if_match = environ.get("HTTP_IF_MATCH", "").strip('"')
        if if_match and if_match != key.etag.strip('"'):
            start_response("412 Precondition Failed", [("Content-Length", "0")])
            return [b""]
        with key.lock:
            key._value_buffer.seek(begin)
            data = key._value_buffer.read(end - begin + 1)
        start_response("206 Partial Content", [
            ("Content-Type", key.metadata.get("Content-Type", "binary/octet-stream")), ("Content-Length", str(len(data))),
            ("Content-Range", f"bytes {begin}-{end}/{size}"), ("ETag", key.etag),
            ("Last-Modified", key.last_modified_RFC1123), ("Accept-Ranges", "bytes")])
        return [data]


class _Counted:
    def __init__(self, body, counter: CountingApp, name: str, bytes_in: int, started: float) -> None:  # noqa: ANN001
        self.body, self.counter, self.name, self.bytes_in, self.started = body, counter, name, bytes_in, started
        self.bytes_out = 0

    def __iter__(self):  # noqa: ANN204
        link = self.counter.link
        for piece in self.body:
            self.bytes_out += len(piece)
            if link is not None:
                for start in range(0, len(piece), 1 << 20):  # in 1 MiB slices, so transfers interleave
                    link.transfer(min(1 << 20, len(piece) - start))
            yield piece

    def close(self) -> None:
        if hasattr(self.body, "close"):
            self.body.close()
        self.counter.add(self.name, self.bytes_in, self.bytes_out, time.perf_counter() - self.started)


class Link:
    """The network between S3 and whoever is talking to it (one process at a time here): a
    shared bandwidth in bytes/s, both directions together, and a latency paid per request."""

    def __init__(self, bytes_per_s: float, latency_s: float) -> None:
        self.rate, self.latency = bytes_per_s, latency_s
        self.lock = threading.Lock()
        self.free_at = 0.0

    def request(self) -> None:
        if self.latency:
            time.sleep(self.latency)

    def transfer(self, n: int) -> None:
        if not self.rate:
            return
        with self.lock:
            start = max(time.monotonic(), self.free_at)
            self.free_at = start + n / self.rate
            done = self.free_at
        delay = done - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class _Throttled:
    """A request body read through the link."""

    def __init__(self, stream, link: Link) -> None:  # noqa: ANN001
        self.stream, self.link = stream, link

    def read(self, *args) -> bytes:  # noqa: ANN002
        data = self.stream.read(*args)
        self.link.transfer(len(data))
        return data

    def readline(self, *args) -> bytes:  # noqa: ANN002
        data = self.stream.readline(*args)
        self.link.transfer(len(data))
        return data

    def __iter__(self):  # noqa: ANN204
        return iter(self.readline, b"")


def moto_serve(port: str, link_mbps: str = "0", latency_ms: str = "0") -> None:
    """Child: moto's S3 over HTTP on 127.0.0.1:port behind CountingApp, until stdin closes."""
    import logging

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    link = Link(float(link_mbps) * 1e6, float(latency_ms) / 1000) if float(link_mbps) or float(latency_ms) else None
    app = CountingApp(DomainDispatcherApplication(create_backend_app), link)
    server = make_server("127.0.0.1", int(port), app, threaded=True, request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()
    server.shutdown()


class Moto:
    def __init__(self, link_mbps: float = 0.0, latency_ms: float = 0.0) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([sys.executable, __file__, "moto", str(port), str(link_mbps), str(latency_ms)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise SystemExit("moto server did not start")
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def stats(self) -> dict:
        with self._opener.open(self.endpoint + STATS_PATH, timeout=30) as resp:
            return json.loads(resp.read())

    def create_bucket(self, name: str) -> None:
        import boto3

        boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1").create_bucket(Bucket=name)

    def stop(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


# ------------------------------------------------------------------------------ workers --

def worker_etl(config_json: str) -> dict:
    """Child: one run_sync against the pipeline's bucket; imports and boto3's model loading first."""
    config = json.loads(config_json)
    import boto3
    import connectorx  # noqa: F401 - imported before the timer, as in bench/etl_bench.py
    import pandas  # noqa: F401 - pyarrow imports it lazily on the first conversion
    import sqlalchemy as sa

    from analytics_etl.config import get_settings
    from analytics_etl.pipeline import run_sync
    from analytics_shared.logging import configure_logging

    configure_logging("INFO", service="etl-bench")
    sa.engine.make_url(config["source_url"]).get_dialect().import_dbapi()
    # A scheduler process loads botocore's S3 model once; every later run_sync reuses it.
    boto3.client("s3", endpoint_url=config["endpoint"], region_name="us-east-1")
    timings = instrument_etl()
    settings = get_settings(source_url=config["source_url"], storage_url=config["storage_url"],
                            s3_endpoint_url=config["endpoint"], etl_state_dir=config["state_dir"],
                            manifest_format=config["manifest_format"], chunk_size=config["chunk_size"])
    wall = time.time()
    started = time.perf_counter()
    record = run_sync(settings)
    seconds = time.perf_counter() - started
    manifest = record.get("manifest") or {}
    return {"status": record["status"], "seconds": seconds, "started_wall": wall,
            "uploaded_bytes": record["uploaded_bytes"], "uploaded_objects": record["uploaded_objects"],
            "size_bytes": manifest.get("size_bytes"), "version": manifest.get("version"),
            "rows": sum(t["rows"] for t in record["tables"].values()), "timings": timings,
            "tables_seconds": {k: v["seconds"] for k, v in record["tables"].items()}}


def instrument_etl() -> dict[str, float]:
    """Wrap the steps of a sync with timers (seconds summed per step), without changing them:
    where a chunked sync's time goes beyond what the log lines tell."""
    from analytics_etl import build, chunk_publish, pipeline, publish
    from analytics_shared.storage.s3 import S3Store

    timings: dict[str, float] = {}

    def timed(owner: object, name: str, label: str) -> None:
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                timings[label] = round(timings.get(label, 0.0) + time.perf_counter() - started, 4)

        setattr(owner, name, wrapper)

    timed(build.Build, "__enter__", "prepare kept file + open")
    timed(build.Build, "finish", "finish: views + checkpoint + close")
    timed(publish, "scan_file", "scan: sha256 + marks (+ chunk PUTs alongside)")
    timed(chunk_publish.ChunkUploader, "finish", "wait for chunk PUTs")
    timed(S3Store, "upload_file", "whole-file upload + HEAD")
    timed(publish, "write_index", "index PUT")
    timed(publish, "write_manifest", "manifest PUT")
    timed(pipeline, "retain_and_collect", "retention + chunk GC")
    timed(pipeline, "_record_run", "run record PUT")
    return timings


def worker_api(config_json: str) -> None:
    """Child: an API host (one SnapshotManager, as a Gunicorn worker holds) that loads the current
    version on each 'load' line from stdin and answers one JSON line."""
    config = json.loads(config_json)
    from analytics_api.snapshots.manager import SnapshotManager
    from analytics_shared.assemble import FetchStats
    from analytics_shared.logging import configure_logging
    from analytics_shared.storage import open_store

    configure_logging("WARNING", service="api-bench")
    store = open_store(config["storage_url"], endpoint_url=config["endpoint"])
    manager = SnapshotManager(store, cache_dir=Path(config["cache_dir"]), tables=DEMO_TABLES, poll_seconds=3600,
                              memory_limit="1GB", threads=1, fetch_concurrency=config.get("concurrency", 8))
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip() != "load":
            break
        before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        swapped = manager.refresh()
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        snap = manager.current
        stats = snap.local.stats if swapped and snap is not None else FetchStats()
        print(json.dumps({
            "swapped": swapped, "seconds": seconds, "fetch_seconds": stats.seconds, "version": snap and snap.version,
            "size_bytes": snap.manifest.size_bytes if snap else None, "downloaded_bytes": stats.downloaded_bytes,
            "downloaded_objects": stats.downloaded_objects, "chunks": stats.chunks, "reused": stats.reused,
            "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
            "peak_rss_mb": after.ru_maxrss // 1024, "last_error": manager.last_error}), flush=True)
    manager.stop()


class ApiHost:
    def __init__(self, config: dict) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "api", json.dumps(config)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        json.loads(self.proc.stdout.readline())

    def load(self) -> dict:
        self.proc.stdin.write("load\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit("API host died")
        return json.loads(line)

    def stop(self) -> None:
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def run_etl_child(config: dict, log_path: Path) -> dict:
    with log_path.open("w") as log:
        result = run_json_child(__file__, "etl", json.dumps(config), stderr=log, what=f"ETL sync (log: {log_path})")
    result["phases"] = phases(log_path, result["started_wall"], result["seconds"])
    return result


def phases(log_path: Path, started_wall: float, seconds: float) -> dict:
    """Where a sync's time went, from its log's timestamps: tables (extract + merge), then
    finish (checkpoint) + scan + upload up to the snapshot.uploaded line, then the manifest
    write, then retention / chunk GC / run record."""
    marks: dict[str, float] = {}
    for line in log_path.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        stamp = event.get("timestamp")
        if not stamp:
            continue
        offset = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() - started_wall
        name = event.get("event")
        if name == "table.synced":
            marks["tables"] = offset
        elif name in ("snapshot.uploaded", "manifest.published", "state.restored", "sync.unchanged"):
            marks[name] = offset
    out, last = {}, 0.0
    for label, name in (("restore", "state.restored"), ("tables", "tables"), ("checkpoint+scan+upload",
                        "snapshot.uploaded"), ("manifest", "manifest.published")):
        if name in marks:
            out[label] = round(marks[name] - last, 3)
            last = marks[name]
    out["rest"] = round(seconds - last, 3)
    return out


# ------------------------------------------------------------------------- orchestration --

class Pipeline:
    def __init__(self, label: str, manifest_format: int, chunk_size: int, work: Path, moto: Moto,
                 source: Path, concurrency: int) -> None:
        self.label, self.format, self.chunk_size = label, manifest_format, chunk_size
        # One bucket per size and contender: the moto server (and what it stores) outlives a size.
        self.bucket = f"bench-{work.name}-" + re.sub(r"[^a-z0-9]", "", label.lower())
        self.dir = work / label
        self.dir.mkdir(parents=True)
        self.moto = moto
        moto.create_bucket(self.bucket)
        self.etl_config = {"source_url": f"sqlite:///{source}", "storage_url": f"s3://{self.bucket}/{PREFIX}",
                           "endpoint": moto.endpoint, "state_dir": str(self.dir / "etl-state"),
                           "manifest_format": manifest_format, "chunk_size": chunk_size}
        self.api_config = {"storage_url": f"s3://{self.bucket}/{PREFIX}", "endpoint": moto.endpoint,
                           "cache_dir": str(self.dir / "api-cache"), "concurrency": concurrency}
        self.api: ApiHost | None = None
        self.size_bytes = 0

    def sync(self, step: str) -> dict:
        before = self.moto.stats()
        result = run_etl_child(self.etl_config, self.dir / f"etl-{step}.log")
        result["s3"] = diff_stats(self.moto.stats(), before)
        if result["size_bytes"]:
            self.size_bytes = result["size_bytes"]
        result["file_bytes"] = self.size_bytes
        return result

    def load(self) -> dict:
        before = self.moto.stats()
        if self.api is None:
            self.api = ApiHost(self.api_config)
        result = self.api.load()
        result["s3"] = diff_stats(self.moto.stats(), before)
        if result.get("last_error"):
            raise SystemExit(f"{self.label}: API host rejected the version: {result['last_error']}")
        return result

    def stop(self) -> None:
        if self.api is not None:
            self.api.stop()


def run_size(rows: int, args: argparse.Namespace, moto: Moto, work_root: Path) -> dict:
    pristine, generated = ensure_source(rows, args.data_dir)
    work = work_root / f"rows-{rows}"
    work.mkdir()
    source = work / "source.db"
    t0 = time.perf_counter()
    shutil.copyfile(pristine, source)
    made = f"generated in {generated:.0f} s" if generated else "cached"
    print(f"[{rows:,} rows] source {pristine} ({pristine.stat().st_size / MIB:,.0f} MiB, {made}), copied in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    pipelines = [Pipeline("whole", 1, args.chunk_sizes[0], work, moto, source, args.fetch_concurrency)]
    pipelines += [Pipeline(f"chunk-{size_label(c)}", 2, c, work, moto, source, args.fetch_concurrency)
                  for c in args.chunk_sizes]
    steps: dict[str, dict] = {}
    try:
        for number, (step, change) in enumerate([("full", None), *[(s, s) for s, _ in SCENARIOS]]):
            mutation = None
            if change in ("update", "append"):
                t0 = time.perf_counter()
                mutation = mutate_source(source, change, fraction=args.fraction, seed=42 + number)
                mutation["seconds"] = round(time.perf_counter() - t0, 2)
            order = pipelines if number % 2 == 0 else pipelines[::-1]  # alternate who goes first
            steps[step] = {"mutation": mutation, "pipelines": {}}
            for p in order:
                etl = p.sync(step)
                if step == "full" and etl["status"] != "published":
                    raise SystemExit(f"{p.label}: the full load did not publish ({etl['status']})")
                api = p.load()
                steps[step]["pipelines"][p.label] = {"etl": etl, "api": api}
                print(f"  {step:7s} {p.label:13s} sync {etl['seconds']:7.2f} s {etl['status']:10s} up "
                      f"{etl['uploaded_bytes'] / MIB:9.2f} MiB ({share(etl['uploaded_bytes'], etl['file_bytes']):6.1%}) "
                      f"| load {api['seconds']:6.2f} s down {api['downloaded_bytes'] / MIB:9.2f} MiB "
                      f"(reused {api['reused']}/{api['chunks']})", flush=True)
        series = []
        for i in range(args.series):  # the long run: 1% updated every sync, N syncs in a row
            mutate_source(source, "update", fraction=args.fraction, seed=1000 + i)
            row = {}
            for p in pipelines:
                etl, api = p.sync(f"series-{i}"), p.load()
                row[p.label] = {"status": etl["status"], "file_bytes": etl["file_bytes"], "sync_s": etl["seconds"],
                                "up_bytes": etl["uploaded_bytes"], "load_s": api["seconds"],
                                "down_bytes": api["downloaded_bytes"]}
            series.append(row)
            print(f"  series {i:3d} " + " | ".join(
                f"{k} {v['file_bytes'] / MIB:8.1f} MiB up {share(v['up_bytes'], v['file_bytes']):6.1%}"
                for k, v in row.items()), flush=True)
    finally:
        for p in pipelines:
            p.stop()
    return {"rows": rows, "source_bytes": pristine.stat().st_size, "generated_seconds": generated,
            "contenders": [p.label for p in pipelines], "steps": steps, "series": series}


# ------------------------------------------------------------------------------- report --

def step_row(step: dict, label: str) -> dict:
    """The figures of one contender in one step, flattened for tables and targets."""
    p = step["pipelines"][label]
    etl, api = p["etl"], p["api"]
    file_bytes = etl["file_bytes"]
    etl_req = summarize_requests(etl["s3"]["ops"])
    api_req = summarize_requests(api["s3"]["ops"])
    return {"file_bytes": file_bytes, "status": etl["status"], "sync_s": etl["seconds"], "rss_mb": etl["peak_rss_mb"],
            "up_bytes": etl["uploaded_bytes"], "up_objects": etl["uploaded_objects"],
            "up_share": share(etl["uploaded_bytes"], file_bytes), "wire_up": etl_req["bytes_in"],
            "etl_requests": etl_req, "phases": etl["phases"], "swapped": api["swapped"], "load_s": api["seconds"],
            "fetch_s": api["fetch_seconds"], "down_bytes": api["downloaded_bytes"],
            "down_share": share(api["downloaded_bytes"], file_bytes), "wire_down": api_req["bytes_out"],
            "api_requests": api_req, "reused": api["reused"], "chunks": api["chunks"],
            "store_cpu_s": etl["s3"]["server_cpu_s"] + api["s3"]["server_cpu_s"]}


def targets(run: dict, chunked: str) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for one size; the time targets only at >= 1 GB."""
    steps = run["steps"]
    out = []
    big = steps["full"]["pipelines"][chunked]["etl"]["file_bytes"]
    limit = 0.15 if run["rows"] <= 3_300_000 else 0.05 if big >= 300e6 else None
    upd = step_row(steps["update"], chunked)
    app = step_row(steps["append"], chunked)
    non = step_row(steps["none"], chunked)
    if limit is not None:
        out.append((f"1% updated: uploaded ≤ {limit:.0%} of the file", f"{upd['up_share']:.2%}",
                    upd["up_share"] <= limit))
        out.append((f"1% updated: downloaded ≤ {limit:.0%} of the file", f"{upd['down_share']:.2%}",
                    upd["down_share"] <= limit))
    out.append(("1% appended: uploaded ≤ 5%", f"{app['up_share']:.2%}", app["up_share"] <= 0.05))
    out.append(("1% appended: downloaded ≤ 5%", f"{app['down_share']:.2%}", app["down_share"] <= 0.05))
    out.append(("no change: nothing uploaded", f"{non['up_bytes']:,} B, status {non['status']}",
                non["up_bytes"] == 0 and non["status"] == "unchanged"))
    out.append(("no change: nothing downloaded", f"{non['down_bytes']:,} B, swapped {non['swapped']}",
                non["down_bytes"] == 0 and not non["swapped"]))
    if big >= 1e9:
        whole = step_row(steps["update"], "whole")
        ratio = upd["load_s"] / whole["load_s"]
        out.append(("1 GB, 1% updated: manifest flip → serving ≤ 0.3× whole-file", f"{ratio:.3f}× "
                    f"({upd['load_s']:.2f} s vs {whole['load_s']:.2f} s)", ratio <= 0.3))
        ratio = upd["sync_s"] / whole["sync_s"]
        out.append(("1 GB, 1% updated: sync wall time ≤ 0.3× whole-file", f"{ratio:.3f}× "
                    f"({upd['sync_s']:.2f} s vs {whole['sync_s']:.2f} s)", ratio <= 0.3))
    return out


def cost_table(run: dict, chunked: str, *, db_bytes: int, interval_s: int, hosts: int, workers_per_host: int,
               poll_s: float) -> dict:
    """Daily transfer and cost for a db_bytes database synced every interval_s with `hosts` API
    hosts, before (whole file) and after (chunks), from the measured syncs of the given run."""
    syncs = 86400 // interval_s
    polls = int(86400 / poll_s) * workers_per_host  # every worker polls the manifest
    out = {}
    for scenario in ("update", "append", "none"):
        out[scenario] = {}
        for label in ("whole", chunked):
            step = run["steps"][scenario]["pipelines"][label]
            scale = db_bytes / step["etl"]["file_bytes"]
            manifest = step["api"]["s3"]["ops"].get("GetObject manifest", {"count": 1, "bytes_out": 0})
            per_sync = {"etl": scale_sync(step["etl"]["s3"]["ops"], scale),
                        "api": scale_sync(step["api"]["s3"]["ops"], scale)}
            if scenario == "none":  # the host's "load" was its poll: counted with the polls
                per_sync["api"] = {"put": 0, "get": 0, "bytes_in": 0, "bytes_out": 0}
            out[scenario][label] = daily_cost(per_sync, syncs_per_day=syncs, hosts=hosts,
                                              polls_per_day_per_host=polls,
                                              poll_bytes=manifest["bytes_out"] // max(manifest["count"], 1))
    return out


def markdown(report: dict) -> str:
    chunked = report["chunked"]
    link = report.get("link") or {}
    lines = [("S3 link: modelled, " f"{link['mbps']:g} MB/s shared by both directions, {link['latency_ms']:g} ms per request"
              if link.get("mbps") or link.get("latency_ms") else "S3 link: loopback (moto on this machine)"), ""]
    for run in report["runs"]:
        full = step_row(run["steps"]["full"], chunked)
        lines += [f"### {run['rows']:,} rows — snapshot {full['file_bytes'] / MIB:,.1f} MiB "
                  f"({full['file_bytes']:,} B, {full['chunks']:,} chunks of {chunked.split('-', 1)[1]})", "",
                  "| step | contender | ETL sync s (peak RSS) | uploaded MiB (% of file), objects | "
                  "ETL S3 requests | API load s (fetch s) | downloaded MiB (% of file) | API S3 requests |",
                  "|---|---|---:|---:|---|---:|---:|---|"]
        for step, name in [("full", "full load / cold host"), *SCENARIOS]:
            for label in run["contenders"]:
                r = step_row(run["steps"][step], label)
                status = "" if r["status"] == "published" else f" {r['status']}"
                lines.append(
                    f"| {name} | {label} | {r['sync_s']:.2f}{status} ({r['rss_mb']} MB) | "
                    f"{r['up_bytes'] / MIB:,.2f} ({r['up_share']:.2%}), {r['up_objects']:,} | "
                    f"{format_requests(r['etl_requests']['by_op'])} | "
                    f"{r['load_s']:.2f} ({r['fetch_s']:.2f}){'' if r['swapped'] else ' no swap'} | "
                    f"{r['down_bytes'] / MIB:,.2f} ({r['down_share']:.2%}) | "
                    f"{format_requests(r['api_requests']['by_op'])} |")
        lines += ["", "| step | contender | uploaded / whole | downloaded / whole | sync time / whole | "
                  "flip → serving / whole | ETL phases s |", "|---|---|---:|---:|---:|---:|---|"]
        for step, name in [("full", "full load / cold host"), *SCENARIOS]:
            whole = step_row(run["steps"][step], "whole")
            for label in run["contenders"]:
                r = step_row(run["steps"][step], label)
                phase = ", ".join(f"{k} {v:.2f}" for k, v in r["phases"].items())
                if label == "whole":
                    lines.append(f"| {name} | whole | 1 | 1 | 1 | 1 | {phase} |")
                    continue
                lines.append(f"| {name} | {label} | {_ratio(r['up_bytes'], whole['up_bytes'])} | "
                             f"{_ratio(r['down_bytes'], whole['down_bytes'])} | {_ratio(r['sync_s'], whole['sync_s'])} | "
                             f"{_ratio(r['load_s'], whole['load_s'])} | {phase} |")
        timed = [label for label in run["contenders"] if run["steps"]["update"]["pipelines"][label]["etl"].get("timings")]
        if timed:
            lines += ["", "ETL steps of the 1%-updated sync, s (timers around the pipeline's functions):", "",
                      "| step | " + " | ".join(timed) + " |", "|---|" + "---:|" * len(timed)]
            names = list(dict.fromkeys(k for label in timed
                                       for k in run["steps"]["update"]["pipelines"][label]["etl"]["timings"]))
            for name in ["tables (extract + merge)", *names]:
                cells = []
                for label in timed:
                    etl = run["steps"]["update"]["pipelines"][label]["etl"]
                    value = sum(etl["tables_seconds"].values()) if name.startswith("tables") else etl["timings"].get(name)
                    cells.append("" if value is None else f"{value:.2f}")
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += ["", f"Targets ({chunked}):", "", "| target | measured | met |", "|---|---|---|"]
        lines += [f"| {t} | {m} | {'yes' if ok else '**no**'} |" for t, m, ok in run["targets"]]
        lines.append("")
        if run.get("series"):
            labels = list(run["series"][0])
            lines += [f"{len(run['series'])} syncs in a row, 1% of rows updated before each:", "",
                      "| sync | " + " | ".join(f"{label}: file MiB, uploaded %" for label in labels) + " |",
                      "|---:|" + "---:|" * len(labels)]
            for i, row in enumerate(run["series"]):
                lines.append(f"| {i + 1} | " + " | ".join(
                    f"{v['file_bytes'] / MIB:,.1f}, {share(v['up_bytes'], v['file_bytes']):.1%}"
                    + ("" if v["status"] == "published" else f" {v['status']}") for v in row.values()) + " |")
            mean = {label: share(sum(r[label]["up_bytes"] for r in run["series"]),
                                 sum(r[label]["file_bytes"] for r in run["series"])) for label in labels}
            lines += ["| all, bytes-weighted | " + " | ".join(f"{mean[label]:.1%}" for label in labels) + " |", ""]
    if report.get("cost"):
        c = report["cost"]
        lines += [f"### Daily transfer and S3 cost: {c['db_gib']:g} GiB database, a sync every {c['interval_s']} s, "
                  f"{c['hosts']} API hosts ({c['workers']} workers each polling every {c['poll_s']:g} s), "
                  f"extrapolated from the {c['from_rows']:,}-row run", "",
                  f"Prices: PUT/POST/LIST ${PRICES['put_per_1k']}/1k, GET/HEAD ${PRICES['get_per_1k']}/1k, "
                  f"egress ${PRICES['egress_per_gib']}/GiB to a non-AWS host, ingress and DELETE free.", "",
                  "| every sync is | protocol | per sync: ETL up / each host down | uploaded/day | "
                  "downloaded/day (all hosts) | PUT-class/day | GET-class/day | requests $/day | egress $/day | "
                  "total $/day | $/30 days |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for scenario, name in [("update", "1% updated"), ("append", "1% appended"), ("none", "no change")]:
            for label, x in c["table"][scenario].items():
                lines.append(f"| {name} | {label} | {_gib(x['per_sync_etl_gib'])} / {_gib(x['per_sync_api_gib'])} | "
                             f"{_gib(x['uploaded_gib'])} | {_gib(x['downloaded_gib'])} | {x['put_requests']:,.0f} | "
                             f"{x['get_requests']:,.0f} | {x['requests_usd']:,.2f} | {x['egress_usd']:,.2f} | "
                             f"{x['total_usd']:,.2f} | {30 * x['total_usd']:,.0f} |")
    return "\n".join(lines)


def analyse(report: dict) -> None:
    """Targets per size and the cost table (from the largest size), computed from the raw runs."""
    chunked = report["chunked"]
    for run in report["runs"]:
        run["targets"] = targets(run, chunked)
    cost = report["cost"]
    biggest = max(report["runs"], key=lambda r: r["rows"])
    cost["from_rows"] = biggest["rows"]
    cost["table"] = cost_table(biggest, chunked, db_bytes=int(cost["db_gib"] * GIB), interval_s=cost["interval_s"],
                               hosts=cost["hosts"], workers_per_host=cost["workers"], poll_s=cost["poll_s"])


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}" if b else ("0" if not a else "∞")


def _gib(x: float) -> str:
    return f"{x * 1024:,.1f} MiB" if x < 1 else f"{x:,.1f} GiB"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "moto":
        moto_serve(*sys.argv[2:])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "etl":
        print(json.dumps(worker_etl(sys.argv[2])))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "api":
        worker_api(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="3300000", help="comma-separated source sizes (demo source rows)")
    parser.add_argument("--chunk-sizes", default="256KiB",
                        help="comma-separated CHUNK_SIZE values, one chunked contender each; targets on the first")
    parser.add_argument("--fraction", type=float, default=0.01, help="share of rows updated / appended")
    parser.add_argument("--fetch-concurrency", type=int, default=8, help="SNAPSHOT_FETCH_CONCURRENCY of the API hosts")
    parser.add_argument("--data-dir", type=Path, default=RESULTS / "snapshot-data", help="cached generated sources")
    parser.add_argument("--work-dir", type=Path, default=None, help="scratch (default: a temp dir, removed)")
    parser.add_argument("--series", type=int, default=0,
                        help="after the scenarios, N more syncs in a row with 1%% updated each (file growth, compaction)")
    parser.add_argument("--link-mbps", type=float, default=0.0,
                        help="model the network to S3: MB/s shared by both directions (0: loopback, unlimited)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="model the network to S3: ms per request")
    parser.add_argument("--cost-gib", type=float, default=10.0, help="database size for the cost table")
    parser.add_argument("--out", type=Path, default=None, help="JSON results (default bench/results/snapshot-<time>.json)")
    parser.add_argument("--render", type=Path, default=None, help="only print the tables of a saved JSON result")
    args = parser.parse_args()
    if args.render:
        report = json.loads(args.render.read_text())
        analyse(report)
        print(markdown(report))
        return
    args.rows = [int(r) for r in args.rows.split(",") if r]
    args.chunk_sizes = [parse_size(c) for c in args.chunk_sizes.split(",") if c]
    for size in args.chunk_sizes:
        from analytics_shared.chunks import check_chunk_size

        check_chunk_size(size)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    for name, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                        "AWS_DEFAULT_REGION": "us-east-1", "NO_PROXY": "127.0.0.1,localhost",
                        "no_proxy": "127.0.0.1,localhost"}.items():
        os.environ[name] = value
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "STORAGE_URL", "S3_BUCKET", "S3_ENDPOINT_URL"):
        os.environ.pop(name, None)
    code = code_state("etl-service/src", "api-service/src", "shared/src")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="snapshot-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    chunked = f"chunk-{size_label(args.chunk_sizes[0])}"
    runs = []
    moto = Moto(args.link_mbps, args.latency_ms)
    try:
        for rows in args.rows:
            runs.append(run_size(rows, args, moto, work))
            partial = RESULTS / "snapshot-partial.json"  # what is done so far, should a later size fail
            partial.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps({"chunked": chunked, "runs": runs}, default=str))
            shutil.rmtree(work / f"rows-{rows}", ignore_errors=True)
        moto_peak = moto.stats()["maxrss_mb"]
    finally:
        moto.stop()
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    finished = datetime.now(UTC)
    report = {"date": finished.isoformat(), "command": " ".join([Path(sys.executable).name, *sys.argv]), "git": code,
              "cpus": os.cpu_count(), "chunked": chunked, "prices": PRICES, "moto_peak_rss_mb": moto_peak,
              "args": {k: str(v) for k, v in vars(args).items()}, "runs": runs,
              "link": {"mbps": args.link_mbps, "latency_ms": args.latency_ms},
              "cost": {"db_gib": args.cost_gib, "interval_s": 60, "hosts": 2, "workers": 2, "poll_s": 10.0}}
    analyse(report)
    out = args.out or RESULTS / f"snapshot-{finished:%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    if code["uncommitted"]:
        print(f"# measured on {code['commit']} with uncommitted changes: {', '.join(code['uncommitted'])}")
    print(f"# JSON: {out}\n")
    print(markdown(report))


if __name__ == "__main__":
    main()
