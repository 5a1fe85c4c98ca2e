"""ETL benchmark: this ETL vs the seed plan's baseline, side by side on one generated source.

Baseline (seeds/001, SyncManager.run_sync): pandas.read_sql per table through SQLAlchemy,
all DataFrames held, then register + CREATE TABLE AS into a new DuckDB file.
Each contender runs in its own process so peak RSS (wait4's ru_maxrss) is its own.

    .venv/bin/python bench/etl_bench.py --rows 3300000 [--postgres]
    .venv/bin/python bench/etl_bench.py --growth [--sizes 3300000,8000000,16500000]
    .venv/bin/python bench/etl_bench.py --partitions [--rows 3300000] [--rounds 2]

--partitions: PostgreSQL full loads, READ_PARTITIONS=1 (one stream per table) against
READ_PARTITIONS=2 (key ranges read by two workers), alternating, each in a fresh process and
state, with the load average before each run.

--growth measures how the ETL's own runs grow with the database (SQLite source, file store):
a full load, a sync after 1% of rows changed, a quiet sync (nothing changed since; its lookback
re-reads the rows the previous sync took) and a quiet sync that also reconciles primary keys.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/_harness.py, also when loaded by path
from _harness import run_json_child  # noqa: E402

DEMO_TABLES = ["inventory", "products", "orders", "transactions", "customers"]
# Workers are separate processes: the table list reaches them through the environment.
TABLES = os.environ.get("BENCH_TABLES", ",".join(DEMO_TABLES)).split(",")
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def run_child(*args: str, env: dict[str, str] | None = None) -> dict:
    """Run this file as a worker; return its JSON result plus its peak RSS in MB."""
    return run_json_child(__file__, *args, env=env, what=f"worker {args}")


def import_driver(source_url: str) -> None:
    """The source's SQLAlchemy dialect and DB-API driver, imported before either contender's
    timer like their other imports: a process imports them once (psycopg ~0.1 s, the SQLite
    dialect ~15 ms without bytecode caches), not on every sync."""
    import sqlalchemy as sa

    sa.engine.make_url(source_url).get_dialect().import_dbapi()


def worker_baseline(source_url: str, out: str) -> dict:
    import duckdb
    import pandas as pd
    import sqlalchemy as sa

    import_driver(source_url)
    started = time.perf_counter()
    engine = sa.create_engine(source_url)
    frames = {}
    with engine.connect() as conn:
        for table in TABLES:
            frames[table] = pd.read_sql(sa.text(f"SELECT * FROM {table}"), conn)
    con = duckdb.connect(out)
    for table, df in frames.items():
        con.register(f"temp_{table}", df)
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM temp_{table}")
    con.close()
    rows = sum(len(df) for df in frames.values())
    return {"rows": rows, "seconds": time.perf_counter() - started}


def worker_etl(source_url: str, store: str, state: str) -> dict:
    import connectorx  # noqa: F401
    import pandas  # noqa: F401 - see below

    from analytics_etl.config import get_settings
    from analytics_etl.pipeline import run_sync

    # Imports stay outside the timer, as in worker_baseline (which imports pandas first):
    # pyarrow imports pandas lazily on the first Python-to-Arrow conversion, 0.85 s without
    # bytecode caches (PYTHONDONTWRITEBYTECODE), a cost the scheduler's process pays once.

    import_driver(source_url)
    settings = get_settings(source_url=source_url, storage_url=f"file://{store}", etl_state_dir=state,
                            tables_to_sync=",".join(TABLES))
    started = time.perf_counter()
    result = run_sync(settings)
    seconds = time.perf_counter() - started
    rows = sum(t["rows"] for t in result["tables"].values())
    return {"rows": rows, "seconds": seconds, "status": result["status"]}


def load_postgres(sqlite_path: Path) -> None:
    """Copy the generated SQLite source into PostgreSQL (same rows for both sources)."""
    import sqlite3

    import psycopg

    src = sqlite3.connect(sqlite_path)
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as pg:
        for table in DEMO_TABLES:
            cols = src.execute(f"PRAGMA table_info({table})").fetchall()
            ddl = []
            for _, name, decl, notnull, _, pk in cols:
                decl = decl.upper()
                pgtype = ("bigint" if "INT" in decl else "numeric" + decl[decl.index("("):] if "NUMERIC(" in decl
                          else "timestamp(6)" if "DATETIME" in decl else "date" if decl == "DATE"
                          else "boolean" if "BOOL" in decl else "text")
                ddl.append(f'"{name}" {pgtype}{" PRIMARY KEY" if pk else ""}')
            pg.execute(f"DROP TABLE IF EXISTS bench_{table}")
            pg.execute(f"CREATE TABLE bench_{table} ({', '.join(ddl)})")
            bools = {i for i, c in enumerate(cols) if "BOOL" in c[2].upper()}
            with pg.cursor().copy(f"COPY bench_{table} FROM STDIN") as copy:
                for row in src.execute(f"SELECT * FROM {table}"):
                    copy.write_row([bool(v) if i in bools and v is not None else v for i, v in enumerate(row)])
            pg.execute(f"CREATE INDEX ON bench_{table} (updated_at)")
            pg.execute(f"ANALYZE bench_{table}")


def compare(label: str, source_url: str, sqlite_path: Path, work: Path, fraction: float) -> dict:
    baseline = run_child("baseline", source_url, str(work / f"{label}-baseline.db"))
    full = run_child("etl", source_url, str(work / f"{label}-store"), str(work / f"{label}-state"))
    from analytics_etl.demo_source import mutate_demo_source

    mutate_demo_source(sqlite_path, fraction=fraction, seed=42)
    if label == "postgresql":
        load_postgres(sqlite_path)  # the mutated rows, with fresh updated_at, land in PostgreSQL too
    incremental = run_child("etl", source_url, str(work / f"{label}-store"), str(work / f"{label}-state"))
    # Nothing changed since: the lookback re-reads the rows the incremental run took, and nothing
    # is published. Not a reconciliation run (that is every DELETE_RECONCILE_EVERY runs).
    quiet = run_child("etl", source_url, str(work / f"{label}-store"), str(work / f"{label}-state"))
    assert quiet["status"] == "unchanged", quiet
    return {
        "source": label,
        "rows": full["rows"],
        "baseline_rows_per_s": round(baseline["rows"] / baseline["seconds"]),
        "baseline_peak_rss_mb": baseline["peak_rss_mb"],
        "etl_full_rows_per_s": round(full["rows"] / full["seconds"]),
        "etl_full_seconds": round(full["seconds"], 2),
        "etl_full_peak_rss_mb": full["peak_rss_mb"],
        "full_speedup_vs_baseline": round(baseline["seconds"] / full["seconds"], 2),
        "etl_incremental_seconds": round(incremental["seconds"], 2),
        "incremental_over_full": round(incremental["seconds"] / full["seconds"], 3),
        "etl_quiet_seconds": round(quiet["seconds"], 3),
        "quiet_over_full": round(quiet["seconds"] / full["seconds"], 3),
    }


def partition_compare(rows: int, work: Path, rounds: int) -> dict:
    """Full loads from PostgreSQL, one stream per table vs key partitions, alternating."""
    from analytics_etl.demo_source import create_demo_source

    sqlite_path = work / "source.db"
    create_demo_source(sqlite_path, rows=rows)
    load_postgres(sqlite_path)
    sqlite_path.unlink()
    os.environ["BENCH_TABLES"] = ",".join(f"bench_{t}" for t in DEMO_TABLES)
    runs: dict[str, list[dict]] = {"1": [], "2": []}
    for i in range(rounds):
        for partitions in ("1", "2"):
            store, state = work / f"store-{partitions}-{i}", work / f"state-{partitions}-{i}"
            load = os.getloadavg()[0]  # other work on the shared cores skews a run: say how much there was
            runs[partitions].append(run_child("etl", PG_URL, str(store), str(state),
                                              env={"READ_PARTITIONS": partitions}) | {"load": load})
            shutil.rmtree(store), shutil.rmtree(state)
    best = {p: min(r["seconds"] for r in rs) for p, rs in runs.items()}
    return {"rows": runs["1"][0]["rows"], "rounds": rounds,
            "single_seconds": [round(r["seconds"], 2) for r in runs["1"]],
            "single_peak_rss_mb": [r["peak_rss_mb"] for r in runs["1"]],
            "partitioned_seconds": [round(r["seconds"], 2) for r in runs["2"]],
            "partitioned_peak_rss_mb": [r["peak_rss_mb"] for r in runs["2"]],
            "load_before": {p: [round(r["load"], 2) for r in rs] for p, rs in runs.items()},
            "speedup_best": round(best["1"] / best["2"], 2)}


def growth_point(rows: int, work: Path, fraction: float) -> dict:
    """One size of the growth curve: seconds (imports excluded) and peak RSS of each run's process."""
    from analytics_etl.demo_source import create_demo_source, mutate_demo_source

    sqlite_path = work / f"source-{rows}.db"
    create_demo_source(sqlite_path, rows=rows)
    url = f"sqlite:///{sqlite_path}"
    args = ("etl", url, str(work / f"store-{rows}"), str(work / f"state-{rows}"))
    runs = {"full": run_child(*args)}
    mutate_demo_source(sqlite_path, fraction=fraction, seed=42)
    runs["changed"] = run_child(*args)
    runs["quiet"] = run_child(*args)
    # The same quiet sync on a run that also reconciles primary keys (DELETE_RECONCILE_EVERY).
    runs["reconcile"] = run_child(*args, env={"DELETE_RECONCILE_EVERY": "1"})
    assert runs["quiet"]["status"] == "unchanged", runs["quiet"]
    from analytics_shared.manifest import read_manifest
    from analytics_shared.storage import LocalStore

    manifest, _ = read_manifest(LocalStore(work / f"store-{rows}"))
    point = {"rows": rows, "snapshot_mb": round(manifest.size_bytes / 2**20)}
    for name, run in runs.items():
        point[f"{name}_seconds"] = round(run["seconds"], 3)
        point[f"{name}_peak_rss_mb"] = run["peak_rss_mb"]
    point["quiet_over_full"] = round(runs["quiet"]["seconds"] / runs["full"]["seconds"], 3)
    point["changed_over_full"] = round(runs["changed"]["seconds"] / runs["full"]["seconds"], 3)
    for leftover in work.glob(f"*-{rows}*"):
        shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    return point


def growth_table(points: list[dict]) -> str:
    lines = ["| rows | snapshot | full load | 1% changed | quiet | quiet + key reconciliation | quiet / full |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for p in points:
        cells = [f"{p[f'{n}_seconds']:.2f} s, {p[f'{n}_peak_rss_mb']} MB" for n in ("full", "changed", "quiet", "reconcile")]
        lines.append(f"| {p['rows']:,} | {p['snapshot_mb']} MB | " + " | ".join(cells) + f" | {p['quiet_over_full']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("baseline", "etl"):
        fn = worker_baseline if sys.argv[1] == "baseline" else worker_etl
        print(json.dumps(fn(*sys.argv[2:])))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=3_300_000)
    parser.add_argument("--fraction", type=float, default=0.01)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--growth", action="store_true", help="full / 1%%-changed / quiet syncs at several sizes")
    parser.add_argument("--sizes", default="3300000,8000000,16500000")
    parser.add_argument("--partitions", action="store_true", help="PostgreSQL full load, partitioned vs one stream")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from analytics_etl.demo_source import create_demo_source

    work = Path(tempfile.mkdtemp(prefix="etl-bench-"))
    try:
        if args.partitions:
            print(json.dumps(partition_compare(args.rows, work, args.rounds), indent=2))
            return
        if args.growth:
            points = [growth_point(int(n), work, args.fraction) for n in args.sizes.split(",")]
            print(json.dumps(points, indent=2))
            print(growth_table(points))
            return
        sqlite_path = work / "source.db"
        create_demo_source(sqlite_path, rows=args.rows)
        results = [compare("sqlite", f"sqlite:///{sqlite_path}", sqlite_path, work, args.fraction)]
        if args.postgres:
            create_demo_source(sqlite_path, rows=args.rows)
            load_postgres(sqlite_path)
            os.environ["BENCH_TABLES"] = ",".join(f"bench_{t}" for t in DEMO_TABLES)
            results.append(compare("postgresql", PG_URL, sqlite_path, work, args.fraction))
        print(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
