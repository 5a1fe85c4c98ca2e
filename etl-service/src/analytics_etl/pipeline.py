"""One sync: read the manifest, copy the snapshot it names, apply this run's changes
to the copy table by table, and publish the copy.

Watermarks are read from the published manifest, and every run starts from a copy
of exactly the snapshot that manifest names: a run that fails to publish leaves
nothing behind to reconcile, the next one re-reads the same changes.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import sqlalchemy as sa
import structlog

from analytics_etl import change_tracking as ct
from analytics_etl.config import EtlSettings
from analytics_etl.errors import SyncAborted, classify_source_error
from analytics_etl.extract import (BatchBuilder, encode_watermark, select_rows, stream_batches, stream_full_table,
                                   watermark_order)
from analytics_etl.local_snapshot import LocalSnapshot, SnapshotState
from analytics_etl.publish import apply_retention, publish_manifest, write_run_record
from analytics_etl.readahead import ReadAhead, select_changes, start_read_ahead
from analytics_etl.reconcile import reconcile_table
from analytics_etl.source import TableSpec, create_source_engine, describe_source, reflect_tables
from analytics_etl.working import WorkingDatabase
from analytics_shared.errors import AnalyticsError, IntegrityError
from analytics_shared.logging import get_logger
from analytics_shared.snapshot_files import sha256_file
from analytics_shared.manifest import Column, Manifest, TableEntry, new_version, read_manifest
from analytics_shared.storage import ObjectStore, open_store

log = get_logger(__name__)
# A snapshot that grew this much past its size after the last full rewrite (deleted and
# updated rows leave dead space in a copied file) is rewritten compactly instead.
COMPACT_GROWTH = 1.5


def open_build(local: LocalSnapshot, store: ObjectStore, manifest: Manifest | None,
               memory_limit: str = "") -> tuple[WorkingDatabase, SnapshotState | None]:
    """This run's database: a copy of the published snapshot. A local file that DuckDB cannot
    open is moved aside and restored from the store once."""
    build, base = local.begin_build(store, manifest)
    try:
        working = WorkingDatabase(build, memory_limit=memory_limit)
    except duckdb.Error as exc:
        if base is None:
            raise
        log.warning("state.corrupt", path=str(local.path), error=str(exc))
        local.set_aside()
        build, base = local.begin_build(store, manifest)
        working = WorkingDatabase(build, memory_limit=memory_limit)
    if base is not None:
        working.start_writeback()
    working.drop_views()
    return working, base


def sync_table(spec: TableSpec, prev: TableEntry | None, conn: sa.Connection, working: WorkingDatabase,
               settings: EtlSettings, ahead: ReadAhead | None = None) -> tuple[TableEntry, bool]:
    """Apply one table's changes; returns its new manifest entry and whether data changed."""
    columns = [(c.name, c.duckdb_type) for c in spec.columns]
    dialect = conn.dialect.name
    builder = BatchBuilder.for_columns(columns, dialect)
    current = working.table_columns(spec.target)
    drifted = current is not None and [(n, t) for n, t in current] != columns
    if drifted:
        log.warning("schema.drift", table=spec.target, before=current, after=columns, action="full_reload")
    incremental = (prev is not None and not drifted and current is not None and prev.watermark is not None
                   and prev.change_detection == spec.detection and spec.detection != "full")
    now = datetime.now(UTC)
    runs_since = int(getattr(prev, "runs_since_reconcile", 0) or 0) + 1 if prev else 0
    watermark = prev.watermark if incremental else None
    reconciled_at = prev.reconciled_at if prev else None
    changed = 0
    if spec.detection == "change_tracking":
        return _sync_change_tracking(spec, prev, conn, working, settings, columns, builder, incremental, now)
    if not incremental:
        if ahead is not None:
            ahead.discard(spec.target)
        before = working.fingerprint(spec.target) if current is not None else None
        working.replace_table(spec.target, columns, stream_full_table(conn, spec, builder, settings.batch_size))
        # A table new to the snapshot is a change without hashing every value it holds.
        changed = 1 if before is None else int(before != working.fingerprint(spec.target))
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
        n, _, top = working.merge_changes(spec.target, columns, spec.primary_key, changes, cursor=spec.cursor)
        changed += n
        if top is not None:
            watermark = max(watermark, encode_watermark(top), key=watermark_order)
        every = settings.delete_reconcile_every
        if every and runs_since >= every:
            deleted = reconcile_table(spec, conn, working, settings.batch_size)
            changed += deleted
            runs_since, reconciled_at = 0, now
            log.info("table.reconciled", table=spec.target, deleted=deleted)
    entry = TableEntry(
        rows=working.row_count(spec.target), columns=[Column(name=n, type=t) for n, t in columns],
        primary_key=list(spec.primary_key), change_detection=spec.detection, watermark=watermark,
        synced_at=now, status="ok", last_error=None, source=spec.qualified, reconciled_at=reconciled_at,
        runs_since_reconcile=runs_since)
    log.info("table.synced", table=spec.target, detection=spec.detection, incremental=incremental,
             changed=changed, rows=entry.rows, watermark=watermark)
    return entry, changed > 0


def _sync_change_tracking(spec: TableSpec, prev: TableEntry | None, conn: sa.Connection,
                          working: WorkingDatabase, settings: EtlSettings, columns: list[tuple[str, str]],
                          builder: BatchBuilder, incremental: bool, now: datetime) -> tuple[TableEntry, bool]:
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
                stream_batches(snap, ct.changed_rows_sql(spec, dialect, since), builder, settings.batch_size),
                deleted_keys=stream_batches(snap, ct.deleted_keys_sql(spec, dialect, since),
                                            BatchBuilder.for_columns(keys, dialect.name), settings.batch_size))
            changed += deleted
        else:
            before = working.fingerprint(spec.target) if working.table_columns(spec.target) else None
            working.replace_table(spec.target, columns,
                                  stream_batches(snap, select_rows(spec), builder, settings.batch_size))
            changed = 1 if before is None else int(before != working.fingerprint(spec.target))
    entry = TableEntry(
        rows=working.row_count(spec.target), columns=[Column(name=n, type=t) for n, t in columns],
        primary_key=list(spec.primary_key), change_detection="change_tracking", watermark=current,
        synced_at=now, status="ok", last_error=None, source=spec.qualified, reconciled_at=now)
    log.info("table.synced", table=spec.target, detection="change_tracking", incremental=incremental,
             changed=changed, rows=entry.rows, watermark=current)
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
                        tables={}, errors={})
    working = ahead = None
    local = LocalSnapshot(settings.etl_state_dir)
    try:
        manifest, etag = read_manifest(store)
        specs, missing = reflect_tables(engine, settings.table_names, requested=settings.change_detection,
                                        cursor_column=settings.cursor_column)
        # stream_batches is looked up here, at run time, so a test can stand in for the source.
        ahead = start_read_ahead(engine, specs, manifest, settings, stream_batches)
        working, base = open_build(local, store, manifest, settings.duckdb_memory_limit)
        tables: dict[str, TableEntry] = {}
        any_change = False
        with engine.connect() as conn:
            for qualified in settings.table_names:
                if stop is not None and stop.is_set():
                    raise SyncAborted("stop requested before publishing; nothing was published")
                target = qualified.split(".")[-1]
                prev = manifest.tables.get(target) if manifest else None
                t0 = time.perf_counter()
                try:
                    if target in missing:
                        raise AnalyticsError(missing[target])
                    entry, changed = sync_table(specs[target], prev, conn, working, settings, ahead)
                    any_change |= changed or prev is None or prev.status != "ok"
                except Exception as exc:  # one table's failure must not block the others
                    error = exc if isinstance(exc, AnalyticsError) else classify_source_error(exc)
                    if conn.invalidated or conn.in_transaction():
                        conn.rollback()
                    log.error("table.failed", table=target, error=error.message, transient=error.transient,
                              exc_info=not isinstance(exc, (AnalyticsError, sa.exc.SQLAlchemyError)))
                    record["errors"][target] = error.message
                    if prev is not None:
                        entry = prev.model_copy(update={"status": "stale", "last_error": error.message})
                        any_change |= prev.status != "stale" or prev.last_error != error.message
                    else:
                        continue
                finally:
                    ahead.discard(target)  # whatever happened, the reader moves on to the next table
                tables[target] = entry
                record["tables"][target] = {"rows": entry.rows, "status": entry.status,
                                            "seconds": round(time.perf_counter() - t0, 3)}
        if not tables:
            raise AnalyticsError("no table could be synced: " + "; ".join(record["errors"].values()))
        if not any_change and manifest is not None:
            record["status"] = "unchanged"
            log.info("sync.unchanged")
            return record
        record["manifest"] = _publish(settings, store, local, base, working, manifest, etag, tables,
                                      engine).model_dump(mode="json")
        working = None  # _publish closed it
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
        if working is not None:
            working.close()
        local.discard_builds()
        if own_engine:
            engine.dispose()
        if record["status"] != "unchanged":
            _record_run(store, run_id, record)
        structlog.contextvars.unbind_contextvars("run_id")


def _record_run(store: ObjectStore, run_id: str, record: dict) -> None:
    try:
        write_run_record(store, run_id, record)
    except AnalyticsError as exc:
        log.warning("run_record.failed", error=exc.message)


def _hash_and_keep(snapshot: Path, working: WorkingDatabase, local: LocalSnapshot) -> tuple[str, Path]:
    """The checkpointed file's sha256 and our own copy of it, made while the database closes:
    all three release the GIL. Closing after a checkpoint leaves the file as it is; if it
    did not, the hash would be wrong, so a changed file fails the publish."""
    before = snapshot.stat()
    with ThreadPoolExecutor(2) as pool:
        closed = pool.submit(working.close)
        kept = pool.submit(local.keep_copy, snapshot)
        digest = sha256_file(snapshot)
        closed.result()
        kept = kept.result()
    if Path(f"{snapshot}.wal").exists():  # readers open it read-only: a WAL would be ignored
        raise IntegrityError(f"{snapshot} still has a WAL after its checkpoint")
    after = snapshot.stat()
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise IntegrityError(f"{snapshot} changed while it was hashed")
    return digest, kept


def _publish(settings: EtlSettings, store: ObjectStore, local: LocalSnapshot, base: SnapshotState | None,
             working: WorkingDatabase, manifest: Manifest | None, etag: str | None,
             tables: dict[str, TableEntry], engine: sa.Engine) -> Manifest:
    views = settings.views_path.read_text() if settings.views_path else None
    working.keep_only(list(tables))
    working.create_views(views)
    working.checkpoint()
    snapshot = working.path
    size = snapshot.stat().st_size
    if base is not None and size > COMPACT_GROWTH * base.compact_size:
        compact = snapshot.with_name("compact-" + snapshot.name)
        working.export_snapshot(compact, list(tables), views)
        working.close()
        log.info("snapshot.compacted", size_bytes=size, compact_size_bytes=compact.stat().st_size,
                 last_compact_size_bytes=base.compact_size)
        snapshot.unlink()
        snapshot, size = compact, compact.stat().st_size
        compact_size = size
    else:
        # A first load is as compact as a rewrite (measured): it becomes the reference.
        compact_size = base.compact_size if base is not None else size
    digest, kept = _hash_and_keep(snapshot, working, local)
    version, key = new_version()
    new = Manifest(format_version=1, version=version, previous_version=manifest.version if manifest else None,
                   created_at=datetime.now(UTC), database_key=key, sha256=digest,
                   size_bytes=size, duckdb_version=duckdb.__version__,
                   source=describe_source(engine), tables=tables)
    publish_manifest(store, snapshot, new, etag)
    local.adopt(kept, new, compact_size)
    # Re-read the manifest: if another instance published since, its snapshot is protected too.
    latest, _ = read_manifest(store)
    apply_retention(store, settings.history_keep, new.database_key,
                    also_keep=latest.database_key if latest else None)
    return new
