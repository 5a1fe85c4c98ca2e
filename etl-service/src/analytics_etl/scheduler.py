"""`analytics-etl run`: APScheduler loop with retries of transient errors and a clean SIGTERM."""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime

from apscheduler.schedulers.blocking import BlockingScheduler

from analytics_etl.config import EtlSettings
from analytics_etl.errors import SyncAborted, is_transient
from analytics_etl.monitor import Monitor
from analytics_etl.pipeline import run_sync
from analytics_shared.errors import AnalyticsError
from analytics_shared.logging import get_logger

log = get_logger(__name__)


def sync_with_retries(settings: EtlSettings, stop: threading.Event, *, base_delay: float = 2.0,
                      sync=run_sync, monitor: Monitor | None = None) -> dict | None:  # noqa: ANN001 - injectable
    """Run one sync, retrying transient failures with exponential backoff; terminal ones once.
    Every attempt's outcome goes to the monitor (status, metrics, alerts)."""
    monitor = monitor or Monitor(settings)
    for attempt in range(settings.max_retries + 1):
        started = time.monotonic()
        try:
            result = sync(settings, stop=stop)
            monitor.succeeded(result, time.monotonic() - started)
            return result
        except SyncAborted as exc:
            log.warning("sync.aborted", reason=exc.message)
            monitor.aborted(time.monotonic() - started)
            return None
        except AnalyticsError as exc:
            final = not is_transient(exc) or attempt == settings.max_retries
            monitor.failed(exc, time.monotonic() - started, final=final)
            if final:
                log.error("sync.failed", error=exc.message, transient=is_transient(exc), attempts=attempt + 1)
                return None
            delay = base_delay * 2 ** attempt
            log.warning("sync.retrying", error=exc.message, attempt=attempt + 1, delay_seconds=delay)
            if stop.wait(delay):
                return None
        except Exception as exc:  # a bug: log it with its traceback, keep the scheduler alive
            log.exception("sync.crashed")
            monitor.failed(exc, time.monotonic() - started, final=True)
            return None
    return None


def run_scheduler(settings: EtlSettings) -> None:
    stop = threading.Event()
    scheduler = BlockingScheduler(timezone="UTC")

    def on_signal(signum: int, _frame: object) -> None:
        log.info("scheduler.stopping", signal=signal.Signals(signum).name)
        stop.set()  # the running sync abandons before publishing; nothing half-done is visible
        threading.Thread(target=scheduler.shutdown, kwargs={"wait": True}, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    settings.etl_state_dir.mkdir(parents=True, exist_ok=True)
    monitor = Monitor(settings)
    scheduler.add_job(sync_with_retries, "interval", args=[settings, stop], kwargs={"monitor": monitor},
                      seconds=settings.sync_interval_seconds, next_run_time=datetime.now(UTC), max_instances=1,
                      coalesce=True, misfire_grace_time=settings.sync_interval_seconds, id="sync")
    monitor.start(scheduler_alive=lambda: scheduler.running and scheduler.get_job("sync") is not None)
    log.info("scheduler.started", interval_seconds=settings.sync_interval_seconds, tables=settings.table_names)
    started = time.monotonic()
    try:
        scheduler.start()
    finally:
        monitor.stop()
    log.info("scheduler.stopped", uptime_seconds=round(time.monotonic() - started, 1))
