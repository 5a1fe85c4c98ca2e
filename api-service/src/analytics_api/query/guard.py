"""Whitelist enforcement by parsing, not by pattern matching.

The SQL is parsed with sqlglot's DuckDB dialect, checked node by node, and the SQL that
runs is regenerated from the checked tree (without comments), then parsed and checked once
more, so what DuckDB executes is exactly what was validated: comments, odd spacing and
unicode tricks never reach the engine.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, traverse_scope

from analytics_api.errors import Forbidden, QueryRejected
from analytics_api.whitelist import Whitelist

DIALECT = "duckdb"
Schema = dict[str, dict[str, str]]
_LEAD = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(\()?")
# Statements, and statement-like clauses, that never belong inside a read-only query.
_FORBIDDEN_NODES = tuple(
    getattr(exp, name) for name in (
        "Command", "Pragma", "Set", "Copy", "Attach", "Detach", "Install", "Use", "Create", "Drop",
        "Insert", "Update", "Delete", "Merge", "Alter", "Describe", "Show", "Transaction", "Commit",
        "Rollback", "Export", "Into", "LoadData", "Kill", "Summarize", "Refresh", "Analyze", "Cache",
        "Uncache", "Declare", "Execute", "Prepare", "Grant", "Revoke", "TruncateTable", "Comment",
    ) if hasattr(exp, name)
)
# Table functions allowed in FROM: they generate values from their (checked) arguments and read
# nothing, so `FROM range(10)` can do no more than the allowed `SELECT unnest(range(10))`.
# Deliberately not configurable: a whitelist edit must not be able to allow FROM read_csv(...).
TABLE_FUNCTIONS = frozenset({"RANGE", "GENERATE_SERIES", "UNNEST"})
# Keyword syntax that sqlglot models as a function node; their operands are checked on their own.
_SYNTAX = frozenset({"CASE", "EXISTS", "ARRAY", "STRUCT"})
_MAX_NESTING = 64  # parentheses: far above real analytics SQL, far below Python's recursion limit


@dataclass(frozen=True)
class ValidatedQuery:
    sql: str  # regenerated from the validated tree: this is what runs
    tables: frozenset[str]


class SqlGuard:
    def __init__(self, whitelist: Whitelist, *, max_length: int = 20_000, cache_size: int = 2048) -> None:
        self.whitelist = whitelist
        self.functions = whitelist.function_set
        self.max_length = max_length
        self._cache: OrderedDict[tuple[str, object], ValidatedQuery | QueryRejected] = OrderedDict()
        self._cache_size = cache_size
        self._lock = Lock()
        self._schema_seen: tuple[Schema | None, object] = (None, None)

    def validate(self, sql: str, schema: Schema | None = None) -> ValidatedQuery:
        """Parse and check one statement; raise QueryRejected naming what is not allowed."""
        # Column checks depend on the snapshot's schema, so the cache key includes it.
        key = (sql, self._schema_key(schema))
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
        if hit is None:
            try:
                hit = self._check(sql, schema)
            except QueryRejected as exc:
                hit = exc
            except RecursionError:  # any deep corner of sqlglot: a clean 400, never a 500
                hit = QueryRejected("query is nested too deeply")
            with self._lock:
                self._cache[key] = hit
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

    def _schema_key(self, schema: Schema | None) -> object:
        if not schema:
            return None
        seen, key = self._schema_seen  # snapshots reuse one dict: fingerprint it once
        if seen is not schema:
            key = tuple(sorted((t, tuple(sorted(c.items()))) for t, c in schema.items()))
            self._schema_seen = (schema, key)
        return key

    def _check(self, sql: str, schema: Schema | None) -> ValidatedQuery:
        if not sql or not sql.strip():
            raise QueryRejected("empty query")
        if len(sql) > self.max_length:
            raise QueryRejected(f"query is longer than {self.max_length} characters")
        if "\x00" in sql:
            raise QueryRejected("query contains a NUL character")
        if _nesting(sql) > _MAX_NESTING:
            raise QueryRejected(f"query is nested too deeply (more than {_MAX_NESTING} parentheses)")
        tree = _parse_one(sql)
        tables = self._check_tree(tree)
        try:
            regenerated = tree.sql(dialect=DIALECT, comments=False)
            # Check the text that will run, parsed afresh: generator quirks cannot hide anything.
            again = _parse_one(regenerated)
            stable = again.sql(dialect=DIALECT, comments=False) == regenerated
        except SqlglotError:
            stable = False
        if not stable or self._check_tree(again) != tables:
            raise QueryRejected("query could not be normalised")
        restricted = {t for t in tables if self.whitelist.tables[t].columns is not None}
        if restricted:
            self._check_columns(again, restricted, schema)
        return ValidatedQuery(sql=regenerated, tables=frozenset(tables))

    def _check_tree(self, tree: exp.Expression) -> set[str]:
        tables: set[str] = set()
        for node in tree.walk():
            if isinstance(node, _FORBIDDEN_NODES):
                raise QueryRejected(f"{_statement_name(node)} is not allowed inside a query")
            if isinstance(node, exp.Table):
                name = self._check_table(node)
                if name is not None:
                    tables.add(name)
            elif isinstance(node, exp.Lateral) and not isinstance(node.this, exp.Query):
                self._check_table_function(node.this)
            elif isinstance(node, exp.Func):
                name = _function_name(node)
                if name is not None and name not in self.functions and name not in _SYNTAX:
                    raise QueryRejected(f"function {name} is not allowed")
            elif isinstance(node, exp.Select) and node.args.get("into"):
                raise QueryRejected("SELECT ... INTO is not allowed")
        return tables

    def _check_table_function(self, target: exp.Expression) -> None:
        name = _function_name(target) if isinstance(target, exp.Func) else None
        if name not in TABLE_FUNCTIONS or name not in self.functions:
            shown = name or target.sql(dialect=DIALECT)[:40]
            raise QueryRejected(f"table function {shown} is not allowed")

    def _check_table(self, node: exp.Table) -> str | None:
        target = node.this
        if not isinstance(target, exp.Identifier):
            self._check_table_function(target)
            return None
        name = target.name
        if node.args.get("catalog") is not None or (node.db and node.db.lower() != "main"):
            raise QueryRejected(f"qualified table names are not allowed: {node.sql(dialect=DIALECT)}")
        # Non-ASCII names are compared as written: Python's lower() folds e.g. the Kelvin sign to 'k'.
        lowered = name.lower() if name.isascii() else name
        if not node.db and _cte_visible(node, lowered):
            return None  # main.x always means the stored table, never a CTE
        if any(ch in name for ch in "/\\:.~") or re.match(r"^[a-z0-9+]+://", lowered):
            raise QueryRejected(f"file paths and URLs are not allowed as tables: {name!r}")
        if lowered not in self.whitelist.tables:
            raise QueryRejected(f"table {name!r} is not in the whitelist")
        return lowered

    def _check_columns(self, tree: exp.Expression, restricted: set[str], schema: Schema | None) -> None:
        names = ", ".join(sorted(restricted))
        for node in tree.walk():
            # Each of these reads columns the query never names: SELECT *, t.*, PIVOT's implicit
            # GROUP BY of every other column, NATURAL JOIN's implicit equality on shared columns.
            if isinstance(node, exp.Star) and not isinstance(node.parent, exp.Count):
                raise QueryRejected(f"SELECT * is not allowed on column-restricted table(s) {names}")
            if isinstance(node, exp.Pivot):
                raise QueryRejected(f"PIVOT/UNPIVOT is not allowed on column-restricted table(s) {names}")
            if isinstance(node, exp.Join) and (node.args.get("method") or "").upper() == "NATURAL":
                raise QueryRejected(f"NATURAL JOIN is not allowed on column-restricted table(s) {names}")
        if not schema:
            raise QueryRejected("column-restricted tables cannot be checked before a snapshot is loaded")
        try:
            # Resolves every column to its source; an unresolvable name (e.g. a table alias used
            # as a whole-row value, SELECT t FROM t) is an error here, not a silent pass.
            qualified = qualify(tree.copy(), schema=schema, dialect=DIALECT, validate_qualify_columns=True,
                                expand_stars=False)
            scopes = traverse_scope(qualified)
        except SqlglotError as exc:
            raise QueryRejected(f"could not resolve the query's columns: {_first_line(exc)}") from None
        seen: set[int] = set()
        for scope in scopes:
            for column in scope.columns:
                seen.add(id(column))
                source = _resolve(scope, column.table)
                if isinstance(source, exp.Table) and source.name.lower() in restricted:
                    self._check_column(source.name.lower(), column.name)
        for column in qualified.find_all(exp.Column):  # any column outside a scope: by name alone
            if id(column) not in seen:
                for table in restricted:
                    if column.name.lower() in {c.lower() for c in schema.get(table, {})}:
                        self._check_column(table, column.name)

    def _check_column(self, table: str, column: str) -> None:
        if column.lower() not in (self.whitelist.tables[table].columns or []):
            raise QueryRejected(f"column {table}.{column} is not in the whitelist")


def _parse_one(sql: str) -> exp.Expression:
    try:
        statements = [s for s in sqlglot.parse(sql, dialect=DIALECT) if s is not None]
    except SqlglotError as exc:
        raise QueryRejected(f"could not parse the query: {_first_line(exc)}") from None
    if not statements:
        raise QueryRejected("empty query: no statement")
    if len(statements) != 1:
        kinds = ", ".join(_statement_name(s) for s in statements)
        raise QueryRejected(f"exactly one statement is allowed, got {len(statements)}: {kinds}")
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        raise QueryRejected(f"only SELECT queries are allowed, not {_statement_name(tree)}")
    return tree


def _function_name(node: exp.Func) -> str | None:
    """The name DuckDB will call for this node, as regenerated; None for operator syntax."""
    if isinstance(node, exp.Anonymous):
        return node.name.upper()
    text = node.sql(dialect=DIALECT, comments=False)
    match = _LEAD.match(text)
    if match is None:
        return None  # starts with an operator, bracket or literal: [..], {..}, -x
    if any(text.startswith(child.sql(dialect=DIALECT, comments=False)) for child in node.iter_expressions()):
        return None  # infix or postfix form (a || b, x LIKE y): the leading word is an operand's
    return match.group(1).upper()  # NAME(...) or a bare keyword such as CURRENT_DATE or CASE


def _cte_visible(node: exp.Table, name: str) -> bool:
    """True when an enclosing WITH defines `name` where this reference can see it.

    Resolved as DuckDB 2.0 does (checked against DuckDB in the tests): a CTE body sees the CTEs
    listed before it, never later ones; it sees itself only from the recursive arm of a
    WITH RECURSIVE whose body is `anchor UNION [ALL] recursive` (not BY NAME, not INTERSECT or
    EXCEPT). Everywhere else the name means the stored table, so `WITH t AS (SELECT * FROM t)`
    must not smuggle a non-whitelisted `t` past the check under its own name.
    """
    child, parent = node, node.parent
    while parent is not None:
        if isinstance(parent, exp.With):
            ctes = list(parent.expressions)
            index = next(i for i, cte in enumerate(ctes) if cte is child)
            if any(cte.alias_or_name.lower() == name for cte in ctes[:index]):
                return True
            if parent.args.get("recursive") and child.alias_or_name.lower() == name and _in_recursive_arm(node, child):
                return True
        else:
            with_ = parent.args.get("with_")
            if isinstance(with_, exp.With) and with_ is not child:  # from the body: all of them
                if any(cte.alias_or_name.lower() == name for cte in with_.expressions):
                    return True
        child, parent = parent, parent.parent
    return False


def _in_recursive_arm(node: exp.Expression, cte: exp.Expression) -> bool:
    body = cte.this
    if type(body) is not exp.Union or any(body.args.get(k) for k in ("by_name", "side", "kind", "on")):
        return False
    arm = body.expression
    return any(ancestor is arm for ancestor in _ancestors(node))


def _ancestors(node: exp.Expression):  # noqa: ANN202 - small generator
    while node is not None:
        yield node
        node = node.parent


def _resolve(scope: Scope | None, alias: str) -> object:
    """The source a column's table alias names: this scope's, else an enclosing one (correlation)."""
    while scope is not None:
        if alias in scope.sources:
            return scope.sources[alias]
        scope = scope.parent
    return None


def _nesting(sql: str) -> int:
    depth = deepest = 0
    for ch in sql:
        if ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")":
            depth -= 1
    return deepest


def _statement_name(node: exp.Expression) -> str:
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    return node.key.upper()


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
