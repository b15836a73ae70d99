"""Property tests of the filter language.

Random expression trees (plain tuples, defined here) are rendered to text with random
spacing, keyword case and redundant parentheses, then ``evaluate`` is compared with a
straightforward row-by-row reference evaluator written below, independently of the
implementation. Garbage strings must either parse or raise ``FilterError``.
"""

from __future__ import annotations

import math
import operator
import random
import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from harrierdb.engine.filter import evaluate, parse
from harrierdb.errors import FilterError

# ---------------------------------------------------------------------------------------
# Random frames
# ---------------------------------------------------------------------------------------

INTS = st.integers(-4, 4)
FLOATS = st.sampled_from([-2.5, -1.0, 0.0, 0.5, 1.5, 3.0])
WORDS = st.sampled_from(["", "a", "ab", "abc", "b", "ba", "a%b", "a_c", "x\\y", "A"])
JSON_SCALARS = st.one_of(st.none(), INTS, FLOATS, WORDS, st.booleans())
JSON_LISTS = st.lists(st.one_of(INTS, WORDS, st.booleans()), max_size=3)
JSON_DOCS = st.one_of(
    st.none(),
    JSON_LISTS,
    st.fixed_dictionaries({}, optional={
        "a": st.one_of(JSON_SCALARS, JSON_LISTS),
        "n": INTS,
        "s": WORDS,
        "l": JSON_LISTS,
        "o": st.fixed_dictionaries({}, optional={"k": INTS}),
    }),
)
ROWS = st.fixed_dictionaries({
    "i": INTS,
    "f": FLOATS,
    "s": WORDS,
    "ni": st.one_of(st.none(), INTS),
    "b": st.booleans(),
    "arr": st.one_of(st.none(), st.lists(INTS, max_size=3)),
    "j": JSON_DOCS,
    "$meta": st.fixed_dictionaries({}, optional={"d": st.one_of(INTS, FLOATS, WORDS),
                                                 "e": WORDS}),
})
PARAMS = st.fixed_dictionaries({
    "pi": INTS,
    "ps": WORDS,
    "pl": st.lists(st.one_of(INTS, FLOATS), max_size=3),
    "psl": st.lists(WORDS, max_size=3),
})


def to_columns(rows: list[dict]) -> dict[str, np.ndarray]:
    n = len(rows)
    cols: dict[str, np.ndarray] = {
        "i": np.array([r["i"] for r in rows], dtype=np.int64),
        "f": np.array([r["f"] for r in rows], dtype=np.float64),
        "b": np.array([r["b"] for r in rows], dtype=bool),
    }
    for name in ("s", "ni", "arr", "j", "$meta"):
        arr = np.empty(n, dtype=object)
        for k, r in enumerate(rows):
            arr[k] = r[name]
        cols[name] = arr
    return cols


# ---------------------------------------------------------------------------------------
# Random expression trees (tuples)
# ---------------------------------------------------------------------------------------

CMP_OPS = ["==", "!=", "<", "<=", ">", ">="]
NUM_LEAVES = [("field", "i"), ("field", "f"), ("field", "ni"), ("len", ("field", "arr")),
              ("path", "j", ("n",)), ("path", "j", ("a",)), ("path", "arr", (0,)),
              ("path", "j", ("o", "k")), ("field", "d"), ("tmpl", "pi")]
STR_LEAVES = [("field", "s"), ("path", "j", ("s",)), ("path", "j", ("a",)), ("field", "e"),
              ("tmpl", "ps"), ("path", "$meta", ("e",))]
ANY_LEAVES = [("field", "ni"), ("field", "j"), ("field", "arr"), ("field", "d"),
              ("path", "j", ("a",)), ("path", "j", ("l", 1)), ("field", "s")]
LISTS = [("field", "arr"), ("path", "j", ("l",)), ("path", "j", ("a",))]


@st.composite
def num_exprs(draw, depth: int):
    k = draw(st.integers(0, 8 if depth > 0 else 2))
    if k == 0:
        return ("lit", draw(st.one_of(INTS, FLOATS)))
    if k <= 2:
        return draw(st.sampled_from(NUM_LEAVES))
    if k <= 5:
        op = draw(st.sampled_from(["+", "-", "*", "/", "%"]))
        return ("arith", op, draw(num_exprs(depth - 1)), draw(num_exprs(depth - 1)))
    if k == 6:
        return ("neg", draw(num_exprs(depth - 1)))
    if k == 7:  # small integer exponents keep floats exact on both sides
        return ("arith", "**", draw(num_exprs(depth - 1)), ("lit", draw(st.sampled_from([0, 1, 2]))))
    return ("lit", draw(INTS))


@st.composite
def str_exprs(draw):
    if draw(st.booleans()):
        return ("lit", draw(WORDS))
    return draw(st.sampled_from(STR_LEAVES))


@st.composite
def like_patterns(draw):
    pieces = draw(st.lists(st.sampled_from(["a", "b", "%", "_", "\\%", "\\_", "x\\\\y", "ab"]),
                           max_size=4))
    return "".join(pieces)


@st.composite
def predicates(draw, depth: int):
    k = draw(st.integers(0, 16 if depth > 0 else 13))
    if k == 0:
        return ("cmp", draw(st.sampled_from(CMP_OPS)), draw(num_exprs(2)), draw(num_exprs(2)))
    if k == 1:
        return ("cmp", draw(st.sampled_from(CMP_OPS)), draw(str_exprs()), draw(str_exprs()))
    if k == 2:
        ops = draw(st.sampled_from([("<", "<"), ("<", "<="), ("<=", "<="), (">", ">"),
                                    (">=", ">"), (">=", ">=")]))
        return ("range", ("lit", draw(INTS)), ops[0], draw(num_exprs(1)), ops[1],
                ("lit", draw(st.one_of(INTS, FLOATS))))
    if k == 3:
        options = (("tmpl", "pl") if draw(st.booleans()) else
                   ("list", draw(st.lists(st.one_of(INTS, FLOATS), max_size=4))))
        return ("in", draw(num_exprs(1)), options, draw(st.booleans()))
    if k == 4:
        options = (("tmpl", "psl") if draw(st.booleans()) else
                   ("list", draw(st.lists(WORDS, max_size=4))))
        return ("in", draw(str_exprs()), options, draw(st.booleans()))
    if k == 5:
        return ("like", draw(str_exprs()), draw(like_patterns()))
    if k == 6:
        return ("isnull", draw(st.sampled_from(ANY_LEAVES)), draw(st.booleans()))
    if k == 7:
        fn = draw(st.sampled_from(["json_contains", "array_contains"]))
        return ("call", fn, draw(st.sampled_from(LISTS)), ("lit", draw(st.one_of(INTS, WORDS))))
    if k == 8:
        fn = draw(st.sampled_from(["json_contains_all", "json_contains_any",
                                   "array_contains_all", "array_contains_any"]))
        return ("call", fn, draw(st.sampled_from(LISTS)),
                ("list", draw(st.lists(st.one_of(INTS, WORDS, st.booleans()), max_size=3))))
    if k == 9:
        return ("truth", ("field", "b")) if draw(st.booleans()) else \
            ("cmp", draw(st.sampled_from(["==", "!="])), ("field", "b"), ("lit", draw(st.booleans())))
    if k == 10:  # JSON value against a literal of any kind
        return ("cmp", draw(st.sampled_from(CMP_OPS)), ("path", "j", ("a",)),
                ("lit", draw(st.one_of(INTS, FLOATS, WORDS, st.booleans()))))
    if k == 11:
        return ("cmp", draw(st.sampled_from(["==", "!="])), ("field", "arr"),
                ("list", draw(st.lists(INTS, max_size=3))))
    if k == 12:
        return ("truth", ("path", "j", ("a",)))
    if k == 13:
        return ("lit", draw(st.booleans()))
    if k == 14:
        return ("not", draw(predicates(depth - 1)))
    op = "and" if k == 15 else "or"
    return (op, draw(predicates(depth - 1)), draw(predicates(depth - 1)))


# ---------------------------------------------------------------------------------------
# Rendering with random surface syntax
# ---------------------------------------------------------------------------------------

PREC = {"or": 1, "and": 2, "not": 3, "cmp": 4, "range": 4, "in": 4, "like": 4, "isnull": 4,
        "+": 5, "-": 5, "*": 6, "/": 6, "%": 6, "neg": 7, "**": 8}


def quote(s: str, rnd: random.Random) -> str:
    q = rnd.choice(['"', "'"])
    return q + s.replace("\\", "\\\\").replace(q, "\\" + q) + q


def literal(v: object, rnd: random.Random) -> str:
    if isinstance(v, bool):
        return rnd.choice(["true", "True", "TRUE"] if v else ["false", "False", "FALSE"])
    if isinstance(v, str):
        return quote(v, rnd)
    if isinstance(v, list):
        return "[" + ", ".join(literal(x, rnd) for x in v) + "]"
    return repr(v)


def kw(word: str, rnd: random.Random) -> str:
    return rnd.choice([word, word.upper(), word.capitalize()])


def render(node: tuple, rnd: random.Random) -> str:
    return _wrap(node, 0, rnd)


def _wrap(node: tuple, need: int, rnd: random.Random) -> str:
    text, prec = _render(node, rnd)
    if prec < need or rnd.random() < 0.1:
        return "(" + text + ")"
    return text


def _render(node: tuple, rnd: random.Random) -> tuple[str, int]:
    tag = node[0]
    if tag == "lit":
        v = node[1]
        neg = not isinstance(v, (bool, str)) and v < 0
        return literal(v, rnd), (7 if neg else 9)
    if tag == "list":
        return literal(node[1], rnd), 9
    if tag == "tmpl":
        return "{" + node[1] + "}", 9
    if tag == "field":
        return node[1], 9
    if tag == "path":
        keys = "".join(f"[{quote(k, rnd)}]" if isinstance(k, str) else f"[{k}]" for k in node[2])
        return node[1] + keys, 9
    if tag == "len":
        return f"{kw('array_length', rnd)}({_wrap(node[1], 0, rnd)})", 9
    if tag == "call":
        return f"{kw(node[1], rnd)}({_wrap(node[2], 0, rnd)}, {_wrap(node[3], 0, rnd)})", 9
    if tag == "arith":
        op, p = node[1], PREC[node[1]]
        if op == "**":
            return f"{_wrap(node[2], p + 1, rnd)} ** {_wrap(node[3], p, rnd)}", p
        return f"{_wrap(node[2], p, rnd)} {op} {_wrap(node[3], p + 1, rnd)}", p
    if tag == "neg":
        return "-" + _wrap(node[1], 7, rnd), 7
    if tag == "cmp":
        return f"{_wrap(node[2], 5, rnd)} {node[1]} {_wrap(node[3], 5, rnd)}", 4
    if tag == "range":
        return (f"{_wrap(node[1], 5, rnd)} {node[2]} {_wrap(node[3], 5, rnd)} {node[4]} "
                f"{_wrap(node[5], 5, rnd)}"), 4
    if tag == "in":
        word = kw("not", rnd) + " " + kw("in", rnd) if node[3] else kw("in", rnd)
        return f"{_wrap(node[1], 5, rnd)} {word} {_wrap(node[2], 0, rnd)}", 4
    if tag == "like":
        return f"{_wrap(node[1], 5, rnd)} {kw('like', rnd)} {quote(node[2], rnd)}", 4
    if tag == "isnull":
        word = "is not null" if node[2] else "is null"
        return f"{_wrap(node[1], 5, rnd)} {kw(word, rnd)}", 4
    if tag == "truth":
        return _render(node[1], rnd)
    if tag == "not":
        word = rnd.choice(["not ", "NOT ", "!"])
        return word + _wrap(node[1], 3, rnd), 3
    if tag in ("and", "or"):
        words = {"and": ["and", "AND", "&&"], "or": ["or", "OR", "||"]}[tag]
        p = PREC[tag]
        return f"{_wrap(node[1], p, rnd)} {rnd.choice(words)} {_wrap(node[2], p, rnd)}", p
    raise AssertionError(node)


# ---------------------------------------------------------------------------------------
# Reference evaluator: one row at a time, plain Python
# ---------------------------------------------------------------------------------------


def kind(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "num"
    if isinstance(v, str):
        return "str"
    if isinstance(v, list):
        return "list"
    return "dict"


def json_eq(a: object, b: object) -> bool:
    if kind(a) != kind(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(json_eq(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(json_eq(a[k], b[k]) for k in a)
    return a == b


CMP = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
       ">": operator.gt, ">=": operator.ge}


def ref_compare(op: str, a: object, b: object) -> bool:
    if a is None or b is None or kind(a) != kind(b):
        return False
    if kind(a) in ("num", "str"):
        return CMP[op](a, b)
    if op == "==":
        return json_eq(a, b)
    if op == "!=":
        return not json_eq(a, b)
    return False


def ref_arith(op: str, a: object, b: object) -> object:
    if kind(a) != "num" or kind(b) != "num":
        return None
    ints = isinstance(a, int) and isinstance(b, int)
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "**":
        try:
            r = math.pow(a, b)
        except (ValueError, OverflowError):
            return None
        return r if math.isfinite(r) else None
    if b == 0:
        return None
    if ints:  # C semantics: truncate toward zero, remainder has the dividend's sign
        q = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)
        return q if op == "/" else a - b * q
    return a / b if op == "/" else math.fmod(a, b)


def ref_like(value: object, pattern: str) -> bool:
    if not isinstance(value, str):
        return False
    regex, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            regex += re.escape(pattern[i + 1])
            i += 2
            continue
        regex += ".*" if c == "%" else "." if c == "_" else re.escape(c)
        i += 1
    return re.fullmatch(regex, value, re.DOTALL) is not None


def ref_value(node: tuple, row: dict, params: dict) -> object:
    tag = node[0]
    if tag == "lit":
        return node[1]
    if tag == "list":
        return node[1]
    if tag == "tmpl":
        return params[node[1]]
    if tag == "field":
        return row[node[1]] if node[1] in row else row["$meta"].get(node[1])
    if tag == "path":
        v = ref_value(("field", node[1]), row, params)
        for k in node[2]:
            if isinstance(k, str):
                v = v.get(k) if isinstance(v, dict) else None
            else:
                v = v[k] if isinstance(v, list) and k < len(v) else None
        return v
    if tag == "len":
        v = ref_value(node[1], row, params)
        return len(v) if isinstance(v, list) else None
    if tag == "arith":
        return ref_arith(node[1], ref_value(node[2], row, params), ref_value(node[3], row, params))
    if tag == "neg":
        v = ref_value(node[1], row, params)
        return -v if kind(v) == "num" else None
    raise AssertionError(node)


def ref_holds(node: tuple, row: dict, params: dict) -> bool:
    tag = node[0]
    val = lambda n: ref_value(n, row, params)  # noqa: E731
    if tag == "lit":
        return node[1] is True
    if tag == "truth":
        return val(node[1]) is True
    if tag == "cmp":
        return ref_compare(node[1], val(node[2]), val(node[3]))
    if tag == "range":
        mid = val(node[3])
        return ref_compare(node[2], val(node[1]), mid) and ref_compare(node[4], mid, val(node[5]))
    if tag == "in":
        v = val(node[1])
        if v is None:
            return False
        hit = any(json_eq(v, o) for o in val(node[2]))
        return not hit if node[3] else hit
    if tag == "like":
        return ref_like(val(node[1]), node[2])
    if tag == "isnull":
        return (val(node[1]) is None) != node[2]
    if tag == "call":
        target, needle = val(node[2]), val(node[3])
        if not isinstance(target, list):
            return False
        contains = lambda x: any(json_eq(e, x) for e in target)  # noqa: E731
        if node[1].endswith("_all"):
            return all(contains(x) for x in needle)
        if node[1].endswith("_any"):
            return any(contains(x) for x in needle)
        return contains(needle)
    raise AssertionError(node)


# Which children of a leaf condition are the values it reads (null there: unknown).
READS = {"truth": (1,), "cmp": (2, 3), "range": (1, 3, 5), "in": (1,), "like": (1,), "call": (2,)}


def ref_truth(node: tuple, row: dict, params: dict) -> bool | None:
    """SQL's three-valued logic: True, False, or None when a leaf reads a null."""
    tag = node[0]
    if tag == "not":
        inner = ref_truth(node[1], row, params)
        return None if inner is None else not inner
    if tag in ("and", "or"):
        a, b = ref_truth(node[1], row, params), ref_truth(node[2], row, params)
        if tag == "and":
            return False if False in (a, b) else (None if None in (a, b) else True)
        return True if True in (a, b) else (None if None in (a, b) else False)
    if ref_holds(node, row, params):
        return True
    if any(ref_value(node[i], row, params) is None for i in READS.get(tag, ())):
        return None
    return False


# ---------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(rows=st.lists(ROWS, max_size=7), params=PARAMS, tree=predicates(3),
       seed=st.integers(0, 2**32 - 1))
def test_evaluate_matches_reference(rows, params, tree, seed) -> None:
    text = render(tree, random.Random(seed))
    expected = [ref_truth(tree, row, params) is True for row in rows]
    got = evaluate(text, to_columns(rows), len(rows), params=params, dynamic_field="$meta")
    assert got.dtype == np.bool_
    assert got.tolist() == expected, text


def _parse_or_filter_error(text: str) -> None:
    """The only acceptable outcomes: a mask, or a FilterError with a specific message."""
    rows = [{"i": 1, "f": 0.5, "s": "ab", "ni": None, "b": True, "arr": [1, 2],
             "j": {"a": 1, "l": [1, "x"]}, "$meta": {"d": 2}},
            {"i": -2, "f": 3.0, "s": "", "ni": 4, "b": False, "arr": None, "j": None,
             "$meta": {}}]
    try:
        node = parse(text)
    except FilterError as exc:
        assert "position" in exc.message
        return
    try:
        mask = evaluate(node, to_columns(rows), len(rows),
                        params={"pi": 1, "ps": "a", "pl": [1], "psl": ["a"]},
                        dynamic_field="$meta")
    except FilterError as exc:
        # The catch-all in evaluate() means an unexpected Python error; flag it.
        assert "could not evaluate" not in exc.message, exc.message
        return
    assert mask.dtype == np.bool_ and mask.shape == (2,)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text_parses_or_raises_filter_error(text: str) -> None:
    _parse_or_filter_error(text)


TOKENS = ["i", "f", "s", "ni", "b", "arr", "j", "d", "$meta", "1", "-2", "2.5", "1e3", "0x1F",
          '"a"', "'b%'", "true", "null", "and", "or", "not", "in", "like", "is", "&&", "||",
          "!", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "**", "(", ")",
          "[", "]", ",", "{pi}", "{", "}", '["a"]', "[0]", "json_contains", "array_length",
          "array_contains_any"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=12))
def test_token_soup_parses_or_raises_filter_error(tokens: list[str]) -> None:
    _parse_or_filter_error(" ".join(tokens))


@settings(max_examples=300, deadline=None)
@given(tree=predicates(2), seed=st.integers(0, 2**32 - 1),
       edits=st.lists(st.tuples(st.integers(0, 2), st.floats(0, 1), st.sampled_from(TOKENS)),
                      min_size=1, max_size=3))
def test_mutated_expressions_parse_or_raise_filter_error(tree, seed, edits) -> None:
    text = render(tree, random.Random(seed))
    for action, where, token in edits:
        at = int(where * len(text))
        if action == 0:  # delete a few characters
            text = text[:at] + text[at + 3:]
        elif action == 1:  # insert a token
            text = text[:at] + token + text[at:]
        else:  # replace one character
            text = text[:at] + token[:1] + text[at + 1:]
    _parse_or_filter_error(text)
