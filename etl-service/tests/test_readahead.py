"""ReadAhead: change sets read in a background thread, table after table, handed over in order."""

from __future__ import annotations

import threading

import pyarrow as pa
import pytest
import sqlalchemy as sa

from analytics_etl.demo_source import mutate_demo_source
from analytics_etl.pipeline import run_sync
from analytics_etl.readahead import ReadAhead
from analytics_shared.manifest import read_manifest


def _batch(value: int) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({"v": [value]})


def _fake_stream(script: dict[str, list]):  # noqa: ANN202
    """A stand-in for stream_batches: the statement is the table name, the script its batches."""
    def stream(conn, stmt, builder, batch_size):  # noqa: ANN001, ANN202
        for item in script[stmt]:
            if isinstance(item, Exception):
                raise item
            yield _batch(item)
    return stream


@pytest.fixture
def engine(tmp_path):  # noqa: ANN001, ANN201
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'any.db'}")
    yield engine
    engine.dispose()


def _ahead(engine, script, depth=2):  # noqa: ANN001, ANN202
    return ReadAhead(engine, {t: (t, None) for t in script}, _fake_stream(script), 100, depth=depth)


def values(batches) -> list[int]:  # noqa: ANN001
    return [b.column(0)[0].as_py() for b in batches]


def test_tables_arrive_in_order_and_complete(engine):
    ahead = _ahead(engine, {"a": [1, 2, 3, 4, 5], "b": [6], "c": []})
    try:
        assert [values(ahead.batches(t)) for t in "abc"] == [[1, 2, 3, 4, 5], [6], []]
    finally:
        ahead.close()


def test_a_failing_table_gets_its_error_and_the_next_is_still_read(engine):
    ahead = _ahead(engine, {"a": [1, RuntimeError("connection dropped")], "b": [2]})
    try:
        got = []
        with pytest.raises(RuntimeError, match="connection dropped"):
            for batch in ahead.batches("a"):
                got.append(batch)
        assert values(got) == [1]
        assert values(ahead.batches("b")) == [2]
    finally:
        ahead.close()


def test_a_consumer_that_stops_early_does_not_hold_up_the_next_table(engine):
    ahead = _ahead(engine, {"a": list(range(50)), "b": [7]}, depth=1)
    try:
        stream = ahead.batches("a")
        next(stream)
        stream.close()  # e.g. the merge failed on the first batch
        assert values(ahead.batches("b")) == [7]
    finally:
        ahead.close()


def test_a_table_that_fits_its_slots_does_not_hold_the_reader_up(engine):
    # depth=1: table a is one batch. Its end marker needs no slot, so the reader goes on to
    # b while a still waits for the run.
    started_b = threading.Event()
    stream = _fake_stream({"a": [1], "b": [2]})

    def watching(conn, stmt, builder, batch_size):  # noqa: ANN001, ANN202
        if stmt == "b":
            started_b.set()
        return stream(conn, stmt, builder, batch_size)

    ahead = ReadAhead(engine, {"a": ("a", None), "b": ("b", None)}, watching, 100, depth=1)
    try:
        assert started_b.wait(timeout=30)
        assert [values(ahead.batches(t)) for t in "ab"] == [[1], [2]]
    finally:
        ahead.close()


def test_discarded_table_is_skipped(engine):
    ahead = _ahead(engine, {"a": list(range(50)), "b": [8]}, depth=1)
    try:
        ahead.discard("a")
        assert "a" not in ahead and "b" in ahead
        assert values(ahead.batches("b")) == [8]
    finally:
        ahead.close()


def test_no_connection_at_all_fails_every_table_instead_of_hanging(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
    ahead = _ahead(engine, {"a": [1], "b": [2]})
    try:
        for table in "ab":
            with pytest.raises(sa.exc.OperationalError):
                list(ahead.batches(table))
    finally:
        ahead.close()
        engine.dispose()


def test_close_stops_a_reader_waiting_on_a_full_queue(engine):
    ahead = _ahead(engine, {"a": list(range(50))}, depth=1)
    next(ahead.batches("a"))
    ahead.close()  # returns: the reader sees the stop instead of waiting for a consumer


def test_incremental_runs_through_the_read_ahead_equal_the_source(make_settings, store, source_path,
                                                                   assert_snapshot_matches):
    # Several batches per table, and a key reconciliation on the run's own connection
    # while the reader is already on the next table.
    settings = make_settings(batch_size=100)
    run_sync(settings)
    for seed in (81, 82):
        mutate_demo_source(source_path, fraction=0.05, seed=seed)
        assert run_sync(settings)["status"] == "published"
        assert_snapshot_matches()
    manifest, _ = read_manifest(store)
    assert all(t.status == "ok" for t in manifest.tables.values())
