"""Alerts: one Slack-compatible message per incident and one when it ends, delivered to a real
HTTP server; persisted across restarts; a webhook that fails never fails a sync."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import structlog

from analytics_etl.alerts import Alerter, post_json
from analytics_etl.config import get_settings
from analytics_etl.monitor import Monitor
from analytics_etl.scheduler import sync_with_retries
from analytics_etl.status import WorkerStatus
from analytics_shared.errors import ConfigError, SourceError


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def worker(state: Path, clock: Clock, webhook) -> tuple[WorkerStatus, Alerter]:  # noqa: ANN001
    status = WorkerStatus(state, max_age_seconds=600, clock=clock)
    return status, Alerter(webhook.url, status, state, where="s3://acme/prod")


GOOD = {"status": "unchanged", "tables": {"orders": {"rows": 3}, "customers": {"rows": 2}}, "errors": {}}


def test_a_failing_sync_is_announced_once_and_its_recovery_once(tmp_path, clock, webhook):
    status, alerter = worker(tmp_path, clock, webhook)
    status.record_success(GOOD)
    alerter.evaluate()
    assert webhook.received == []
    status.record_failure(SourceError("source unusable (found while syncing orders): database disk image is malformed"))
    for _ in range(3):  # the next syncs fail the same way, minute after minute
        clock.now += 60
        alerter.evaluate()
    assert webhook.texts == [":red_circle: analytics-etl (s3://acme/prod): sync failed: source unusable "
                             "(found while syncing orders): database disk image is malformed"]
    assert webhook.received[0]["content_type"] == "application/json"
    clock.now += 60
    status.record_success(GOOD)
    alerter.evaluate()
    alerter.evaluate()
    assert len(webhook.texts) == 2
    assert webhook.texts[1].startswith(":large_green_circle: analytics-etl (s3://acme/prod): resolved after 3 min: "
                                       "sync failed: source unusable")


def test_a_restart_does_not_announce_an_open_incident_again(tmp_path, clock, webhook):
    status, alerter = worker(tmp_path, clock, webhook)
    status.record_failure(SourceError("source error: file is not a database"))
    alerter.evaluate()
    restarted_status, restarted = worker(tmp_path, clock, webhook)  # a redeploy, same ETL_STATE_DIR
    restarted.evaluate()
    assert len(webhook.texts) == 1
    restarted_status.record_success(GOOD)
    restarted.evaluate()
    assert len(webhook.texts) == 2 and "resolved" in webhook.texts[1]


def test_a_stale_table_and_an_old_snapshot_are_incidents_of_their_own(tmp_path, clock, webhook):
    status, alerter = worker(tmp_path, clock, webhook)
    status.record_success({**GOOD, "errors": {"orders": "source error: no such column: total"}})
    alerter.evaluate()
    assert webhook.texts == [":red_circle: analytics-etl (s3://acme/prod): table orders is stale "
                             "(keeps its last good data): source error: no such column: total"]
    clock.now += 601  # no good sync for longer than the limit (the loop hung, or every sync fails)
    alerter.evaluate()
    alerter.evaluate()
    assert len(webhook.texts) == 2 and "no successful sync for 10 min (limit 10 min)" in webhook.texts[1]
    status.record_success(GOOD)
    alerter.evaluate()
    resolved = sorted(webhook.texts[2:])
    assert len(resolved) == 2 and all("resolved" in text for text in resolved)
    assert "no successful sync" in resolved[0] and "table orders is stale" in resolved[1]


def test_an_undelivered_alert_is_logged_and_retried_until_the_webhook_takes_it(tmp_path, clock, webhook):
    status, alerter = worker(tmp_path, clock, webhook)
    webhook.replies = [500, 503]
    status.record_failure(SourceError("source error: boom"))
    with structlog.testing.capture_logs() as logs:
        alerter.evaluate()
        alerter.evaluate()
    assert [e["error"] for e in logs if e["event"] == "alert.undelivered"] == ["HTTP 500", "HTTP 503"]
    alerter.evaluate()
    alerter.evaluate()
    assert len(webhook.texts) == 3 and len(set(webhook.texts)) == 1, "retried, then delivered once"


def test_a_webhook_that_never_answers_costs_at_most_the_timeout(webhook):
    webhook.hang.set()
    assert post_json(webhook.url, {"text": "x"}, timeout=0.2) == "timed out"
    assert post_json("http://127.0.0.1:9/nothing-listens-here", {"text": "x"}) is not None


def test_a_corrupt_source_alerts_once_through_the_scheduler_and_recovers(make_settings, source_path, webhook):
    settings = make_settings(alert_webhook_url=webhook.url, max_retries=0)
    monitor = Monitor(settings)
    stop = threading.Event()
    assert sync_with_retries(settings, stop, monitor=monitor)["status"] == "published"
    pristine = source_path.read_bytes()
    source_path.write_bytes(b"overwritten " * 5000)
    for _ in range(3):
        assert sync_with_retries(settings, stop, monitor=monitor) is None
        monitor.alerter.evaluate()
    assert len(webhook.texts) == 1 and "sync failed: source error: file is not a database" in webhook.texts[0]
    source_path.write_bytes(pristine)
    assert sync_with_retries(settings, stop, monitor=monitor)["status"] == "unchanged"
    monitor.alerter.evaluate()
    assert len(webhook.texts) == 2 and "resolved" in webhook.texts[1]
    assert monitor.metrics.alerts.labels("sent")._value.get() == 2


def test_a_webhook_url_that_is_not_http_fails_at_start(tmp_path):
    with pytest.raises(ConfigError, match="ALERT_WEBHOOK_URL: Value error, must be an http"):
        get_settings(source_url="sqlite:///x.db", alert_webhook_url="hooks.slack.com/services/T0")
