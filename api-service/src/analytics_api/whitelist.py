"""The query whitelist (shared/schemas/query_whitelist.json): tables, functions, named queries.

Loaded once at start; a malformed file stops the service with one line saying what is wrong.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator
from sqlglot import exp

from analytics_api import rls
from analytics_api.errors import BadRequest
from analytics_shared.errors import ConfigError
from analytics_shared.validation import describe_first_error

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold_name(name: str) -> str:
    """A table, CTE or column name as DuckDB matches it: only ASCII letters fold to lower case.

    Never str.lower(): it also folds the Kelvin sign (U+212A) to 'k' (and 'É' to 'é'), so a CTE
    named "stocK" (Kelvin) would pass for `stock` here while DuckDB reads the stored table
    `stock`, unfiltered and with every column. Both names must be folded the same way.
    """
    return name.translate(_ASCII_LOWER)


ParamType = Literal["integer", "number", "string", "boolean", "date", "timestamp"]


class TableRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    columns: list[str] | None = None  # None: every column
    scope: str | None = None  # extra scope required besides read:analytics
    row_filter: str | None = None  # rows a token without unfiltered_scope may read (rls.py)
    description: str | None = None
    _filter: exp.Expression | None = PrivateAttr(None)

    @property
    def filter_tree(self) -> exp.Expression | None:
        """The parsed row filter, placeholders renamed to their parameters; None: every row."""
        return self._filter

    @field_validator("columns")
    @classmethod
    def _lower(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [fold_name(c) for c in value]


class ParamSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: ParamType
    required: bool = True
    default: Any = None
    min: float | None = None
    max: float | None = None
    max_length: int | None = Field(None, ge=1)
    enum: list[Any] | None = None
    description: str | None = None

    def coerce(self, name: str, raw: object) -> object:
        """Turn a query-string or JSON value into the declared type, or raise BadRequest."""
        try:
            value = _COERCE[self.type](raw)
        except (TypeError, ValueError):
            raise BadRequest(f"parameter {name!r} must be {self.type}") from None
        if self.enum is not None and value not in self.enum:
            raise BadRequest(f"parameter {name!r} must be one of {self.enum}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if self.min is not None and value < self.min:
                raise BadRequest(f"parameter {name!r} must be >= {self.min:g}")
            if self.max is not None and value > self.max:
                raise BadRequest(f"parameter {name!r} must be <= {self.max:g}")
        if isinstance(value, str) and self.max_length is not None and len(value) > self.max_length:
            raise BadRequest(f"parameter {name!r} is longer than {self.max_length} characters")
        return value


def _to_bool(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("true", "1", "yes", "false", "0", "no"):
        return raw.lower() in ("true", "1", "yes")
    raise ValueError(raw)


def _to_int(raw: object) -> int:
    if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
        raise ValueError(raw)
    return int(raw)  # type: ignore[arg-type]


def _to_number(raw: object) -> float:
    if isinstance(raw, bool):
        raise ValueError(raw)
    return float(raw)  # type: ignore[arg-type]


def _to_string(raw: object) -> str:
    if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
        raise ValueError(raw)
    return str(raw)


_COERCE = {
    "integer": _to_int,
    "number": _to_number,
    "string": _to_string,
    "boolean": _to_bool,
    "date": lambda raw: date.fromisoformat(str(raw)),
    "timestamp": lambda raw: datetime.fromisoformat(str(raw)),
}


class NamedQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sql: str
    description: str | None = None
    params: dict[str, ParamSpec] = {}

    def bind(self, raw: dict[str, object]) -> dict[str, object]:
        unknown = set(raw) - set(self.params)
        if unknown:
            raise BadRequest(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        values: dict[str, object] = {}
        for name, spec in self.params.items():
            if name in raw and raw[name] is not None:
                values[name] = spec.coerce(name, raw[name])
            elif spec.default is not None:
                values[name] = spec.coerce(name, spec.default)
            elif spec.required:
                raise BadRequest(f"missing required parameter {name!r}")
            else:
                values[name] = None
        return values


class Whitelist(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = 1
    query_scope: str = "read:analytics"
    schema_scope: str = "read:schema"
    max_rows: int | None = Field(None, ge=1)
    tables: dict[str, TableRule]
    functions: list[str]
    queries: dict[str, NamedQuery] = {}
    # Row-level security: placeholder -> the claim feeding it, and the scope that reads every row.
    claims: dict[str, str | rls.ClaimSpec] = {}
    unfiltered_scope: str | None = None

    @field_validator("tables")
    @classmethod
    def _lower_tables(cls, value: dict[str, TableRule]) -> dict[str, TableRule]:
        if not value:
            raise ValueError("allows no table")
        return {k.lower(): v for k, v in value.items()}

    @field_validator("functions")
    @classmethod
    def _upper_functions(cls, value: list[str]) -> list[str]:
        return sorted({f.upper() for f in value})

    @field_validator("claims")
    @classmethod
    def _claim_specs(cls, value: dict[str, str | rls.ClaimSpec]) -> dict[str, rls.ClaimSpec]:
        return {name: rls.ClaimSpec(claim=spec) if isinstance(spec, str) else spec for name, spec in value.items()}

    @model_validator(mode="after")
    def _parse_row_filters(self) -> Whitelist:
        for table, rule in self.tables.items():
            if rule.row_filter is None:
                continue
            tree = rls.parse_filter(table, rule.row_filter)
            unknown = rls.placeholders(tree) - set(self.claims)
            if unknown:
                raise ValueError(f"row_filter of table {table!r} uses :{sorted(unknown)[0]}, which `claims` "
                                 "does not map to a token claim")
            rule._filter = tree
        for name, query in self.queries.items():
            reserved = sorted(p for p in query.params if p.lower().startswith(rls.PREFIX))
            if reserved:
                raise ValueError(f"named query {name!r}: parameter names starting with {rls.PREFIX!r} are "
                                 f"reserved for row filters ({reserved[0]})")
        return self

    @property
    def function_set(self) -> frozenset[str]:
        return frozenset(self.functions)

    def may_read(self, table: str, scopes: frozenset[str]) -> bool:
        rule = self.tables.get(table)
        return rule is not None and (rule.scope is None or rule.scope in scopes)

    def row_filtered(self, table: str, scopes: frozenset[str]) -> bool:
        """True when a caller with these scopes reads only the rows the table's filter keeps."""
        return (self.tables[table].row_filter is not None
                and (self.unfiltered_scope is None or self.unfiltered_scope not in scopes))

    @property
    def filtered_tables(self) -> frozenset[str]:
        return frozenset(t for t, rule in self.tables.items() if rule.row_filter is not None)


def load_whitelist(path: Path) -> Whitelist:
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"QUERY_WHITELIST_PATH: {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"QUERY_WHITELIST_PATH: {path} is not valid JSON ({exc})") from None
    try:
        return Whitelist.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"QUERY_WHITELIST_PATH: {path}: {describe_first_error(exc)}") from None
