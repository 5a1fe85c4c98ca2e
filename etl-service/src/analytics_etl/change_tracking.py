"""SQL Server Change Tracking: CHANGETABLE(CHANGES ...) read inside a SNAPSHOT transaction.

The current version is read in the same snapshot as the changes, so the next
sync starts exactly where this one's data ends; when the stored version is
older than CHANGE_TRACKING_MIN_VALID_VERSION the history was cleaned up and
the table is reloaded whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from analytics_etl.source import TableSpec

ISOLATION = "SNAPSHOT"


def _quoted(spec: TableSpec, dialect: sa.Dialect) -> str:
    prep = dialect.identifier_preparer
    schema = prep.quote_identifier(spec.schema or "dbo")
    return f"{schema}.{prep.quote_identifier(spec.name)}"


def current_version_sql() -> sa.TextClause:
    return sa.text("SELECT CHANGE_TRACKING_CURRENT_VERSION()")


def min_valid_version_sql(spec: TableSpec) -> sa.TextClause:
    return sa.text("SELECT CHANGE_TRACKING_MIN_VALID_VERSION(OBJECT_ID(:table_name))").bindparams(
        sa.bindparam("table_name", f"{spec.schema or 'dbo'}.{spec.name}", type_=sa.Unicode))


def changed_rows_sql(spec: TableSpec, dialect: sa.Dialect, since: int) -> sa.TextClause:
    """Current values of rows inserted or updated since `since` (bound, never formatted)."""
    prep = dialect.identifier_preparer
    cols = ", ".join(f"t.{prep.quote_identifier(c.name)}" for c in spec.columns)
    join = " AND ".join(f"t.{prep.quote_identifier(k)} = ct.{prep.quote_identifier(k)}" for k in spec.primary_key)
    table = _quoted(spec, dialect)
    return sa.text(
        f"SELECT {cols} FROM CHANGETABLE(CHANGES {table}, :last_version) AS ct "
        f"INNER JOIN {table} AS t ON {join} WHERE ct.SYS_CHANGE_OPERATION <> 'D'"
    ).bindparams(sa.bindparam("last_version", since, type_=sa.BigInteger))


def deleted_keys_sql(spec: TableSpec, dialect: sa.Dialect, since: int) -> sa.TextClause:
    prep = dialect.identifier_preparer
    keys = ", ".join(f"ct.{prep.quote_identifier(k)}" for k in spec.primary_key)
    return sa.text(
        f"SELECT {keys} FROM CHANGETABLE(CHANGES {_quoted(spec, dialect)}, :last_version) AS ct "
        f"WHERE ct.SYS_CHANGE_OPERATION = 'D'"
    ).bindparams(sa.bindparam("last_version", since, type_=sa.BigInteger))


@contextmanager
def snapshot_transaction(conn: sa.Connection) -> Iterator[sa.Connection]:
    """A separate connection in SNAPSHOT isolation: every read sees one point in time."""
    with conn.engine.connect() as snap:
        snap = snap.execution_options(isolation_level=ISOLATION)
        with snap.begin():
            yield snap


def read_versions(conn: sa.Connection, spec: TableSpec) -> tuple[int, int | None]:
    current = conn.execute(current_version_sql()).scalar_one()
    min_valid = conn.execute(min_valid_version_sql(spec)).scalar()
    return int(current), (int(min_valid) if min_valid is not None else None)
