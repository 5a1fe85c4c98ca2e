"""Pagination: page requests and the opaque `next` cursors that continue them.

A cursor carries the request as the client made it (SQL or named query, the client's own
parameters, format), the snapshot version of the first page, the next page's offset and
size. It is base64url JSON, not signed, because nothing in it is trusted: following a cursor
validates and authorizes the query again for the caller's token, under the caller's own row
filters, so a forged cursor, or one handed to another user, yields no more than that user
could ask for directly. The version pins every page to one snapshot; once that version is
no longer kept open (SNAPSHOT_KEEP_PREVIOUS), following the cursor is 410 Gone.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, replace

import orjson

from analytics_api.errors import BadRequest

MAX_CURSOR_CHARS = 64_000


@dataclass(frozen=True)
class Page:
    size: int
    offset: int = 0
    version: str | None = None  # None: the first page, on the version being served
    count: bool = False  # count=exact: also report every row of the result


@dataclass(frozen=True)
class Cursor:
    page: Page
    format: str
    sql: str | None = None
    name: str | None = None  # a named query instead of SQL
    params: list | dict | None = None

    def following(self, version: str) -> str:
        """The cursor of the page after this one (pinned to `version`)."""
        page = replace(self.page, offset=self.page.offset + self.page.size, version=version)
        body = {"v": page.version, "o": page.offset, "n": page.size, "c": page.count, "f": self.format,
                "q": self.sql, "name": self.name, "p": self.params}
        return base64.urlsafe_b64encode(orjson.dumps(body)).decode().rstrip("=")


def page_of(page_size: object, count: object, max_page_size: int) -> Page | None:
    """The first page asked for by `page_size` (and `count`), or None for an unpaged request."""
    if page_size is None or page_size == "":
        if count not in (None, ""):
            raise BadRequest("count: only with page_size")
        return None
    try:
        size = int(page_size)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadRequest("page_size: must be an integer") from None
    if not 1 <= size <= max_page_size:
        raise BadRequest(f"page_size: must be between 1 and {max_page_size}")
    if count not in (None, "", "exact"):
        raise BadRequest("count: the only value is 'exact'")
    return Page(size=size, count=count == "exact")


def decode(text: str, max_page_size: int) -> Cursor:
    """The cursor a client sent back; BadRequest when it is not one this API wrote."""
    if len(text) > MAX_CURSOR_CHARS:
        raise BadRequest("cursor: too long")
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        page = Page(size=int(raw["n"]), offset=int(raw["o"]), version=str(raw["v"]), count=bool(raw["c"]))
        cursor = Cursor(page=page, format=str(raw["f"]), sql=raw["q"], name=raw["name"], params=raw["p"])
    except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise BadRequest("cursor: not a cursor from this API (pass `next` back unchanged)") from None
    if (not 1 <= page.size <= max_page_size or page.offset < 0
            or (cursor.sql is None) == (cursor.name is None)
            or not isinstance(cursor.params, (list, dict, type(None)))):
        raise BadRequest("cursor: not a cursor from this API (pass `next` back unchanged)")
    return cursor
