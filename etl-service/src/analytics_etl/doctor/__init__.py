"""`analytics-etl doctor`: is the source and the store set up for a sync, before the first one?

Every check prints one line, OK / WARN / FAIL with the fix; the exit status is 1 when any
check failed. Read-only against the source; on the store it writes, overwrites (conditionally)
and deletes one scratch key under doctor/.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from analytics_etl.config import EtlSettings
from analytics_etl.doctor.check import Check, fail, first_line
from analytics_etl.doctor.source import source_checks
from analytics_etl.doctor.store import store_checks
from analytics_shared.storage import open_store


def run_checks(settings: EtlSettings) -> Iterable[Check]:
    """Every check, as it completes: source first (the SQL Server extras with it), then the store."""
    yield from source_checks(settings)
    try:
        store = open_store(settings.storage_url, region=settings.s3_region, endpoint_url=settings.s3_endpoint_url)
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the other checks still count
        yield fail("store", f"cannot open {settings.storage_url}: {first_line(exc)}", "check STORAGE_URL / S3_*")
        return
    yield from store_checks(settings, store)


def doctor(settings: EtlSettings, write) -> int:  # noqa: ANN001 - write(str)
    """Print one line per check; 1 when any failed, else 0."""
    started = time.perf_counter()
    counts = {"OK": 0, "WARN": 0, "FAIL": 0}
    for check in run_checks(settings):
        counts[check.status] += 1
        write(check.line() + "\n")
    seconds = time.perf_counter() - started
    write(f"doctor: {counts['OK']} OK, {counts['WARN']} WARN, {counts['FAIL']} FAIL in {seconds:.2f} s\n")
    return 1 if counts["FAIL"] else 0
