"""Transient vs terminal: only errors that another attempt can fix are retried."""

from __future__ import annotations

import duckdb
import sqlalchemy as sa

from analytics_shared.errors import AnalyticsError, SourceError, TransientSourceError


def classify_source_error(exc: BaseException) -> SourceError:
    """Dropped connections and timeouts are transient; bad SQL and missing objects are not."""
    if isinstance(exc, duckdb.OutOfMemoryException):  # the build's budget, not the source: say which knob
        return SourceError(f"DuckDB ran out of memory (raise DUCKDB_MEMORY_LIMIT): {str(exc).splitlines()[0]}")
    if isinstance(exc, sa.exc.DBAPIError) and (exc.connection_invalidated
                                               or isinstance(exc, (sa.exc.OperationalError,
                                                                   sa.exc.InterfaceError))):
        return TransientSourceError(f"source unavailable: {str(exc.orig or exc).splitlines()[0]}")
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return TransientSourceError(f"source unavailable: {exc}")
    text = str(getattr(exc, "orig", None) or exc).splitlines()[0] if str(exc) else type(exc).__name__
    return SourceError(f"source error: {text}")


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, AnalyticsError) and exc.transient


class SyncAborted(AnalyticsError):
    """The run was asked to stop (SIGTERM) before it published."""

    code = "aborted"
