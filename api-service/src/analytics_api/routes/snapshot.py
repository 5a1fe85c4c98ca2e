"""`/snapshot`: which snapshot is being served and how fresh each table is."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from analytics_api.deps import QueryUser, ServicesDep
from analytics_api.responses import JsonResponse

router = APIRouter(tags=["snapshot"])


@router.get("/snapshot", summary="The served snapshot's version, age and table freshness")
async def snapshot(services: ServicesDep, principal: QueryUser) -> JsonResponse:
    now = datetime.now(UTC)
    with services.snapshots.use() as snap:
        manifest = snap.manifest
        tables = {
            name: {"rows": entry.rows, "status": entry.status, "change_detection": entry.change_detection,
                   "synced_at": entry.synced_at.isoformat() if entry.synced_at else None,
                   "age_seconds": round((now - entry.synced_at).total_seconds(), 1) if entry.synced_at else None,
                   "last_error": entry.last_error}
            for name, entry in sorted(manifest.tables.items()) if name in services.whitelist.tables
        }
        return JsonResponse({
            "success": True,
            "version": manifest.version,
            "previous_version": manifest.previous_version,
            "created_at": manifest.created_at.isoformat(),
            "age_seconds": round((now - manifest.created_at).total_seconds(), 1),
            "size_bytes": manifest.size_bytes,
            "loaded_at": snap.loaded_at.isoformat(),
            "tables": tables,
        })
