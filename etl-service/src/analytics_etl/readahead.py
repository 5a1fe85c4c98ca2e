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
import queue
import threading
from collections.abc import Callable, Iterator

import pyarrow as pa
import sqlalchemy as sa

from analytics_etl.config import EtlSettings
from analytics_etl.cursor import select_since_rowversion, select_since_timestamp, since_value
from analytics_etl.extract import BatchBuilder
from analytics_etl.source import TableSpec
from analytics_shared.errors import SourceError
from analytics_shared.logging import get_logger
from analytics_shared.manifest import Manifest, TableEntry

log = get_logger(__name__)
Stream = Callable[[sa.Connection, sa.Executable, BatchBuilder, int], Iterator[pa.RecordBatch]]
_DONE = object()


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
            builder = BatchBuilder.for_columns([(c.name, c.duckdb_type) for c in spec.columns], engine.dialect.name)
            plans[target] = (select_changes(spec, prev, settings), builder)
    return ReadAhead(engine, plans, stream, settings.batch_size)


class ReadAhead:
    def __init__(self, engine: sa.Engine, plans: dict[str, tuple[sa.Select, BatchBuilder]], stream: Stream,
                 batch_size: int, depth: int = 2) -> None:
        self._plans = plans
        self._queues: dict[str, queue.Queue] = {target: queue.Queue() for target in plans}
        self._slots = {target: threading.Semaphore(depth) for target in plans}  # batches queued per table
        self._discarded: set[str] = set()
        self._stop = threading.Event()
        self._failure: Exception | None = None
        self._thread = threading.Thread(target=self._read_all, args=(engine, stream, batch_size),
                                        name="extract-readahead", daemon=True)
        if plans:
            self._thread.start()

    def __contains__(self, target: str) -> bool:
        return target in self._plans and target not in self._discarded

    def batches(self, target: str) -> Iterator[pa.RecordBatch]:
        """The planned table's changed rows, in order; the reader's error is raised here."""
        q = self._queues[target]
        try:
            while True:
                try:
                    item = q.get(timeout=0.1)
                except queue.Empty:
                    if self._thread.is_alive():
                        continue
                    try:  # it may have finished between the two checks
                        item = q.get_nowait()
                    except queue.Empty:
                        raise self._failure or SourceError(f"the read-ahead of {target} stopped early") from None
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                self._slots[target].release()
                yield item
        finally:
            self.discard(target)  # a consumer that stops early must not leave the reader waiting

    def discard(self, target: str) -> None:
        if target in self._plans:
            self._discarded.add(target)
            with contextlib.suppress(queue.Empty):
                while True:  # unblock the reader if it waits on this table's queue
                    self._queues[target].get_nowait()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _put(self, target: str, batch: pa.RecordBatch) -> bool:
        """Queue a batch once the table has a free slot; False if the run no longer wants it."""
        while not self._stop.is_set() and target not in self._discarded:
            if self._slots[target].acquire(timeout=0.1):
                self._queues[target].put(batch)
                return True
        return False

    def _finish(self, target: str, item: object) -> None:
        """The end of a table or its error: no slot needed, the reader goes on to the next table."""
        if target not in self._discarded:
            self._queues[target].put(item)

    def _read_all(self, engine: sa.Engine, stream: Stream, batch_size: int) -> None:
        try:
            with engine.connect() as conn:
                self._read_tables(conn, stream, batch_size)
        except Exception as exc:  # e.g. no connection at all: every waiting table gets the error
            self._failure = exc

    def _read_tables(self, conn: sa.Connection, stream: Stream, batch_size: int) -> None:
        for target, (stmt, builder) in self._plans.items():
            if self._stop.is_set():
                return
            if target in self._discarded:
                continue
            batches = stream(conn, stmt, builder, batch_size)
            try:
                for batch in batches:
                    if not self._put(target, batch):
                        break
                else:
                    self._finish(target, _DONE)
            except Exception as exc:  # handed to the table's consumer, which marks it stale
                self._finish(target, exc)
                if conn.invalidated or conn.in_transaction():
                    with contextlib.suppress(Exception):
                        conn.rollback()
            finally:
                if hasattr(batches, "close"):
                    batches.close()
