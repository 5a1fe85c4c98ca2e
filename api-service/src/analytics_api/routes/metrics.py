"""`/metrics`: Prometheus exposition, summed over every Gunicorn worker."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from analytics_api.metrics import render_metrics

router = APIRouter(tags=["metrics"])


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics() -> Response:
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)
