"""Run one validated query on a snapshot: own cursor, deadline, row cap.

Blocking: both run in a worker thread. Two ways out: Arrow batches (any size, any type), and
for query shapes known to return a few plain rows, Python tuples (see small_results.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import duckdb
import pyarrow as pa

from analytics_api.errors import QueryRejected, QueryTimeout, ResultTooLarge
from analytics_api.query.small_results import rows_to_dicts
from analytics_api.query.serialize import SMALL_RESULT
from analytics_api.query.watchdog import Watchdog
from analytics_api.snapshots.database import Snapshot

BATCH_ROWS = 8192
T = TypeVar("T")


@dataclass(frozen=True)
class QueryResult:
    table: pa.Table
    columns: list[dict[str, str]]  # DuckDB's names and types, as users wrote them in SQL
    truncated: bool
    elapsed_ms: float
    total_rows: int | None = None  # every row of the result, when asked (count=exact)


@dataclass(frozen=True)
class SmallResult:
    data: list[dict]  # JSON-ready rows
    columns: list[dict[str, str]]
    truncated: bool
    elapsed_ms: float


def execute_query(snapshot: Snapshot, sql: str, params: list | dict | None, *, max_rows: int,
                  timeout: float, watchdog: Watchdog, offset: int = 0, count_all: bool = False) -> QueryResult:
    """Blocking: run in a worker thread. Skips `offset` rows (earlier pages), stops reading at
    max_rows + 1 to detect truncation; `count_all`: also counts every row of the result."""
    started = time.perf_counter()

    def read(cursor: duckdb.DuckDBPyConnection) -> QueryResult:
        # First, while the cursor has no streaming result open: it serves one result at a time.
        total = cursor.execute(f"SELECT count(*) FROM ({sql})", params or None).fetchall()[0][0] if count_all else None
        # A relation streams Arrow batches straight from the engine (no DB-API row copy).
        relation = cursor.sql(sql, params=params or None)
        columns = [{"name": n, "type": str(t)} for n, t in zip(relation.columns, relation.types, strict=True)]
        reader = relation.to_arrow_reader(BATCH_ROWS)
        batches: list[pa.RecordBatch] = []
        kept, skip = 0, offset
        truncated = False
        for batch in reader:
            if skip:  # earlier pages' rows: on one version, the same plan yields them in the same order
                taken = min(skip, batch.num_rows)
                skip -= taken
                batch = batch.slice(taken)
            if kept + batch.num_rows > max_rows:
                batches.append(batch.slice(0, max_rows - kept))
                truncated = True
                break
            batches.append(batch)
            kept += batch.num_rows
        table = pa.Table.from_batches(batches, schema=reader.schema)
        return QueryResult(table=table, columns=columns, truncated=truncated,
                           elapsed_ms=(time.perf_counter() - started) * 1000, total_rows=total)

    return _on_cursor(snapshot, timeout, watchdog, read)  # type: ignore[return-value]


def execute_small(snapshot: Snapshot, sql: str, params: list | dict | None, *, max_rows: int,
                  timeout: float, watchdog: Watchdog) -> SmallResult | None:
    """Fetch up to SMALL_RESULT rows as tuples.

    None when the answer is not small and plain after all: the caller then runs it the Arrow
    way. Errors (bad SQL, wrong parameter, time limit) are raised as execute_query raises them.
    """
    started = time.perf_counter()

    def fetch(cursor: duckdb.DuckDBPyConnection) -> SmallResult | None:
        cursor.execute(sql, params or None)
        names = [d[0] for d in cursor.description]
        types = [str(d[1]) for d in cursor.description]
        rows = cursor.fetchmany(SMALL_RESULT + 1)
        data = rows_to_dicts(names, types, rows) if len(rows) <= SMALL_RESULT else None
        if data is None:
            return None
        return SmallResult(data=data[:max_rows], columns=[{"name": n, "type": t} for n, t in zip(names, types)],
                           truncated=len(data) > max_rows,
                           elapsed_ms=(time.perf_counter() - started) * 1000)

    return _on_cursor(snapshot, timeout, watchdog, fetch)


def _on_cursor(snapshot: Snapshot, seconds: float, watchdog: Watchdog,
               work: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
    """work(cursor) on a fresh cursor that the watchdog interrupts after `seconds`; engine
    errors become API errors."""
    cursor = snapshot.conn.cursor()
    ticket = watchdog.arm(seconds, cursor.interrupt)
    error: Exception | None = None
    try:
        return work(cursor)
    except duckdb.Error as exc:
        error = _api_error(exc, seconds)
    finally:
        watchdog.disarm(ticket)
        cursor.close()
        del cursor
    # Raised outside the except block: no __context__ chain keeping the engine's
    # traceback (and with it the cursor and its result) alive after the response.
    try:
        raise error
    finally:
        error = None


def _api_error(exc: duckdb.Error, timeout: float) -> Exception:
    if isinstance(exc, duckdb.InterruptException):
        return QueryTimeout(f"query exceeded the {timeout:g} s time limit and was stopped")
    if isinstance(exc, duckdb.OutOfMemoryException):
        return ResultTooLarge("query needs more memory than this API allows; aggregate or filter more")
    if isinstance(exc, _USER_ERRORS):
        return QueryRejected(f"query failed: {_first_line(exc)}")
    return exc


_USER_ERRORS = (duckdb.InvalidInputException, duckdb.BinderException, duckdb.ParserException,
                duckdb.ConversionException, duckdb.CatalogException, duckdb.OutOfRangeException,
                duckdb.NotImplementedException, duckdb.PermissionException, duckdb.SyntaxException,
                duckdb.ConstraintException, duckdb.TypeMismatchException)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:300]
