"""Reading the next tables' changes while the current one is applied.

An incremental run alternates between the source (read one table's changed rows,
Python-bound) and DuckDB (merge them, which releases the GIL). Done one after the
other the two cores take turns; here one thread reads the planned change sets table
after table, on its own source connection, while the main thread copies the snapshot
and merges. Memory stays bounded: the reader waits once `depth` batches of a table
are queued, and it moves to the next table only when this one is read. The end of
a table takes no batch slot: a table that fits in `depth` batches never holds the
reader up until the run gets to it.

Only cursor reads (timestamp, rowversion) are planned: their statement depends on
nothing but the published manifest entry. A table that turns out to need a full
reload (schema drift) has its read discarded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pyarrow as pa
import sqlalchemy as sa

from analytics_etl.channel import Channel, feed, start
from analytics_etl.config import EtlSettings
from analytics_etl.cursor import select_since_rowversion, select_since_timestamp, since_value
from analytics_etl.extract import BatchBuilder
from analytics_etl.source import TableSpec
from analytics_shared.logging import get_logger
from analytics_shared.manifest import Manifest, TableEntry

log = get_logger(__name__)
Stream = Callable[[sa.Connection, sa.Executable, BatchBuilder, int], Iterator[pa.RecordBatch]]


def should_read_ahead(spec: TableSpec, prev: TableEntry | None) -> bool:
    """Whether the table is read incrementally by cursor, judged from the manifest alone."""
    return (prev is not None and prev.watermark is not None and prev.change_detection == spec.detection
            and spec.detection in ("timestamp", "rowversion")
            and [(c.name, c.type) for c in prev.columns] == [(c.name, c.duckdb_type) for c in spec.columns])


def select_changes(spec: TableSpec, prev: TableEntry, settings: EtlSettings) -> sa.Select:
    if spec.detection == "timestamp":
        lag = spec.cursor_lag_seconds if spec.cursor_lag_seconds is not None else settings.cursor_lag_seconds
        since, separator = since_value(prev.watermark, lag)
        return select_since_timestamp(spec, since, separator)
    return select_since_rowversion(spec, int(prev.watermark).to_bytes(8, "big"))


def start_read_ahead(engine: sa.Engine, specs: dict[str, TableSpec], manifest: Manifest | None,
                     settings: EtlSettings, stream: Stream) -> ReadAhead:
    """Plans in the order the run applies the tables: the reader never waits on a table
    the run is not at yet while the run waits on another."""
    plans = {}
    for target in (name.split(".")[-1] for name in settings.table_names):
        spec = specs.get(target)
        prev = manifest.tables.get(target) if manifest else None
        if spec is None:
            continue
        if should_read_ahead(spec, prev):
            builder = BatchBuilder.for_columns([(c.name, c.duckdb_type) for c in spec.columns], engine.dialect.name,
                                               spec.cursor)
            plans[target] = (select_changes(spec, prev, settings), builder)
    return ReadAhead(engine, plans, stream, settings.batch_size)


class ReadAhead:
    """One reader thread, one bounded channel per planned table (channel.py)."""

    def __init__(self, engine: sa.Engine, plans: dict[str, tuple[sa.Select, BatchBuilder]], stream: Stream,
                 batch_size: int, depth: int = 2) -> None:
        self._plans = plans
        self._channels: dict[str, Channel] = {target: Channel(depth) for target in plans}
        self._thread = start(lambda: self._read_all(engine, stream, batch_size), "extract-readahead") if plans else None

    def __contains__(self, target: str) -> bool:
        return target in self._plans and not self._channels[target].closed

    def batches(self, target: str) -> Iterator[pa.RecordBatch]:
        """The planned table's changed rows, in order; the reader's error is raised here.
        A consumer that stops early closes the table's channel: the reader moves on."""
        return iter(self._channels[target])

    def discard(self, target: str) -> None:
        if target in self._plans:
            self._channels[target].close()  # unblocks the reader if it waits on this table

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        if self._thread is not None:
            self._thread.join()

    def _read_all(self, engine: sa.Engine, stream: Stream, batch_size: int) -> None:
        try:
            with engine.connect() as conn:
                for target, (stmt, builder) in self._plans.items():
                    if not self._channels[target].closed:
                        self._read_table(conn, self._channels[target], stream(conn, stmt, builder, batch_size))
        except BaseException as exc:  # e.g. no connection at all: every waiting table gets the error
            for channel in self._channels.values():
                channel.fail(exc)

    @staticmethod
    def _read_table(conn: sa.Connection, channel: Channel, batches: Iterator[pa.RecordBatch]) -> None:
        # An error of one table goes to its consumer (which marks it stale); the reader
        # goes on to the next table on a connection rolled back to a clean state.
        feed(channel, batches)
        if conn.invalidated or conn.in_transaction():
            with contextlib.suppress(Exception):
                conn.rollback()
