"""`/schema`: the whitelisted tables this token may query, their columns, types and row counts
(row counts only of the tables it reads unfiltered)."""

from __future__ import annotations

from fastapi import APIRouter

from analytics_api.deps import SchemaUser, ServicesDep
from analytics_api.responses import JsonResponse
from analytics_api.whitelist import fold_name

router = APIRouter(tags=["schema"])


@router.get("/schema", summary="Tables, columns, types and row counts")
async def schema(services: ServicesDep, principal: SchemaUser) -> JsonResponse:
    tables = {}
    with services.snapshots.use() as snap:
        whitelist = services.whitelist
        for name, rule in sorted(whitelist.tables.items()):
            if not whitelist.may_read(name, principal.scopes):
                continue
            columns = snap.schema.get(name)
            if columns is None:
                continue  # whitelisted but not in this snapshot (not synced yet)
            entry = snap.manifest.tables.get(name)
            allowed = rule.columns
            # A filtered caller sees its own rows only: the table's total would leak the rest.
            filtered = whitelist.row_filtered(name, principal.scopes)
            tables[name] = {
                "description": rule.description,
                "columns": [{"name": c, "type": t} for c, t in columns.items()
                            if allowed is None or fold_name(c) in allowed],
                "row_count": entry.rows if entry and not filtered else None,
                "row_filtered": filtered,
                "primary_key": entry.primary_key if entry else [],
                "synced_at": entry.synced_at.isoformat() if entry and entry.synced_at else None,
                "status": entry.status if entry else None,
            }
        version = snap.version
    return JsonResponse({"success": True, "snapshot_version": version, "tables": tables})
