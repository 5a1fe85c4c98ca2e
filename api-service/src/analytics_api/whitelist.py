"""The query whitelist (shared/schemas/query_whitelist.json): tables, functions, named queries.

Loaded once at start; a malformed file stops the service with one line saying what is wrong.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from analytics_api.errors import BadRequest
from analytics_shared.errors import ConfigError
from analytics_shared.validation import describe_first_error

ParamType = Literal["integer", "number", "string", "boolean", "date", "timestamp"]


class TableRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    columns: list[str] | None = None  # None: every column
    scope: str | None = None  # extra scope required besides read:analytics
    description: str | None = None

    @field_validator("columns")
    @classmethod
    def _lower(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [c.lower() for c in value]


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

    @property
    def function_set(self) -> frozenset[str]:
        return frozenset(self.functions)


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
