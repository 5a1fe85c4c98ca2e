"""Prometheus metrics of the worker, served on /metrics (http_server.py).

Counters and the duration histogram are updated when a sync ends (monitor.py); ages are
computed when scraped, from WorkerStatus, so they keep growing while no sync succeeds.
One registry per worker: tests build their own, and nothing is registered twice.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import (CONTENT_TYPE_LATEST, GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR,
                               CollectorRegistry, Counter, Gauge, Histogram, generate_latest)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from analytics_etl.status import WorkerStatus

_DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)


class _Ages(Collector):
    """Ages as of the scrape: a table that stopped syncing grows stale between runs too."""

    def __init__(self, status: WorkerStatus) -> None:
        self.status = status

    def collect(self) -> Iterator[GaugeMetricFamily]:
        last, tables = self.status.snapshot()
        now = self.status.clock()
        success = GaugeMetricFamily("analytics_etl_last_success_timestamp_seconds",
                                    "When the last sync that published or found no change ended (Unix time)")
        if last is not None:
            success.add_metric([], last)
        yield success
        stale = GaugeMetricFamily("analytics_etl_table_staleness_seconds",
                                  "Seconds since the table last synced successfully", labels=["table"])
        for name, table in sorted(tables.items()):
            since = table["ok_at"] if table["ok_at"] is not None else self.status.started_at
            stale.add_metric([name], max(0.0, now - since))
        yield stale


class EtlMetrics:
    def __init__(self, status: WorkerStatus, registry: CollectorRegistry | None = None) -> None:
        if registry is None:  # the worker's own: it also reports the process (memory, CPU, GC)
            registry = CollectorRegistry()
            for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                registry.register(collector)
        self.registry = registry
        r = self.registry
        self.duration = Histogram("analytics_etl_sync_duration_seconds", "Duration of a sync attempt",
                                  ["status"], buckets=_DURATION_BUCKETS, registry=r)
        self.rows_read = Counter("analytics_etl_table_rows_read_total", "Rows read from the source", ["table"],
                                 registry=r)
        self.rows_changed = Counter("analytics_etl_table_rows_changed_total",
                                    "Rows inserted, updated or deleted in the snapshot", ["table"], registry=r)
        self.rows = Gauge("analytics_etl_table_rows", "Rows of the table in the snapshot", ["table"], registry=r)
        self.uploaded_bytes = Counter("analytics_etl_uploaded_bytes_total", "Bytes uploaded to the object store",
                                      registry=r)
        self.uploaded_objects = Counter("analytics_etl_uploaded_objects_total",
                                        "Objects uploaded to the object store", registry=r)
        self.failures = Counter("analytics_etl_failures_total",
                                "Failed tables and failed sync attempts (table empty: the whole sync)",
                                ["table", "error_class"], registry=r)
        self.alerts = Counter("analytics_etl_alert_deliveries_total", "Alert webhook posts", ["result"], registry=r)
        self.registry.register(_Ages(status))

    def observe_run(self, record: dict, seconds: float) -> None:
        """A sync that returned its run record (published, unchanged, or published with stale tables)."""
        self.duration.labels(record["status"]).observe(seconds)
        for name, table in record.get("tables", {}).items():
            self.rows_read.labels(name).inc(table.get("read", 0))
            self.rows_changed.labels(name).inc(table.get("changed", 0))
            self.rows.labels(name).set(table["rows"])
        for name in record.get("errors", {}):
            self.failures.labels(name, record.get("error_classes", {}).get(name, "source_error")).inc()
        self.uploaded_bytes.inc(record.get("uploaded_bytes", 0))
        self.uploaded_objects.inc(record.get("uploaded_objects", 0))

    def observe_failure(self, error_class: str, seconds: float, *, status: str = "failed") -> None:
        self.duration.labels(status).observe(seconds)
        if status == "failed":
            self.failures.labels("", error_class).inc()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
