"""A JSON response encoded by orjson (datetimes, UUIDs and numpy-free speed)."""

from __future__ import annotations

import orjson
from starlette.responses import Response


class JsonResponse(Response):
    media_type = "application/json"

    def render(self, content: object) -> bytes:
        if isinstance(content, bytes):
            return content
        return orjson.dumps(content, default=str)
