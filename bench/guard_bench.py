"""SQL guard benchmark: how long validating a statement never seen before takes, by shape and size.

A novel statement is parsed, checked and regenerated in a worker thread, holding the GIL the whole
time, so its cost is also what it takes from every other request of that worker. Each shape is
built with fresh literals per statement (no template or cache helps) and validated by a fresh
guard over the shipped whitelist; median of --repeat. --baseline-src compares another checkout's
api-service/src in its own process, interleaved round by round:

    .venv/bin/python bench/guard_bench.py --baseline-src <checkout>/api-service/src
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = {"orders": "id customer_id status total currency ordered_at shipped_at note created_at updated_at",
           "transactions": "id order_id method amount created_at"}


def shapes(rng: random.Random) -> dict:
    """name -> a function making one statement of that shape, fresh literals each time."""
    def point() -> str:
        return f"SELECT id, total FROM orders WHERE customer_id = {rng.randint(1, 10**6)} ORDER BY id LIMIT 10"

    def case(arms: int) -> str:
        whens = " ".join(f"WHEN amount > {rng.random() * 100:.4f} AND method = 'm{rng.randint(1, 10**9)}' THEN {i}"
                         for i in range(arms))
        return (f"SELECT date_trunc('month', created_at) AS m, CASE {whens} ELSE -1 END AS bucket, count(*) AS n "
                "FROM transactions GROUP BY ALL ORDER BY ALL")

    def in_list() -> str:
        return "SELECT count(*) FROM orders WHERE id IN (" + ", ".join(
            str(rng.randint(1, 10**7)) for _ in range(450)) + ")"

    def or_chain() -> str:
        return "SELECT count(*) FROM orders WHERE " + " OR ".join(
            f"(customer_id = {rng.randint(1, 10**6)} AND status = 's{rng.randint(1, 99)}' "
            f"AND lower(note) LIKE '%{rng.randint(1, 99)}%')" for _ in range(120))

    def calls() -> str:
        return "SELECT " + ", ".join(f"round(abs(total * {rng.random():.3f}) + coalesce(length(note), 0), 2) AS c{i}"
                                     for i in range(120)) + " FROM orders"

    return {"point lookup": point, "CASE, 20 arms": lambda: case(20), "CASE, 150 arms": lambda: case(150),
            "IN list, 450 values": in_list, "OR of 120 ANDs": or_chain, "120 function calls": calls}


def measure(repeat: int, seed: int) -> dict:
    """Child: median validation time (ms) and statement length per shape, on this process's guard."""
    from analytics_api.query.guard import SqlGuard
    from analytics_api.whitelist import load_whitelist

    whitelist = load_whitelist(ROOT / "shared" / "schemas" / "query_whitelist.json")
    schema = {t: {c: "BIGINT" for c in cols.split()} for t, cols in COLUMNS.items()}
    out = {}
    for name, make in shapes(random.Random(seed)).items():
        times, length = [], 0
        for _ in range(repeat):
            sql = make()
            length = len(sql)
            started = time.perf_counter()
            SqlGuard(whitelist).validate(sql, schema)
            times.append((time.perf_counter() - started) * 1000)
        out[name] = {"ms": statistics.median(times), "chars": length}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-src", default=None, help="another checkout's api-service/src")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    contenders = {"this": None, **({"baseline": args.baseline_src} if args.baseline_src else {})}
    results: dict[str, list[dict]] = {name: [] for name in contenders}
    for r in range(args.rounds):
        for name, src in (list(contenders.items()) if r % 2 == 0 else list(contenders.items())[::-1]):
            env = {**os.environ, **({"PYTHONPATH": src} if src else {})}
            child = subprocess.run([sys.executable, __file__, "measure", str(args.repeat), str(r)], env=env,
                                   capture_output=True, text=True, check=True)
            results[name].append(json.loads(child.stdout))
    print("| statement | chars | " + " | ".join(f"{n} ms" for n in contenders)
          + (" | speed-up |" if args.baseline_src else " |"))
    print("|---|---:|" + "---:|" * len(contenders) + ("---:|" if args.baseline_src else ""))
    for shape in results["this"][0]:
        ms = {n: statistics.median(run[shape]["ms"] for run in runs) for n, runs in results.items()}
        row = f"| {shape} | {results['this'][0][shape]['chars']:,} | " + " | ".join(f"{ms[n]:.2f}" for n in contenders)
        print(row + (f" | {ms['baseline'] / ms['this']:.2f}× |" if args.baseline_src else " |"))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "measure":
        print(json.dumps(measure(int(sys.argv[2]), int(sys.argv[3]))))
    else:
        main()
