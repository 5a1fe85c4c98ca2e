"""Alerts: one Slack-compatible message ({"text": ...}) when an incident opens, one when it ends.

Incidents, derived from WorkerStatus each time a sync ends and every CHECK_SECONDS:
  sync_failed     the last sync failed (after its retries)
  table:<name>    the table failed in the last sync and keeps its last good data (stale)
  snapshot_old    no sync has succeeded for READY_MAX_AGE_SECONDS (a hung or stopped loop too)
They are kept in ETL_STATE_DIR/alerts.json, so a restart does not announce an incident again.
A message that cannot be delivered is logged and retried at the next check; a webhook never
fails or delays a sync by more than its timeout, since the posts happen on the alert thread.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from analytics_etl.status import WorkerStatus
from analytics_shared.logging import get_logger

log = get_logger(__name__)
CHECK_SECONDS = 15.0
TIMEOUT_SECONDS = 5.0


def post_json(url: str, body: dict, timeout: float = TIMEOUT_SECONDS) -> str | None:
    """POST the JSON; None when delivered, else why not."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the operator's URL
            response.read()
        return None
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:  # refused, DNS, TLS, timeout
        return str(getattr(exc, "reason", exc))


def active_incidents(status: WorkerStatus) -> dict[str, str]:
    """Each open condition and what it is, in words an on-call engineer can act on."""
    found: dict[str, str] = {}
    if status.last_failure:
        found["sync_failed"] = f"sync failed: {status.last_failure['error']}"
    _, tables = status.snapshot()
    for name, table in sorted(tables.items()):
        if table["error"]:
            found[f"table:{name}"] = f"table {name} is stale (keeps its last good data): {table['error']}"
    age = status.age()
    if age > status.max_age:
        found["snapshot_old"] = (f"no successful sync for {age / 60:.0f} min (limit {status.max_age / 60:.0f} min): "
                                 "readers are served data at least that old")
    return found


class Alerter:
    def __init__(self, url: str, status: WorkerStatus, state_dir: Path, *, where: str,
                 on_delivery=None) -> None:  # noqa: ANN001 - callable(result: str)
        self.url = url
        self.status = status
        self.path = state_dir / "alerts.json"
        self.where = where
        self.on_delivery = on_delivery or (lambda _result: None)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # evaluate() from the thread and from tests never interleave
        self.incidents: dict[str, dict] = self._load()

    def _load(self) -> dict[str, dict]:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("alerts.state_unreadable", path=str(self.path), error=str(exc))
            return {}

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.incidents, indent=1))
        tmp.replace(self.path)

    def evaluate(self) -> None:
        """Open, resolve and (re)deliver: each incident is announced once and its end once."""
        with self._lock:
            now = self.status.clock()
            active = active_incidents(self.status)
            for key, summary in active.items():
                incident = self.incidents.get(key)
                if incident is None:
                    self.incidents[key] = {"opened_at": now, "summary": summary, "notified": False}
                    log.warning("alert.opened", incident=key, summary=summary)
                elif incident.get("resolved_at") is not None:
                    incident.pop("resolved_at")  # back before its end was announced: the same incident
            for key, incident in self.incidents.items():
                if key not in active and incident.get("resolved_at") is None:
                    incident["resolved_at"] = now
                    log.info("alert.resolved", incident=key, summary=incident["summary"])
            self._deliver()
            self._save()

    def _deliver(self) -> None:
        for key, incident in list(self.incidents.items()):
            resolved = incident.get("resolved_at") is not None
            if not incident["notified"]:
                if resolved:  # ended before anyone heard of it: nothing to say
                    del self.incidents[key]
                    continue
                incident["notified"] = self._send(f":red_circle: analytics-etl ({self.where}): {incident['summary']}")
            elif resolved and self._send(
                    f":large_green_circle: analytics-etl ({self.where}): resolved after "
                    f"{_duration(incident['resolved_at'] - incident['opened_at'])}: {incident['summary']}"):
                del self.incidents[key]

    def _send(self, text: str) -> bool:
        problem = post_json(self.url, {"text": text})
        if problem is not None:
            log.warning("alert.undelivered", error=problem, text=text, retry_in_seconds=CHECK_SECONDS)
        self.on_delivery("failed" if problem else "sent")
        return problem is None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._loop, name="etl-alerts", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(CHECK_SECONDS)
            self._wake.clear()
            try:
                self.evaluate()
            except Exception:  # an alerting bug must not end the alerting thread, nor the worker
                log.exception("alerts.crashed")


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{max(seconds, 0) / 60:.0f} min"
