"""Extraction: batches of the configured size, every row exactly once, on a real SQLite source."""

from __future__ import annotations

import sqlalchemy as sa

from analytics_etl import extract
from analytics_etl.extract import BatchBuilder, stream_batches


def test_batches_are_full_and_no_row_is_lost_or_repeated(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'src.db'}")
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"))
            conn.execute(sa.text("INSERT INTO t VALUES (:id, :name)"),
                         [{"id": i, "name": f"n{i}"} for i in range(250)])
        builder = BatchBuilder.for_columns([("id", "BIGINT"), ("name", "VARCHAR")], "sqlite")
        stmt = sa.select(sa.column("id"), sa.column("name")).select_from(sa.table("t")).order_by(sa.column("id"))
        with engine.connect() as conn:
            batches = list(stream_batches(conn, stmt, builder, 100))
        # The rows SQLAlchemy reads ahead of the cursor start the first batch instead of
        # travelling as a one-row batch of their own.
        assert [b.num_rows for b in batches] == [100, 100, 50]
        assert [v for b in batches for v in b.column("id").to_pylist()] == list(range(250))
    finally:
        engine.dispose()


def test_an_empty_result_yields_no_batch(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'src.db'}")
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        builder = BatchBuilder.for_columns([("id", "BIGINT")], "sqlite")
        with engine.connect() as conn:
            assert list(stream_batches(conn, sa.select(sa.column("id")).select_from(sa.table("t")), builder, 100)) == []
    finally:
        engine.dispose()


def test_rows_are_converted_in_slices_and_a_column_falling_back_to_text_starts_a_new_batch(tmp_path, monkeypatch):
    monkeypatch.setattr(extract, "SLICE_ROWS", 30)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'src.db'}")
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)"))
            # SQLite keeps what it is given: row 70 holds text in an INTEGER column.
            conn.execute(sa.text("INSERT INTO t VALUES (:id, :v)"),
                         [{"id": i, "v": "seventy" if i == 70 else i} for i in range(120)])
        builder = BatchBuilder.for_columns([("id", "BIGINT"), ("v", "BIGINT")], "sqlite")
        stmt = sa.select(sa.column("id"), sa.column("v")).select_from(sa.table("t")).order_by(sa.column("id"))
        with engine.connect() as conn:
            batches = list(stream_batches(conn, stmt, builder, 100))
        # Slices of 30: the third (rows 60-89) needs text for v, so the first two go out as
        # one batch and the rest (60 + 30 rows, one type) as the next.
        assert [b.num_rows for b in batches] == [60, 60]
        assert [str(b.schema.field("v").type) for b in batches] == ["int64", "string"]
        values = [v for b in batches for v in b.column("v").to_pylist()]
        assert values == [*range(60), *(str(i) if i != 70 else "seventy" for i in range(60, 120))]
    finally:
        engine.dispose()
