"""Is it the table or the whole source? A damaged or unreachable database is one failure.

Without this, a corrupt SQLite file or a server that went away fails the first table with
the real cause and every later table with a consequence ("not found", "connection
refused"): each is marked stale and reported on its own, and the operator goes looking
for dropped tables. When a table fails, its error is checked for what only a source-wide
fault raises, then the source is probed on a fresh connection; either way the run stops
there with one source error, and every table keeps its last good data (nothing is published).
"""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa

from analytics_etl.errors import classify_source_error
from analytics_shared.errors import SourceError, TransientSourceError

# SQLite says the file itself is unusable (not one table): corrupt, not a database, unreadable.
_SQLITE_SOURCE_WIDE = ("SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_CANTOPEN", "SQLITE_IOERR")
# SQLSTATE classes of the connection or the server, not the statement: 08 connection exception,
# 57P operator intervention (shutdown), 53 insufficient resources, XX internal error (corruption).
_SQLSTATE_SOURCE_WIDE = ("08", "57P", "53", "XX")


def _causes(exc: BaseException) -> list[BaseException]:
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = getattr(exc, "orig", None) or exc.__cause__ or exc.__context__
    return chain


def _source_wide(exc: BaseException) -> bool:
    for cause in _causes(exc):
        if isinstance(cause, sqlite3.Error) and str(getattr(cause, "sqlite_errorname", "")).startswith(
                _SQLITE_SOURCE_WIDE):
            return True
        if isinstance(cause, sa.exc.DBAPIError) and cause.connection_invalidated:
            return True
        state = getattr(cause, "sqlstate", None) or (cause.args[0] if type(cause).__module__ == "pyodbc"
                                                     and cause.args else None)
        if isinstance(state, str) and state.startswith(_SQLSTATE_SOURCE_WIDE):
            return True
    return False


def probe(engine: sa.Engine, schemas: set[str | None]) -> BaseException | None:
    """Connect afresh and list the configured schemas' tables: None when the source answers."""
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            for schema in schemas:
                inspector.get_table_names(schema=schema)
    except Exception as exc:  # noqa: BLE001 - whatever it is, the source did not answer
        return exc
    return None


def source_failure(exc: BaseException, table: str, engine: sa.Engine,
                   schemas: set[str | None]) -> SourceError | None:
    """The run's error when `exc`, raised while syncing `table`, is the source's and not the table's."""
    cause = exc if _source_wide(exc) else probe(engine, schemas)
    if cause is None:
        return None
    error = classify_source_error(cause)
    what = "unavailable" if isinstance(error, TransientSourceError) else "unusable"
    message = f"source {what} (found while syncing {table}): {error.message.split(': ', 1)[-1]}"
    return TransientSourceError(message) if isinstance(error, TransientSourceError) else SourceError(message)
