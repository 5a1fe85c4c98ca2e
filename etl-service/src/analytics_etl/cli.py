"""`analytics-etl`: run | sync | doctor | status | rollback VERSION | demo-source PATH."""

from __future__ import annotations

import argparse
import json
import os
import sys

from analytics_etl.config import get_settings
from analytics_shared.errors import AnalyticsError, ConfigError
from analytics_shared.logging import configure_logging, get_logger
from analytics_shared.manifest import read_manifest
from analytics_shared.settings import StorageSettings, load_settings
from analytics_shared.storage import open_store

log = get_logger("analytics_etl.cli")


def _store():  # noqa: ANN202
    s = load_settings(StorageSettings)
    return open_store(s.storage_url, region=s.s3_region, endpoint_url=s.s3_endpoint_url)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="analytics-etl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="sync now and then every SYNC_INTERVAL_SECONDS until SIGTERM")
    sub.add_parser("sync", help="run one sync and exit (non-zero on failure)")
    sub.add_parser("doctor", help="check the source and the store before a sync: one line per check (exit 1 on FAIL)")
    sub.add_parser("status", help="print the published manifest")
    health = sub.add_parser("health", help="exit 0 if the last successful sync is recent (container HEALTHCHECK)")
    health.add_argument("--max-age", type=float, default=None,
                        help="seconds; default READY_MAX_AGE_SECONDS")
    rollback = sub.add_parser("rollback", help="point the manifest at an older published version")
    rollback.add_argument("version")
    demo = sub.add_parser("demo-source", help="create the demo SQLite source database")
    demo.add_argument("path")
    demo.add_argument("--rows", type=int, default=10_000, help="total rows over the five tables")
    mutate = sub.add_parser("demo-mutate", help="change a fraction of the demo source's rows")
    mutate.add_argument("path")
    mutate.add_argument("--fraction", type=float, default=0.01)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"), service="etl-service")
    try:
        return _dispatch(args)
    except ConfigError as exc:
        sys.stderr.write(f"analytics-etl: {exc.message}\n")
        return 2
    except AnalyticsError as exc:
        log.error("command.failed", command=args.command, error=exc.message)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo-source":
        from analytics_etl.demo_source import create_demo_source

        sys.stdout.write(json.dumps(create_demo_source(args.path, rows=args.rows)) + "\n")
        return 0
    if args.command == "demo-mutate":
        from analytics_etl.demo_source import mutate_demo_source

        sys.stdout.write(json.dumps(mutate_demo_source(args.path, fraction=args.fraction)) + "\n")
        return 0
    if args.command == "health":
        return _health(args.max_age)
    if args.command == "status":
        manifest, _ = read_manifest(_store())
        sys.stdout.write((manifest.model_dump_json(indent=2) if manifest else "null") + "\n")
        return 0 if manifest else 1
    if args.command == "rollback":
        from analytics_etl.publish import rollback_to

        sys.stdout.write(rollback_to(_store(), args.version).model_dump_json(indent=2) + "\n")
        return 0
    settings = get_settings()
    if args.command == "doctor":
        from analytics_etl.doctor import doctor

        return doctor(settings, sys.stdout.write)
    _verify_tables_file(settings)
    if args.command == "sync":
        from analytics_etl.pipeline import run_sync

        result = run_sync(settings)
        sys.stdout.write(json.dumps(result, default=str) + "\n")
        return 0 if result["status"] in ("published", "unchanged") else 1
    from analytics_etl.scheduler import run_scheduler

    run_scheduler(settings)
    return 0


def _verify_tables_file(settings) -> None:  # noqa: ANN001
    """Tables and columns the tables file names must exist: a mistake there stops the start."""
    if settings.tables_config_path is None:
        return
    from analytics_etl.source import create_source_engine, reflect_tables

    engine = create_source_engine(settings.source_url)
    try:
        _, missing = reflect_tables(engine, settings.table_names, requested=settings.change_detection,
                                    cursor_column=settings.cursor_column, options=settings.table_options)
    except ConfigError:
        raise
    except AnalyticsError as exc:
        # The source is down, not the file wrong: `run` keeps retrying; each run checks the tables.
        log.warning("tables_file.unverified", error=exc.message)
        return
    finally:
        engine.dispose()
    named = {k.split(".")[-1] for k in settings.configured_tables}
    problems = [missing[t] for t in (q.split(".")[-1] for q in settings.table_names) if t in missing and t in named]
    if problems:
        raise ConfigError("\n".join(f"TABLES_CONFIG_PATH {settings.tables_config_path}: {p}" for p in problems))


def _health(max_age: float | None) -> int:
    """Healthy when the scheduler recorded a successful sync recently (ETL_STATE_DIR/last_success)."""
    from datetime import UTC, datetime

    settings = get_settings()
    limit = max_age if max_age is not None else settings.ready_max_age
    marker = settings.etl_state_dir / "last_success"
    try:
        last = datetime.fromisoformat(marker.read_text().strip())
    except (OSError, ValueError):
        sys.stdout.write(f"unhealthy: no successful sync recorded in {marker}\n")
        return 1
    age = (datetime.now(UTC) - last).total_seconds()
    healthy = age <= limit
    sys.stdout.write(f"{'healthy' if healthy else 'unhealthy'}: last successful sync {age:.0f} s ago (limit {limit:.0f} s)\n")
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())
