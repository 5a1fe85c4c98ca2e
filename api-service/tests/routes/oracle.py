"""Comparing the API's answer with DuckDB's own answer to the same SQL on a database that
holds only what the caller may see (the adversarial suites' oracle)."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import sqlglot


def oracle_answer(oracle: duckdb.DuckDBPyConnection, sql: str) -> pa.Table | str:
    """The oracle's result, or the first line of its error."""
    try:
        return oracle.cursor().sql(sql).to_arrow_table()
    except duckdb.Error as exc:
        return str(exc).splitlines()[0]


def assert_same_rows(got: pa.Table, want: pa.Table, sql: str) -> None:
    """Same column names and rows; in order only where the SQL orders them."""
    assert got.schema.names == want.schema.names, sql
    ordered = sqlglot.parse_one(sql, dialect="duckdb").args.get("order") is not None
    assert _rows(got, ordered) == _rows(want, ordered), sql


def _rows(table: pa.Table, ordered: bool) -> list[dict]:
    rows = table.to_pylist()
    return rows if ordered else sorted(rows, key=repr)
