"""Channel: the bounded hand-over from producer threads to the DuckDB thread."""

from __future__ import annotations

import threading

import pytest

from analytics_etl.channel import Channel, feed, pipe, start


def _wait_for(condition, what: str) -> None:  # noqa: ANN001
    """Poll a condition another thread makes true; fails after 30 s instead of hanging."""
    done = threading.Event()
    for _ in range(3000):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError(what)


def test_a_producer_waits_once_depth_items_are_queued():
    channel: Channel[int] = Channel(depth=2)
    produced: list[int] = []

    def counting():  # noqa: ANN202
        for i in range(10):
            produced.append(i)
            yield i

    thread = start(lambda: feed(channel, counting()), "test-producer")
    # Two queued, the third built and waiting for a slot: never more.
    _wait_for(lambda: len(produced) == 3, "the producer did not fill the channel")
    assert channel._queued == 2 and thread.is_alive()
    assert list(channel) == list(range(10))
    thread.join()


def test_the_end_takes_no_slot():
    channel: Channel[int] = Channel(depth=1)
    thread = start(lambda: feed(channel, iter([1])), "test-producer")
    thread.join(timeout=30)  # one item fills the only slot; finishing must not wait for it
    assert not thread.is_alive()
    assert list(channel) == [1]


def test_an_error_is_raised_after_the_items_queued_before_it():
    def failing():  # noqa: ANN202
        yield 1
        yield 2
        raise RuntimeError("connection dropped")

    got = []
    with pytest.raises(RuntimeError, match="connection dropped"):
        for item in pipe([failing()], depth=4, name="test-pipe"):
            got.append(item)
    assert got == [1, 2]


def test_a_consumer_that_stops_early_releases_the_producer_and_closes_its_source():
    closed = threading.Event()

    def endless():  # noqa: ANN202
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    stream = pipe([endless()], depth=1, name="test-pipe")
    assert next(stream) == 0
    stream.close()  # joins the producer: it must see the close instead of waiting for a slot
    assert closed.is_set()


def test_closing_drops_what_is_queued_and_later_puts_are_refused():
    channel: Channel[int] = Channel(depth=3)
    assert channel.put(1) and channel.put(2)
    channel.close()
    assert channel.closed and channel._queued == 0
    assert channel.put(3) is False


def test_several_producers_end_the_iteration_only_when_all_finished():
    sources = [iter(range(k * 10, k * 10 + 5)) for k in range(3)]
    assert sorted(pipe(sources, depth=2, name="test-pipe")) == [k * 10 + i for k in range(3) for i in range(5)]


def test_one_failing_producer_stops_the_others():
    channel: Channel[int] = Channel(depth=1, producers=2)
    others_stopped = threading.Event()

    def endless():  # noqa: ANN202
        try:
            while True:
                yield 0
        finally:
            others_stopped.set()

    def failing():  # noqa: ANN202
        raise ValueError("bad range")
        yield  # a generator

    threads = [start(lambda: feed(channel, endless()), "test-endless"),
               start(lambda: feed(channel, failing()), "test-failing")]
    with pytest.raises(ValueError, match="bad range"):
        for _ in channel:
            pass
    for thread in threads:
        thread.join()
    assert others_stopped.is_set()
