"""The console's static files, read once at start and held in memory with a gzip copy.

Read once because the set is fixed by the package (a file added at run time is never served,
so no path from a request ever reaches the filesystem), and gzipped once because the vendored
bundle is ~800 KB raw but ~260 KB compressed: the first load must stay under 400 KB on the wire.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
_TYPES = {".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".html": "text/html; charset=utf-8",
          ".json": "application/json", ".svg": "image/svg+xml", ".txt": "text/plain; charset=utf-8"}
_MIN_GZIP = 512  # below this the gzip header costs more than it saves


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    media_type: str
    etag: str


def make_asset(body: bytes, name: str) -> Asset:
    suffix = Path(name).suffix
    media_type = _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    packed = gzip.compress(body, compresslevel=9, mtime=0) if len(body) >= _MIN_GZIP else None
    return Asset(body, packed, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def load_assets(root: Path = STATIC_DIR) -> dict[str, Asset]:
    """Every file under static/, by its path relative to it (`app.js`, `vendor/vendor.js`)."""
    assets = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            rel = path.relative_to(root).as_posix()
            assets[rel] = make_asset(path.read_bytes(), rel)
    return assets
