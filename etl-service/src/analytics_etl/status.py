"""What the worker knows about its own syncs: read by /health, /ready, /metrics and the alerts.

Kept in ETL_STATE_DIR/worker.json, so a restart still knows when the last good sync was and
which tables were failing: readiness, staleness and open incidents survive a redeploy.
`last_success` next to it is what `analytics-etl health` reads.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from analytics_shared.errors import AnalyticsError
from analytics_shared.logging import get_logger

log = get_logger(__name__)


def error_class(exc: BaseException) -> str:
    return exc.code if isinstance(exc, AnalyticsError) else type(exc).__name__


class WorkerStatus:
    def __init__(self, state_dir: Path, *, max_age_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self.dir = state_dir
        self.path = state_dir / "worker.json"
        self.max_age = max_age_seconds
        self.clock = clock
        self.started_at = clock()
        self.scheduler_alive: Callable[[], bool] = lambda: False  # the scheduler installs its own
        self.last_success_at: float | None = None
        self.last_failure: dict | None = None  # {"at", "error", "error_class"} of the last failed sync
        self.tables: dict[str, dict] = {}  # name -> {"ok_at": epoch of its last good sync, "error": str | None}
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        try:
            saved = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:  # a damaged file costs the history, never the worker
            log.warning("status.unreadable", path=str(self.path), error=str(exc))
            return
        self.last_success_at = saved.get("last_success_at")
        self.last_failure = saved.get("last_failure")
        self.tables = saved.get("tables") or {}

    def _save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"last_success_at": self.last_success_at, "last_failure": self.last_failure,
                                   "tables": self.tables}))
        tmp.replace(self.path)

    def record_success(self, record: dict) -> None:
        """A sync that published or found nothing to change: its tables are current as of now."""
        now = self.clock()
        with self._lock:
            self.last_success_at, self.last_failure = now, None
            errors = record.get("errors") or {}
            # Rebuilt from the run: a table no longer synced stops being reported.
            self.tables = {name: {"ok_at": (self.tables.get(name) or {}).get("ok_at") if name in errors else now,
                                  "error": errors.get(name)}
                           for name in {*(record.get("tables") or {}), *errors}}
            self._save()
        (self.dir / "last_success").write_text(datetime.fromtimestamp(now, UTC).isoformat())

    def record_failure(self, exc: BaseException) -> None:
        """A sync that failed for good (after its retries): nothing was published."""
        message = exc.message if isinstance(exc, AnalyticsError) else f"{type(exc).__name__}: {exc}"
        with self._lock:
            self.last_failure = {"at": self.clock(), "error": message, "error_class": error_class(exc)}
            self._save()

    def age(self) -> float:
        """Seconds since the last good sync; since the worker started when it has had none."""
        return self.clock() - (self.last_success_at or self.started_at)

    def readiness(self) -> tuple[bool, dict]:
        with self._lock:
            age = self.age()
            ready = self.last_success_at is not None and age <= self.max_age
            return ready, {"ready": ready, "last_success_at": _iso(self.last_success_at),
                           "age_seconds": round(age, 1), "max_age_seconds": self.max_age,
                           "last_error": (self.last_failure or {}).get("error"),
                           "stale_tables": sorted(n for n, t in self.tables.items() if t["error"])}

    def snapshot(self) -> tuple[float | None, dict[str, dict]]:
        """(last success, tables) as one consistent copy, for the metrics and the alerts."""
        with self._lock:
            return self.last_success_at, {n: dict(t) for n, t in self.tables.items()}


def _iso(epoch: float | None) -> str | None:
    return datetime.fromtimestamp(epoch, UTC).isoformat() if epoch is not None else None
