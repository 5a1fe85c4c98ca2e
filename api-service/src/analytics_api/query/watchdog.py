"""One thread that interrupts DuckDB queries past their deadline.

A timer thread per query would cost a thread start on every request; this keeps a heap
of deadlines and wakes only when the nearest one is due. Disarming drops the action at
once, so a finished query's cursor is never kept alive by the heap.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable


class Watchdog:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._actions: dict[int, Callable[[], None]] = {}
        self._cond = threading.Condition()
        self._ids = itertools.count()
        self._thread = threading.Thread(target=self._run, name="query-watchdog", daemon=True)
        self._thread.start()

    def arm(self, seconds: float, action: Callable[[], None]) -> int:
        with self._cond:
            ticket = next(self._ids)
            self._actions[ticket] = action
            heapq.heappush(self._heap, (time.monotonic() + seconds, ticket))
            if self._heap[0][1] == ticket:
                self._cond.notify()
            return ticket

    def disarm(self, ticket: int) -> None:
        with self._cond:
            self._actions.pop(ticket, None)

    def pending(self) -> int:
        with self._cond:
            return len(self._actions)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                deadline, ticket = self._heap[0]
                if ticket not in self._actions:
                    heapq.heappop(self._heap)
                    continue
                now = time.monotonic()
                if deadline > now:
                    self._cond.wait(deadline - now)
                    continue
                heapq.heappop(self._heap)
                action = self._actions.pop(ticket)
            try:
                action()
            except Exception:  # noqa: S110 - interrupting a query that just finished is harmless
                pass
            action = None  # do not keep the last cursor alive while waiting for the next deadline
