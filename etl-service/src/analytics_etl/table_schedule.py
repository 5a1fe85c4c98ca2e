"""`every_n_runs`: which tables this run reads; the others keep their published data as it is.

The count of runs since each such table was last read lives in ETL_STATE_DIR, not in the
manifest: a counter there would change the manifest every run, so a quiet source would
publish every run. Lost with the state directory, the count starts over by reading the table
at once: a table is read early, never later than its period.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path

from analytics_etl.table_config import TableOptions
from analytics_shared.logging import get_logger

log = get_logger(__name__)
STATE_FILE = "table_runs.json"


def tables_due(state_dir: Path, targets: dict[str, str], options: Callable[[str], TableOptions],
               published: set[str]) -> set[str]:
    """The targets to read this run (targets: target -> qualified name); counts this run."""
    path = state_dir / STATE_FILE
    counts: dict[str, int] = {}
    with contextlib.suppress(OSError, ValueError):
        counts = {k: int(v) for k, v in json.loads(path.read_text()).items()}
    due, after = set(), {}
    for target, qualified in targets.items():
        every = options(qualified).every_n_runs
        if every == 1:
            due.add(target)
            continue
        runs = counts.get(target, every - 1) + 1  # unknown: due now
        if runs >= every or target not in published:
            due.add(target)
            runs = 0
        after[target] = runs
    if after or counts:
        state_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(after))
        tmp.replace(path)
    skipped = sorted(set(targets) - due)
    if skipped:
        log.info("tables.skipped", tables=skipped, reason="every_n_runs")
    return due
