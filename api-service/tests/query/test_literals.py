"""Literal templates: what goes back into a template is exactly the user's literal, once, or nothing."""

from __future__ import annotations

from analytics_api.query.literals import MAX_LITERALS, fill_literals, mark_literals


def test_marks_numbers_and_strings_and_fills_them_back() -> None:
    marked = mark_literals("SELECT * FROM t WHERE a = 42 AND b = 'x''y' AND c > 1.5e3")
    assert marked is not None
    assert marked.sql == ("SELECT * FROM t WHERE a = 8271000000000 AND b = '__ALIT1__' "
                          "AND c > 8271000000002")
    assert [literal for _, literal in marked.literals] == ["42", "'x''y'", "1.5e3"]
    assert fill_literals(marked.sql, marked) == "SELECT * FROM t WHERE a = 42 AND b = 'x''y' AND c > 1.5e3"


def test_fills_in_the_templates_order_not_the_users() -> None:
    marked = mark_literals("SELECT 1 AS a, 'two' AS b")
    assert marked is not None
    # the regenerated template may move things around: each literal follows its own marker
    assert fill_literals("SELECT '__ALIT1__' AS b, 8271000000000 AS a", marked) == "SELECT 'two' AS b, 1 AS a"


def test_a_marker_missing_or_repeated_gives_no_fill() -> None:
    marked = mark_literals("SELECT * FROM t WHERE a = 1 AND b = 'z'")
    assert marked is not None
    assert fill_literals("SELECT * FROM t WHERE a = 8271000000000", marked) is None
    assert fill_literals("SELECT * FROM t WHERE a = 8271000000000 AND b = '__ALIT1__' "
                         "OR b = '__ALIT1__'", marked) is None
    assert fill_literals("SELECT * FROM t WHERE a = 8271000000000 AND b = '__ALIT1__' "
                         "OR c = 8271000000000", marked) is None


def test_something_that_only_looks_like_a_marker_gives_no_fill() -> None:
    marked = mark_literals("SELECT * FROM t WHERE a = 1")
    assert marked is not None
    assert fill_literals("SELECT * FROM t WHERE a = 8271000000000 AND b = 8271000000007", marked) is None
    assert fill_literals("SELECT * FROM t WHERE a = 8271000000000 AND b = '__ALIT3__'", marked) is None


def test_a_marker_inside_a_longer_number_or_name_is_not_a_marker() -> None:
    marked = mark_literals("SELECT * FROM t WHERE a = 1")
    assert marked is not None
    assert fill_literals("SELECT * FROM t WHERE a = 82710000000001", marked) is None
    assert fill_literals("SELECT * FROM t WHERE a = x8271000000000", marked) is None
    assert fill_literals("SELECT * FROM t WHERE a = 1.8271000000000", marked) is None


def test_text_that_could_be_taken_for_a_marker_is_never_templated() -> None:
    assert mark_literals("SELECT 8271 AS a") is None
    assert mark_literals("SELECT '__alit0__' AS a, 1 AS b") is None
    assert mark_literals("SELECT a FROM t") is None  # nothing to template


def test_many_literals_round_trip() -> None:
    sql = "SELECT " + ", ".join(f"{i} AS c{i}, 's{i}' AS d{i}" for i in range(MAX_LITERALS // 2))
    marked = mark_literals(sql)
    assert marked is not None and len(marked.literals) == MAX_LITERALS
    assert fill_literals(marked.sql, marked) == sql
    assert mark_literals(sql + ", 0 AS one_too_many, 1 AS two_too_many") is None
