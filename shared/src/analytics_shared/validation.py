"""One-line descriptions of pydantic validation errors, for messages users read."""

from __future__ import annotations

from pydantic import ValidationError


def describe_first_error(exc: ValidationError) -> str:
    """'<dotted location>: <message>' of the first problem (the rest are usually consequences)."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "document"
    return f"{where}: {first['msg']}"
