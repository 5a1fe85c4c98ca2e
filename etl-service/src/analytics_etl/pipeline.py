"""One sync: read the manifest, bring the kept local file to the version it names, apply
this run's changes to that file table by table, and publish it.

Watermarks are read from the published manifest, and every run starts from exactly the
snapshot that manifest names (build.py): a run that fails to publish leaves nothing
behind to reconcile, the next one repairs the file and re-reads the same changes.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import sqlalchemy as sa
import structlog

from analytics_etl import change_tracking as ct
from analytics_etl.build import Build
from analytics_etl.config import EtlSettings
from analytics_etl.errors import SyncAborted, classify_source_error
from analytics_etl.cursor import encode_watermark, watermark_order
from analytics_etl.extract import BatchBuilder, stream_batches
from analytics_etl.native import is_native, stream_full_table
from analytics_etl.local_snapshot import LocalSnapshot
from analytics_etl.publish import Published, publish_snapshot, write_run_record
from analytics_etl.readahead import ReadAhead, select_changes, start_read_ahead
from analytics_etl.reconcile import reconcile_table
from analytics_etl.retention import IndexCache, due, retain_and_collect
from analytics_etl.source_health import source_failure
from analytics_etl.source import TableSpec, create_source_engine, describe_source, reflect_tables, select_rows
from analytics_etl.table_schedule import tables_due
from analytics_etl.working import WorkingDatabase
from analytics_shared.errors import AnalyticsError, SourceError
from analytics_shared.logging import get_logger
from analytics_shared.manifest import Column, Manifest, TableEntry, read_manifest
from analytics_shared.storage import ObjectStore, open_store

log = get_logger(__name__)


def _counted(batches: Iterator, counts: dict[str, int]) -> Iterator:
    for batch in batches:
        counts["read"] += batch.num_rows
        yield batch


def sync_table(spec: TableSpec, prev: TableEntry | None, conn: sa.Connection, working: WorkingDatabase,
               settings: EtlSettings, ahead: ReadAhead | None = None,
               counts: dict[str, int] | None = None) -> tuple[TableEntry, bool]:
    """Apply one table's changes; returns its new manifest entry and whether data changed.
    `counts` receives the rows read from the source and the rows changed in the snapshot."""
    counts = counts if counts is not None else {}
    counts.update(read=0, changed=0)
    columns = [(c.name, c.duckdb_type) for c in spec.columns]
    dialect = conn.dialect.name
    builder = BatchBuilder.for_columns(columns, dialect, spec.cursor)
    current = working.table_columns(spec.target)
    drifted = current is not None and [(n, t) for n, t in current] != columns
    if drifted:
        log.warning("schema.drift", table=spec.target, before=current, after=columns, action="full_reload")
    incremental = (prev is not None and not drifted and current is not None and prev.watermark is not None
                   and prev.change_detection == spec.detection and spec.detection != "full")
    now = datetime.now(UTC)
    runs_since = prev.runs_since_reconcile + 1 if prev else 0
    watermark = prev.watermark if incremental else None
    reconciled_at = prev.reconciled_at if prev else None
    changed = 0
    if spec.detection == "change_tracking":
        return _sync_change_tracking(spec, prev, conn, working, settings, columns, builder, incremental, now, counts)
    if not incremental:
        if ahead is not None:
            ahead.discard(spec.target)
        before = working.fingerprint(spec.target) if current is not None else None
        counts["read"] = _load_full(spec, conn, working, settings, columns, builder)
        # A table new to the snapshot is a change without hashing every value it holds.
        changed = 1 if before is None else int(before != working.fingerprint(spec.target))
        counts["changed"] = counts["read"] if changed else 0
        if spec.cursor:
            top = working.max_value(spec.target, spec.cursor)
            watermark = encode_watermark(top)
        # A new mode or cursor must be published even when the rows are identical: otherwise
        # the manifest keeps the old mode and every later run repeats this full reload.
        if prev is not None and (prev.change_detection != spec.detection or prev.watermark != watermark):
            changed = max(changed, 1)
        runs_since, reconciled_at = 0, now
    else:
        if ahead is not None and spec.target in ahead:
            changes = ahead.batches(spec.target)
        else:
            changes = stream_batches(conn, select_changes(spec, prev, settings), builder, settings.batch_size)
        n, _, top = working.merge_changes(spec.target, columns, spec.primary_key, _counted(changes, counts),
                                          cursor=spec.cursor)
        changed += n
        if top is not None:
            watermark = max(watermark, encode_watermark(top), key=watermark_order)
        every = settings.delete_reconcile_every
        if every and runs_since >= every:
            deleted = reconcile_table(spec, conn, working, settings.batch_size)
            changed += deleted
            runs_since, reconciled_at = 0, now
            log.info("table.reconciled", table=spec.target, deleted=deleted)
        counts["changed"] = changed
    entry = TableEntry(
        rows=working.row_count(spec.target), columns=[Column(name=n, type=t) for n, t in columns],
        primary_key=list(spec.primary_key), change_detection=spec.detection, watermark=watermark,
        synced_at=now, status="ok", last_error=None, source=spec.qualified, reconciled_at=reconciled_at,
        runs_since_reconcile=runs_since)
    log.info("table.synced", table=spec.target, detection=spec.detection, incremental=incremental,
             read=counts["read"], changed=changed, rows=entry.rows, watermark=watermark)
    return entry, changed > 0


def _load_full(spec: TableSpec, conn: sa.Connection, working: WorkingDatabase, settings: EtlSettings,
               columns: list[tuple[str, str]], builder: BatchBuilder) -> int:
    """Reload the table whole: through connectorx, else through the driver; returns its rows.

    connectorx checks values only as it reads them, so a value it cannot convert fails the
    load part-way (SQLite: a DATETIME holding '2026-02-03 04:05:06Z' or
    '2026-02-03 04:05', a DATE holding a date and time), and that table could never be
    loaded. The failed load was rolled back: it is read once more through the driver, which
    hands values over as they are (the docs' promise: the driver path reads everything).
    """
    batches = stream_full_table(conn, spec, builder, settings.batch_size, partitions=settings.read_partitions,
                                partition_min_rows=settings.partition_min_rows)
    try:
        return working.replace_table(spec.target, columns, batches)
    except BaseException as exc:  # pyo3's PanicException (a connectorx worker's) is a BaseException
        if isinstance(exc, (KeyboardInterrupt, SystemExit)) or not is_native(batches):
            raise
        if hasattr(batches, "close"):
            batches.close()  # stops the range workers before the driver reads
        if conn.invalidated or conn.in_transaction():
            conn.rollback()
        log.warning("extract.native_failed", table=spec.target, action="read_via_driver",
                    reason=(str(exc).splitlines() or [repr(exc)])[0][:200])
    return working.replace_table(spec.target, columns,
                                 stream_batches(conn, select_rows(spec), builder, settings.batch_size))


def _sync_change_tracking(spec: TableSpec, prev: TableEntry | None, conn: sa.Connection,
                          working: WorkingDatabase, settings: EtlSettings, columns: list[tuple[str, str]],
                          builder: BatchBuilder, incremental: bool, now: datetime,
                          counts: dict[str, int]) -> tuple[TableEntry, bool]:
    dialect = conn.dialect
    with ct.snapshot_transaction(conn) as snap:
        current, min_valid = ct.read_versions(snap, spec)
        if incremental and min_valid is not None and int(prev.watermark) < min_valid:
            log.warning("change_tracking.expired", table=spec.target, stored=prev.watermark, min_valid=min_valid)
            incremental = False
        if incremental:
            since = int(prev.watermark)
            keys = [(k, spec.column(k).duckdb_type) for k in spec.primary_key]
            changed, deleted, _ = working.merge_changes(
                spec.target, columns, spec.primary_key,
                _counted(stream_batches(snap, ct.changed_rows_sql(spec, dialect, since), builder,
                                        settings.batch_size), counts),
                deleted_keys=stream_batches(snap, ct.deleted_keys_sql(spec, dialect, since),
                                            BatchBuilder.for_columns(keys, dialect.name), settings.batch_size))
            changed += deleted
            counts["changed"] = changed
        else:
            before = working.fingerprint(spec.target) if working.table_columns(spec.target) else None
            counts["read"] = working.replace_table(spec.target, columns,
                                                   stream_batches(snap, select_rows(spec), builder, settings.batch_size))
            changed = 1 if before is None else int(before != working.fingerprint(spec.target))
            counts["changed"] = counts["read"] if changed else 0
    entry = TableEntry(
        rows=working.row_count(spec.target), columns=[Column(name=n, type=t) for n, t in columns],
        primary_key=list(spec.primary_key), change_detection="change_tracking", watermark=current,
        synced_at=now, status="ok", last_error=None, source=spec.qualified, reconciled_at=now)
    log.info("table.synced", table=spec.target, detection="change_tracking", incremental=incremental,
             read=counts["read"], changed=changed, rows=entry.rows, watermark=current)
    return entry, changed > 0


class SyncResult(dict):
    """The run record written to runs/: also what `analytics-etl sync` prints."""


def run_sync(settings: EtlSettings, *, store: ObjectStore | None = None, engine: sa.Engine | None = None,
             stop: threading.Event | None = None) -> SyncResult:
    run_id = uuid.uuid4().hex[:12]
    structlog.contextvars.bind_contextvars(run_id=run_id)
    started = time.perf_counter()
    store = store or open_store(settings.storage_url, region=settings.s3_region, endpoint_url=settings.s3_endpoint_url)
    own_engine = engine is None
    engine = engine or create_source_engine(settings.source_url)
    record = SyncResult(run_id=run_id, started_at=datetime.now(UTC).isoformat(), status="running",
                        tables={}, errors={}, error_classes={}, uploaded_objects=0, uploaded_bytes=0)
    ahead = None
    try:
        manifest, etag = read_manifest(store)
        specs, missing = _reflect(engine, settings)
        # Tables not due this run (every_n_runs) are neither read nor changed: they keep their entry.
        due = tables_due(settings.etl_state_dir, {q.split(".")[-1]: q for q in settings.table_names},
                         settings.table_options, set(manifest.tables) if manifest else set())
        specs = {t: s for t, s in specs.items() if t in due}
        # stream_batches is looked up here, at run time, so a test can stand in for the source.
        ahead = start_read_ahead(engine, specs, manifest, settings, stream_batches)
        local = LocalSnapshot(settings.etl_state_dir, chunk_size=settings.chunk_size,
                              concurrency=settings.upload_concurrency)
        with Build(local, store, manifest, memory_limit=settings.duckdb_memory_limit) as build:
            tables, any_change = _sync_tables(settings, engine, specs, missing, manifest, build, ahead, stop, record)
            if not any_change and manifest is not None:
                record["status"] = "unchanged"
                log.info("sync.unchanged")
                return record
            published = _publish(settings, store, build, manifest, etag, tables, engine)
        record["manifest"] = published.manifest.model_dump(mode="json")
        record["uploaded_objects"], record["uploaded_bytes"] = published.uploaded.objects, published.uploaded.bytes
        record["status"] = "published" if not record["errors"] else "published_with_stale_tables"
        return record
    except AnalyticsError as exc:
        record["status"], record["error"] = "failed", exc.message
        raise
    except Exception as exc:
        record["status"], record["error"] = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        record["seconds"] = round(time.perf_counter() - started, 3)
        if ahead is not None:
            ahead.close()
        if own_engine:
            engine.dispose()
        if record["status"] != "unchanged":
            _record_run(store, run_id, record)
        structlog.contextvars.unbind_contextvars("run_id")


def _reflect(engine: sa.Engine, settings: EtlSettings) -> tuple[dict[str, TableSpec], dict[str, str]]:
    try:
        specs, missing = reflect_tables(engine, settings.table_names, requested=settings.change_detection,
                                        cursor_column=settings.cursor_column, options=settings.table_options)
    except AnalyticsError:
        raise
    except Exception as exc:  # e.g. a damaged catalog whose error text is not even UTF-8
        raise SourceError(f"source error: its catalog cannot be read: {type(exc).__name__}: {exc}") from exc
    if missing and not specs:  # an empty or wrong database, not a set of dropped tables: say so once
        raise SourceError(f"source has none of the tables to sync ({', '.join(sorted(missing))}): "
                          f"is SOURCE_URL the right {engine.dialect.name} database ({engine.url.database})?")
    return specs, missing


def _sync_tables(settings: EtlSettings, engine: sa.Engine, specs: dict[str, TableSpec], missing: dict[str, str],
                 manifest: Manifest | None, build: Build, ahead: ReadAhead, stop: threading.Event | None,
                 record: SyncResult) -> tuple[dict[str, TableEntry], bool]:
    """Apply every table's changes to the build; (new manifest entries, whether anything changed)."""
    tables: dict[str, TableEntry] = {}
    any_change = False
    schemas = {q.split(".")[0] if "." in q else None for q in settings.table_names}
    with engine.connect() as conn:
        for qualified in settings.table_names:
            if stop is not None and stop.is_set():
                raise SyncAborted("stop requested before publishing; nothing was published")
            target = qualified.split(".")[-1]
            prev = manifest.tables.get(target) if manifest else None
            if target not in specs and target not in missing and prev is not None:
                tables[target] = prev  # not due this run (every_n_runs)
                continue
            t0 = time.perf_counter()
            counts = {"read": 0, "changed": 0}
            try:
                if target in missing:
                    raise SourceError(missing[target])
                entry, changed = sync_table(specs[target], prev, conn, build.db, settings, ahead, counts)
                any_change |= changed or prev is None or prev.status != "ok"
                if changed:
                    build.db.relieve_memory()
            except Exception as exc:  # one table's failure must not block the others
                error = exc if isinstance(exc, AnalyticsError) else classify_source_error(exc)
                if conn.invalidated or conn.in_transaction():
                    conn.rollback()
                # The source itself (corrupt, unreachable) is one failure of the run, not one per table.
                if (broken := source_failure(exc, target, engine, schemas)) is not None:
                    raise broken from exc
                log.error("table.failed", table=target, error=error.message, transient=error.transient,
                          exc_info=not isinstance(exc, (AnalyticsError, sa.exc.SQLAlchemyError)))
                record["errors"][target] = error.message
                record["error_classes"][target] = error.code
                if prev is None:
                    continue
                entry = prev.model_copy(update={"status": "stale", "last_error": error.message})
                any_change |= prev.status != "stale" or prev.last_error != error.message
            finally:
                ahead.discard(target)  # whatever happened, the reader moves on to the next table
            tables[target] = entry
            record["tables"][target] = {"rows": entry.rows, "status": entry.status, **counts,
                                        "seconds": round(time.perf_counter() - t0, 3)}
    if not tables:
        raise SourceError("no table could be synced: " + "; ".join(record["errors"].values()))
    return tables, any_change


def _record_run(store: ObjectStore, run_id: str, record: dict) -> None:
    try:
        write_run_record(store, run_id, record)
    except AnalyticsError as exc:
        log.warning("run_record.failed", error=exc.message)


def _publish(settings: EtlSettings, store: ObjectStore, build: Build, manifest: Manifest | None,
             etag: str | None, tables: dict[str, TableEntry], engine: sa.Engine) -> Published:
    views = settings.views_path.read_text() if settings.views_path else None
    path = build.finish(list(tables), views)
    # Whether reused chunks are still in the store is checked at most once per grace period:
    # the check lists every chunk's key, which a publish that moves a few chunks should not.
    checked = settings.etl_state_dir / "last_chunk_check"
    check_reused = due(checked, settings.gc_grace_seconds)
    published = publish_snapshot(
        store, path, build.base, format_version=settings.manifest_format, chunk_size=settings.chunk_size,
        concurrency=settings.upload_concurrency, expected_etag=etag, check_reused=check_reused,
        previous_version=manifest.version if manifest else None, created_at=datetime.now(UTC),
        source=describe_source(engine), tables=tables)
    if check_reused:
        checked.parent.mkdir(parents=True, exist_ok=True)
        checked.touch()
    build.local.adopt(published.manifest, published.chunks, chunks_in_store=published.index is not None,
                      compact_size=build.compact_size)
    indexes = IndexCache(settings.etl_state_dir / "indexes")
    if published.index is not None:
        indexes.put(published.manifest.index_key, published.index)
    # Re-read the manifest: if another instance published since, its version is protected too.
    latest, _ = read_manifest(store)
    protect = {published.manifest.object_key} | ({latest.object_key} if latest else set())
    retain_and_collect(store, settings.etl_state_dir, keep=settings.history_keep, protect=protect,
                       grace_seconds=settings.gc_grace_seconds, keep_hours=settings.history_keep_hours,
                       runs_keep_days=settings.runs_keep_days)
    return published
