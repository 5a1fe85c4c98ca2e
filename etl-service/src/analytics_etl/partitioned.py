"""Full loads of a large table as many small key ranges, read by parallel workers.

One connectorx stream feeds DuckDB batch by batch in one thread: reading and inserting
take turns, and the stream keeps the GIL while it waits for its next batch, so a second
stream of the same table (connectorx `partition_on`) gained nothing (docs/benchmarks.md).
Here the integer key's span is cut into ranges of about `range_rows` rows each (from the
catalog's row estimate, the key's min and max and, on PostgreSQL, the key's histogram in
the planner statistics, which keeps ranges small when the keys are not evenly spread).
READ_PARTITIONS workers each read one range at a time with connectorx's whole-result Arrow
read, which releases the GIL, and hand the ranges to the single DuckDB writer through a
bounded channel (channel.py).
Reading and inserting overlap, and memory is a few ranges, not the table.

Every row is read exactly once whatever the keys look like: the ranges are half-open and
the first is open below (and takes NULL keys), the last open above, so gaps, negative
keys, a stale min/max, a span smaller than the worker count or an empty table change
only how full the ranges are. Unlike one stream, the ranges are separate statements,
each its own snapshot of the source, as connectorx's own partitioned reads were.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence

import pyarrow as pa
import sqlalchemy as sa

from analytics_etl.channel import pipe

KeyRange = tuple[int | None, int | None]  # [start, end); None: open on that side


def split_key_range(low: int | None, high: int | None, rows: int, range_rows: int,
                    min_ranges: int = 1, histogram: Sequence[int] = ()) -> list[KeyRange]:
    """Half-open ranges covering every integer, of about `range_rows` rows each, at least
    `min_ranges` where the span allows. Cut evenly between `low` and `high`, which is right
    for keys spread evenly. Given the source's equal-count histogram of the key, it is cut at
    histogram bounds about `range_rows` rows apart instead, and evenly only outside the
    histogram (keys added since it was taken): one far outlier key then does not put the
    whole table into one range."""
    if low is None or high is None:  # an empty table (or one emptied since its statistics)
        return [(None, None)]
    span = high - low + 1
    count = min(span, max(min_ranges, -(-rows // max(range_rows, 1)), 1))
    cuts = {low + span * i // count for i in range(1, count)}
    buckets = len(histogram) - 1  # each holds about rows / buckets rows
    if buckets > 0:
        step = max(1, min(range_rows * buckets // max(rows, 1), buckets // max(min_ranges, 1)))
        cuts = ({c for c in cuts if not histogram[0] < c <= histogram[-1]}
                | {b for b in histogram[step:-1:step] if low < b <= high})
    bounds = sorted(cuts)
    return list(zip([None, *bounds], [*bounds, None], strict=True))


def range_select(stmt: sa.Select, key: sa.ColumnElement, key_range: KeyRange) -> sa.Select:
    start, end = key_range
    if start is None and end is None:
        return stmt
    if start is None:
        return stmt.where(sa.or_(key < end, key.is_(None)))
    if end is None:
        return stmt.where(key >= start)
    return stmt.where(key >= start, key < end)


def key_bounds(conn: sa.Connection, source: sa.FromClause, key: str) -> tuple[int | None, int | None]:
    """The key's smallest and largest value: two index lookups on a primary key."""
    column = sa.column(key)
    low, high = conn.execute(sa.select(sa.func.min(column), sa.func.max(column)).select_from(source)).one()
    return (int(low) if low is not None else None, int(high) if high is not None else None)


def literal_sql(stmt: sa.Select, dialect: sa.Dialect) -> str:
    # connectorx takes SQL text only; the bounds are integers the ETL computed itself.
    return str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def read_ranges(native_url: str, queries: list[str], workers: int,
                convert: Callable[[pa.Table], pa.Table] = lambda table: table) -> Iterator[pa.Table]:
    """Each query's rows as one Arrow table (passed through `convert` in the worker), `workers`
    queries read at a time, handed over as they complete (a full load has no row order).
    In memory: one table queued, one being read per worker, the one DuckDB inserts."""
    import connectorx

    pending = deque(queries)

    def claimed() -> Iterator[pa.Table]:
        while True:
            try:
                query = pending.popleft()  # deque.popleft is atomic: each range is read once
            except IndexError:
                return
            yield convert(connectorx.read_sql(native_url, query, return_type="arrow"))

    workers = max(1, min(workers, len(queries)))
    return pipe([claimed() for _ in range(workers)], depth=1, name="extract-range")
