"""Liveness and readiness: no auth, no rate limit (probes must always get through)."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from fastapi import APIRouter

from analytics_api.deps import ServicesDep
from analytics_api.responses import JsonResponse

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness: the process is up")
async def health() -> JsonResponse:
    return JsonResponse({"status": "ok"})


@router.get("/ready", summary="Readiness: a snapshot is loaded and being served")
async def ready(services: ServicesDep) -> JsonResponse:
    snap = services.snapshots.current
    status = services.snapshots.status()
    if snap is None:
        return JsonResponse({"status": "not_ready", "snapshot_version": None, "last_error": status.last_error,
                             "worker_pid": os.getpid()}, status_code=503)
    age = (datetime.now(UTC) - snap.manifest.created_at).total_seconds()
    return JsonResponse({
        "status": "ready",
        "snapshot_version": snap.version,
        "snapshot_created_at": snap.manifest.created_at.isoformat(),
        "snapshot_age_seconds": round(age, 1),
        "loaded_at": snap.loaded_at.isoformat(),
        "checked_at": status.checked_at.isoformat() if status.checked_at else None,
        "last_error": status.last_error,
        "worker_pid": os.getpid(),  # which Gunicorn worker answered: each one loads snapshots on its own
    })
