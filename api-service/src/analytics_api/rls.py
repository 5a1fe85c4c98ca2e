"""Row-level security: the whitelist's row filters, and the token claims that feed them.

A table rule's `row_filter` ("customer_id = :customer_id") is parsed once, at start. The guard
puts every reference to a filtered table behind a view holding only the rows the filter keeps
(guard.py); the filter's `:name` placeholders become DuckDB parameters `$rls_name`, bound per
request from the caller's claims (`claim_values`), so the validated SQL is the same text for
every user and no claim value is ever part of SQL text.
"""

from __future__ import annotations

from typing import Any

import sqlglot
from pydantic import BaseModel, ConfigDict
from sqlglot import exp
from sqlglot.errors import SqlglotError

from analytics_api.auth.tokens import Principal
from analytics_api.errors import Forbidden

PREFIX = "rls_"  # parameter names the row filters own; a query's own parameters may not use it
_SCALARS = (str, int, float, bool)


class ClaimSpec(BaseModel):
    """Where a placeholder's value comes from, and what shape it must have."""

    model_config = ConfigDict(extra="forbid")
    claim: str  # the JWT claim, e.g. Auth0's namespaced "https://analytics.example.com/customer_id"
    type: str | None = None  # integer, number, string, boolean: a claim of another type is refused
    list: bool | None = None  # True: a non-empty list (region = ANY(:regions)); False: one value


_TYPES: dict[str, tuple[type, ...]] = {"integer": (int,), "number": (int, float), "string": (str,),
                                       "boolean": (bool,)}


def parse_filter(table: str, text: str) -> exp.Expression:
    """The filter as a tree whose placeholders are `$rls_<name>`; ValueError says what is wrong."""
    try:
        tree = sqlglot.parse_one(text, dialect="duckdb", into=exp.Condition)
    except SqlglotError as exc:
        raise ValueError(f"row_filter of table {table!r} does not parse: {str(exc).splitlines()[0]}") from None
    for node in tree.walk():
        if isinstance(node, (exp.Query, exp.Subquery)):
            raise ValueError(f"row_filter of table {table!r} may not contain a subquery")
        if isinstance(node, exp.Column) and node.table:
            raise ValueError(f"row_filter of table {table!r} must name its own columns without a table: "
                             f"{node.sql(dialect='duckdb')}")
        if isinstance(node, (exp.Parameter, exp.Placeholder)):
            name = node.name if isinstance(node, exp.Placeholder) else ""
            if not name or name == "?" or name.isdigit():
                raise ValueError(f"row_filter of table {table!r} must use :name placeholders, not "
                                 f"{node.sql(dialect='duckdb')}")
            node.replace(exp.Placeholder(this=PREFIX + name))
    return tree


def placeholders(tree: exp.Expression) -> set[str]:
    """The claim placeholders (without the prefix) a parsed filter uses."""
    return {node.name.removeprefix(PREFIX) for node in tree.find_all(exp.Placeholder)}


def is_unfiltered(principal: Principal, unfiltered_scope: str | None) -> bool:
    return unfiltered_scope is not None and principal.has(unfiltered_scope)


def claim_values(principal: Principal, needed: frozenset[str], claims: dict[str, ClaimSpec]) -> dict[str, Any]:
    """{"rls_<name>": value} for every placeholder in `needed`, or Forbidden naming the claim.

    Nothing is ever bound by default: a missing, empty or ill-typed claim refuses the query.
    Messages name the claim, never a value.
    """
    values: dict[str, Any] = {}
    for name in sorted(needed):
        spec = claims[name]
        raw = principal.claims.get(spec.claim)
        if raw is None:
            raise Forbidden(f"token lacks the {spec.claim!r} claim this table's row filter needs")
        values[PREFIX + name] = _checked(spec, raw)
    return values


def _checked(spec: ClaimSpec, raw: object) -> object:
    is_list = isinstance(raw, list)
    if spec.list is not None and spec.list != is_list:
        shape = "a list" if spec.list else "a single value"
        raise Forbidden(f"claim {spec.claim!r} must be {shape}")
    items = raw if is_list else [raw]
    if not items or any(item is None or item == "" for item in items):
        raise Forbidden(f"claim {spec.claim!r} is empty")
    allowed = _TYPES.get(spec.type or "", _SCALARS)
    for item in items:
        # bool is an int in Python: true is not customer 1.
        if not isinstance(item, allowed) or (isinstance(item, bool) and bool not in allowed):
            raise Forbidden(f"claim {spec.claim!r} must be {spec.type or 'a string, number or boolean'}"
                            f"{' values' if is_list else ''}")
    return list(items) if is_list else raw
