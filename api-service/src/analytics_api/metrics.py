"""Prometheus metrics, correct across Gunicorn workers.

gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR before the workers import this module, so
every worker writes its samples to that directory and /metrics sums them; without it
(in-process tests, `uvicorn` directly) the default per-process registry is used.
"""

from __future__ import annotations

import os

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest, multiprocess)

REQUESTS = Counter("analytics_api_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("analytics_api_request_duration_seconds", "Request duration", ["route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
QUERY_ROWS = Histogram("analytics_api_query_rows", "Rows returned per query",
                       buckets=(0, 1, 10, 100, 1000, 10_000, 100_000))
SMALL_RESULTS = Counter("analytics_api_small_results_total",
                        "Query shapes expected to return a few rows, fetched as tuples: served, or "
                        "fetched again as Arrow because the answer was not small", ["result"])
RESULT_CACHE = Counter("analytics_api_result_cache_total", "Result cache lookups", ["result"])
REJECTED = Counter("analytics_api_queries_rejected_total", "Queries refused by the whitelist or limits", ["code"])
SNAPSHOT_SWAPS = Counter("analytics_api_snapshot_loads_total", "Snapshot load attempts", ["result"])
SNAPSHOT_BYTES = Counter("analytics_api_snapshot_bytes_downloaded_total",
                         "Bytes fetched from the object store to load snapshots (chunks, indexes, whole files)")
SNAPSHOT_DELAY = Histogram("analytics_api_snapshot_swap_delay_seconds",
                           "Seconds from a manifest being published to this worker serving its version",
                           buckets=(0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800))
SNAPSHOT_CREATED = Gauge("analytics_api_snapshot_created_timestamp_seconds",
                         "created_at of the snapshot being served (oldest over workers)",
                         multiprocess_mode="livemin")


def render_metrics() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
