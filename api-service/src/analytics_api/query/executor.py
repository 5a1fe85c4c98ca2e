"""Run one validated query on a snapshot: own cursor, deadline, row cap, Arrow out."""

from __future__ import annotations

import time
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from analytics_api.errors import QueryRejected, QueryTimeout, ResultTooLarge
from analytics_api.query.watchdog import Watchdog
from analytics_api.snapshots.database import Snapshot

BATCH_ROWS = 8192


@dataclass(frozen=True)
class QueryResult:
    table: pa.Table
    columns: list[dict[str, str]]  # DuckDB's names and types, as users wrote them in SQL
    truncated: bool
    elapsed_ms: float


def execute_query(snapshot: Snapshot, sql: str, params: list | dict | None, *, max_rows: int,
                  timeout: float, watchdog: Watchdog) -> QueryResult:
    """Blocking: run in a worker thread. Stops reading at max_rows + 1 to detect truncation."""
    started = time.perf_counter()
    cursor = snapshot.conn.cursor()
    ticket = watchdog.arm(timeout, cursor.interrupt)
    error: Exception | None = None
    try:
        # A relation streams Arrow batches straight from the engine (no DB-API row copy).
        relation = cursor.sql(sql, params=params or None)
        columns = [{"name": n, "type": str(t)} for n, t in zip(relation.columns, relation.types, strict=True)]
        reader = relation.to_arrow_reader(BATCH_ROWS)
        batches: list[pa.RecordBatch] = []
        count = 0
        truncated = False
        for batch in reader:
            if count + batch.num_rows > max_rows:
                batches.append(batch.slice(0, max_rows - count))
                truncated = True
                break
            batches.append(batch)
            count += batch.num_rows
        table = pa.Table.from_batches(batches, schema=reader.schema)
        del relation, reader
    except duckdb.InterruptException:
        error = QueryTimeout(f"query exceeded the {timeout:g} s time limit and was stopped")
    except duckdb.OutOfMemoryException:
        error = ResultTooLarge("query needs more memory than this API allows; aggregate or filter more")
    except _USER_ERRORS as exc:
        error = QueryRejected(f"query failed: {_first_line(exc)}")
    finally:
        watchdog.disarm(ticket)
        cursor.close()
        del cursor
    if error is not None:
        # Raised outside the except block: no __context__ chain keeping the engine's
        # traceback (and with it the cursor and its result) alive after the response.
        try:
            raise error
        finally:
            error = None
    return QueryResult(table=table, columns=columns, truncated=truncated,
                       elapsed_ms=(time.perf_counter() - started) * 1000)


_USER_ERRORS = (duckdb.InvalidInputException, duckdb.BinderException, duckdb.ParserException,
                duckdb.ConversionException, duckdb.CatalogException, duckdb.OutOfRangeException,
                duckdb.NotImplementedException, duckdb.PermissionException, duckdb.SyntaxException,
                duckdb.ConstraintException, duckdb.TypeMismatchException)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:300]
