"""The SQL guard: hostile SQL is rejected naming what was refused; legitimate analytics SQL passes
and, regenerated, returns exactly what the original returns on a real published snapshot; CTE
name resolution matches DuckDB's; column restrictions and per-table scopes hold; and DuckDB itself
refuses files, ATTACH, SET and INSTALL even if the guard were bypassed."""

from __future__ import annotations

import re
import sys
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
import sqlglot

from analytics_api.errors import Forbidden, QueryRejected
from analytics_api.query.guard import SqlGuard
from analytics_api.snapshots.database import open_hardened
from analytics_api.whitelist import Whitelist

# --------------------------------------------------------------------------------------------
# Hostile corpus: (sql, a fragment the rejection message must contain, naming what was refused)
# --------------------------------------------------------------------------------------------
STACKED_AND_COMMENTS = [
    ("SELECT 1; DROP TABLE orders", "SELECT, DROP"),
    ("SELECT * FROM orders; SELECT * FROM customers", "got 2"),
    ("SELECT 1 /* harmless */; DELETE FROM orders", "DELETE"),
    ("SELECT 1 -- comment\n; ATTACH 'evil.db' AS evil", "ATTACH"),
    ("/* just a comment */ DROP TABLE orders", "DROP"),
    ("SELECT 1; -- \n SET memory_limit = '64GB'", "got 2: SELECT, SET"),
    ("SELECT 1; /* c */ ; RESET memory_limit", "got 2: SELECT, RESET"),
    ("SELECT 1;; INSTALL httpfs", "INSTALL"),
    ("SELECT id FROM orders /* ; */ ; COPY orders TO '/tmp/x.csv'", "COPY"),
    ("SELECT 1; SELECT 2; SELECT 3", "got 3"),
    ("SELECT 1 --\n;UPDATE orders SET total = 0", "UPDATE"),
]

UNICODE_TRICKS = [
    ("SELECT 1\uff1b DROP TABLE orders", "\uff1b"),  # full-width semicolon
    ("S\u0395LECT * FROM orders", "could not parse"),  # Greek capital epsilon in SELECT
    ("SELECT * FROM \u043erders", "\\u043erders"),  # Cyrillic o
    ("SELECT * FROM \uff4frders", "\\uff4frders"),  # full-width o
    ("SELECT * FROM orders\u200b", "orders\\u200b"),  # zero-width space
    ("SELECT * FROM read\u200b_csv('/etc/passwd')", "READ\\u200b_CSV"),
    ("SELECT * FROM \u202eorders", "\\u202eorders"),  # right-to-left override
    ("SELECT * FROM \u200fsecret", "\\u200fsecret"),  # right-to-left mark
    ("SELECT 1\u200b; DROP TABLE orders", "DROP"),
    ("SELECT get\u200denv('HOME')", "GET\\u200dENV"),  # zero-width joiner inside a function name
    ("SELECT * FROM \u2060customers\u2060", "not in the whitelist"),  # word joiners
    ("SELECT * FROM secret\u3000", "secret"),  # ideographic space
]

CASE_AND_QUOTING = [
    ("SELECT * FROM ReAd_CsV('/etc/passwd')", "READ_CSV"),
    ("SELECT * FROM READ_PARQUET('x.parquet')", "READ_PARQUET"),
    ("SELECT * FROM \"read_csv\"('/etc/passwd')", "READ_CSV"),
    ("SELECT \"GETENV\"('HOME')", "GETENV"),
    ("SELECT GeTeNv('HOME')", "GETENV"),
    ("SELECT * FROM \"SECRET\"", "SECRET"),
]

FILE_PATHS = [
    ("SELECT * FROM \"/etc/passwd\"", "/etc/passwd"),
    ("SELECT * FROM '/etc/passwd'", "/etc/passwd"),
    ("SELECT * FROM 'data.csv'", "data.csv"),
    ("SELECT * FROM \"x.csv\"", "x.csv"),
    ("FROM 'file.parquet'", "file.parquet"),
    ("SELECT * FROM \"s3://bucket/x.parquet\"", "s3://bucket/x.parquet"),
    ("SELECT * FROM 'https://x/y.csv'", "https://x/y.csv"),
    ("SELECT * FROM \"gs://b/x.parquet\"", "gs://b/x.parquet"),
    ("SELECT * FROM 'hf://datasets/user/data/x.parquet'", "hf://"),
    ("SELECT * FROM \"file:///etc/passwd\"", "file:///etc/passwd"),
    ("SELECT * FROM 'C:\\Windows\\win.ini'", "win.ini"),
    ("SELECT * FROM \"~/.aws/credentials\"", "credentials"),
    ("SELECT * FROM orders JOIN 'x.csv' ON true", "x.csv"),
    ("SELECT * FROM orders UNION ALL SELECT * FROM '/tmp/*.parquet'", "/tmp/*.parquet"),
    ("SELECT * FROM \"orders.csv\"", "orders.csv"),
]

TABLE_FUNCTIONS = [
    ("SELECT * FROM read_csv('/etc/passwd')", "READ_CSV"),
    ("SELECT * FROM read_csv_auto('/etc/passwd')", "READ_CSV"),
    ("SELECT * FROM read_parquet('s3://b/x.parquet')", "READ_PARQUET"),
    ("SELECT * FROM parquet_scan('x.parquet')", "PARQUET_SCAN"),
    ("SELECT * FROM read_json('x.json')", "READ_JSON"),
    ("SELECT * FROM read_json_auto('x.json')", "READ_JSON"),
    ("SELECT * FROM read_ndjson('x.json')", "READ_NDJSON"),
    ("SELECT * FROM read_text('/etc/passwd')", "READ_TEXT"),
    ("SELECT * FROM read_blob('/etc/passwd')", "READ_BLOB"),
    ("SELECT * FROM glob('/etc/*')", "GLOB"),
    ("SELECT * FROM query('SELECT * FROM secret')", "QUERY"),
    ("SELECT * FROM query_table('secret')", "QUERY_TABLE"),
    ("SELECT * FROM query_table(['orders', 'secret'])", "QUERY_TABLE"),
    ("SELECT * FROM sniff_csv('/etc/passwd')", "SNIFF_CSV"),
    ("SELECT * FROM parquet_metadata('x.parquet')", "PARQUET_METADATA"),
    ("SELECT * FROM sqlite_scan('x.db', 't')", "SQLITE_SCAN"),
    ("SELECT * FROM duckdb_settings()", "DUCKDB_SETTINGS"),
    ("SELECT * FROM duckdb_tables()", "DUCKDB_TABLES"),
    ("SELECT * FROM duckdb_extensions()", "DUCKDB_EXTENSIONS"),
    ("SELECT * FROM duckdb_secrets()", "DUCKDB_SECRETS"),
    ("SELECT * FROM duckdb_functions()", "DUCKDB_FUNCTIONS"),
    ("SELECT * FROM pragma_table_info('orders')", "PRAGMA_TABLE_INFO"),
    ("SELECT * FROM pragma_database_size()", "PRAGMA_DATABASE_SIZE"),
    ("SELECT * FROM pragma_version()", "PRAGMA_VERSION"),
    ("SELECT * FROM which_secret('s3://b/x', 's3')", "WHICH_SECRET"),
    ("SELECT * FROM repeat('x', 3)", "REPEAT"),  # a scalar function's name, used as a table function
    ("SELECT * FROM json_each('{}')", "JSON_EACH"),
    ("SELECT * FROM histogram(secret, v)", "HISTOGRAM"),  # a table macro that reads a table by name
    ("SELECT * FROM histogram_values(secret, v)", "HISTOGRAM_VALUES"),
    ("SELECT * FROM main.read_csv('/etc/passwd')", "READ_CSV"),
    ("SELECT * FROM system.main.query_table('secret')", "QUERY_TABLE"),
    ("SELECT * FROM orders, read_csv('/etc/passwd')", "READ_CSV"),
    ("SELECT * FROM orders o JOIN read_parquet('x.parquet') p ON true", "READ_PARQUET"),
    ("SELECT * FROM orders o, LATERAL read_csv(o.note)", "READ_CSV"),
    ("SELECT * FROM orders o CROSS JOIN LATERAL glob(o.note)", "GLOB"),
    ("SELECT * FROM orders o, LATERAL repeat(o.id, 2)", "REPEAT"),
    ("SELECT * FROM (FROM read_csv('/etc/passwd'))", "READ_CSV"),
    ("FROM read_csv('/etc/passwd')", "READ_CSV"),
    ("SELECT * FROM read_csv(['a.csv', 'b.csv'])", "READ_CSV"),
    ("SELECT * FROM read_text('/et' || 'c/passwd')", "READ_TEXT"),
    ("SELECT * FROM read_text(concat('/et', 'c/pa', 'sswd'))", "READ_TEXT"),
    ("SELECT * FROM read_csv(lower('/ETC/PASSWD'))", "READ_CSV"),
    ("SELECT * FROM read_csv((SELECT '/etc/passwd'))", "READ_CSV"),
    ("SELECT * FROM read_text(getenv('HOME') || '/.ssh/id_rsa')", "READ_TEXT"),
    ("SELECT * FROM orders WHERE status IN (SELECT name FROM duckdb_settings())", "DUCKDB_SETTINGS"),
    ("SELECT * FROM orders UNION ALL SELECT * FROM query_table('secret')", "QUERY_TABLE"),
]

SCALAR_FUNCTIONS = [
    ("SELECT getenv('HOME')", "GETENV"),
    ("SELECT current_setting('access_mode')", "CURRENT_SETTING"),
    ("SELECT current_setting('enable_external_access')", "CURRENT_SETTING"),
    ("SELECT current_database()", "CURRENT_DATABASE"),
    ("SELECT current_schema()", "CURRENT_SCHEMA"),
    ("SELECT current_schemas(true)", "CURRENT_SCHEMAS"),
    ("SELECT current_user", "CURRENT_USER"),
    # SQL value functions: DuckDB binds these bare names, even quoted, when no column has them.
    ("SELECT current_catalog", "CURRENT_CATALOG"),
    ("SELECT \"current_catalog\"", "CURRENT_CATALOG"),
    ("SELECT current_schema", "CURRENT_SCHEMA"),
    ("SELECT current_role", "CURRENT_ROLE"),
    ("SELECT session_user", "SESSION_USER"),
    ("SELECT user FROM orders", "USER"),
    ("SELECT \"user\" FROM orders", "USER"),
    ("SELECT version()", "VERSION"),
    ("SELECT getvariable('x')", "GETVARIABLE"),
    ("SELECT current_query()", "CURRENT_QUERY"),
    ("SELECT nextval('seq')", "NEXTVAL"),
    ("SELECT setseed(0.5)", "SETSEED"),
    ("SELECT 'HOME'.getenv()", "GETENV"),  # DuckDB's method-call syntax
    ("SELECT system.main.getenv('HOME')", "GETENV"),
    ("SELECT main.current_setting('threads')", "CURRENT_SETTING"),
    ("SELECT lower(getenv('HOME'))", "GETENV"),
    ("SELECT format('{}', getenv('HOME'))", "GETENV"),
    ("SELECT list_aggregate([1, 2], 'sum')", "LIST_AGGREGATE"),  # calls any aggregate by name
    ("SELECT list_aggr([1, 2], 'string_agg', ',')", "LIST_AGGR"),
    ("SELECT my_macro(1)", "MY_MACRO"),
    ("SELECT COLUMNS('.*') FROM orders", "COLUMNS"),
    ("SELECT COLUMNS(c -> c LIKE '%id%') FROM orders", "COLUMNS"),
    ("SELECT * FROM orders WHERE COLUMNS(*) IS NOT NULL", "COLUMNS"),
]

HIDDEN_CALLS = [  # forbidden functions in every corner of an otherwise legal query
    ("SELECT list_transform([1], x -> getenv('HOME'))", "GETENV"),
    ("SELECT list_filter(['threads'], x -> current_setting(x) IS NOT NULL)", "CURRENT_SETTING"),
    ("SELECT list_transform(['HOME'], lambda x: getenv(x))", "GETENV"),
    ("SELECT list_reduce(['a', 'b'], lambda a, b: a || current_setting('threads'))", "CURRENT_SETTING"),
    ("SELECT row_number() OVER (ORDER BY getenv('X')) FROM orders", "GETENV"),
    ("SELECT sum(total) OVER (PARTITION BY current_setting('threads')) FROM orders", "CURRENT_SETTING"),
    ("SELECT id FROM orders ORDER BY getenv('HOME')", "GETENV"),
    ("SELECT count(*) FILTER (WHERE getenv('X') IS NULL) FROM orders", "GETENV"),
    ("SELECT id FROM orders QUALIFY current_setting('threads') = '1'", "CURRENT_SETTING"),
    ("SELECT {'a': getenv('HOME')}", "GETENV"),
    ("SELECT [getenv('HOME')]", "GETENV"),
    ("SELECT struct_pack(x := getenv('HOME'))", "GETENV"),
    ("SELECT map(['k'], [current_setting('threads')])", "CURRENT_SETTING"),
    ("SELECT CASE WHEN true THEN getenv('HOME') END", "GETENV"),
    ("SELECT CASE getenv('X') WHEN 'a' THEN 1 END", "GETENV"),
    ("SELECT status FROM orders GROUP BY status HAVING max(getenv('X')) IS NULL", "GETENV"),
    ("SELECT status FROM orders GROUP BY status, getenv('X')", "GETENV"),
    ("SELECT 1 FROM orders JOIN customers ON getenv('X') IS NULL", "GETENV"),
    ("SELECT 1 FROM orders LIMIT length(getenv('HOME'))", "GETENV"),
    ("SELECT CAST(getenv('X') AS INTEGER)", "GETENV"),
    ("SELECT getenv('X')::INTEGER", "GETENV"),
    ("SELECT coalesce(NULL, getenv('HOME'))", "GETENV"),
    ("SELECT DATE '2024-01-01' + INTERVAL (length(getenv('HOME'))) DAY", "GETENV"),
    ("SELECT [getenv(x) FOR x IN ['HOME']]", "GETENV"),
    ("SELECT id FROM orders WINDOW w AS (ORDER BY getenv('X'))", "GETENV"),
    ("SELECT 'a' || getenv('HOME')", "GETENV"),
    ("SELECT -length(getenv('HOME'))", "GETENV"),
    ("SELECT id FROM orders WHERE note LIKE getenv('X')", "GETENV"),
    ("SELECT string_agg(getenv('X'), ',' ORDER BY getenv('Y')) FROM orders", "GETENV"),
]

CATALOGS = [
    ("SELECT * FROM information_schema.tables", "information_schema.tables"),
    ("SELECT * FROM information_schema.columns", "information_schema"),
    ("SELECT * FROM pg_catalog.pg_tables", "pg_catalog.pg_tables"),
    ("SELECT * FROM sqlite_master", "sqlite_master"),
    ("SELECT * FROM sqlite_schema", "sqlite_schema"),
    ("SELECT * FROM duckdb_tables", "duckdb_tables"),
    ("SELECT * FROM duckdb_columns", "duckdb_columns"),
    ("SELECT * FROM duckdb_settings", "duckdb_settings"),
    ("SELECT * FROM duckdb_secrets", "duckdb_secrets"),
    ("SELECT * FROM pg_settings", "pg_settings"),
    ("SELECT * FROM system.main.duckdb_settings", "system.main.duckdb_settings"),
    ("SELECT * FROM \"system\".\"main\".\"duckdb_secrets\"", "system"),
    ("SELECT * FROM temp.main.orders", "temp.main.orders"),
    ("SELECT * FROM temp.orders", "temp.orders"),
    ("SELECT * FROM memory.main.orders", "memory.main.orders"),
    ("SELECT * FROM snap.main.orders", "snap.main.orders"),
    ("SELECT * FROM other.orders", "other.orders"),
    ("SELECT * FROM main.secret", "secret"),
    ("SELECT * FROM main.duckdb_settings", "duckdb_settings"),
    ("SELECT * FROM secret", "secret"),
    ("SELECT * FROM orders, secret", "secret"),
    ("SELECT id FROM orders WHERE 1 = (SELECT count(*) FROM secret)", "secret"),
    ("SELECT 1 WHERE EXISTS (SELECT 1 FROM secret)", "secret"),
    ("SELECT 1 FROM orders WHERE id = ANY (SELECT 1 FROM secret)", "secret"),
    ("SELECT id FROM orders ORDER BY (SELECT 1 FROM secret)", "secret"),
    ("SELECT * FROM orders o, LATERAL (SELECT * FROM secret)", "secret"),
    ("SELECT id FROM orders UNION SELECT v FROM secret", "secret"),
    ("SELECT id FROM orders UNION ALL BY NAME FROM secret", "secret"),
    ("SELECT id FROM orders INTERSECT SELECT v FROM secret", "secret"),
    ("SELECT id FROM orders EXCEPT SELECT v FROM secret", "secret"),
    ("SELECT * FROM secret PIVOT (sum(b) FOR a IN ('x'))", "secret"),
    ("SELECT * FROM secret UNPIVOT (v FOR k IN (a, b))", "secret"),
    ("FROM secret", "secret"),
    ("TABLE secret", "secret"),
]

STATEMENTS = [
    ("ATTACH 'other.db' AS other", "ATTACH"),
    ("ATTACH ':memory:' AS m", "ATTACH"),
    ("DETACH other", "DETACH"),
    ("COPY orders TO '/tmp/orders.csv'", "COPY"),
    ("COPY (SELECT * FROM orders) TO '/tmp/o.parquet' (FORMAT parquet)", "COPY"),
    ("COPY orders FROM '/tmp/orders.csv'", "COPY"),
    ("EXPORT DATABASE '/tmp/dump'", "EXPORT"),
    ("IMPORT DATABASE '/tmp/dump'", "IMPORT"),
    ("INSTALL httpfs", "INSTALL"),
    ("FORCE INSTALL httpfs", "FORCE"),
    ("LOAD httpfs", "LOAD"),
    ("UPDATE EXTENSIONS", "UPDATE"),
    ("SET memory_limit = '64GB'", "SET"),
    ("SET GLOBAL enable_external_access = true", "SET"),
    ("SET VARIABLE x = 1", "SET"),
    ("RESET memory_limit", "RESET"),
    ("PRAGMA table_info('orders')", "PRAGMA"),
    ("PRAGMA enable_profiling", "PRAGMA"),
    ("CALL pragma_version()", "CALL"),
    ("CALL duckdb_settings()", "CALL"),
    ("CHECKPOINT", "CHECKPOINT"),
    ("FORCE CHECKPOINT", "FORCE"),
    ("VACUUM", "VACUUM"),
    ("ANALYZE", "ANALYZE"),
    ("CREATE TABLE t (x INTEGER)", "CREATE"),
    ("CREATE TABLE t AS SELECT * FROM orders", "CREATE"),
    ("CREATE VIEW v AS SELECT * FROM secret", "CREATE"),
    ("CREATE MACRO m(x) AS x + 1", "CREATE"),
    ("CREATE OR REPLACE TEMP MACRO lower(x) AS getenv(x)", "CREATE"),
    ("CREATE TEMP TABLE t AS SELECT 1", "CREATE"),
    ("CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v')", "CREATE"),
    ("CREATE SEQUENCE s", "CREATE"),
    ("CREATE SCHEMA s", "CREATE"),
    ("INSERT INTO orders VALUES (1)", "INSERT"),
    ("INSERT INTO orders SELECT * FROM orders", "INSERT"),
    ("UPDATE orders SET total = 0", "UPDATE"),
    ("DELETE FROM orders", "DELETE"),
    ("DROP TABLE orders", "DROP"),
    ("DROP VIEW v", "DROP"),
    ("ALTER TABLE orders ADD COLUMN x INTEGER", "ALTER"),
    ("TRUNCATE orders", "TRUNCATE"),
    ("BEGIN", "BEGIN"),
    ("BEGIN TRANSACTION", "BEGIN"),
    ("COMMIT", "COMMIT"),
    ("ROLLBACK", "ROLLBACK"),
    ("USE other", "USE"),
    ("DESCRIBE orders", "DESCRIBE"),
    ("DESCRIBE SELECT * FROM orders", "DESCRIBE"),
    ("SHOW TABLES", "SHOW"),
    ("SHOW ALL TABLES", "SHOW"),
    ("SHOW DATABASES", "SHOW"),
    ("SUMMARIZE orders", "SUMMARIZE"),
    ("SUMMARIZE SELECT * FROM orders", "SUMMARIZE"),
    ("EXPLAIN SELECT 1", "EXPLAIN"),
    ("EXPLAIN ANALYZE SELECT * FROM orders", "EXPLAIN"),
    ("PREPARE p AS SELECT * FROM orders", "PREPARE"),
    ("EXECUTE p", "EXECUTE"),
    ("DEALLOCATE p", "DEALLOCATE"),
    ("MERGE INTO orders USING customers ON true WHEN MATCHED THEN DELETE", "MERGE"),
    ("COMMENT ON TABLE orders IS 'x'", "COMMENT"),
    ("PIVOT secret ON a USING sum(b)", "PIVOT"),
    ("UNPIVOT secret ON COLUMNS(*) INTO NAME k VALUE v", "UNPIVOT"),
    ("SELECT * INTO new_table FROM orders", "CREATE"),
    ("SELECT * FROM (SUMMARIZE orders)", "SUMMARIZE"),
    ("SELECT * FROM (DESCRIBE orders)", "DESCRIBE"),
    ("SELECT * FROM (SHOW TABLES)", "SHOW"),
    ("WITH x AS (DELETE FROM orders RETURNING *) SELECT * FROM x", "DELETE"),
    ("WITH x AS (INSERT INTO orders VALUES (1) RETURNING *) SELECT * FROM x", "INSERT"),
    ("SELECT * FROM (UPDATE orders SET total = 0 RETURNING *)", "UPDATE"),
]

CTE_TRICKS = [
    ("WITH secret AS (SELECT * FROM secret) SELECT * FROM secret", "secret"),
    ("WITH RECURSIVE secret AS (SELECT * FROM secret) SELECT * FROM secret", "secret"),
    ("WITH RECURSIVE secret AS (SELECT * FROM secret UNION ALL SELECT 'x') SELECT * FROM secret", "secret"),
    ("WITH RECURSIVE secret AS (SELECT 'x' AS v UNION ALL BY NAME SELECT * FROM secret) SELECT * FROM secret",
     "secret"),
    ("WITH RECURSIVE secret AS (SELECT 'x' AS v INTERSECT SELECT * FROM secret) SELECT * FROM secret", "secret"),
    ("WITH RECURSIVE secret AS (SELECT 'x' AS v UNION ALL SELECT * FROM secret UNION ALL "
     "SELECT 'y' FROM secret WHERE false) SELECT * FROM secret", "secret"),
    ("WITH RECURSIVE secret AS (SELECT v FROM (SELECT * FROM secret)) SELECT * FROM secret", "secret"),
    ("WITH RECURSIVE secret AS (SELECT (SELECT v FROM secret) AS v) SELECT * FROM secret", "secret"),
    ("WITH a AS (SELECT * FROM secret_b), secret_b AS (SELECT 1 AS v) SELECT * FROM a", "secret_b"),
    ("WITH RECURSIVE a AS (SELECT * FROM secret_b), secret_b AS (SELECT 1 AS v) SELECT * FROM a", "secret_b"),
    ("SELECT * FROM (WITH secret AS (SELECT 1) SELECT * FROM secret) UNION ALL SELECT * FROM secret", "secret"),
    ("SELECT * FROM (WITH secret AS (SELECT 1) SELECT * FROM secret) a, secret", "secret"),
    ("WITH secret AS (SELECT id FROM orders) SELECT * FROM main.secret", "secret"),
    ("WITH x AS (SELECT * FROM read_csv('/etc/passwd')) SELECT * FROM x", "READ_CSV"),
    ("WITH x AS (SELECT getenv('HOME') AS h) SELECT h FROM x", "GETENV"),
    ("WITH x AS (SELECT 1) SELECT * FROM x, (WITH y AS (SELECT * FROM secret) SELECT * FROM y)", "secret"),
    ("WITH x AS (SELECT 1 AS v) SELECT * FROM x UNION ALL SELECT * FROM secret", "secret"),
    ("WITH x AS MATERIALIZED (SELECT * FROM secret) SELECT * FROM x", "secret"),
]

LIMITS = [
    ("", "empty"),
    ("   ", "empty"),
    ("\n\t  \r\n", "empty"),
    ("-- only a comment", "empty"),
    ("/* only a comment */", "empty"),
    (";", "empty"),
    (";;  ;", "empty"),
    ("SELECT 1\x00; DROP TABLE orders", "NUL"),
    ("SELECT * FROM orders\x00", "NUL"),
    ("SELECT 1" + " " * 30_000, "longer than"),
    ("SELECT " + "(" * 5000 + "1" + ")" * 5000, "nested too deeply"),
    ("SELECT " + "(" * 65 + "1" + ")" * 65, "nested too deeply"),
    ("SELECT " + "[" * 3000 + "1" + "]" * 3000, "nested too deeply"),
    ("SELECT " + "{'a': " * 2000 + "1" + "}" * 2000, "nested too deeply"),
    ("SELECT " + "NOT " * 4000 + "true", "nested too deeply"),
    ("SELECT " + "- " * 6000 + "1", "nested too deeply"),
    ("SELECT " + "CASE WHEN true THEN " * 700 + "1" + " END" * 700, "nested too deeply"),
    ("SELECT " + " + ".join(["1"] * 4000), "nested too deeply"),
    ("SELECT 1 FROM orders WHERE " + " AND ".join(["id = 1"] * 1500), "nested too deeply"),
    ("SELECT * FROM orders WHERE id = ", "could not parse"),
    ("SHOW ALL ", "could not be validated"),  # sqlglot raises IndexError: still a clean rejection
    ("SELECT {'a': 1, : 'x'} AS s", "could not be validated"),  # sqlglot raises AttributeError
    ("SELECT FROM WHERE", "could not parse"),
]

HOSTILE = [
    *STACKED_AND_COMMENTS, *UNICODE_TRICKS, *CASE_AND_QUOTING, *FILE_PATHS, *TABLE_FUNCTIONS,
    *SCALAR_FUNCTIONS, *HIDDEN_CALLS, *CATALOGS, *STATEMENTS, *CTE_TRICKS, *LIMITS,
]


def _id(sql: str) -> str:
    return ascii(sql[:60])


@pytest.mark.parametrize(("sql", "named"), HOSTILE, ids=[_id(s) for s, _ in HOSTILE])
def test_hostile_sql_is_rejected_naming_what_was_refused(guard: SqlGuard, sql: str, named: str) -> None:
    with pytest.raises(QueryRejected) as info:
        guard.validate(sql)
    assert named.lower() in info.value.message.lower(), info.value.message
    # Rejections are cached: the second answer is the same, never a pass.
    with pytest.raises(QueryRejected) as again:
        guard.validate(sql)
    assert again.value.message == info.value.message


def test_hostile_corpus_size() -> None:
    assert len(HOSTILE) >= 120
    assert len({s for s, _ in HOSTILE}) == len(HOSTILE), "duplicate hostile cases"


def test_deep_input_fails_cleanly_without_touching_the_recursion_limit(guard: SqlGuard) -> None:
    limit = sys.getrecursionlimit()
    for depth in (50, 500, 3000):
        sql = "SELECT " + "abs(" * depth + "1" + ")" * depth
        try:
            guard.validate(sql)
        except QueryRejected as exc:
            assert "nested too deeply" in exc.message
    assert sys.getrecursionlimit() == limit


def test_comments_never_reach_duckdb(guard: SqlGuard) -> None:
    # A comment that tries to close itself and smuggle a statement out stays a comment.
    validated = guard.validate("SELECT count(*) AS n FROM orders -- */ ; DROP TABLE orders; /*")
    assert validated.sql == "SELECT COUNT(*) AS n FROM orders"
    validated = guard.validate("SELECT /* ; ATTACH 'x' */ 1 AS one")
    assert "ATTACH" not in validated.sql and "/*" not in validated.sql


# --------------------------------------------------------------------------------------------
# Legitimate analytics SQL over the five demo tables: (sql, params)
# --------------------------------------------------------------------------------------------
LEGIT: list[tuple[str, object]] = [
    # joins
    ("SELECT o.id, c.full_name, o.total FROM orders o JOIN customers c ON c.id = o.customer_id "
     "WHERE o.total > 900 ORDER BY o.id", None),
    ("SELECT c.id, count(o.id) AS orders FROM customers c LEFT JOIN orders o ON o.customer_id = c.id "
     "GROUP BY c.id ORDER BY c.id", None),
    ("SELECT p.id AS product, i.warehouse, i.quantity FROM products p FULL OUTER JOIN inventory i "
     "ON i.product_id = p.id", None),
    ("SELECT a.id, b.id AS next_id, b.total - a.total AS delta FROM orders a JOIN orders b ON b.id = a.id + 1 "
     "WHERE a.id <= 40 ORDER BY a.id", None),
    ("SELECT customer_id, c.country, count(*) AS n FROM orders "
     "JOIN (SELECT id AS customer_id, country FROM customers) c USING (customer_id) GROUP BY ALL", None),
    ("SELECT t.method, o.status, sum(t.amount) AS amount FROM transactions t JOIN orders o ON o.id = t.order_id "
     "JOIN customers c ON c.id = o.customer_id WHERE c.country IS NOT NULL GROUP BY ALL ORDER BY ALL", None),
    ("SELECT c.id, last_o.total FROM customers c, LATERAL (SELECT total FROM orders o "
     "WHERE o.customer_id = c.id ORDER BY o.id DESC LIMIT 1) last_o ORDER BY c.id LIMIT 50", None),
    # CTEs
    ("WITH paid AS (SELECT order_id, sum(amount) AS paid FROM transactions WHERE succeeded GROUP BY order_id), "
     "o AS (SELECT o.id, o.total, coalesce(p.paid, 0) AS paid FROM orders o LEFT JOIN paid p ON p.order_id = o.id) "
     "SELECT count(*) FILTER (WHERE paid >= total) AS fully_paid, count(*) AS n FROM o", None),
    ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 12) "
     "SELECT i, i * i AS square FROM n ORDER BY i", None),
    ("WITH RECURSIVE chain AS (SELECT id, total, 1 AS depth FROM orders WHERE id = 1 UNION ALL "
     "SELECT o.id, o.total, c.depth + 1 FROM orders o JOIN chain c ON o.id = c.id + 1 WHERE c.depth < 6) "
     "SELECT * FROM chain ORDER BY depth", None),
    ("WITH orders AS (SELECT * FROM orders WHERE status = 'shipped') SELECT count(*) AS shipped FROM orders", None),
    ("WITH big AS (SELECT * FROM orders WHERE total > 500), per AS (SELECT customer_id, count(*) AS n FROM big "
     "GROUP BY 1) SELECT n, count(*) AS customers FROM per GROUP BY n ORDER BY n", None),
    # subqueries
    ("SELECT id, total, round(total - (SELECT avg(total) FROM orders), 2) AS diff FROM orders ORDER BY id LIMIT 30",
     None),
    ("SELECT count(*) AS n FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE status = 'shipped')",
     None),
    ("SELECT c.id FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id "
     "AND o.total > 900) ORDER BY c.id", None),
    ("SELECT count(*) AS never_ordered FROM customers c WHERE NOT EXISTS "
     "(SELECT 1 FROM orders o WHERE o.customer_id = c.id)", None),
    ("SELECT c.id, (SELECT max(o.total) FROM orders o WHERE o.customer_id = c.id) AS biggest FROM customers c "
     "ORDER BY c.id LIMIT 40", None),
    ("SELECT avg(n) AS avg_orders FROM (SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id) t",
     None),
    # window functions
    ("SELECT id, customer_id, total, row_number() OVER (PARTITION BY customer_id ORDER BY total DESC, id) AS rn, "
     "rank() OVER (ORDER BY total DESC) AS r, dense_rank() OVER (ORDER BY status) AS dr FROM orders "
     "ORDER BY id LIMIT 100", None),
    ("SELECT id, total, lag(total) OVER (ORDER BY id) AS prev, lead(total, 2, 0) OVER (ORDER BY id) AS next2 "
     "FROM orders ORDER BY id LIMIT 60", None),
    ("SELECT id, sum(total) OVER (ORDER BY id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS rolling, "
     "avg(total) OVER (ORDER BY ordered_at RANGE BETWEEN INTERVAL 7 DAY PRECEDING AND CURRENT ROW) AS week_avg "
     "FROM orders ORDER BY id LIMIT 60", None),
    ("SELECT customer_id, id, total FROM orders "
     "QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY total DESC, id) = 1 ORDER BY customer_id", None),
    ("SELECT id, sum(total) OVER w AS running, count(*) OVER w AS k FROM orders "
     "WINDOW w AS (PARTITION BY status ORDER BY id) ORDER BY id LIMIT 50", None),
    ("SELECT id, ntile(4) OVER (ORDER BY total, id) AS quartile, percent_rank() OVER (ORDER BY total) AS pr, "
     "first_value(id) OVER (PARTITION BY status ORDER BY id) AS first_id FROM orders ORDER BY id LIMIT 50", None),
    # aggregates
    ("SELECT status, currency, count(*) AS n, sum(total) AS s FROM orders GROUP BY ALL ORDER BY ALL", None),
    ("SELECT status, currency, sum(total) AS s, grouping(status) AS g FROM orders "
     "GROUP BY ROLLUP (status, currency)", None),
    ("SELECT method, succeeded, count(*) AS n FROM transactions GROUP BY CUBE (method, succeeded)", None),
    ("SELECT warehouse, product_id, sum(quantity) AS q FROM inventory "
     "GROUP BY GROUPING SETS ((warehouse), (product_id), ())", None),
    ("SELECT customer_id, count(*) FILTER (WHERE status = 'cancelled') AS cancelled, count(*) AS n FROM orders "
     "GROUP BY customer_id HAVING count(*) > 5 ORDER BY customer_id", None),
    ("SELECT DISTINCT country FROM customers ORDER BY country NULLS LAST", None),
    ("SELECT count(DISTINCT customer_id) AS buyers, approx_count_distinct(customer_id) AS approx, "
     "quantile_cont(total, 0.9) AS p90, median(total) AS med, stddev(total) AS sd FROM orders", None),
    ("SELECT country, string_agg(DISTINCT loyalty_tier, ',' ORDER BY loyalty_tier) AS tiers FROM customers "
     "GROUP BY country", None),
    ("SELECT customer_id, list(id ORDER BY id) AS ids, arg_max(id, total) AS top_order FROM orders "
     "GROUP BY 1 ORDER BY 1 LIMIT 25", None),
    ("SELECT p.category, sum(i.quantity * i.price) AS stock_value FROM inventory i "
     "JOIN products p ON p.id = i.product_id GROUP BY p.category ORDER BY p.category NULLS LAST", None),
    # set operations
    ("SELECT customer_id AS id FROM orders INTERSECT SELECT id FROM customers", None),
    ("SELECT id FROM customers EXCEPT SELECT customer_id FROM orders", None),
    ("SELECT 'order' AS kind, id FROM orders WHERE id < 10 UNION ALL SELECT 'tx', id FROM transactions "
     "WHERE id < 10", None),
    ("SELECT id, status FROM orders WHERE id < 5 UNION ALL BY NAME SELECT status, id FROM orders WHERE id > 2390",
     None),
    # expressions
    ("SELECT id, CASE WHEN total >= 500 THEN 'big' WHEN total >= 100 THEN 'medium' ELSE 'small' END AS size "
     "FROM orders ORDER BY id LIMIT 40", None),
    ("SELECT CAST(total AS INTEGER) AS t, TRY_CAST(note AS INTEGER) AS n, id::VARCHAR AS s, total::DOUBLE AS d "
     "FROM orders ORDER BY id LIMIT 30", None),
    ("SELECT date_trunc('month', ordered_at) AS month, count(*) AS n, sum(total) AS revenue FROM orders "
     "GROUP BY 1 ORDER BY 1", None),
    ("SELECT id, strftime(ordered_at, '%Y-%m') AS ym, extract(year FROM ordered_at) AS y, "
     "date_diff('day', ordered_at, shipped_at) AS days_to_ship, ordered_at + INTERVAL 3 DAY AS due, "
     "dayname(ordered_at) AS dn, date_part('quarter', ordered_at) AS q FROM orders ORDER BY id LIMIT 40", None),
    ("SELECT count(*) AS n FROM orders WHERE ordered_at >= TIMESTAMP '2023-01-01' "
     "AND ordered_at < DATE '2023-01-01' + INTERVAL '1 month'", None),
    ("SELECT upper(full_name) AS u, lower(email) AS l, length(full_name) AS len, split_part(email, '@', 2) AS domain, "
     "left(full_name, 3) AS l3, concat_ws('-', country, loyalty_tier) AS tag, replace(email, '@', ' at ') AS r, "
     "regexp_matches(email, '^customer[0-9]+@') AS m, trim(full_name) AS t, email LIKE '%@%' AS has_at, "
     "full_name ILIKE 'a%' AS a FROM customers ORDER BY id LIMIT 30", None),
    ("SELECT id, coalesce(note, '(none)') AS note, nullif(status, 'pending') AS s, ifnull(shipped_at, ordered_at) AS t "
     "FROM orders ORDER BY id LIMIT 30", None),
    ("SELECT [1, 2, 3] AS l, {'a': 1, 'b': 'x'} AS s, list_value(id, customer_id) AS ids, "
     "struct_pack(id := id, total := total) AS st FROM orders ORDER BY id LIMIT 5", None),
    ("SELECT list_transform([1, 2, 3], lambda x: x * 2) AS doubled, list_filter([1, 2, 3], lambda x: x > 1) AS big, "
     "list_sum([1, 2, 3]) AS s, [x + 1 FOR x IN [1, 2]] AS comp", None),
    ("SELECT unnest([1, 2, 3]) AS x", None),
    ("SELECT i FROM range(5) r(i) ORDER BY i", None),
    ("SELECT x FROM unnest([3, 1, 2]) t(x) ORDER BY x", None),
    ("SELECT d.day, count(o.id) AS n FROM generate_series(TIMESTAMP '2023-03-01', TIMESTAMP '2023-03-10', "
     "INTERVAL 1 DAY) d(day) LEFT JOIN orders o ON date_trunc('day', o.ordered_at) = d.day "
     "GROUP BY d.day ORDER BY d.day", None),
    ("SELECT id FROM orders ORDER BY id LIMIT 10 OFFSET 20", None),
    ("SELECT id, shipped_at FROM orders ORDER BY shipped_at DESC NULLS LAST, id LIMIT 25", None),
    # parameters
    ("SELECT id, total FROM orders WHERE total > $1 AND status = $2 ORDER BY id", [800, "shipped"]),
    ("SELECT count(*) AS n FROM customers WHERE loyalty_tier = $tier", {"tier": "gold"}),
    ("SELECT count(*) AS n FROM orders WHERE ordered_at BETWEEN $start AND $end",
     {"start": datetime(2023, 1, 1), "end": datetime(2023, 6, 30)}),
    # DuckDB syntax
    ("FROM orders SELECT status, count(*) AS n GROUP BY status ORDER BY status", None),
    ("FROM customers", None),
    ("SELECT * EXCLUDE (note, created_at, updated_at) FROM orders ORDER BY id LIMIT 10", None),
    ("SELECT * REPLACE (round(total) AS total) FROM orders ORDER BY id LIMIT 10", None),
    ("SELECT x.* FROM (SELECT id, total FROM orders) x ORDER BY id LIMIT 3", None),
    ("SELECT count(*) AS n FROM products;", None),
    ("SELECT count(*) AS n FROM inventory; /* trailing */ ;", None),
    ("SELECT /* why */ count(*) AS n FROM products -- trailing comment", None),
    ("SELECT count(*) AS n FROM \"Orders\"", None),
    ("SELECT count(*) AS n FROM main.orders", None),
    ("TABLE products", None),
    ("SELECT id FROM orders WHERE status IN ('shipped', 'delivered') AND total BETWEEN 10 AND 100 ORDER BY id", None),
    ("SELECT round(avg(total), 2) AS a, greatest(max(total), 0) AS g, least(min(total), 1000) AS l, "
     "abs(-1) AS one FROM orders", None),
    ("SELECT method, succeeded, count(*) AS n, sum(amount) AS s FROM transactions GROUP BY ALL ORDER BY ALL", None),
]


def _ordered(sql: str) -> bool:
    return sqlglot.parse_one(sql, dialect="duckdb").args.get("order") is not None


def _rows(conn: duckdb.DuckDBPyConnection, sql: str, params: object, ordered: bool) -> list[tuple]:
    rows = conn.execute(sql, params).fetchall()
    return rows if ordered else sorted(rows, key=repr)


@pytest.mark.parametrize(("sql", "params"), LEGIT, ids=[_id(s) for s, _ in LEGIT])
def test_legitimate_sql_passes_and_returns_the_same_rows(
        guard: SqlGuard, hardened: duckdb.DuckDBPyConnection, direct: duckdb.DuckDBPyConnection,
        snapshot_schema: dict[str, dict[str, str]], sql: str, params: object) -> None:
    validated = guard.validate(sql, snapshot_schema)
    assert validated.tables <= {"inventory", "products", "orders", "transactions", "customers"}
    ordered = _ordered(sql)
    want = _rows(direct, sql, params, ordered)
    got = _rows(hardened.cursor(), validated.sql, params, ordered)
    assert got == want
    assert guard.validate(validated.sql, snapshot_schema).sql == validated.sql  # regeneration is stable


def test_legitimate_corpus_size() -> None:
    assert len(LEGIT) >= 40
    assert len({s for s, _ in LEGIT}) == len(LEGIT), "duplicate legitimate cases"


def test_shipped_named_queries_pass(guard: SqlGuard, shipped_whitelist: Whitelist) -> None:
    for name, query in shipped_whitelist.queries.items():
        assert guard.validate(query.sql).tables, name


def test_strings_and_identifiers_that_look_like_sql_stay_what_they_are(
        guard: SqlGuard, hardened: duckdb.DuckDBPyConnection) -> None:
    cases = {
        "SELECT $$'; DROP TABLE orders; --$$ AS s": "'; DROP TABLE orders; --",
        "SELECT E'\\x27; DROP TABLE orders; --' AS s": "'; DROP TABLE orders; --",
        "SELECT 'a\\' AS s": "a\\",
        "SELECT '--' || '/* x */' || ';' AS s": "--/* x */;",
        "SELECT 'it''s; DROP TABLE orders' AS s": "it's; DROP TABLE orders",
    }
    for sql, value in cases.items():
        validated = guard.validate(sql)
        assert hardened.execute(validated.sql).fetchall() == [(value,)], sql
    validated = guard.validate('SELECT 1 AS "a""b; DROP TABLE x"')
    assert [d[0] for d in hardened.execute(validated.sql).description] == ['a"b; DROP TABLE x']


# --------------------------------------------------------------------------------------------
# CTE name resolution, checked against DuckDB itself: a stored table `secret` holds 'LEAK'.
# "cte": the guard accepts and DuckDB reads the CTE; "leak": DuckDB would read the stored
# table, so the guard must reject; "strict": rejected, and DuckDB does read the stored table,
# though this query's output happens not to show it.
# --------------------------------------------------------------------------------------------
SCOPING = [
    ("WITH secret AS (SELECT 'cte' AS v) SELECT * FROM secret", "cte"),
    ("WITH secret AS MATERIALIZED (SELECT 'cte' AS v) SELECT * FROM secret", "cte"),
    ("WITH secret AS (SELECT 'cte' AS v) SELECT * FROM secret UNION ALL SELECT * FROM secret", "cte"),
    ("WITH secret AS (SELECT 'cte' AS v) (SELECT * FROM secret UNION ALL SELECT * FROM secret)", "cte"),
    ("WITH secret AS (SELECT 'outer' AS v) SELECT (SELECT v FROM secret)", "cte"),
    ("WITH secret AS (SELECT 'outer' AS v), c AS (SELECT * FROM (SELECT * FROM secret)) SELECT * FROM c", "cte"),
    ("WITH secret AS (SELECT 'outer' AS v) SELECT * FROM "
     "(WITH a AS (SELECT * FROM secret), secret AS (SELECT 'inner' AS v) SELECT * FROM a)", "cte"),
    ("WITH secret AS (SELECT 'outer' AS v) SELECT * FROM (WITH secret AS (SELECT * FROM secret) SELECT * FROM secret)",
     "cte"),
    ("WITH RECURSIVE secret AS (SELECT 'x' AS v UNION ALL SELECT * FROM secret) SELECT * FROM secret LIMIT 3", "cte"),
    ("WITH RECURSIVE secret AS (SELECT 'x' AS v UNION SELECT * FROM secret) SELECT * FROM secret", "cte"),
    ("WITH RECURSIVE secret AS ((SELECT 'x' AS v) UNION ALL (SELECT * FROM secret)) SELECT * FROM secret LIMIT 3",
     "cte"),
    ("WITH RECURSIVE secret AS ((SELECT 'x' AS v UNION ALL SELECT * FROM secret)) SELECT * FROM secret LIMIT 3",
     "cte"),
    ("WITH RECURSIVE secret AS (SELECT 'x' AS v UNION ALL SELECT v FROM (SELECT * FROM secret)) "
     "SELECT * FROM secret LIMIT 3", "cte"),
    ("WITH RECURSIVE secret AS (SELECT 'x' AS v UNION ALL (WITH q AS (SELECT * FROM secret) SELECT * FROM q)) "
     "SELECT * FROM secret LIMIT 3", "cte"),
    ("WITH RECURSIVE secret AS (SELECT 'x' AS v UNION ALL SELECT * FROM "
     "(WITH RECURSIVE secret AS (SELECT * FROM secret) SELECT * FROM secret)) SELECT * FROM secret LIMIT 3", "cte"),
    ("WITH RECURSIVE secret AS (SELECT 'x' AS v UNION ALL SELECT 'y' FROM secret WHERE false UNION ALL "
     "SELECT * FROM secret) SELECT * FROM secret LIMIT 3", "strict"),  # the middle arm is anchor: stored table
    ("WITH RECURSIVE t AS (SELECT 1 AS i UNION ALL SELECT i + 1 FROM t WHERE i < 3), secret AS "
     "(SELECT 'cte' AS v) SELECT * FROM secret, t", "cte"),
    ("WITH secret AS (SELECT * FROM secret) SELECT * FROM secret", "leak"),
    ("WITH RECURSIVE secret AS (SELECT * FROM secret) SELECT * FROM secret", "leak"),
    ("WITH RECURSIVE secret AS (SELECT * FROM secret UNION ALL SELECT 'x') SELECT * FROM secret LIMIT 2", "leak"),
    ("WITH RECURSIVE secret AS (SELECT 'x' AS v UNION ALL BY NAME SELECT * FROM secret) SELECT * FROM secret LIMIT 3",
     "leak"),
    ("WITH RECURSIVE secret AS (SELECT v FROM secret INTERSECT SELECT v FROM secret) SELECT * FROM secret", "leak"),
    ("WITH RECURSIVE secret AS (SELECT 'x' AS v UNION ALL SELECT * FROM secret UNION ALL SELECT * FROM secret) "
     "SELECT * FROM secret LIMIT 3", "leak"),
    ("WITH RECURSIVE secret AS (SELECT v FROM (SELECT * FROM secret)) SELECT * FROM secret", "leak"),
    ("WITH RECURSIVE secret AS (SELECT (SELECT v FROM secret) AS v) SELECT * FROM secret", "leak"),
    ("WITH a AS (SELECT * FROM b), b AS (SELECT 'cte' AS v) SELECT * FROM a", "leak"),
    ("WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT 'cte' AS v) SELECT * FROM a", "leak"),
    ("SELECT * FROM (WITH secret AS (SELECT 'cte' AS v) SELECT * FROM secret) UNION ALL SELECT * FROM secret", "leak"),
    ("SELECT * FROM (WITH secret AS (SELECT 'cte' AS v) SELECT * FROM secret) a, secret", "leak"),
    ("WITH secret AS (SELECT 'cte' AS v) SELECT * FROM main.secret", "leak"),
    ("WITH RECURSIVE t AS (SELECT 1 AS i UNION ALL SELECT i + 1 FROM t WHERE i < 3), secret AS "
     "(SELECT * FROM secret) SELECT * FROM secret", "leak"),
    # DuckDB folds only ASCII letters when it matches names; Python's lower() also folds the
    # Kelvin sign (U+212A) to 'k'. A CTE so named must not stand in for the stored table `kept`.
    ('WITH "\u212aept" AS (SELECT \'cte\' AS v) SELECT * FROM kept', "leak"),
    ('WITH "\u212aEPT" AS (SELECT \'cte\' AS v) SELECT * FROM KEPT', "leak"),
    ('WITH RECURSIVE "\u212aept" AS (SELECT \'x\' AS v UNION ALL SELECT * FROM kept) SELECT * FROM "\u212aept" LIMIT 3',
     "leak"),
    # ...while the ASCII letters of a non-ASCII name do fold, as DuckDB folds them.
    ('WITH "\u00c9a" AS (SELECT \'cte\' AS v) SELECT * FROM "\u00c9A"', "cte"),
]


@pytest.fixture(scope="module")
def scoping_db() -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect()
    conn.execute("CREATE TABLE secret AS SELECT 'LEAK' AS v")
    conn.execute("CREATE TABLE b AS SELECT 'LEAK' AS v")
    conn.execute("CREATE TABLE kept AS SELECT 'LEAK' AS v")
    conn.execute("CREATE TABLE orders AS SELECT range AS id FROM range(3)")
    return conn


@pytest.mark.parametrize(("sql", "verdict"), SCOPING, ids=[_id(s) for s, _ in SCOPING])
def test_cte_resolution_matches_duckdb(guard: SqlGuard, scoping_db: duckdb.DuckDBPyConnection, sql: str,
                                       verdict: str) -> None:
    if verdict == "cte":
        validated = guard.validate(sql)
        rows = scoping_db.execute(validated.sql).fetchall()
        assert rows and "LEAK" not in repr(rows)
    else:
        with pytest.raises(QueryRejected) as info:
            guard.validate(sql)
        assert "is not in the whitelist" in info.value.message
        if verdict == "leak":  # and the rejection is real: run untouched, DuckDB reads the stored table
            assert "LEAK" in repr(scoping_db.execute(sql).fetchall())


# --------------------------------------------------------------------------------------------
# Per-table scopes and column lists
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def restricted_guard(shipped_whitelist: Whitelist) -> SqlGuard:
    whitelist = Whitelist.model_validate({
        "tables": {
            "customers": {"columns": ["id", "country", "signup_date", "loyalty_tier"]},
            "orders": {},
            "transactions": {"scope": "read:finance"},
            "products": {"columns": ["id", "category", "price"], "scope": "read:catalog"},
        },
        "functions": shipped_whitelist.functions,
    })
    return SqlGuard(whitelist)


VIEW = 'SELECT "id", "country", "signup_date", "loyalty_tier" FROM "main"."customers"'


def test_restricted_tables_are_read_through_a_view_of_their_allowed_columns(
        restricted_guard: SqlGuard, snapshot_schema: dict[str, dict[str, str]]) -> None:
    """Only the wiring: tests/routes/test_column_restrictions.py checks what such queries return."""
    cases = {
        "SELECT id FROM customers AS c(x, id)": f"SELECT id FROM ({VIEW}) AS c(x, id)",
        "SELECT * FROM main.customers": f"SELECT * FROM ({VIEW}) AS customers",
        'SELECT c FROM "Customers" c': f'SELECT c FROM ({VIEW}) AS c',
        "SELECT id FROM (customers c(x, id) JOIN orders o ON TRUE)":
            f"SELECT id FROM (({VIEW}) AS c(x, id) JOIN orders AS o ON TRUE)",
        "SELECT * FROM customers PIVOT (count(*) FOR country IN ('DE'))":
            f"SELECT * FROM ({VIEW}) AS customers PIVOT(COUNT(*) FOR country IN ('DE'))",
        "WITH customers AS (SELECT * FROM customers) SELECT id FROM customers":
            f"WITH customers AS (SELECT * FROM ({VIEW}) AS customers) SELECT id FROM customers",
        f"SELECT count(*) AS n FROM ({VIEW}) AS c": f"SELECT COUNT(*) AS n FROM ({VIEW}) AS c",  # already a view
    }
    for sql, runs in cases.items():
        validated = restricted_guard.validate(sql, snapshot_schema)
        assert validated.sql == runs
        assert restricted_guard.validate(validated.sql, snapshot_schema).sql == runs  # a fixed point
    # The literal-template path fills literals into the same text, view included.
    templated = restricted_guard.validate("SELECT id FROM customers AS c(x, id) WHERE x = 5", snapshot_schema)
    assert templated.template == f"SELECT id FROM ({VIEW}) AS c(x, id) WHERE x = 8271000000000"
    assert templated.sql == f"SELECT id FROM ({VIEW}) AS c(x, id) WHERE x = 5"
    # The view's own shape written with anything more (a filter here) is just another query on the table.
    filtered = restricted_guard.validate(f"SELECT * FROM ({VIEW} WHERE email = 'x') AS c", snapshot_schema)
    assert filtered.sql == ('SELECT * FROM (SELECT "id", "country", "signup_date", "loyalty_tier" '
                            f'FROM ({VIEW}) AS "customers" WHERE email = \'x\') AS c')


def test_what_cannot_move_onto_a_view_is_refused(restricted_guard: SqlGuard,
                                                  snapshot_schema: dict[str, dict[str, str]]) -> None:
    with pytest.raises(QueryRejected, match="not supported on restricted table customers: customers AT"):
        restricted_guard.validate("SELECT id FROM customers AT (VERSION => 1)", snapshot_schema)
    without = {t: c for t, c in snapshot_schema.items() if t != "customers"}
    with pytest.raises(QueryRejected, match="table 'customers' is not in the current snapshot"):
        restricted_guard.validate("SELECT id FROM customers", without)
    with pytest.raises(QueryRejected, match="none of the allowed columns of table 'customers'"):
        restricted_guard.validate("SELECT 1 FROM customers", {**snapshot_schema, "customers": {"email": "VARCHAR"}})


def test_a_column_matches_an_allowed_name_only_as_duckdb_folds_names(shipped_whitelist: Whitelist) -> None:
    """To DuckDB "\u212aind" (Kelvin sign) is another column than `kind`: only ASCII letters
    fold. Python's lower() folds the Kelvin sign to 'k' and would put it into the view."""
    guard = SqlGuard(Whitelist.model_validate({"tables": {"items": {"columns": ["id", "KIND"]}},
                                               "functions": shipped_whitelist.functions}))
    schema = {"items": {"id": "BIGINT", "Kind": "VARCHAR", "\u212aind": "VARCHAR", "secret": "VARCHAR"}}
    validated = guard.validate("SELECT * FROM items", schema)
    assert validated.sql == 'SELECT * FROM (SELECT "id", "Kind" FROM "main"."items") AS items'


def test_restricted_tables_need_a_schema_and_the_cache_knows_it(
        restricted_guard: SqlGuard, snapshot_schema: dict[str, dict[str, str]]) -> None:
    sql = "SELECT id, country FROM customers"
    with pytest.raises(QueryRejected, match="before a snapshot is loaded"):
        restricted_guard.validate(sql)
    # The cached rejection above must not answer for a call that does bring the schema.
    assert restricted_guard.validate(sql, snapshot_schema).tables == {"customers"}
    # Nor one schema's view for another's: this snapshot has only `id` of the allowed columns.
    narrower = {**snapshot_schema, "customers": {"id": "INTEGER", "email": "VARCHAR"}}
    assert restricted_guard.validate(sql, narrower).sql == (
        'SELECT id, country FROM (SELECT "id" FROM "main"."customers") AS customers')


def test_per_table_scopes(restricted_guard: SqlGuard, snapshot_schema: dict[str, dict[str, str]]) -> None:
    base = frozenset({"read:analytics"})
    for sql in ("SELECT count(*) FROM transactions",
                "SELECT o.id FROM orders o WHERE o.id IN (SELECT order_id FROM transactions)",
                "WITH t AS (SELECT amount FROM transactions) SELECT sum(amount) FROM t",
                "SELECT id FROM orders UNION ALL SELECT id FROM transactions"):
        validated = restricted_guard.validate(sql, snapshot_schema)
        assert "transactions" in validated.tables
        with pytest.raises(Forbidden, match="'transactions' requires the 'read:finance' scope"):
            restricted_guard.authorize(validated, base)
        restricted_guard.authorize(validated, base | {"read:finance"})
    validated = restricted_guard.validate("SELECT category FROM products", snapshot_schema)
    with pytest.raises(Forbidden, match="read:catalog"):
        restricted_guard.authorize(validated, base | {"read:finance"})
    restricted_guard.authorize(validated, base | {"read:catalog"})
    # A CTE that only borrows the name reads nothing from the table: no scope needed.
    shadow = restricted_guard.validate("WITH transactions AS (SELECT 1 AS x) SELECT x FROM transactions",
                                       snapshot_schema)
    assert shadow.tables == frozenset()
    restricted_guard.authorize(shadow, base)
    # Unrestricted tables need nothing beyond the query scope.
    restricted_guard.authorize(restricted_guard.validate("SELECT count(*) FROM orders", snapshot_schema), base)


# --------------------------------------------------------------------------------------------
# Defence in depth: even SQL that never went through the guard cannot escape the snapshot.
# --------------------------------------------------------------------------------------------
def test_hardened_snapshot_refuses_files_attach_settings_and_extensions(
        snapshot_file: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bypass.db"
    copy.write_bytes(snapshot_file.read_bytes())
    conn = open_hardened(copy, memory_limit="256MB", threads=1)
    try:
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] > 0
        outside = tmp_path / "outside.csv"
        outside.write_text("a,b\n1,2\n")
        refused = [
            "SELECT * FROM read_csv('/etc/passwd')",
            f"SELECT * FROM read_csv('{outside}')",
            f"SELECT * FROM '{outside}'",
            "SELECT * FROM read_text('/etc/passwd')",
            "SELECT * FROM read_blob('/etc/hostname')",
            "SELECT * FROM glob('/etc/*')",
            f"ATTACH '{tmp_path / 'other.db'}' AS other",
            f"COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'",
            f"EXPORT DATABASE '{tmp_path / 'dump'}'",
            "SET enable_external_access = true",
            "SET memory_limit = '64GB'",
            "SET lock_configuration = false",
            "RESET memory_limit",
            "SET GLOBAL threads = 64",
            "INSTALL httpfs",
            "LOAD httpfs",
            "CREATE TABLE stolen AS SELECT 1",
            "DELETE FROM orders",
        ]
        for sql in refused:
            with pytest.raises(duckdb.Error):
                conn.execute(sql).fetchall()
        assert not (tmp_path / "out.csv").exists() and not (tmp_path / "other.db").exists()
        settings = dict(conn.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('enable_external_access', 'lock_configuration', 'autoload_known_extensions')").fetchall())
        assert settings == {"enable_external_access": "false", "lock_configuration": "true",
                            "autoload_known_extensions": "false"}
    finally:
        conn.close()


def test_every_duckdb_function_outside_the_allowlist_is_refused(guard: SqlGuard,
                                                                shipped_whitelist: Whitelist) -> None:
    """All of DuckDB's functions, called as scalars and as table functions. A call may pass only
    when what will run calls an allowlisted name (sqlglot writes ifnull as COALESCE, say)."""
    with duckdb.connect() as conn:
        names = sorted({row[0] for row in conn.execute(
            "SELECT function_name FROM duckdb_functions() WHERE function_name ~ '^[a-z_][a-z0-9_]*$'").fetchall()})
    assert len(names) > 500
    allowed = shipped_whitelist.function_set
    for name in names:
        passed = []
        for sql in (f"SELECT {name}(1)", f"SELECT * FROM {name}(1)"):
            try:
                passed.append(guard.validate(sql).sql)
            except QueryRejected:
                pass
        for sql in passed:
            call = re.match(r"SELECT (\* FROM )?([A-Za-z_]\w*)\(", sql)
            if call is None:  # operator syntax: list_value(1) runs as [1]
                assert re.fullmatch(r"SELECT [^A-Za-z]*", sql), (name, sql)
                continue
            assert call.group(2).upper() in allowed, (name, sql)
            if call.group(1):
                assert call.group(2).upper() in {"RANGE", "GENERATE_SERIES", "UNNEST"}, (name, sql)
        if name.upper() not in allowed and name not in ("array_cat", "editdist3"):  # sqlglot renames both
            assert not passed, name


def test_table_functions_cannot_be_enabled_from_the_whitelist(shipped_whitelist: Whitelist) -> None:
    whitelist = Whitelist.model_validate({
        "tables": {"orders": {}},
        "functions": [*shipped_whitelist.functions, "READ_CSV", "READ_TEXT", "QUERY_TABLE", "REPEAT"],
    })
    guard = SqlGuard(whitelist)
    for sql, name in (("SELECT * FROM read_csv('/etc/passwd')", "READ_CSV"),
                      ("SELECT * FROM orders, LATERAL read_text('/etc/passwd')", "READ_TEXT"),
                      ("SELECT * FROM query_table('orders')", "QUERY_TABLE"),
                      ("SELECT * FROM repeat('x', 3)", "REPEAT")):
        with pytest.raises(QueryRejected, match=f"table function {name} is not allowed"):
            guard.validate(sql)
    assert guard.validate("SELECT * FROM range(3)").tables == frozenset()


def test_warm_literal_templates_never_let_a_hostile_query_through(shipped_whitelist: Whitelist) -> None:
    """Every legitimate shape validated first, so hostile queries meet a warm template cache."""
    warm = SqlGuard(shipped_whitelist)
    for sql, _ in LEGIT:
        warm.validate(sql)
    for sql in ("SELECT * FROM 'orders'", "SELECT * FROM orders WHERE note = 'a'", "SELECT 1 AS x FROM orders"):
        try:
            warm.validate(sql)
        except QueryRejected:
            pass
    for sql, named in HOSTILE:
        with pytest.raises(QueryRejected) as info:
            warm.validate(sql)
        assert named.lower() in info.value.message.lower(), (sql, info.value.message)
    # a literal in a table's place is never templated: same shape, other literal, still refused
    for path in ("/etc/passwd", "data.csv", "s3://bucket/x.parquet", "https://example.com/x.csv"):
        with pytest.raises(QueryRejected):
            warm.validate(f"SELECT * FROM '{path}'")


def test_template_fill_keeps_each_literal_a_literal(guard: SqlGuard, hardened: duckdb.DuckDBPyConnection) -> None:
    guard.validate("SELECT count(*) AS n FROM orders WHERE status = 'paid' AND id > 0")
    for status in ("paid' OR '1'='1", "x'; DROP TABLE orders; --", "a'' UNION SELECT 1 --", "東京 '' ü"):
        literal = "'" + status.replace("'", "''") + "'"
        validated = guard.validate(f"SELECT count(*) AS n FROM orders WHERE status = {literal} AND id > 0")
        assert validated.sql.count(literal) == 1
        assert hardened.execute(validated.sql).fetchone() == (0,)


def test_known_answers_only_what_needs_no_parsing(shipped_whitelist: Whitelist) -> None:
    guard = SqlGuard(shipped_whitelist)
    lookup = "SELECT * FROM orders WHERE id = {}"
    assert guard.known(lookup.format(1)) is None  # new: validate() must parse it (off the event loop)
    first = guard.validate(lookup.format(1))
    assert guard.known(lookup.format(1)) == first  # the same text: from the cache
    filled = guard.known(lookup.format(2))  # another literal of a known shape: filled in, not parsed
    assert filled is not None and filled.sql == guard.validate(lookup.format(2)).sql
    big = "SELECT id FROM orders WHERE " + " OR ".join(f"id = {i}" for i in range(400))
    guard.validate(big.replace("= 0 ", "= 1 "))  # warms the shape's template
    assert len(big) > 2_000 and guard.known(big) is None  # long: tokenizing it is not for the loop
    with pytest.raises(QueryRejected, match="not in the whitelist"):
        guard.validate("SELECT * FROM secrets")
    with pytest.raises(QueryRejected, match="not in the whitelist"):
        guard.known("SELECT * FROM secrets")  # a refusal seen before is raised again without parsing
