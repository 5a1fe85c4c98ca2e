"""The source database: engine, one batched reflection per run, strategy choice, what is selected."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.engine.reflection import ObjectKind

from analytics_etl.describe import describe_query
from analytics_etl.table_config import TableOptions
from analytics_etl.types import duckdb_type, is_rowversion, read_as
from analytics_shared.errors import ConfigError, SourceError
from analytics_shared.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class SourceColumn:
    name: str
    sa_type: sa.types.TypeEngine = field(compare=False)
    duckdb_type: str
    # Selected as CAST(col AS read_as) (PostgreSQL), so connectorx (full loads) and the driver
    # (incremental reads) hand over one value alike. As text: JSON and the types synced as text
    # (arrays, interval, unknown types), which they spelled differently (int[] '[1, NULL]' vs
    # '[1, null]', text[] "[é, 'a,b']" vs '["\u00e9", "a,b"]', jsonb '{"é":1}' vs '{"\u00e9": 1}',
    # interval '31 days, 3:00:00' from psycopg's timedelta, its month gone). As float8: real,
    # which connectorx widened exactly (0.1428571492433548) and psycopg parsed from its shortest
    # text (0.14285715). Rows re-read through the lag then counted as changed on a quiet
    # source, and one table mixed both forms.
    read_as: sa.types.TypeEngine | None = field(default=None, compare=False)


@dataclass(frozen=True)
class TableSpec:
    """What one source table looks like right now, and how its changes are found."""

    target: str  # table name in the snapshot
    schema: str | None
    name: str
    columns: tuple[SourceColumn, ...]
    primary_key: tuple[str, ...]
    detection: str
    cursor: str | None = None  # updated_at / rowversion column
    query: str | None = None  # a SELECT read in place of a table (tables file `source`)
    cursor_lag_seconds: int | None = None  # None: CURSOR_LAG_SECONDS

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name

    def sa_table(self) -> sa.Table:
        meta = sa.MetaData()
        return sa.Table(self.name, meta, *(sa.Column(c.name, c.sa_type) for c in self.columns),
                        schema=self.schema)

    def column(self, name: str) -> SourceColumn:
        return next(c for c in self.columns if c.name == name)


def source_from(spec: TableSpec) -> sa.FromClause:
    """The table or view read, or the tables file's SELECT as a derived table."""
    if spec.query:
        return sa.text(spec.query).columns(*(sa.column(c.name) for c in spec.columns)).subquery("src")
    return sa.table(spec.name, schema=spec.schema)


def select_rows(spec: TableSpec, columns: list[str] | None = None) -> sa.Select:
    # Untyped result columns: values reach Arrow exactly as the driver produced them,
    # without SQLAlchemy's per-value result processing. Only the spec's columns: a column
    # the tables file excludes is never selected from the source.
    names = columns or [c.name for c in spec.columns]
    read_as = {c.name: c.read_as for c in spec.columns if c.read_as is not None}
    return sa.select(*(sa.cast(sa.column(n), read_as[n]).label(n) if n in read_as else sa.column(n)
                       for n in names)).select_from(source_from(spec))


def select_primary_keys(spec: TableSpec) -> sa.Select:
    return select_rows(spec, list(spec.primary_key))


SQL_SS_TIMESTAMPOFFSET = -155  # pyodbc hands datetimeoffset over as raw bytes without a converter


def decode_datetimeoffset(raw: bytes) -> datetime:
    """SQL Server's DATETIMEOFFSET wire struct -> an aware datetime (UTC offset kept)."""
    year, month, day, hour, minute, second, nanos, tz_hour, tz_minute = struct.unpack("<6hI2h", raw)
    local = datetime(year, month, day, hour, minute, second, nanos // 1000,
                     tzinfo=timezone(timedelta(hours=tz_hour, minutes=tz_minute)))
    return local


def create_source_engine(url: str) -> Engine:
    try:
        engine = sa.create_engine(url, pool_pre_ping=True)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise ConfigError(f"SOURCE_URL is not a usable SQLAlchemy URL: {exc}") from None
    except ImportError as exc:
        raise ConfigError(f"SOURCE_URL needs a driver that is not installed: {exc}") from None
    _check_sqlite_file(engine.url)
    if engine.dialect.name == "mssql" and engine.dialect.driver == "pyodbc":
        @sa.event.listens_for(engine, "connect")
        def _add_converters(dbapi_conn, _record) -> None:  # noqa: ANN001
            dbapi_conn.add_output_converter(SQL_SS_TIMESTAMPOFFSET, decode_datetimeoffset)
    return engine


def _check_sqlite_file(url: sa.engine.URL) -> None:
    """SQLite creates a missing file on connect: a mistyped or unmounted path would sync an
    empty database and report every table as dropped. Say what it is instead."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return
    if not Path(database).is_file():
        where = "" if Path(database).is_absolute() else f" (from {Path.cwd()})"
        raise SourceError(f"SOURCE_URL: the SQLite file {database}{where} does not exist; "
                          "nothing was created or synced")


def split_name(qualified: str) -> tuple[str | None, str]:
    parts = qualified.split(".")
    if len(parts) == 1:
        return None, parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise ConfigError(f"TABLES_TO_SYNC entry {qualified!r} is not [schema.]table")


def _change_tracked(conn: sa.Connection, schema: str | None, name: str) -> bool:
    row = conn.execute(
        sa.text("SELECT 1 FROM sys.change_tracking_tables WHERE object_id = OBJECT_ID(:name)"),
        {"name": f"{schema or 'dbo'}.{name}"},
    ).first()
    return row is not None


def choose_detection(requested: str, dialect: str, *, has_pk: bool, cursor: str | None,
                     rowversion: str | None, change_tracked: bool) -> str:
    """The best strategy the table supports; an explicit request is honoured when possible."""
    if requested == "auto":
        if dialect == "mssql" and change_tracked and has_pk:
            return "change_tracking"
        if rowversion and has_pk:
            return "rowversion"
        if cursor and has_pk:
            return "timestamp"
        return "full"
    supported = {
        "change_tracking": dialect == "mssql" and change_tracked and has_pk,
        "rowversion": bool(rowversion) and has_pk,
        "timestamp": bool(cursor) and has_pk,
        "full": True,
    }
    return requested if supported[requested] else "full"


@dataclass(frozen=True)
class _Wanted:
    target: str  # snapshot table name
    qualified: str  # as TABLES_TO_SYNC / the tables file names it
    schema: str | None  # of the table or view read
    name: str
    options: TableOptions


def _wanted(names: list[str], options: Callable[[str], TableOptions]) -> list[_Wanted]:
    wanted, seen = [], set()
    for qualified in names:
        opts = options(qualified)
        target = split_name(qualified)[1]
        if target in seen:
            raise ConfigError(f"TABLES_TO_SYNC names two tables called {target!r}")
        seen.add(target)
        schema, name = split_name(opts.source) if opts.source and not opts.query else split_name(qualified)
        wanted.append(_Wanted(target, qualified, schema, name, opts))
    return wanted


def _column_problems(w: _Wanted, names: set[str]) -> list[str]:
    """Columns the tables file names that the source does not have."""
    o = w.options
    named = [*(o.include_columns or ()), *(o.exclude_columns or ()), *(o.primary_key or ()),
             *((o.cursor_column,) if o.cursor_column else ())]
    return [f"table {w.qualified}: column {c} not found in source" for c in dict.fromkeys(named) if c not in names]


def _spec(w: _Wanted, dialect: str, reflected: list[tuple[str, sa.types.TypeEngine]], pk: tuple[str, ...],
          requested: str, cursor_column: str, tracked: bool) -> TableSpec:
    o = w.options
    cols = tuple(SourceColumn(n, t, duckdb_type(t), read_as=read_as(t) if dialect == "postgresql" else None)
                 for n, t in reflected if o.keeps(n))
    pk = tuple(o.primary_key or pk)
    cursor_name = o.cursor_column or cursor_column
    rowversion = next((c.name for c in cols if is_rowversion(c.sa_type)), None)
    cursor = cursor_name if any(c.name == cursor_name for c in cols) else None
    detection = choose_detection(o.change_detection or requested, dialect, has_pk=bool(pk), cursor=cursor,
                                 rowversion=rowversion, change_tracked=tracked and not o.query)
    return TableSpec(target=w.target, schema=None if o.query else w.schema, name=w.name, columns=cols,
                     primary_key=pk, detection=detection,
                     cursor={"rowversion": rowversion, "timestamp": cursor}.get(detection),
                     query=o.query, cursor_lag_seconds=o.cursor_lag_seconds)


def reflect_tables(engine: Engine, names: list[str], *, requested: str, cursor_column: str,
                   options: Callable[[str], TableOptions] | None = None,
                   ) -> tuple[dict[str, TableSpec], dict[str, str]]:
    """Reflect every configured table or view with one batched inspector call per schema.

    Returns (specs by target name, errors by target name: tables that are missing, or whose
    tables-file options name columns the source lacks).
    """
    wanted = _wanted(names, options or (lambda _q: TableOptions()))
    specs: dict[str, TableSpec] = {}
    missing: dict[str, str] = {}
    dialect = engine.dialect.name
    by_schema: dict[str | None, list[_Wanted]] = {}
    for w in wanted:
        if not w.options.query:
            by_schema.setdefault(w.schema, []).append(w)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            reflected: dict[str, tuple[list, tuple[str, ...]]] = {}
            for schema, tables in by_schema.items():
                existing = set(inspector.get_table_names(schema=schema)) | set(inspector.get_view_names(schema=schema))
                present = sorted({w.name for w in tables if w.name in existing})
                kind = {"kind": ObjectKind.ANY, "schema": schema, "filter_names": present}
                columns = inspector.get_multi_columns(**kind) if present else {}
                pks = inspector.get_multi_pk_constraint(**kind) if present else {}
                for w in tables:
                    if w.name not in existing:
                        what = w.qualified if w.name == w.target else f"{w.options.source} (source of {w.qualified})"
                        missing[w.target] = f"table {what} not found in source"
                        continue
                    reflected[w.target] = ([(c["name"], c["type"]) for c in columns[(schema, w.name)]],
                                           tuple(pks.get((schema, w.name), {}).get("constrained_columns") or ()))
            for w in wanted:
                if w.options.query:
                    try:
                        reflected[w.target] = (describe_query(conn, w.options.query), ())
                    except ConfigError as exc:
                        missing[w.target] = f"table {w.qualified}: {exc.message}"
                if w.target not in reflected:
                    continue
                cols, pk = reflected[w.target]
                problems = _column_problems(w, {n for n, _ in cols})
                if problems:
                    missing[w.target] = "; ".join(problems)
                    continue
                tracked = dialect == "mssql" and not w.options.query and _change_tracked(conn, w.schema, w.name)
                specs[w.target] = _spec(w, dialect, cols, pk, requested, cursor_column, tracked)
    except sa.exc.DBAPIError as exc:
        from analytics_etl.errors import classify_source_error

        raise classify_source_error(exc) from exc
    return specs, missing


def describe_source(engine: Engine) -> dict[str, str | None]:
    return {"dialect": engine.dialect.name, "database": engine.url.database}


__all__ = ["SourceColumn", "TableSpec", "create_source_engine", "reflect_tables", "select_rows",
           "select_primary_keys", "source_from", "choose_detection", "describe_source", "SourceError"]
