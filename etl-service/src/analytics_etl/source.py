"""The source database: engine, one batched reflection per run, strategy choice."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from analytics_etl.types import duckdb_type, is_rowversion
from analytics_shared.errors import ConfigError, SourceError
from analytics_shared.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class SourceColumn:
    name: str
    sa_type: sa.types.TypeEngine = field(compare=False)
    duckdb_type: str


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

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name

    def sa_table(self) -> sa.Table:
        meta = sa.MetaData()
        return sa.Table(self.name, meta, *(sa.Column(c.name, c.sa_type) for c in self.columns),
                        schema=self.schema)

    def column(self, name: str) -> SourceColumn:
        return next(c for c in self.columns if c.name == name)


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
    if engine.dialect.name == "mssql" and engine.dialect.driver == "pyodbc":
        @sa.event.listens_for(engine, "connect")
        def _add_converters(dbapi_conn, _record) -> None:  # noqa: ANN001
            dbapi_conn.add_output_converter(SQL_SS_TIMESTAMPOFFSET, decode_datetimeoffset)
    return engine


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


def reflect_tables(engine: Engine, names: list[str], *, requested: str,
                   cursor_column: str) -> tuple[dict[str, TableSpec], dict[str, str]]:
    """Reflect every configured table with one batched inspector call per schema.

    Returns (specs by target name, errors by target name for tables that are missing).
    """
    wanted: dict[str | None, list[tuple[str, str]]] = {}
    for qualified in names:
        schema, name = split_name(qualified)
        wanted.setdefault(schema, []).append((name, qualified))
    specs: dict[str, TableSpec] = {}
    missing: dict[str, str] = {}
    dialect = engine.dialect.name
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            for schema, tables in wanted.items():
                names_only = [n for n, _ in tables]
                existing = set(inspector.get_table_names(schema=schema))
                present = [n for n in names_only if n in existing]
                columns = inspector.get_multi_columns(schema=schema, filter_names=present) if present else {}
                pks = inspector.get_multi_pk_constraint(schema=schema, filter_names=present) if present else {}
                for name, qualified in tables:
                    if name not in existing:
                        missing[name] = f"table {qualified} not found in source"
                        continue
                    cols = tuple(SourceColumn(c["name"], c["type"], duckdb_type(c["type"]))
                                 for c in columns[(schema, name)])
                    pk = tuple(pks.get((schema, name), {}).get("constrained_columns") or ())
                    rowversion = next((c.name for c in cols if is_rowversion(c.sa_type)), None)
                    cursor = cursor_column if any(c.name == cursor_column for c in cols) else None
                    tracked = dialect == "mssql" and _change_tracked(conn, schema, name)
                    detection = choose_detection(requested, dialect, has_pk=bool(pk), cursor=cursor,
                                                 rowversion=rowversion, change_tracked=tracked)
                    cursor_for = {"rowversion": rowversion, "timestamp": cursor}.get(detection)
                    if name in specs:
                        raise ConfigError(f"TABLES_TO_SYNC names two tables called {name!r}")
                    specs[name] = TableSpec(target=name, schema=schema, name=name, columns=cols,
                                            primary_key=pk, detection=detection, cursor=cursor_for)
    except sa.exc.DBAPIError as exc:
        from analytics_etl.errors import classify_source_error

        raise classify_source_error(exc) from exc
    return specs, missing


def describe_source(engine: Engine) -> dict[str, str | None]:
    return {"dialect": engine.dialect.name, "database": engine.url.database}


__all__ = ["SourceColumn", "TableSpec", "create_source_engine", "reflect_tables",
           "choose_detection", "describe_source", "SourceError"]
