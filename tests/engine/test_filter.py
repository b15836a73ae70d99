"""Table-driven tests of the filter language: every construct against hand-written masks."""

from __future__ import annotations

import numpy as np
import pytest

from harrierdb.engine.filter import evaluate, field_names, parse, render
from harrierdb.errors import FilterError


def _objects(values: list) -> np.ndarray:
    """An object array holding ``values`` as they are (lists stay lists)."""
    arr = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        arr[i] = v
    return arr


N = 6
COLUMNS = {
    "id": np.arange(N, dtype=np.int64),
    "age": np.array([25, 30, 35, 40, 45, 50], dtype=np.int32),
    "score": np.array([0.5, 1.5, 2.5, -1.0, 0.0, 3.25]),
    "small": np.array([20, 1, 2, 3, 4, 5], dtype=np.int8),
    "name": _objects(["alice", "bob", "carol", "dave", "ab%c", "a_b"]),
    "active": np.array([True, False, True, False, True, False]),
    "nick": _objects([1, None, 3, None, 5, 6]),  # nullable INT64
    "city": _objects(["paris", None, "rome", "oslo", None, "paris"]),  # nullable VARCHAR
    "meta": _objects([
        {"a": 1, "b": {"c": "x"}, "l": [1, 2, 3]},
        {"a": 2.5, "l": ["x", "y"]},
        {"a": "str", "l": []},
        {"a": True, "b": {"c": "y"}},
        None,
        {"a": None, "l": [1, "1", True]},
    ]),
    "tags": _objects([[1, 2, 3], [], [4], None, [1, 1], [2, 5]]),
    "$meta": _objects([
        {"dyn": 1, "color": "red"},
        {"dyn": 5},
        {},
        {"dyn": "x", "color": "blue"},
        {"color": "red"},
        {"dyn": 2.0},
    ]),
}
PARAMS = {
    "min_age": 40,
    "names": ["bob", "dave"],
    "ages": np.array([25, 50]),
    "s": np.float64(1.0),
    "flag": True,
    "pattern": "%a%",
    "needles": (4, 5),
}
ALL = list(range(N))

CASES = [
    # empty filter
    ("", ALL),
    ("   ", ALL),
    # literals as conditions
    ("true", ALL),
    ("TRUE", ALL),
    ("True", ALL),
    ("false", []),
    # integer comparisons
    ("age > 30", [2, 3, 4, 5]),
    ("age >= 30", [1, 2, 3, 4, 5]),
    ("age == 35", [2]),
    ("age != 35", [0, 1, 3, 4, 5]),
    ("age < 30", [0]),
    ("age <= 30", [0, 1]),
    ("30 < age", [2, 3, 4, 5]),
    ("age > 0x1E", [2, 3, 4, 5]),
    ("age > 0b11110", [2, 3, 4, 5]),
    ("age > 0o36", [2, 3, 4, 5]),
    ("age == 35.0", [2]),
    ("age > 1e300", []),
    ("age < 99999999999999999999999", ALL),
    ("id == age", []),
    ("age > id * 10", [0, 1, 2, 3, 4]),
    # floats
    ("score > 1", [1, 2, 5]),
    ("score == 0", [4]),
    ("score >= -1.0", ALL),
    ("score > 1e0", [1, 2, 5]),
    ("score < .6", [0, 3, 4]),
    ("score == 3.25", [5]),
    # strings
    ("name == 'bob'", [1]),
    ('name == "bob"', [1]),
    ("name > 'c'", [2, 3]),
    ("name != 'bob'", [0, 2, 3, 4, 5]),
    ("'carol' == name", [2]),
    (r'name == "ab\%c"', []),  # unknown escapes are kept: the literal is ab\%c
    ('name == "ab%c"', [4]),
    # bools
    ("active", [0, 2, 4]),
    ("active == true", [0, 2, 4]),
    ("active == False", [1, 3, 5]),
    ("active != true", [1, 3, 5]),
    ("not active", [1, 3, 5]),
    ("!active", [1, 3, 5]),
    ("not not active", [0, 2, 4]),
    ("active and age > 30", [2, 4]),
    # nullable int
    ("nick > 2", [2, 4, 5]),
    ("nick == 1", [0]),
    ("nick != 1", [2, 4, 5]),  # null is neither equal nor unequal
    ("not (nick == 1)", [2, 4, 5]),  # three-valued: not(null) stays unknown, so false
    ("nick <= 1", [0]),
    ("nick + 1 > 2", [2, 4, 5]),
    ("nick is null", [1, 3]),
    ("nick IS NULL", [1, 3]),
    ("nick is not null", [0, 2, 4, 5]),
    ("nick IS NOT NULL", [0, 2, 4, 5]),
    ("nick is not null and nick < 4", [0, 2]),
    ("age is null", []),
    ("age is not null", ALL),
    # nullable varchar
    ("city == 'paris'", [0, 5]),
    ("city != 'paris'", [2, 3]),
    ("city < 'p'", [3]),
    ("city is null", [1, 4]),
    ("city in ['rome', 'oslo']", [2, 3]),
    ("city not in ['rome']", [0, 3, 5]),
    ("not (city in ['rome'])", [0, 3, 5]),
    # arithmetic
    ("age * 2 + 1 > 80", [3, 4, 5]),
    ("age / 10 == 3", [1, 2]),  # integer division truncates
    ("age / 10.0 == 3.5", [2]),
    ("age % 10 == 5", [0, 2, 4]),
    ("age - 30 < 0", [0]),
    ("-age < -40", [4, 5]),
    ("- age < -40", [4, 5]),
    ("+age > 45", [5]),
    ("age ** 2 > 1600", [4, 5]),
    ("age ** 0.5 == 5", [0]),
    ("2 ** 3 ** 2 == 512", ALL),  # right-associative
    ("(2 ** 3) ** 2 == 64", ALL),
    ("-2 ** 2 == -4", ALL),  # ** binds tighter than unary minus
    ("(-2) ** 2 == 4", ALL),
    ("age + 2 * 5 == 35", [0]),
    ("(age + 2) * 5 == 160", [1]),
    ("age - id - 20 == 5", [0]),  # left-associative
    ("age / (id - 2) > 0", [3, 4, 5]),  # row 2 divides by zero: no match
    ("age / -2 == -12", [0]),  # truncation toward zero, not floor
    ("age % -7 == 4", [0]),  # remainder takes the sign of the dividend
    ("(id - 3) % 2 == -1", [0, 2]),
    ("score % 1 == 0.5", [0, 1, 2]),
    ("score * 2 == 5", [2]),
    ("score / 2 == 0.25", [0]),
    ("score / 0 > 1", []),
    ("not (score / 0 > 1)", []),  # division by zero is null: unknown either way
    ("id % 0 == 0", []),
    ("small * 100 > 1000", [0]),  # int8 is widened, no wrap-around
    ("1 + 1 == 2", ALL),
    ("7 / 2 == 3", ALL),
    ("7 / 2.0 == 3.5", ALL),
    ("1 / 0 == 1", []),
    # chained ranges
    ("30 < age < 45", [2, 3]),
    ("30 <= age <= 45", [1, 2, 3, 4]),
    ("45 > age >= 30", [1, 2, 3]),
    ("0 <= score < 2", [0, 1, 4]),
    ("1 < nick < 6", [2, 4]),
    ("0 < age - 30 < 15", [2, 3]),
    ("not 30 < age < 45", [0, 1, 4, 5]),
    # in / not in
    ("age in [25, 50]", [0, 5]),
    ("age IN [25, 50]", [0, 5]),
    ("age not in [25, 50]", [1, 2, 3, 4]),
    ("age NOT IN [25, 50]", [1, 2, 3, 4]),
    ("age in [25, 50,]", [0, 5]),
    ("id in []", []),
    ("id not in []", ALL),
    ("id in [-1, 0]", [0]),
    ("score in [0.5, 0]", [0, 4]),
    ("age in [30.0]", [1]),
    ("name in ['bob', 'dave']", [1, 3]),
    ("nick in [1, 6]", [0, 5]),
    ("nick not in [1, 6]", [2, 4]),
    ("active in [true]", [0, 2, 4]),
    # logic and precedence
    ("age > 30 and age < 45 or id == 0", [0, 2, 3]),
    ("age > 30 and (age < 45 or id == 0)", [2, 3]),
    ("id == 1 or id == 2 and age > 100", [1]),
    ("not id == 1 and id < 3", [0, 2]),
    ("id == 0 || id == 5", [0, 5]),
    ("id > 0 && id < 3", [1, 2]),
    ("id > 3 OR id < 1", [0, 4, 5]),
    ("id > 0 AnD id < 2", [1]),
    ("(((id == 1)))", [1]),
    ("id == 0 or id == 1 or id == 2 or id == 3", [0, 1, 2, 3]),
    ("(id < 2 or id > 3) and not active", [1, 5]),
    ("!(id > 1)", [0, 1]),
    # like
    ("name like 'a%'", [0, 4, 5]),
    ("name LIKE 'a%'", [0, 4, 5]),
    ("name like '%e'", [0, 3]),
    ("name like '_o_'", [1]),
    ("name like '%ar%'", [2]),
    (r"name like 'ab\%c'", [4]),
    (r'name like "ab\\%c"', [4]),
    (r"name like 'a\_b'", [5]),
    ("name like 'a_b'", [5]),
    ("name like 'b%b'", [1]),
    ("name like '%'", ALL),
    ("name like 'bob'", [1]),
    ("name like 'bo'", []),
    ("name like ''", []),
    ("name like 'a%%'", [0, 4, 5]),
    ("city like 'p%'", [0, 5]),
    ("not (city like 'p%')", [2, 3]),
    ("city like '%o%'", [2, 3]),
    ("meta['b']['c'] like 'x%'", [0]),
    ("meta['a'] like 's%'", [2]),
    ("name like {pattern}", [0, 2, 3, 4, 5]),
    # JSON paths
    ('meta["a"] == 1', [0]),  # true is not 1
    ('meta["a"] > 1', [1]),
    ('meta["a"] < 3', [0, 1]),
    ('meta["a"] == "str"', [2]),
    ('meta["a"] == true', [3]),
    ('meta["a"] != 1', [1]),  # other types and nulls do not match
    ('meta["a"] is null', [4, 5]),
    ('meta["a"] is not null', [0, 1, 2, 3]),
    ('meta["missing"] is null', ALL),
    ('meta["b"]["c"] == "y"', [3]),
    ('meta["b"]["c"]["d"] is null', ALL),
    ('meta["l"][0] == 1', [0, 5]),
    ('meta["l"][1] == "y"', [1]),
    ('meta["l"][10] is null', ALL),
    ('meta["a"][0] is null', ALL),
    ('meta["a"] in [1, "str"]', [0, 2]),
    ('meta["a"] not in [1]', [1, 2, 3]),
    ('meta["a"] * 2 == 5', [1]),
    ('meta["a"] + 1 > 0', [0, 1]),  # "str" and true are not numbers
    ('meta["l"] == [1, 2, 3]', [0]),
    ('meta["b"] == {d}', [0]),
    ("meta is null", [4]),
    ("meta['a']", [3]),  # a bare JSON value is a condition where it is true
    # json_contains family
    ('json_contains(meta["l"], 1)', [0, 5]),
    ('json_contains(meta["l"], "1")', [5]),
    ('json_contains(meta["l"], true)', [5]),
    ('JSON_CONTAINS(meta["l"], 2)', [0]),
    ('json_contains(meta["a"], 1)', []),
    ('json_contains_all(meta["l"], [1, 2])', [0]),
    ('json_contains_any(meta["l"], ["y", 3])', [0, 1]),
    ('json_contains_all(meta["l"], [])', [0, 1, 2, 5]),
    ('json_contains_any(meta["l"], [])', []),
    ('not json_contains(meta["l"], 1)', [1, 2]),
    # arrays
    ("array_contains(tags, 1)", [0, 4]),
    ("ARRAY_CONTAINS(tags, 1)", [0, 4]),
    ("array_contains_all(tags, [1, 2])", [0]),
    ("array_contains_any(tags, [4, 5])", [2, 5]),
    ("array_contains_any(tags, {needles})", [2, 5]),
    ("array_length(tags) == 0", [1]),
    ("array_length(tags) >= 2", [0, 4, 5]),
    ("ARRAY_LENGTH(tags) * 2 == 4", [4, 5]),
    ("array_length(tags) is null", [3]),
    ("array_length(meta['l']) == 2", [1]),
    ("tags[0] == 1", [0, 4]),
    ("tags[1] > 1", [0, 5]),
    ("tags is null", [3]),
    ("tags[5] is null", ALL),
    ("tags == [1, 1]", [4]),
    ("tags != [1, 1]", [0, 1, 2, 5]),
    # dynamic field
    ("dyn == 1", [0]),
    ("dyn > 1", [1, 5]),
    ("dyn == 2", [5]),  # JSON 2.0 equals 2
    ("dyn is null", [2, 4]),
    ("dyn == 'x'", [3]),
    ('color == "red"', [0, 4]),
    ('color in ["red", "blue"]', [0, 3, 4]),
    ('$meta["color"] == "blue"', [3]),
    ("dyn / 2 == 2", [1]),  # JSON ints divide like ints: 5 / 2 == 2
    ("dyn / 2 == 1", [5]),  # 1 / 2 == 0, but 2.0 / 2 == 1.0
    ("undefined_key is null", ALL),
    # templates
    ("age > {min_age}", [4, 5]),
    ("name in {names}", [1, 3]),
    ("age in {ages}", [0, 5]),
    ("age not in {ages}", [1, 2, 3, 4]),
    ("score < {s}", [0, 3, 4]),
    ("{flag}", ALL),
    ("{ min_age } < age", [4, 5]),
    ("age in [{min_age}, 25]", [0, 3]),
    ("{min_age} < age < 50", [4]),
]


def _run(expr: str, **kwargs) -> np.ndarray:
    kwargs.setdefault("params", PARAMS | {"d": {"c": "x"}})
    kwargs.setdefault("dynamic_field", "$meta")
    return evaluate(expr, COLUMNS, N, **kwargs)


@pytest.mark.parametrize(("expr", "expected"), CASES, ids=[c[0] or "<empty>" for c in CASES])
def test_expression(expr: str, expected: list[int]) -> None:
    mask = _run(expr)
    assert mask.dtype == np.bool_
    assert mask.shape == (N,)
    assert np.flatnonzero(mask).tolist() == expected


@pytest.mark.parametrize("expr", [c[0] for c in CASES if c[0].strip()])
def test_render_round_trip(expr: str) -> None:
    node = parse(expr)
    again = parse(render(node))
    assert again == node
    assert np.array_equal(_run(render(node)), _run(expr))


def test_parse_is_cached_and_hashable() -> None:
    assert parse("age > 1") is parse("age > 1")
    assert hash(parse("a in [1, 2]")) == hash(parse("a in [1,2]"))
    assert parse("x == true") != parse("x == 1")  # True is not 1 in the AST either


def test_evaluate_accepts_parsed_ast() -> None:
    node = parse("age > 30")
    assert np.flatnonzero(evaluate(node, COLUMNS, N)).tolist() == [2, 3, 4, 5]


def test_result_is_a_fresh_array() -> None:
    mask = evaluate("active", COLUMNS, N)
    mask[:] = False
    assert COLUMNS["active"].any()


def test_zero_rows() -> None:
    empty = {name: col[:0] for name, col in COLUMNS.items()}
    for expr, _ in CASES:
        mask = evaluate(expr, empty, 0, params=PARAMS | {"d": 1}, dynamic_field="$meta")
        assert mask.shape == (0,)


def test_field_names() -> None:
    expr = parse('age > 1 and meta["a"] == 2 or array_length(tags) > 1 and dyn in {x}')
    assert field_names(expr) == {"age", "meta", "tags", "dyn"}
    assert field_names(parse("")) == set()
    assert field_names(parse('$meta["k"] == 1 and not (x like "a%")')) == {"$meta", "x"}


def test_vectorised_on_large_frame() -> None:
    n = 200_000
    rng = np.random.default_rng(0)
    cols = {
        "age": rng.integers(0, 100, n),
        "color": np.array(["red", "green", "blue"], dtype=object)[rng.integers(0, 3, n)],
    }
    mask = evaluate('age > 30 and color == "red"', cols, n)
    assert np.array_equal(mask, (cols["age"] > 30) & (cols["color"] == "red"))


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------

SYNTAX_ERRORS = [
    # (expression, position, a fragment of the message)
    ("age > ", 6, "end of the expression"),
    ("age >> 5", 5, "'>'"),
    ("(age > 5", 8, "')'"),
    ("age > 5)", 7, "no matching '('"),
    ("age in 5", 7, "a list"),
    ("age in (1, 2)", 7, "a list"),
    ("name like bob", 10, "pattern"),
    ("age = 5", 4, "'=='"),
    ("age <> 5", 4, "'!='"),
    ("a & b", 2, "'&&'"),
    ("age > 'abc", 6, "never closed"),
    ("1 < age > 3", 8, "one direction"),
    ("a == b == c", 7, "'and'"),
    ("a in [1] == true", 9, "'and'"),
    ("foo(age)", 0, "unknown function 'foo'"),
    ("age @ 5", 4, "'@'"),
    ("age > 5 and", 11, "a value"),
    ("and age > 5", 0, "a value"),
    ("name not like 'a%'", 5, "not like"),
    ("age not 5", 8, "'in' after 'not'"),
    ("age is 5", 7, "'null'"),
    ("age in [x]", 8, "constant list item"),
    ("age in [1 2]", 10, "',' or ']'"),
    ("meta[a] == 1", 5, "string key"),
    ("meta['a' == 1", 9, "']'"),
    ("meta[-1] == 1", 5, "non-negative integer"),
    ("json_contains_all(tags, 1)", 24, "a list"),
    ("json_contains(1, tags)", 14, "a field or JSON path"),
    ("json_contains(tags, age)", 20, "constant"),
    ("json_contains(tags)", 18, "2 arguments"),
    ("array_length(tags, 1)", 19, "1 argument"),
    ("array_length(tags", 17, "',' or ')'"),
    ("017 == x", 0, "leading zero"),
    ("x == 12abc", 5, "malformed number"),
    ("x == null", 5, "is null"),
    ("1 2", 2, "an operator"),
    ("age > {", 7, "parameter name"),
    ("age > {x", 8, "'}'"),
    ("(" * 150 + "1" + ")" * 150, 100, "nested too deeply"),
    ("[1, 2", 5, "',' or ']'"),
    ("$foo == 1", 0, "'$'"),
]


@pytest.mark.parametrize(("expr", "pos", "fragment"), SYNTAX_ERRORS,
                         ids=[e[0][:30] for e in SYNTAX_ERRORS])
def test_syntax_errors_name_the_position(expr: str, pos: int, fragment: str) -> None:
    with pytest.raises(FilterError) as info:
        parse(expr)
    message = info.value.message
    assert f"position {pos}:" in message
    assert fragment in message
    assert "expected" in message


def test_syntax_error_shows_a_caret() -> None:
    with pytest.raises(FilterError) as info:
        parse("age > 30 and )")
    lines = info.value.message.splitlines()
    assert lines[1].strip() == "age > 30 and )"
    assert lines[2].index("^") == lines[1].index(")")


def test_long_left_deep_chain_is_rejected_cleanly() -> None:
    with pytest.raises(FilterError, match="nested too deeply"):
        parse(" + ".join(["1"] * 400) + " > 0")
    # ... while long or-chains are flattened and fine
    expr = " or ".join(f"id == {i}" for i in range(500))
    assert np.flatnonzero(_run(expr)).tolist() == ALL


def test_non_string_filter() -> None:
    with pytest.raises(FilterError, match="must be a string"):
        parse(42)  # type: ignore[arg-type]
    with pytest.raises(FilterError):
        evaluate(["age > 1"], COLUMNS, N)  # type: ignore[arg-type]


EVAL_ERRORS = [
    # (expression, fragments of the message, evaluate kwargs)
    ("agee > 1", ["'agee'", "known fields", "Did you mean 'age'"], {"dynamic_field": None}),
    ("dyn == 1", ["'dyn'"], {"dynamic_field": None}),
    ("age > {x}", ["{x}", "['y']"], {"params": {"y": 1}}),
    ("age == 'abc'", ['"abc" (a string)', "age", "compare"], {}),
    ("age == '30'", ["30 without quotes"], {}),
    ("name == 3", ["name", '"3" in quotes'], {}),
    ('"abc" + 1 > 0', ['"abc" (a string)', "numbers"], {}),
    ('"5" * 2 > 0', ["without quotes"], {}),
    ("name + 1 > 0", ["name", "numbers"], {}),
    ("-name > 0", ["name"], {}),
    ("active + 1 > 0", ["active"], {}),
    ("age like 'a%'", ["like", "age"], {}),
    ("age", ["not a condition"], {}),
    ("1", ["not a condition"], {}),
    ("'abc'", ["not a condition"], {}),
    ("name > 1", ["name"], {}),
    ("active > true", ["only numbers and strings can be ordered"], {}),
    ("age in [1, 'a']", ['"a"', "age"], {}),
    ("array_contains(age, 1)", ["array_contains", "age"], {}),
    ("array_length(name) > 1", ["array_length", "name"], {}),
    ("age['a'] == 1", ["cannot use age[\"a\"]", "JSON"], {}),
    ("color in {c}", ["needs a list"], {"params": {"c": 5}}),
    ("name like {c}", ["string pattern"], {"params": {"c": 5}}),
    ("json_contains_any(tags, {c})", ["needs a list"], {"params": {"c": 5}}),
    ("age > {c}", ["unsupported type"], {"params": {"c": object()}}),
    ("tags == 1", ["tags"], {}),
    ("1 == 'a'", ["cannot compare"], {}),
    ("age > 1", ["params must be a mapping"], {"params": [1]}),
]


@pytest.mark.parametrize(("expr", "fragments", "kwargs"), EVAL_ERRORS,
                         ids=[e[0] for e in EVAL_ERRORS])
def test_evaluation_errors(expr: str, fragments: list[str], kwargs: dict) -> None:
    with pytest.raises(FilterError) as info:
        _run(expr, **kwargs)
    for fragment in fragments:
        assert fragment in info.value.message
    assert "could not evaluate" not in info.value.message  # a specific message, not the net


def test_missing_dynamic_column() -> None:
    cols = {k: v for k, v in COLUMNS.items() if k != "$meta"}
    with pytest.raises(FilterError, match="dynamic field"):
        evaluate("dyn == 1", cols, N, dynamic_field="$meta")


def test_bad_column_shape() -> None:
    with pytest.raises(FilterError, match="shape"):
        evaluate("vec > 1", {"vec": np.zeros((N, 4))}, N)
    with pytest.raises(FilterError, match="shape"):
        evaluate("age > 1", {"age": np.arange(3)}, N)


def test_error_codes() -> None:
    with pytest.raises(FilterError) as info:
        parse("age >")
    assert info.value.code == FilterError.code
