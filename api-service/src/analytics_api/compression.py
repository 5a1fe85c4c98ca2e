"""HTTP compression of response bodies (gzip, zstd, br), negotiated by Accept-Encoding.

The work is done by starlette-compress, a maintained middleware: it parses Accept-Encoding
(q=0 refuses a coding, `*` stands for the rest, anything unknown falls back to identity),
compresses one-shot bodies in one call and streamed ones incrementally, sets Content-Encoding,
Content-Length and `Vary: Accept-Encoding`, and leaves alone 304s, bodies below the minimum size,
ranges, already-encoded bodies and media types outside its registry. When a client accepts
several codings the server's order decides: zstd, then br, then gzip.

Three things are this service's choice, not the library's:
- CSV is compressed too (its registry has JSON but not text/csv). Arrow IPC and Parquet are
  not: Parquet is compressed inside already, and an Arrow client asks for zstd in the IPC
  buffers themselves (serialize.py), which a reader can use without inflating the body first.
- Levels: the cheapest ones. On a 5,000-row JSON page (953 KB, rendered in ~17 ms) zstd level 1
  gives 6.4x in 3 ms, better than its level 3 (5.9x in 5 ms); brotli quality 1 gives 5.9x in
  5 ms, gzip level 1 5.0x in 7 ms where level 4 (the library's default) would take 14 ms for
  5.8x. Rendering stays the larger cost (docs/benchmarks.md, "Compression").
- Query ETags are weak (W/"..."): a gzip body and the identity body of one result are the
  same answer in different bytes, and a strong ETag may not be shared across content codings.
  The library leaves ETags as they are, so answer.py issues them weak from the start; the 304
  path compares them weakly, as If-None-Match always does.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette_compress import CompressMiddleware, add_compress_type

ENCODINGS = ("zstd", "br", "gzip")
ZSTD_LEVEL = 1
BROTLI_QUALITY = 1
GZIP_LEVEL = 1


def parse_encodings(text: str) -> tuple[str, ...]:
    """COMPRESSION_ENCODINGS: a comma-separated subset of ENCODINGS; empty or `none` turns it off."""
    names = tuple(n.strip().lower() for n in text.split(",") if n.strip())
    if names == ("none",):
        return ()
    unknown = [n for n in names if n not in ENCODINGS]
    if unknown:
        raise ValueError(f"unknown encoding {unknown[0]!r} (use some of {', '.join(ENCODINGS)}, or none)")
    return names


def install_compression(app: FastAPI, encodings: tuple[str, ...], min_bytes: int) -> None:
    if not encodings:
        return
    add_compress_type("text/csv")  # process-wide registry; adding twice is harmless
    app.add_middleware(CompressMiddleware, minimum_size=min_bytes,
                       zstd="zstd" in encodings, zstd_level=ZSTD_LEVEL,
                       brotli="br" in encodings, brotli_quality=BROTLI_QUALITY,
                       gzip="gzip" in encodings, gzip_level=GZIP_LEVEL)
