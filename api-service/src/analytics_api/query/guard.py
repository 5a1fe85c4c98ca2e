"""Whitelist enforcement by parsing, not by pattern matching.

The SQL is parsed with sqlglot's DuckDB dialect, checked node by node, and the SQL that
runs is regenerated from the checked tree, so what DuckDB executes is exactly what was
validated: comments, odd spacing and unicode tricks never reach the engine.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from analytics_api.errors import Forbidden, QueryRejected
from analytics_api.whitelist import Whitelist

DIALECT = "duckdb"
_CALL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_FORBIDDEN_NODES = tuple(
    getattr(exp, name) for name in (
        "Command", "Pragma", "Set", "Copy", "Attach", "Detach", "Install", "Use", "Create", "Drop",
        "Insert", "Update", "Delete", "Merge", "Alter", "Describe", "Show", "Transaction", "Commit",
        "Rollback", "Export", "Into", "LoadData", "Kill", "Summarize", "Refresh", "Analyze",
    ) if hasattr(exp, name)
)


@dataclass(frozen=True)
class ValidatedQuery:
    sql: str  # regenerated from the validated tree: this is what runs
    tables: frozenset[str]


class SqlGuard:
    def __init__(self, whitelist: Whitelist, *, max_length: int = 20_000, cache_size: int = 2048) -> None:
        self.whitelist = whitelist
        self.functions = whitelist.function_set
        self.max_length = max_length
        self._cache: OrderedDict[str, ValidatedQuery | QueryRejected] = OrderedDict()
        self._cache_size = cache_size
        self._lock = Lock()

    def validate(self, sql: str, schema: dict[str, dict[str, str]] | None = None) -> ValidatedQuery:
        """Parse and check one statement; raise QueryRejected naming what is not allowed."""
        with self._lock:
            hit = self._cache.get(sql)
            if hit is not None:
                self._cache.move_to_end(sql)
        if hit is None:
            try:
                hit = self._check(sql, schema)
            except QueryRejected as exc:
                hit = exc
            with self._lock:
                self._cache[sql] = hit
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        if isinstance(hit, QueryRejected):
            raise QueryRejected(hit.message)
        return hit

    def authorize(self, query: ValidatedQuery, scopes: frozenset[str]) -> None:
        """Per-table scopes from the whitelist, on top of the query scope."""
        for table in sorted(query.tables):
            rule = self.whitelist.tables[table]
            if rule.scope and rule.scope not in scopes:
                raise Forbidden(f"table {table!r} requires the {rule.scope!r} scope")

    def _check(self, sql: str, schema: dict[str, dict[str, str]] | None) -> ValidatedQuery:
        if not sql or not sql.strip():
            raise QueryRejected("empty query")
        if len(sql) > self.max_length:
            raise QueryRejected(f"query is longer than {self.max_length} characters")
        if "\x00" in sql:
            raise QueryRejected("query contains a NUL character")
        try:
            statements = [s for s in sqlglot.parse(sql, dialect=DIALECT) if s is not None]
        except SqlglotError as exc:
            raise QueryRejected(f"could not parse the query: {_first_line(exc)}") from None
        except RecursionError:
            raise QueryRejected("query is nested too deeply") from None
        if len(statements) != 1:
            raise QueryRejected(f"exactly one statement is allowed, got {len(statements)}")
        tree = statements[0]
        if not isinstance(tree, exp.Query):
            raise QueryRejected(f"only SELECT queries are allowed, not {tree.key.upper()}")
        tables = self._check_tree(tree)
        restricted = {t for t in tables if self.whitelist.tables[t].columns is not None}
        if restricted:
            self._check_columns(tree, restricted, schema)
        try:
            regenerated = tree.sql(dialect=DIALECT)
        except (SqlglotError, RecursionError):
            raise QueryRejected("query could not be normalised") from None
        return ValidatedQuery(sql=regenerated, tables=frozenset(tables))

    def _check_tree(self, tree: exp.Expression) -> set[str]:
        tables: set[str] = set()
        for node in tree.walk():
            if isinstance(node, _FORBIDDEN_NODES):
                raise QueryRejected(f"{node.key.upper()} is not allowed inside a query")
            if isinstance(node, exp.Table):
                name = self._check_table(node)
                if name is not None:
                    tables.add(name)
            elif isinstance(node, exp.Func) and not isinstance(node, (exp.Binary, exp.Unary)):
                self._check_function(node)
            elif isinstance(node, exp.Select) and node.args.get("into"):
                raise QueryRejected("SELECT ... INTO is not allowed")
        return tables

    def _check_table(self, node: exp.Table) -> str | None:
        target = node.this
        if not isinstance(target, exp.Identifier):
            fn = target.sql(dialect=DIALECT) if isinstance(target, exp.Expression) else str(target)
            raise QueryRejected(f"table functions are not allowed: {_head(fn)}")
        name = target.name
        if node.args.get("catalog") is not None or (node.db and node.db.lower() != "main"):
            raise QueryRejected(f"qualified table names are not allowed: {node.sql(dialect=DIALECT)}")
        if _is_cte_reference(node, name):
            return None
        lowered = name.lower()
        if any(ch in name for ch in "/\\:") or "." in name or lowered.startswith(("http", "s3", "gs", "az")) and "//" in name:
            raise QueryRejected(f"file paths and URLs are not allowed as tables: {name!r}")
        if lowered not in self.whitelist.tables:
            raise QueryRejected(f"table {name!r} is not in the whitelist")
        return lowered

    def _check_function(self, node: exp.Func) -> None:
        if isinstance(node, exp.Anonymous):
            name = node.name.upper()
        else:
            match = _CALL.match(node.sql(dialect=DIALECT))
            if match is None:
                return  # operator or keyword syntax (CASE, x -> y, [..], {..}) of a known construct
            name = match.group(1).upper()
        if name not in self.functions:
            raise QueryRejected(f"function {name} is not allowed")

    def _check_columns(self, tree: exp.Expression, restricted: set[str],
                       schema: dict[str, dict[str, str]] | None) -> None:
        from sqlglot.optimizer.qualify import qualify

        if any(isinstance(n, exp.Star) for n in tree.walk()):
            raise QueryRejected(f"SELECT * is not allowed on column-restricted table(s) {', '.join(sorted(restricted))}")
        if not schema:
            raise QueryRejected("column-restricted tables cannot be checked before a snapshot is loaded")
        try:
            qualified = qualify(tree.copy(), schema=schema, dialect=DIALECT, validate_qualify_columns=True)
        except (SqlglotError, RecursionError) as exc:
            raise QueryRejected(f"could not resolve the query's columns: {_first_line(exc)}") from None
        sources = {t.alias_or_name.lower(): t.name.lower() for t in qualified.find_all(exp.Table)}
        for column in qualified.find_all(exp.Column):
            table = sources.get(column.table.lower())
            if table in restricted:
                allowed = self.whitelist.tables[table].columns or []
                if column.name.lower() not in allowed:
                    raise QueryRejected(f"column {table}.{column.name} is not in the whitelist")


def _is_cte_reference(node: exp.Table, name: str) -> bool:
    """True when an enclosing WITH defines `name` where this reference can see it.

    Resolved as DuckDB (and PostgreSQL) do: a CTE sees only the CTEs listed before it,
    and itself only under WITH RECURSIVE. Otherwise `WITH t AS (SELECT * FROM t)` would
    smuggle a non-whitelisted table `t` past the check under its own name.
    """
    if node.db:
        return False
    lowered = name.lower()
    child: exp.Expression = node
    parent = node.parent
    while parent is not None:
        if isinstance(parent, exp.With):
            ctes = list(parent.expressions)
            index = next((i for i, cte in enumerate(ctes) if cte is child), None)
            if index is not None:
                visible = ctes[: index + 1] if parent.args.get("recursive") else ctes[:index]
            else:
                visible = ctes
            if any(cte.alias_or_name.lower() == lowered for cte in visible):
                return True
        child, parent = parent, parent.parent
    return False


def _head(sql: str) -> str:
    match = _CALL.match(sql)
    return match.group(1).upper() if match else sql[:40]


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
