"""Where `analytics-etl run` reports each sync: status (/health, /ready), metrics, alerts.

The scheduler calls succeeded() / failed() once per attempt; start() brings up the HTTP
server and the alert thread, neither of which can stop the syncs.
"""

from __future__ import annotations

from collections.abc import Callable

from analytics_etl.alerts import Alerter
from analytics_etl.config import EtlSettings
from analytics_etl.http_server import start_http_server
from analytics_etl.metrics import EtlMetrics
from analytics_etl.status import WorkerStatus, error_class


class Monitor:
    def __init__(self, settings: EtlSettings) -> None:
        self.settings = settings
        self.status = WorkerStatus(settings.etl_state_dir, max_age_seconds=settings.ready_max_age)
        self.metrics = EtlMetrics(self.status)
        self.alerter = None
        if settings.alert_webhook_url:
            self.alerter = Alerter(settings.alert_webhook_url, self.status, settings.etl_state_dir,
                                   where=settings.storage_url,
                                   on_delivery=lambda result: self.metrics.alerts.labels(result).inc())
        self.http = None

    def start(self, scheduler_alive: Callable[[], bool]) -> None:
        self.status.scheduler_alive = scheduler_alive
        if self.settings.http_port is not None:
            self.http = start_http_server(self.settings.http_port, self.status, self.metrics)
        if self.alerter is not None:
            self.alerter.start()

    def stop(self) -> None:
        if self.http is not None:
            self.http.shutdown()
            self.http.server_close()
        if self.alerter is not None:
            self.alerter.stop()

    def succeeded(self, record: dict, seconds: float) -> None:
        self.status.record_success(record)
        self.metrics.observe_run(record, seconds)
        self._wake()

    def failed(self, exc: BaseException, seconds: float, *, final: bool) -> None:
        """A failed attempt: counted every time; the sync counts as failed once retries are over."""
        self.metrics.observe_failure(error_class(exc), seconds)
        if final:
            self.status.record_failure(exc)
            self._wake()

    def aborted(self, seconds: float) -> None:
        self.metrics.observe_failure("aborted", seconds, status="aborted")

    def _wake(self) -> None:
        if self.alerter is not None:
            self.alerter.wake()
