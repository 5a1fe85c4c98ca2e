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
        whitelist = services.whitelist
        tables = {}
        for name, entry in sorted(manifest.tables.items()):
            if not whitelist.may_read(name, principal.scopes):
                continue  # a table the token may not query: not even its name
            tables[name] = {
                "status": entry.status, "change_detection": entry.change_detection,
                "synced_at": entry.synced_at.isoformat() if entry.synced_at else None,
                "age_seconds": round((now - entry.synced_at).total_seconds(), 1) if entry.synced_at else None}
            # Row counts and the source's error text are about every row: only for unfiltered readers.
            if not whitelist.row_filtered(name, principal.scopes):
                tables[name].update(rows=entry.rows, last_error=entry.last_error)
        return JsonResponse({
            "success": True,
            "version": manifest.version,
            "previous_version": manifest.previous_version,
            "created_at": manifest.created_at.isoformat(),
            "age_seconds": round((now - manifest.created_at).total_seconds(), 1),
            "size_bytes": manifest.size_bytes,
            "format_version": manifest.format_version,
            "chunks": _chunks(snap),
            "loaded_at": snap.loaded_at.isoformat(),
            "tables": tables,
        })


def _chunks(snap) -> dict | None:  # noqa: ANN001
    """What loading this version cost on this host (format 2): chunks reused from the version
    served before it, and bytes fetched from the store."""
    if snap.manifest.format_version == 1:
        return None
    stats = snap.local.stats
    return {"count": stats.chunks, "reused": stats.reused, "reused_share": stats.reused_share,
            "downloaded_bytes": stats.downloaded_bytes, "load_seconds": stats.seconds}
