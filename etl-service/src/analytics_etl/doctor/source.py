"""Source checks: connection, every table readable, keys, change detection and why, the cursor
column (NOT NULL, indexed) and the type mapping; on SQL Server the extras in doctor/mssql.py."""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.engine.reflection import ObjectKind

from analytics_etl.config import EtlSettings
from analytics_etl.doctor.check import Check, fail, first_line, ok, warn
from analytics_etl.source import TableSpec, create_source_engine, reflect_tables, select_rows
from analytics_etl.types import is_rowversion, maps_exactly
from analytics_shared.errors import AnalyticsError


def source_checks(settings: EtlSettings) -> Iterator[Check]:
    try:
        url = sa.engine.make_url(settings.source_url)
    except sa.exc.ArgumentError as exc:
        yield fail("source", f"SOURCE_URL is not a SQLAlchemy URL: {exc}", "fix SOURCE_URL (or MSSQL_*)")
        return
    if url.get_backend_name() == "mssql":
        from analytics_etl.doctor.mssql import client_checks

        yield from client_checks(url)
    try:
        engine = create_source_engine(settings.source_url)
    except AnalyticsError as exc:
        yield fail("source", exc.message, "fix SOURCE_URL (or MSSQL_*)")
        return
    try:
        yield from _checks(settings, engine)
    finally:
        engine.dispose()


def _checks(settings: EtlSettings, engine: sa.Engine) -> Iterator[Check]:
    mssql = engine.dialect.name == "mssql"
    if mssql:
        from analytics_etl.doctor import mssql as extras
    try:
        with engine.connect() as conn:
            version = ".".join(str(v) for v in (engine.dialect.server_version_info or ())[:3])
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the finding
        yield fail("source", f"cannot connect: {first_line(exc)}",
                   "check SOURCE_URL / MSSQL_* (host, port, database, credentials) and the network")
        return
    yield ok("source", f"connects ({engine.dialect.name} {version}, database {engine.url.database})")
    try:
        specs, missing = reflect_tables(engine, settings.table_names, requested=settings.change_detection,
                                        cursor_column=settings.cursor_column, options=settings.table_options)
    except AnalyticsError as exc:
        yield fail("source", f"cannot read the catalog: {exc.message}", "grant the login access to the catalog")
        return
    tracked: set[tuple[str, str]] = set()
    if mssql:
        tracked = yield from extras.database_checks(engine, settings, specs)
    details = _catalog_details(engine, specs)
    for qualified in settings.table_names:
        target = qualified.split(".")[-1]
        subject = f"table {target}"
        if target in missing:
            yield fail(subject, missing[target],
                       "create it, grant SELECT on it, or fix TABLES_TO_SYNC / TABLES_CONFIG_PATH")
            continue
        spec = specs[target]
        readable = yield from _readable(engine, spec, subject)
        if not readable:
            continue
        options = settings.table_options(qualified)
        requested = options.change_detection or settings.change_detection
        is_tracked = (spec.schema or "dbo", spec.name) in tracked
        yield from _table_checks(spec, subject, requested, options.cursor_column or settings.cursor_column,
                                 details.get(target), mssql, is_tracked)
        if mssql and spec.detection == "change_tracking":
            yield from extras.table_checks(engine, spec, subject)


def _readable(engine: sa.Engine, spec: TableSpec, subject: str) -> Iterator[Check]:
    try:
        with engine.connect() as conn:
            conn.execute(select_rows(spec).limit(1)).fetchall()
    except Exception as exc:  # noqa: BLE001
        yield fail(subject, f"not readable: {first_line(exc)}", f"GRANT SELECT ON {spec.qualified} TO the ETL login")
        return False
    yield ok(subject, f"readable ({len(spec.columns)} columns)")
    return True


def _catalog_details(engine: sa.Engine, specs: dict[str, TableSpec]) -> dict[str, tuple[dict, list]]:
    """target -> (nullable by column, indexed first columns), one batched call per schema; views
    and SELECT sources have no index of their own and get an empty list."""
    by_schema: dict[str | None, list[TableSpec]] = {}
    for spec in specs.values():
        if not spec.query:
            by_schema.setdefault(spec.schema, []).append(spec)
    details = {}
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        for schema, group in by_schema.items():
            names = sorted({s.name for s in group})
            columns = inspector.get_multi_columns(schema=schema, filter_names=names, kind=ObjectKind.ANY)
            tables = set(inspector.get_table_names(schema=schema))
            indexes = inspector.get_multi_indexes(schema=schema, filter_names=[n for n in names if n in tables])
            pks = inspector.get_multi_pk_constraint(schema=schema, filter_names=[n for n in names if n in tables])
            for spec in group:
                key = (schema, spec.name)
                nullable = {c["name"]: c.get("nullable", True) for c in columns.get(key, [])}
                firsts = [ix["column_names"][0] for ix in indexes.get(key, []) if ix.get("column_names")]
                pk_cols = (pks.get(key) or {}).get("constrained_columns") or []
                details[spec.target] = (nullable, firsts + pk_cols[:1], spec.name in tables)
    return details


def _why(spec: TableSpec, requested: str, cursor_column: str, mssql: bool, tracked: bool) -> tuple[str, bool]:
    """(what the choice rests on, whether it is what was asked for)."""
    if spec.detection == "change_tracking":
        return "Change Tracking is enabled on it", True
    rowversion = next((c.name for c in spec.columns if is_rowversion(c.sa_type)), None)
    has_cursor = any(c.name == cursor_column for c in spec.columns)
    facts = ["no primary key"] if not spec.primary_key else []
    if mssql:
        facts.append(f"Change Tracking is {'enabled' if tracked else 'not enabled'} on it")
    facts.append(f"rowversion column {rowversion}" if rowversion else "no rowversion column")
    facts.append(f"cursor column {cursor_column}" if has_cursor else f"no {cursor_column} column")
    return ", ".join(facts), requested in ("auto", spec.detection)


def _table_checks(spec: TableSpec, subject: str, requested: str, cursor_column: str, details: tuple | None,
                  mssql: bool, tracked: bool) -> Iterator[Check]:
    if spec.primary_key:
        yield ok(subject, f"primary key ({', '.join(spec.primary_key)})")
    else:
        yield warn(subject, "no primary key: reloaded whole every run (published only when its content changed)",
                   "add a primary key, or name one (primary_key) in TABLES_CONFIG_PATH")
    why, as_asked = _why(spec, requested, cursor_column, mssql, tracked)
    if as_asked:
        chosen = f"{spec.detection} ({'auto: ' if requested == 'auto' else ''}{why})"
        check = ok if spec.detection != "full" or requested == "full" else warn
        yield check(subject, f"change detection {chosen}",
                    "give it a primary key and a cursor column, a rowversion column or Change Tracking")
    else:
        yield warn(subject, f"change detection {requested} is not possible ({why}): falls back to full",
                   "fix the table, or choose another change_detection for it")
    nullable, indexed, is_table = details or ({}, [], False)
    if spec.detection == "timestamp" and spec.cursor:
        if nullable.get(spec.cursor, True):
            yield warn(subject, f"cursor column {spec.cursor} allows NULL: a row written with NULL is not seen "
                                f"until the table is reloaded", f"ALTER the column to NOT NULL with a default")
        else:
            yield ok(subject, f"cursor column {spec.cursor} is NOT NULL")
        if not is_table:
            yield ok(subject, f"cursor column {spec.cursor} of a view or SELECT: the index is its base table's")
        elif spec.cursor in indexed:
            yield ok(subject, f"cursor column {spec.cursor} is indexed")
        else:
            yield warn(subject, f"cursor column {spec.cursor} has no index: every incremental read scans the table",
                       f"CREATE INDEX ix_{spec.name}_{spec.cursor} ON {spec.qualified} ({spec.cursor})")
    unmapped = [f"{c.name} ({c.sa_type!r})" for c in spec.columns if not maps_exactly(c.sa_type)]
    if unmapped:
        yield warn(subject, f"no DuckDB type for {', '.join(unmapped)}: synced as text",
                   "cast it in a view (source in TABLES_CONFIG_PATH) if the type matters")
    else:
        yield ok(subject, "every column type maps to DuckDB")
