"""The tables file (TABLES_CONFIG_PATH, YAML or JSON): per-table overrides of the env defaults.

    orders:    {change_detection: timestamp, cursor_column: modified_at, cursor_lag_seconds: 60}
    customers: {exclude_columns: [email, phone]}
    v_sales:   {source: "SELECT ... FROM dbo.sales s JOIN ...", primary_key: [sale_id], every_n_runs: 10}

A key is the table as TABLES_TO_SYNC names it ([schema.]table; the snapshot table is the bare
name). `source` reads another table or view, or a SELECT, under that name. Every mistake the
file alone shows is reported, one line each; those only the source can show (a table or
column it lacks) are checked against it by source.reflect_tables and `analytics-etl doctor`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from analytics_shared.errors import ConfigError

Detection = Literal["auto", "timestamp", "rowversion", "change_tracking", "full"]
_QUERY = re.compile(r"^\s*\(?\s*(SELECT|WITH)\b", re.IGNORECASE)
_NAME = re.compile(r"^[^.\s]+(\.[^.\s]+)?$")


class TableOptions(BaseModel):
    """One table's overrides; None means the environment's default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    change_detection: Detection | None = None
    cursor_column: str | None = None
    cursor_lag_seconds: int | None = Field(None, ge=0)
    primary_key: tuple[str, ...] | None = Field(None, min_length=1)
    include_columns: tuple[str, ...] | None = Field(None, min_length=1)
    exclude_columns: tuple[str, ...] | None = Field(None, min_length=1)
    source: str | None = Field(None, min_length=1)
    every_n_runs: int = Field(1, ge=1)

    @property
    def query(self) -> str | None:
        """The SELECT this table is read from, when its source is one."""
        return self.source if self.source and _QUERY.match(self.source) else None

    @model_validator(mode="after")
    def _combinations(self):  # noqa: ANN202 - pydantic hook
        problems = []
        if self.include_columns and self.exclude_columns:
            problems.append("include_columns and exclude_columns together (name one)")
        if self.source and not self.query and not _NAME.match(self.source):
            problems.append(f"source {self.source!r} is neither [schema.]table nor a SELECT")
        if self.query and self.change_detection in ("change_tracking", "rowversion"):
            problems.append(f"change_detection {self.change_detection} needs a table, not a SELECT source")
        if self.cursor_lag_seconds is not None and self.change_detection not in (None, "auto", "timestamp"):
            problems.append(f"cursor_lag_seconds applies to timestamp change detection, "
                            f"not {self.change_detection}")
        cursor, kept = self.cursor_column, self.include_columns
        for name in (*(self.primary_key or ()), *((cursor,) if cursor else ())):
            if self.exclude_columns and name in self.exclude_columns:
                problems.append(f"{name} is excluded but is the primary key or the cursor")
            if kept and name not in kept:
                problems.append(f"{name} is the primary key or the cursor but not in include_columns")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def keeps(self, column: str) -> bool:
        if self.include_columns is not None:
            return column in self.include_columns
        return not (self.exclude_columns and column in self.exclude_columns)


def parse_table_config(data: object, origin: str) -> dict[str, TableOptions]:
    """Validate a parsed tables file; one ConfigError line per mistake."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"TABLES_CONFIG_PATH {origin}: expected a mapping of table name to options")
    tables, problems = {}, []
    for key, options in data.items():
        where = f"TABLES_CONFIG_PATH {origin}: table {key}"
        if not isinstance(key, str) or not _NAME.match(key):
            problems.append(f"{where}: not a [schema.]table name")
            continue
        try:
            tables[key] = TableOptions.model_validate(options or {})
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"])
                msg = err["msg"].removeprefix("Value error, ")
                if err["type"] == "extra_forbidden":
                    msg = f"unknown key (known: {', '.join(TableOptions.model_fields)})"
                problems.append(f"{where}: {field + ': ' if field else ''}{msg}")
    targets = [k.split(".")[-1] for k in data if isinstance(k, str) and _NAME.match(k)]
    problems += [f"TABLES_CONFIG_PATH {origin}: two tables called {t}" for t in sorted(set(targets))
                 if targets.count(t) > 1]
    if problems:
        raise ConfigError("\n".join(problems))
    return tables


def load_table_config(path: Path) -> dict[str, TableOptions]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"TABLES_CONFIG_PATH {path}: cannot be read ({exc.strerror})") from None
    import yaml  # YAML 1.1 is a superset of JSON: one parser reads both

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"TABLES_CONFIG_PATH {path}: not YAML or JSON: {str(exc).splitlines()[0]}") from None
    return parse_table_config(data, str(path))
