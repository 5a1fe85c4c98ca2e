"""One preflight finding: OK, WARN or FAIL, what was found, and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["OK", "WARN", "FAIL"]


@dataclass(frozen=True)
class Check:
    status: Status
    subject: str  # "source", "table orders", "store"
    message: str
    fix: str | None = None

    def line(self) -> str:
        text = f"{self.status:<4} {self.subject}: {self.message}"
        return f"{text} -> fix: {self.fix}" if self.fix and self.status != "OK" else text


def ok(subject: str, message: str, fix: str | None = None) -> Check:
    return Check("OK", subject, message, fix)  # the fix is not printed: interchangeable with warn()


def warn(subject: str, message: str, fix: str | None = None) -> Check:
    return Check("WARN", subject, message, fix)


def fail(subject: str, message: str, fix: str | None = None) -> Check:
    return Check("FAIL", subject, message, fix)


def first_line(exc: BaseException) -> str:
    """The gist of an error: a driver's message without SQLAlchemy's statement and background."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
