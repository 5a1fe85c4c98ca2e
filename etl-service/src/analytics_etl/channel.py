"""The one hand-over between reading threads and the thread that loads DuckDB.

Reading (driver or connectorx, partly Python-bound) and loading (DuckDB, which releases
the GIL) overlap on two cores only when they run in different threads. Every such
overlap in the ETL goes through a Channel: the driver prefetch (extract.py), the
read-ahead of the next tables' changes (readahead.py) and the key-range workers of a
partitioned full load (partitioned.py).

A Channel is bounded: a producer waits once `depth` items are queued, so memory is
`depth` items plus the one each producer is building, never the table. One consumer;
one or more producers, each of which ends with `finish()` or `fail()`; the end and the
errors take no slot, so a producer that is done never waits for the consumer. The
consumer closing the channel (it stopped early, or the run discards the table) drops
what is queued and makes every waiting or later `put` return False, which is how a
producer learns to stop. A producer's error is raised in the consumer, after the
items queued before it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_END = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Channel(Generic[T]):
    def __init__(self, depth: int, producers: int = 1) -> None:
        self.depth = depth
        self._items: deque = deque()
        self._queued = 0  # items, not ends or failures: only items take a slot
        self._open = producers
        self._closed = False
        self._cond = threading.Condition()

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item: T) -> bool:
        """Queue an item once there is room; False if the consumer no longer wants any."""
        with self._cond:
            while self._queued >= self.depth and not self._closed:
                self._cond.wait()
            if self._closed:
                return False
            self._items.append(item)
            self._queued += 1
            self._cond.notify_all()
            return True

    def finish(self) -> None:
        """This producer is done; the consumer's iteration ends once every producer is."""
        self._end(_END)

    def fail(self, error: BaseException) -> None:
        """This producer failed: the consumer raises `error` once it reaches it."""
        self._end(_Failure(error))

    def _end(self, marker: object) -> None:
        with self._cond:
            if not self._closed:
                self._items.append(marker)
                self._cond.notify_all()

    def close(self) -> None:
        """The consumer wants nothing more: drop what is queued, release every producer."""
        with self._cond:
            self._closed = True
            self._items.clear()
            self._queued = 0
            self._cond.notify_all()

    def __iter__(self) -> Iterator[T]:
        """The items in the order they were queued; closes the channel however it ends."""
        try:
            while True:
                with self._cond:
                    while not self._items:
                        self._cond.wait()
                    item = self._items.popleft()
                    if item is not _END and not isinstance(item, _Failure):
                        self._queued -= 1
                        self._cond.notify_all()
                if isinstance(item, _Failure):
                    raise item.error
                if item is _END:
                    self._open -= 1
                    if self._open == 0:
                        return
                    continue
                yield item
        finally:
            self.close()


def feed(channel: Channel[T], items: Iterable[T]) -> None:
    """Put every item of `items` (run in a producer thread), then finish or fail the channel.
    Stops early, closing `items`, once the consumer closed the channel."""
    try:
        for item in items:
            if not channel.put(item):
                break
        else:
            channel.finish()
            return
    except BaseException as exc:  # noqa: BLE001 - handed to the consumer, re-raised there
        channel.fail(exc)
    finally:
        if hasattr(items, "close"):
            items.close()


def start(target: Callable[[], None], name: str) -> threading.Thread:
    """A daemon producer thread: a run that is killed must not wait for a reader."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def pipe(sources: list[Iterable[T]], depth: int, name: str) -> Iterator[T]:
    """The items of every source, each source produced in a thread of its own, together at
    most `depth` ahead of the consumer. Stopping early stops the producers and waits for
    them: each finishes at most the item it was building."""
    channel: Channel[T] = Channel(depth, producers=len(sources))
    threads = [start(lambda source=source: feed(channel, source), f"{name}-{i}") for i, source in enumerate(sources)]
    try:
        yield from channel
    finally:
        channel.close()
        for thread in threads:
            thread.join()
