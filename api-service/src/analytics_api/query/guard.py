"""Whitelist enforcement by parsing, not by pattern matching.

The SQL is parsed with sqlglot's DuckDB dialect and checked node by node. The SQL that runs is
regenerated from the checked tree without comments, then parsed and checked once more and must
regenerate to the same text, so what DuckDB executes is exactly what was validated: comments,
odd spacing and unicode tricks never reach the engine. Anything not understood is rejected.
A table with a column list or, for a caller bound by row-level security, a row filter is read
only through a subquery of its allowed columns and rows (_add_views): the other columns and rows
are never in DuckDB's scope, so no rename, positional trick, CTE or subquery can reach them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import accumulate
from threading import Lock

import sqlglot
from cachetools import LRUCache
from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.errors import SqlglotError

from analytics_api.errors import Forbidden, QueryRejected
from analytics_api.query.literals import fill_literals, mark_literals
from analytics_api.rls import PREFIX as RLS_PREFIX
from analytics_api.rls import placeholders
from analytics_api.whitelist import Whitelist, fold_name

DIALECT = "duckdb"
Schema = dict[str, dict[str, str]]
_LEAD = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)")
# Statements and statement-like clauses that never belong inside a read-only query.
_FORBIDDEN_NODES = tuple(getattr(exp, name) for name in (
    "Command", "Pragma", "Set", "Copy", "Attach", "Detach", "Install", "Use", "Create", "Drop", "Insert",
    "Update", "Delete", "Merge", "Alter", "Describe", "Show", "Transaction", "Commit", "Rollback", "Export",
    "Into", "LoadData", "Kill", "Summarize", "Refresh", "Analyze", "Cache", "Uncache", "Declare", "Execute",
    "Prepare", "Grant", "Revoke", "TruncateTable", "Comment",
) if hasattr(exp, name))
# The only table functions allowed in FROM: they generate values from their (checked) arguments
# and read nothing, so FROM range(10) does no more than the allowed SELECT unnest(range(10)).
# Not configurable on purpose: no whitelist edit can allow FROM read_csv(...) or query_table(...).
TABLE_FUNCTIONS = frozenset({"RANGE", "GENERATE_SERIES", "UNNEST"})
# Keyword syntax that sqlglot models as function nodes; their operands are checked on their own.
_SYNTAX = frozenset({"CASE", "EXISTS", "ARRAY", "STRUCT"})
# Bare names DuckDB binds to a built-in function when no column has them, even when quoted:
# SELECT "current_catalog" names the snapshot file, SELECT user the process user.
_VALUE_FUNCTIONS = frozenset({
    "CURRENT_CATALOG", "CURRENT_DATE", "CURRENT_ROLE", "CURRENT_SCHEMA", "CURRENT_TIME", "CURRENT_TIMESTAMP",
    "CURRENT_USER", "LOCALTIME", "LOCALTIMESTAMP", "SESSION_USER", "USER",
})
# Results that differ between two runs on the same snapshot: never cached, never given an ETag.
_VOLATILE = frozenset({
    "NOW", "TODAY", "CURRENT_DATE", "CURRENT_TIME", "CURRENT_TIMESTAMP", "GET_CURRENT_TIME",
    "GET_CURRENT_TIMESTAMP", "LOCALTIME", "LOCALTIMESTAMP", "TRANSACTION_TIMESTAMP", "RANDOM", "RAND",
    "UUID", "UUIDV4", "UUIDV7", "GEN_RANDOM_UUID", "SETSEED",
})
# What a reference to a restricted table keeps when it is put behind its view (a
# subquery takes the same joins, pivots and samples); anything else on it is refused.
_KEEP_ON_VIEW = frozenset({"this", "db", "catalog", "alias", "joins", "laterals", "pivots", "sample"})
# Far above real analytics SQL, below where sqlglot's recursive parser and generator hit Python's
# recursion limit (which is also caught): a clean "nested too deeply", never a 500.
_MAX_NESTING = 64  # brackets of any kind, counted on the raw text before parsing
_MAX_DEPTH = 1000  # levels of the parsed tree (long AND chains need no brackets); DuckDB's own limit
# Longest statement known() tokenizes on the event loop (~25 µs per 100 characters): point
# lookups and dashboard tiles fit; a 20 kB query goes to a thread even when its shape is known.
INLINE_TEMPLATE_CHARS = 2_000


@dataclass(frozen=True)
class ValidatedQuery:
    sql: str  # regenerated from the validated tree: this is what runs
    tables: frozenset[str]
    cacheable: bool = True  # False when it calls now(), random(), uuid(), ...
    template: str | None = None  # the literal template it was filled from, if any
    claims: frozenset[str] = frozenset()  # row-filter placeholders to bind from the caller's claims
    numbered: bool = False  # its $1, $2 were renamed $p1, $p2 (DuckDB binds by name or by position, not both)

    @property
    def shape(self) -> str:
        """Same for every query that differs only in literal values (or bound parameters)."""
        return self.template or self.sql


class SqlGuard:
    def __init__(self, whitelist: Whitelist, *, max_length: int = 20_000, cache_size: int = 2048) -> None:
        self.whitelist = whitelist
        self.functions = whitelist.function_set
        self.max_length = max_length
        self._cache: LRUCache[tuple[str, object], ValidatedQuery | QueryRejected] = LRUCache(cache_size)
        self._lock = Lock()  # cachetools caches are not thread-safe; validate() runs in worker threads
        self._columns_restricted = any(rule.columns is not None or rule.row_filter is not None
                                       for rule in whitelist.tables.values())
        # Marked shape -> its validated template, or None when the shape cannot be templated.
        self._templates: LRUCache[tuple[str, object], ValidatedQuery | None] = LRUCache(cache_size)

    def known(self, sql: str, schema: Schema | None = None, *, filtered: bool = False) -> ValidatedQuery | None:
        """What validate() would answer, when that needs no parsing: a statement seen before, or
        a short one filled into a template seen before (microseconds, fit for the event loop).
        None: validate() must parse it, which takes milliseconds per kB: call it off the loop."""
        key = self._key(sql, schema, filtered)  # fingerprints the whole schema: once per request
        hit = self._cached(key)
        if hit is None and len(sql) <= INLINE_TEMPLATE_CHARS:
            hit = self._from_template(sql, schema, key[1], filtered, known_only=True)
        if isinstance(hit, QueryRejected):
            raise QueryRejected(hit.message)
        return hit

    def _key(self, sql: str, schema: Schema | None, filtered: bool) -> tuple[str, object]:
        # Column views are built from the schema; the result is the same text for every caller.
        return sql, (_fingerprint(schema), filtered) if self._columns_restricted else None

    def _cached(self, key: tuple[str, object]) -> ValidatedQuery | QueryRejected | None:
        with self._lock:
            return self._cache.get(key)

    def validate(self, sql: str, schema: Schema | None = None, *, filtered: bool = False) -> ValidatedQuery:
        """Parse and check one statement; raise QueryRejected naming what is not allowed.

        filtered: the caller is bound by the row filters (it lacks the whitelist's unfiltered_scope).
        """
        key = self._key(sql, schema, filtered)
        hit = self._cached(key)
        if hit is None:
            try:
                hit = self._from_template(sql, schema, key[1], filtered) or self._check(sql, schema, filtered)
            except QueryRejected as exc:
                hit = exc
            except RecursionError:  # any deep corner of sqlglot: a clean 400, never a 500
                hit = QueryRejected("query is nested too deeply")
            except Exception as exc:  # noqa: BLE001 - sqlglot trips on some garbage: fail closed, as a 400
                hit = QueryRejected(f"query could not be validated ({type(exc).__name__})")
            with self._lock:
                self._cache[key] = hit
        if isinstance(hit, QueryRejected):
            raise QueryRejected(hit.message)
        return hit

    def _from_template(self, sql: str, schema: Schema | None, fingerprint: object,
                       filtered: bool, known_only: bool = False) -> ValidatedQuery | None:
        """The same query with other literals validated before: only tokenize and fill in.
        known_only: None instead of validating a template not seen before."""
        self._precheck(sql)  # on the user's text: the markers change its length and content
        marked = mark_literals(sql)
        if marked is None:
            return None
        key = (marked.sql, fingerprint)
        with self._lock:
            known = key in self._templates
            template = self._templates.get(key)
        if not known and known_only:
            return None
        if not known:
            try:
                template = self._check(marked.sql, schema, filtered)
            except (QueryRejected, RecursionError):
                template = None  # e.g. FROM 'orders': a literal in a table's place; check in full
            except Exception:  # noqa: BLE001 - sqlglot trips on some garbage: the full check reports it
                template = None
            with self._lock:
                self._templates[key] = template
        if template is None:
            return None
        filled = fill_literals(template.sql, marked)
        if filled is None:
            with self._lock:
                self._templates[key] = None
            return None
        return ValidatedQuery(sql=filled, tables=template.tables, cacheable=template.cacheable, template=template.sql,
                              claims=template.claims, numbered=template.numbered)

    def authorize(self, query: ValidatedQuery, scopes: frozenset[str]) -> None:
        """Per-table scopes from the whitelist, on top of the query scope."""
        for table in sorted(query.tables):
            rule = self.whitelist.tables[table]
            if rule.scope and rule.scope not in scopes:
                raise Forbidden(f"table {table!r} requires the {rule.scope!r} scope")

    def _check(self, sql: str, schema: Schema | None, filtered: bool = False) -> ValidatedQuery:
        self._precheck(sql)
        tree = _parse_one(sql)
        regenerated, texts = _render(tree)
        tables, volatile = self._check_tree(tree, texts)  # first on the user's tree: messages in their terms
        views = self._views(tables, schema, filtered)
        claims = frozenset(p for t in views if filtered and (f := self._filter(t)) is not None
                           for p in placeholders(f))
        numbered = _own_parameters(tree, renumber=bool(claims))
        if self._add_views(tree, views):
            regenerated = _render(tree)[0]
        # Then on the text that will run, parsed afresh: no generator quirk can hide anything, and
        # every restricted table in it must already be behind its view.
        again = _parse_one(regenerated)
        stable, texts = _render(again)
        if (stable != regenerated or self._check_tree(again, texts) != (tables, volatile)
                or self._add_views(again, views)):
            raise QueryRejected("query could not be normalised")
        return ValidatedQuery(sql=regenerated, tables=frozenset(tables), cacheable=not volatile,
                              claims=claims, numbered=numbered)

    def check(self, sql: str) -> frozenset[str]:
        """The checks that need no snapshot (named queries at start): the tables it reads."""
        self._precheck(sql)
        tree = _parse_one(sql)
        _own_parameters(tree, renumber=False)
        return frozenset(self._check_tree(tree, _render(tree)[1])[0])

    def check_row_filters(self) -> None:
        """At start: every row filter must pass the same checks a query does (its functions)."""
        for table in sorted(self.whitelist.filtered_tables):
            tree = exp.select("1").from_(table).where(self._filter(table).copy())
            self._check_tree(tree, _render(tree)[1])

    def _precheck(self, sql: str) -> None:
        if not sql or not sql.strip():
            raise QueryRejected("empty query")
        if len(sql) > self.max_length:
            raise QueryRejected(f"query is longer than {self.max_length} characters")
        if "\x00" in sql:
            raise QueryRejected("query contains a NUL character")
        if _nesting(sql) > _MAX_NESTING:
            raise QueryRejected(f"query is nested too deeply (more than {_MAX_NESTING} brackets)")

    def _check_tree(self, tree: exp.Expression, texts: dict[int, str]) -> tuple[set[str], bool]:
        """The whitelisted tables the tree reads, and whether it calls a volatile function."""
        tables: set[str] = set()
        volatile = False
        stack = [(tree, 0)]
        while stack:
            node, depth = stack.pop()
            if depth > _MAX_DEPTH:
                raise QueryRejected(f"query is nested too deeply (more than {_MAX_DEPTH} levels)")
            stack.extend((child, depth + 1) for child in node.iter_expressions())
            if isinstance(node, _FORBIDDEN_NODES):
                raise QueryRejected(f"{_statement_name(node)} is not allowed inside a query")
            if isinstance(node, exp.Table):
                if not isinstance(node.this, exp.Identifier):
                    self._check_table_function(node.this, texts)
                elif (name := self._check_table(node)) is not None:
                    tables.add(name)
            elif isinstance(node, exp.Lateral) and not isinstance(node.this, exp.Query):
                self._check_table_function(node.this, texts)
            elif isinstance(node, exp.Func) and not isinstance(node, (exp.And, exp.Or)) and not _case_arm(node):
                name = _function_name(node, texts)
                if name is not None and name not in self.functions and name not in _SYNTAX:
                    raise QueryRejected(f"function {_show(name)} is not allowed")
                volatile = volatile or name in _VOLATILE
            elif isinstance(node, exp.Column) and not node.table and node.name.upper() in _VALUE_FUNCTIONS:
                if node.name.upper() not in self.functions:
                    raise QueryRejected(f"function {node.name.upper()} is not allowed")
                volatile = volatile or node.name.upper() in _VOLATILE
        return tables, volatile

    def _check_table_function(self, target: exp.Expression, texts: dict[int, str]) -> None:
        name = _function_name(target, texts) if isinstance(target, exp.Func) else None
        if name not in TABLE_FUNCTIONS or name not in self.functions:
            shown = _show(name) if name else target.sql(dialect=DIALECT)[:40]
            raise QueryRejected(f"table function {shown} is not allowed")

    def _check_table(self, node: exp.Table) -> str | None:
        name = node.this.name
        if node.args.get("catalog") is not None or (node.db and node.db.lower() != "main"):
            raise QueryRejected(f"qualified table names are not allowed: {node.sql(dialect=DIALECT)}")
        lowered = fold_name(name)
        if not node.db and _cte_visible(node, lowered):
            return None  # main.x always means the stored table, never a CTE
        if any(ch in name for ch in "/\\:.~"):
            raise QueryRejected(f"file paths and URLs are not allowed as tables: {_show(name, quote=True)}")
        if lowered not in self.whitelist.tables:
            raise QueryRejected(f"table {_show(name, quote=True)} is not in the whitelist")
        return lowered

    def _filter(self, table: str) -> exp.Expression | None:
        return self.whitelist.tables[table].filter_tree

    def _views(self, tables: set[str], schema: Schema | None, filtered: bool) -> dict[str, exp.Select]:
        """The view each restricted table of the query is read through: its allowed columns,
        and for a filtered caller only the rows its row filter keeps."""
        views: dict[str, exp.Select] = {}
        for table in sorted(tables):
            columns = self.whitelist.tables[table].columns
            row_filter = self._filter(table) if filtered else None
            if columns is None and row_filter is None:
                continue
            if not schema:
                raise QueryRejected("restricted tables cannot be checked before a snapshot is loaded")
            views[table] = self._view(table, schema, columns, row_filter)
        return views

    def _add_views(self, tree: exp.Expression, views: dict[str, exp.Select]) -> int:
        """Put each reference to a restricted table behind its view.

        `customers AS c(x, id)` becomes `(SELECT "id", "country", ... FROM "main"."customers"
        WHERE <row filter>) AS c(x, id)`, so DuckDB never has the other columns or rows in
        scope: whatever the query does with the table (alias column lists, *, #1, ordinals,
        whole-row c, to_json(c), NATURAL JOIN, UNION BY NAME, PIVOT, COLUMNS(...), a CTE or
        subquery at any depth), it gets exactly what a snapshot holding only those would give.
        Returns how many references it replaced: 0 for a tree that already went through it.
        """
        if not views:
            return 0
        targets = [(node, name) for node in tree.find_all(exp.Table)  # CTEs and table functions: None
                   if isinstance(node.this, exp.Identifier) and (name := self._check_table(node)) in views]
        replaced = 0
        for node, name in targets:
            if _is_view(node.parent.parent if isinstance(node.parent, exp.From) else None, views[name]):
                continue  # the view's own reference to the stored table
            if any(v for k, v in node.args.items() if k not in _KEEP_ON_VIEW):  # AT (VERSION => 1), ...
                shown = node.sql(dialect=DIALECT, comments=False)[:80]
                raise QueryRejected(f"not supported on restricted table {name}: {shown}")
            alias = node.args.get("alias") or exp.TableAlias()
            if not alias.this:  # unaliased: the view answers to the table's name, as written
                alias.set("this", node.this.copy())
            moved = {k: node.args[k] for k in ("joins", "laterals", "pivots", "sample") if node.args.get(k)}
            node.replace(exp.Subquery(this=views[name].copy(), alias=alias, **moved))
            replaced += 1
        return replaced

    def _view(self, table: str, schema: Schema, allowed: list[str] | None,
              row_filter: exp.Expression | None) -> exp.Select:
        """SELECT the allowed columns, in the snapshot's order, of the rows the filter keeps."""
        if table not in schema:
            raise QueryRejected(f"table {table!r} is not in the current snapshot")
        if allowed is None:  # every column: `*` is the same set, and DuckDB binds it ~0.1 ms faster than a list
            columns: list[exp.Expression] = [exp.Star()]
        else:
            columns = [exp.column(c, quoted=True) for c in schema[table] if fold_name(c) in allowed]
            if not columns:
                raise QueryRejected(f"none of the allowed columns of table {table!r} is in the current snapshot")
        # main.x is never a CTE, so no WITH in the query can stand in for the stored table.
        view = exp.select(*columns).from_(exp.table_(table, db="main", quoted=True))
        return view if row_filter is None else view.where(row_filter.copy())


def _is_view(select: exp.Expression | None, view: exp.Select) -> bool:
    """True when `select` runs as exactly `view`: compared as the text DuckDB will be given."""
    return (isinstance(select, exp.Select) and len(select.expressions) == len(view.expressions)
            and select.sql(dialect=DIALECT, comments=False) == view.sql(dialect=DIALECT))


def _own_parameters(tree: exp.Expression, *, renumber: bool) -> bool:
    """Check the query's own placeholders; with row-filter parameters to come, rename $1 to $p1.

    DuckDB binds by name or by position, never both in one statement, and the filters' values
    are bound by name. Returns whether anything was renamed (the caller then binds a list of
    values as {"p1": ...}).
    """
    renamed = False
    for node in list(tree.find_all(exp.Placeholder, exp.Parameter)):
        name = node.name
        if name.lower().startswith(RLS_PREFIX):
            raise QueryRejected(f"parameter names starting with {RLS_PREFIX!r} are reserved for row filters")
        if not renumber:
            continue
        if isinstance(node, exp.Parameter) or name in ("", "?"):
            raise QueryRejected("row-filtered tables take $1 or $name placeholders, not ?")
        if name.isdigit():
            node.replace(exp.Placeholder(this=f"p{name}"))
            renamed = True
    return renamed


def _parse_one(sql: str) -> exp.Expression:
    try:
        # A comment between semicolons parses as an empty Semicolon statement: nothing to run.
        statements = [s for s in sqlglot.parse(sql, dialect=DIALECT) if not isinstance(s, (type(None), exp.Semicolon))]
    except SqlglotError as exc:
        where = (getattr(exc, "errors", None) or [{}])[0]  # name the spot, not just a column number
        spot = (where.get("start_context", "") + where.get("highlight", ""))[-60:]
        near = f" near {spot!r}" if where.get("highlight") else ""
        why = where.get("description") or _first_line(exc)
        raise QueryRejected(f"could not parse the query{near}: {why}") from None
    if not statements:
        raise QueryRejected("empty query: no statement")
    if len(statements) != 1:
        kinds = ", ".join(_statement_name(s) for s in statements)
        raise QueryRejected(f"exactly one statement is allowed, got {len(statements)}: {kinds}")
    if not isinstance(statements[0], exp.Query):
        raise QueryRejected(f"only SELECT queries are allowed, not {_statement_name(statements[0])}")
    return statements[0]


class _Renderer(DuckDB.Generator):
    """Renders without comments and remembers the text it emitted for each node on the way.

    The function check reads a call's name off that text (the name DuckDB will be asked to
    call). One pass for the whole tree: rendering each function node on its own took quadratic
    time (minutes for a 15 kB chain of ANDs).
    """

    def __init__(self) -> None:
        super().__init__(comments=False, dialect=DIALECT)
        self.texts: dict[int, str] = {}

    def sql(self, expression, key=None, comment=True):  # noqa: ANN001, ANN201 - the generator recurses through it
        text = super().sql(expression, key, comment)
        if key is None and isinstance(expression, exp.Expression):
            self.texts[id(expression)] = text
        return text


def _render(tree: exp.Expression) -> tuple[str, dict[int, str]]:
    """sqlglot's DuckDB SQL for `tree`, without comments, and the text it emitted for each node."""
    renderer = _Renderer()
    return renderer.generate(tree, copy=False), renderer.texts


def _function_name(node: exp.Func, texts: dict[int, str]) -> str | None:
    """The function DuckDB will call for this node, as regenerated; None for operator syntax."""
    if isinstance(node, exp.Anonymous):
        return node.name.upper()
    text = _text(node, texts)
    match = _LEAD.match(text)
    if match is None:
        return None  # starts with an operator, bracket or literal: [..], {..}, -x
    if match.group(1).upper() in _SYNTAX:
        # CASE, EXISTS, ...: allowed whether or not an operand leads, so the look at each
        # operand's text is skipped (a CASE's WHEN arms have none of their own: a render each).
        return match.group(1).upper()
    for child in node.iter_expressions():  # infix or postfix (a || b, x LIKE y): an operand leads
        lead = _text(child, texts)
        if text.startswith(lead) and not text[len(lead):].lstrip().startswith("("):
            return None
    return match.group(1).upper()  # NAME(...) or a bare keyword such as CURRENT_DATE or CASE


def _case_arm(node: exp.Expression) -> bool:
    """A CASE's WHEN ... THEN ... arm: sqlglot models it as an IF node but renders it as syntax,
    never as a call (its operands are checked on their own). Skipped: it has no text of its own,
    so naming it took a render per arm, a third of the time a long CASE took to validate."""
    return isinstance(node, exp.If) and isinstance(node.parent, exp.Case) and node.arg_key == "ifs"


def _text(node: exp.Expression, texts: dict[int, str]) -> str:  # the few nodes rendered out of band
    return texts.get(id(node)) or node.sql(dialect=DIALECT, comments=False)


def _cte_visible(node: exp.Table, name: str) -> bool:
    """True when an enclosing WITH defines `name` where this reference can see it.

    Resolved as DuckDB 2.0 does (the tests check it against DuckDB): a CTE body sees the CTEs
    listed before it, never later ones, and itself only from the recursive arm of a WITH
    RECURSIVE whose body is `anchor UNION [ALL] recursive` (not BY NAME, INTERSECT or EXCEPT).
    Everywhere else the name means the stored table: `WITH t AS (SELECT * FROM t)` must not
    smuggle a non-whitelisted `t` past the check under its own name.
    """
    child, parent = node, node.parent
    while parent is not None:
        if isinstance(parent, exp.With):  # from inside one CTE's body
            ctes = list(parent.expressions)
            index = next(i for i, cte in enumerate(ctes) if cte is child)
            if any(fold_name(cte.alias_or_name) == name for cte in ctes[:index]):
                return True
            recursive = parent.args.get("recursive")
            if recursive and fold_name(child.alias_or_name) == name and _in_recursive_arm(node, child):
                return True
        elif isinstance(with_ := parent.args.get("with_"), exp.With) and with_ is not child:  # from the body
            if any(fold_name(cte.alias_or_name) == name for cte in with_.expressions):
                return True
        child, parent = parent, parent.parent
    return False


def _in_recursive_arm(node: exp.Expression | None, cte: exp.Expression) -> bool:
    body = cte.this
    while isinstance(body, exp.Subquery) and not body.alias:  # AS ((a UNION ALL b)): still recursive
        body = body.this
    if type(body) is not exp.Union or any(body.args.get(k) for k in ("by_name", "side", "kind", "on")):
        return False
    while node is not None and node is not body.expression:
        node = node.parent
    return node is not None


def _fingerprint(schema: Schema | None) -> object:
    return tuple(sorted((t, tuple(sorted(c.items()))) for t, c in schema.items())) if schema else None


def _nesting(sql: str) -> int:
    return max(accumulate(1 if ch in "([{" else -1 if ch in ")]}" else 0 for ch in sql), default=0)


def _statement_name(node: exp.Expression) -> str:
    """What the user would call it: CHECKPOINT parses as a column, DEALLOCATE p as an alias."""
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    match = _LEAD.match(node.sql(dialect=DIALECT, comments=False))
    return match.group(1).upper() if match else node.key.upper()


def _show(name: str, quote: bool = False) -> str:
    """Names in messages: invisible, look-alike and full-width characters shown as escapes."""
    return ascii(name) if not name.isascii() or not name.isprintable() else repr(name) if quote else name


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
