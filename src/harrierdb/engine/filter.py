"""Milvus boolean filter expressions: tokenizer, parser and vectorised evaluator.

``parse`` turns a filter string into a small AST of frozen dataclasses (cached, hashable);
``evaluate`` turns an AST plus a frame of columns into a boolean row mask; ``field_names``
lists the columns an expression reads so the caller loads only those.

Grammar (Milvus 2.5), loosest binding first::

    or  / ||
    and / &&
    not / !                          (prefix; binds looser than comparisons: ``not a > 1``
                                      means ``not (a > 1)``)
    == != < <= > >=  in  not in  like  is [not] null
                                     (non-associative, except same-direction ranges
                                      ``1 < x <= 5`` and ``9 > x >= 2``)
    + -
    * / %
    unary - +
    **                               (right-associative; ``-x ** 2`` is ``-(x ** 2)``)
    literals, fields, field["key"][0], {template}, [list], (expr),
    json_contains[_all|_any](..), array_contains[_all|_any](..), array_length(..)

Semantics, as Milvus where we know it:

* Null (``None``, or a JSON key that is missing): every comparison, arithmetic result,
  ``in``, ``not in``, ``like`` and ``*_contains`` involving a null is false for that row.
  Conditions follow SQL's three-valued logic: on a null they are unknown, and ``not``
  of unknown is still unknown, so ``not (x > 5)`` is false for a null ``x``, as in Milvus
  (whose executor negates and then drops null rows; confirmed by the differential test).
* Types: JSON numbers compare numerically whether int or float; bools are not numbers
  (``true != 1``); a value of another type than the one it is compared with (a string row
  against a number) simply does not match. A *typed* operand (a scalar column or a
  literal) of the wrong type is a mistake in the filter, so it raises ``FilterError``.
* Arithmetic: ``/`` between two integers truncates toward zero and ``%`` takes the sign of
  the dividend (C/C++ semantics, as Milvus's executor); otherwise ``/`` is true division.
  ``**`` always yields a float. Division by zero, or a power that is not a finite
  number, gives null (the row does not match) rather than an error.
* ``like``: ``%`` matches any run, ``_`` one character, a backslash escapes the next one.
"""

from __future__ import annotations

import difflib
import functools
import math
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from itertools import repeat
from typing import Any

import numpy as np

from harrierdb.errors import FilterError

__all__ = [
    "Expr",
    "parse",
    "evaluate",
    "field_names",
    "render",
]

# ----------------------------------------------------------------------------------------
# AST
# ----------------------------------------------------------------------------------------


class _Node:
    """Base of all AST nodes; ``str(node)`` renders it back to filter syntax."""

    __slots__ = ()

    def __str__(self) -> str:
        return render(self)  # type: ignore[arg-type]


@dataclass(frozen=True, eq=False)
class Literal(_Node):
    """A number, string or boolean constant."""

    value: int | float | str | bool

    # Compare the type too: the default dataclass equality would make Literal(True) equal
    # to Literal(1) (since True == 1 in Python), which is wrong for a filter.
    def __eq__(self, other: object) -> bool:
        return (
            type(other) is Literal
            and type(self.value) is type(other.value)
            and self.value == other.value
        )

    def __hash__(self) -> int:
        return hash((type(self.value).__name__, self.value))


@dataclass(frozen=True)
class ListLiteral(_Node):
    """``[a, b, ...]``; items are constants (literals, lists, templates)."""

    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Template(_Node):
    """``{name}``, filled from ``params`` at evaluation time."""

    name: str


@dataclass(frozen=True)
class Field(_Node):
    """A field name (or a key of the dynamic field)."""

    name: str


@dataclass(frozen=True)
class Path(_Node):
    """``field["a"][0]``: an element of a JSON or ARRAY field."""

    field: str
    keys: tuple[str | int, ...]


@dataclass(frozen=True)
class Unary(_Node):
    """Unary ``-`` or ``+`` on a non-literal operand (literals are folded)."""

    op: str
    operand: Expr


@dataclass(frozen=True)
class Arith(_Node):
    """``left op right`` with op in ``+ - * / % **``."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Compare(_Node):
    """``left op right`` with op in ``== != < <= > >=``."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Range(_Node):
    """``lower lower_op value upper_op upper``, both ops ``<``/``<=`` or both ``>``/``>=``."""

    lower: Expr
    lower_op: str
    value: Expr
    upper_op: str
    upper: Expr


@dataclass(frozen=True)
class In(_Node):
    """``value in [..]`` / ``value not in {template}``."""

    value: Expr
    options: Expr
    negated: bool


@dataclass(frozen=True)
class Like(_Node):
    """``value like "pattern"``."""

    value: Expr
    pattern: Expr


@dataclass(frozen=True)
class IsNull(_Node):
    """``value is null`` / ``value is not null``."""

    value: Expr
    negated: bool


@dataclass(frozen=True)
class Not(_Node):
    """``not operand``."""

    operand: Expr


@dataclass(frozen=True)
class Logical(_Node):
    """``a and b and ...`` or ``a or b or ...`` (chains are flattened)."""

    op: str
    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Call(_Node):
    """A built-in function; ``name`` is lower-case (``json_contains``, ``array_length``)."""

    name: str
    args: tuple[Expr, ...]


Expr = (
    Literal | ListLiteral | Template | Field | Path | Unary | Arith | Compare | Range | In
    | Like | IsNull | Not | Logical | Call
)

_MATCH_ALL = Literal(True)

# name -> (operation, number of arguments)
_FUNCTIONS = {
    "json_contains": "contains",
    "array_contains": "contains",
    "json_contains_all": "contains_all",
    "array_contains_all": "contains_all",
    "json_contains_any": "contains_any",
    "array_contains_any": "contains_any",
    "array_length": "length",
}


def _children(node: _Node) -> Iterator[_Node]:
    for f in fields(node):  # type: ignore[arg-type]
        value = getattr(node, f.name)
        if isinstance(value, _Node):
            yield value
        elif isinstance(value, tuple):
            yield from (v for v in value if isinstance(v, _Node))


def field_names(expr: Expr) -> set[str]:
    """Top-level field identifiers that ``expr`` reads (``meta["a"]`` reads ``meta``)."""
    names: set[str] = set()
    stack: list[_Node] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Field):
            names.add(node.name)
        elif isinstance(node, Path):
            names.add(node.field)
        stack.extend(_children(node))
    return names


# ----------------------------------------------------------------------------------------
# Rendering (AST -> text), for error messages and round trips
# ----------------------------------------------------------------------------------------

# Precedence levels used to decide where parentheses are needed.
_P_OR, _P_AND, _P_NOT, _P_CMP, _P_ADD, _P_MUL, _P_UNARY, _P_POW, _P_ATOM = range(1, 10)
_ARITH_PREC = {"+": _P_ADD, "-": _P_ADD, "*": _P_MUL, "/": _P_MUL, "%": _P_MUL, "**": _P_POW}


def _quote(s: str) -> str:
    body = (
        s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        .replace("\r", "\\r").replace("\t", "\\t")
    )
    return f'"{body}"'


def _render_constant(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, float) and not math.isfinite(value):
        return ("-" if value < 0 else "") + "1e999"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_render_constant(v) for v in value) + "]"
    return repr(value)


def render(expr: Expr) -> str:
    """Render an AST back to filter text, with only the parentheses it needs."""
    return _render(expr, 0)


def _render(node: _Node, need: int) -> str:
    text, prec = _render_node(node)
    return f"({text})" if prec < need else text


def _render_node(node: _Node) -> tuple[str, int]:
    if isinstance(node, Literal):
        v = node.value
        # -0.0 counts as negative too: "-0.0 ** 2" would parse as -(0.0 ** 2).
        neg = isinstance(v, (int, float)) and not isinstance(v, bool) and math.copysign(1, v) < 0
        return _render_constant(v), (_P_UNARY if neg else _P_ATOM)
    if isinstance(node, ListLiteral):
        return "[" + ", ".join(_render(i, 0) for i in node.items) + "]", _P_ATOM
    if isinstance(node, Template):
        return "{" + node.name + "}", _P_ATOM
    if isinstance(node, Field):
        return node.name, _P_ATOM
    if isinstance(node, Path):
        keys = "".join(f"[{_quote(k)}]" if isinstance(k, str) else f"[{k}]" for k in node.keys)
        return node.field + keys, _P_ATOM
    if isinstance(node, Unary):
        return node.op + _render(node.operand, _P_UNARY), _P_UNARY
    if isinstance(node, Arith):
        p = _ARITH_PREC[node.op]
        if node.op == "**":  # right-associative
            return f"{_render(node.left, p + 1)} ** {_render(node.right, p)}", p
        return f"{_render(node.left, p)} {node.op} {_render(node.right, p + 1)}", p
    if isinstance(node, Compare):
        left, right = _render(node.left, _P_ADD), _render(node.right, _P_ADD)
        return f"{left} {node.op} {right}", _P_CMP
    if isinstance(node, Range):
        parts = (_render(node.lower, _P_ADD), node.lower_op, _render(node.value, _P_ADD),
                 node.upper_op, _render(node.upper, _P_ADD))
        return " ".join(parts), _P_CMP
    if isinstance(node, In):
        kw = "not in" if node.negated else "in"
        return f"{_render(node.value, _P_ADD)} {kw} {_render(node.options, 0)}", _P_CMP
    if isinstance(node, Like):
        return f"{_render(node.value, _P_ADD)} like {_render(node.pattern, 0)}", _P_CMP
    if isinstance(node, IsNull):
        kw = "is not null" if node.negated else "is null"
        return f"{_render(node.value, _P_ADD)} {kw}", _P_CMP
    if isinstance(node, Not):
        return "not " + _render(node.operand, _P_NOT), _P_NOT
    if isinstance(node, Logical):
        p = _P_AND if node.op == "and" else _P_OR
        return f" {node.op} ".join(_render(o, p) for o in node.operands), p
    if isinstance(node, Call):
        return f"{node.name}({', '.join(_render(a, 0) for a in node.args)})", _P_ATOM
    raise TypeError(f"not a filter expression node: {node!r}")


# ----------------------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------------------

_KEYWORDS = frozenset({"and", "or", "not", "in", "like", "is", "null", "true", "false"})
# Longest first, so "**" wins over "*" and "<=" over "<".
_OPERATORS = (
    "**", "==", "!=", "<=", ">=", "&&", "||",
    "<", ">", "+", "-", "*", "/", "%", "(", ")", "[", "]", ",", "{", "}", "!",
)
# Common mistakes, with what to write instead.
_MISTAKES = (("<>", "'!='"), ("=", "'==' for equality"), ("&", "'&&' or 'and'"),
             ("|", "'||' or 'or'"))
_NUMBER = re.compile(
    r"0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+"
    r"|(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][+-]?[0-9]+)?"
)
_DIGITS = frozenset("0123456789")  # ASCII only: str.isdigit() also accepts "²"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\$meta\b")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "\\": "\\", '"': '"',
            "'": "'"}


@dataclass(frozen=True)
class Token:
    """One lexical token; ``kind`` is num, str, ident, kw, op or eof."""

    kind: str
    text: str  # the source text (keywords lower-cased)
    pos: int
    value: Any = None


def _syntax_error(source: str, pos: int, found: str, expected: str) -> FilterError:
    """Build the error for a syntax problem at ``pos``, with a caret under the spot."""
    start = max(0, pos - 40)
    snippet = source[start:pos + 40]
    prefix = "..." if start else ""
    caret = " " * (len(prefix) + pos - start) + "^"
    return FilterError(
        f"filter syntax error at position {pos}: found {found}, expected {expected}\n"
        f"    {prefix}{snippet}\n    {caret}"
    )


class Tokenizer:
    """Splits filter text into tokens; errors name the character position."""

    def __init__(self, source: str):
        self.source = source

    def tokens(self) -> list[Token]:
        src, i, out = self.source, 0, []
        n = len(src)
        while i < n:
            c = src[i]
            if c.isspace():
                i += 1
            elif c in "\"'":
                value, end = self._string(i)
                out.append(Token("str", src[i:end], i, value))
                i = end
            elif c in _DIGITS or (c == "." and i + 1 < n and src[i + 1] in _DIGITS):
                tok = self._number(i)
                out.append(tok)
                i += len(tok.text)
            elif m := _IDENT.match(src, i):
                word = m.group()
                if word.lower() in _KEYWORDS:
                    out.append(Token("kw", word.lower(), i))
                else:
                    out.append(Token("ident", word, i))
                i = m.end()
            else:
                i = self._operator(i, out)
        out.append(Token("eof", "", n))
        return out

    def _operator(self, i: int, out: list[Token]) -> int:
        src = self.source
        for op in _OPERATORS:
            if src.startswith(op, i) and not (op == "<" and src.startswith("<>", i)):
                out.append(Token("op", op, i))
                return i + len(op)
        for bad, fix in _MISTAKES:
            if src.startswith(bad, i):
                raise _syntax_error(src, i, repr(bad), f"{fix}")
        raise _syntax_error(
            src, i, f"unexpected character {src[i]!r}",
            "a field name, a literal, an operator or a parenthesis",
        )

    def _number(self, i: int) -> Token:
        src = self.source
        m = _NUMBER.match(src, i)
        assert m is not None  # the caller saw a digit or ".digit"
        text, end = m.group(), m.end()
        if end < len(src) and (src[end].isalnum() or src[end] in "_."):
            raise _syntax_error(src, i, f"malformed number {src[i:end + 1]!r}",
                                "a number such as 42, 1.5, 1e3 or 0x1F")
        if text[:2].lower() in ("0x", "0b", "0o"):
            return Token("num", text, i, int(text, 0))
        if any(ch in text for ch in ".eE"):
            return Token("num", text, i, float(text))
        if len(text) > 1 and text[0] == "0":
            # C-style octal (Milvus reads 017 as 15) is a trap; make the user choose.
            raise _syntax_error(src, i, f"number with a leading zero {text!r}",
                                f"{text.lstrip('0') or '0'} (decimal) or 0o{text[1:]} (octal)")
        return Token("num", text, i, int(text))

    def _string(self, start: int) -> tuple[str, int]:
        src, quote = self.source, self.source[start]
        i, out = start + 1, []
        while i < len(src):
            c = src[i]
            if c == quote:
                return "".join(out), i + 1
            if c == "\\" and i + 1 < len(src):
                e = src[i + 1]
                if e in _ESCAPES:
                    out.append(_ESCAPES[e])
                    i += 2
                elif e == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", src[i + 2:i + 6]):
                    out.append(chr(int(src[i + 2:i + 6], 16)))
                    i += 6
                else:
                    # Keep unknown escapes verbatim so like patterns see \% and \_.
                    out.append(c + e)
                    i += 2
            else:
                out.append(c)
                i += 1
        raise _syntax_error(src, start, f"a string that is never closed (opened with {quote})",
                            f"a closing {quote}")


# ----------------------------------------------------------------------------------------
# Parser (Pratt / precedence climbing)
# ----------------------------------------------------------------------------------------

_BP_OR, _BP_AND, _BP_NOT, _BP_CMP, _BP_UNARY = 10, 20, 30, 40, 70
_BP_ARITH = {"+": 50, "-": 50, "*": 60, "/": 60, "%": 60, "**": 80}
_CMP_OPS = frozenset({"==", "!=", "<", "<=", ">", ">="})
_ASCENDING, _DESCENDING = frozenset({"<", "<="}), frozenset({">", ">="})
_MAX_NESTING = 100  # keeps parsing and evaluation well inside Python's recursion limit


def _describe(tok: Token) -> str:
    return "the end of the expression" if tok.kind == "eof" else repr(tok.text)


def _is_constant(node: _Node) -> bool:
    return isinstance(node, (Literal, ListLiteral, Template))


class Parser:
    """Recursive-descent parser with binding powers for the infix operators."""

    def __init__(self, source: str):
        self.source = source
        self.tokens = Tokenizer(source).tokens()
        self.i = 0
        self.nesting = 0

    # -- token helpers -------------------------------------------------------------------

    def _peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def _next(self) -> Token:
        tok = self._peek()
        self.i += 1
        return tok

    def _error(self, tok: Token, expected: str, found: str | None = None) -> FilterError:
        return _syntax_error(self.source, tok.pos, found or _describe(tok), expected)

    def _expect_op(self, op: str, expected: str | None = None) -> Token:
        tok = self._next()
        if tok.kind != "op" or tok.text != op:
            raise self._error(tok, expected or repr(op))
        return tok

    # -- entry point ---------------------------------------------------------------------

    def parse(self) -> Expr:
        if self._peek().kind == "eof":
            return _MATCH_ALL  # an empty filter matches every row
        node = self._expr(0)
        tok = self._peek()
        if tok.kind != "eof":
            expected = "an operator (and, or, ==, <, +, ...) or the end of the expression"
            if tok.kind == "op" and tok.text == ")":
                expected = "no ')' here: it has no matching '('"
            raise self._error(tok, expected)
        return node

    def _expr(self, min_bp: int) -> Expr:
        """Parse an expression whose infix operators all bind tighter than ``min_bp``."""
        self.nesting += 1
        if self.nesting > _MAX_NESTING:
            raise self._error(self._peek(), f"at most {_MAX_NESTING} levels of nesting",
                              "an expression nested too deeply")
        left = self._prefix()
        after_comparison = False
        while True:
            tok = self._peek()
            bp = self._infix_bp(tok)
            if bp is None or bp <= min_bp:
                break
            if bp == _BP_CMP and after_comparison:
                raise self._error(
                    tok, "'and' between comparisons, or parentheses "
                    "(only ranges like 1 < x < 5 may be chained)")
            after_comparison = bp == _BP_CMP
            left = self._infix(left, bp)
        self.nesting -= 1
        return left

    @staticmethod
    def _infix_bp(tok: Token) -> int | None:
        if tok.kind == "op":
            if tok.text == "||":
                return _BP_OR
            if tok.text == "&&":
                return _BP_AND
            if tok.text in _CMP_OPS:
                return _BP_CMP
            return _BP_ARITH.get(tok.text)
        if tok.kind == "kw":
            if tok.text == "or":
                return _BP_OR
            if tok.text == "and":
                return _BP_AND
            if tok.text in ("in", "not", "like", "is"):
                return _BP_CMP
        return None

    # -- prefix positions (values, prefix operators) -------------------------------------

    def _prefix(self) -> Expr:
        tok = self._next()
        if tok.kind in ("num", "str"):
            return Literal(tok.value)
        if tok.kind == "ident":
            return self._field_or_call(tok)
        if tok.kind == "kw":
            if tok.text in ("true", "false"):
                return Literal(tok.text == "true")
            if tok.text == "not":
                return Not(self._expr(_BP_NOT))
            if tok.text == "null":
                raise self._error(tok, "a value; test for null with 'x is null' or "
                                  "'x is not null'")
        if tok.kind == "op":
            if tok.text == "!":
                return Not(self._expr(_BP_NOT))
            if tok.text in ("-", "+"):
                return self._unary(tok)
            if tok.text == "(":
                inner = self._expr(0)
                self._expect_op(")", "')' to close the '(' at position " + str(tok.pos))
                return inner
            if tok.text == "[":
                return self._list(tok)
            if tok.text == "{":
                return self._template(tok)
        raise self._error(tok, "a value (number, string, true/false, field name, "
                          "'(', '[' or '{param}')")

    def _unary(self, tok: Token) -> Expr:
        operand = self._expr(_BP_UNARY)
        # Fold signs into numeric literals so "-2" is a constant (usable in lists).
        if (isinstance(operand, Literal) and isinstance(operand.value, (int, float))
                and not isinstance(operand.value, bool)):
            return Literal(-operand.value if tok.text == "-" else operand.value)
        return Unary(tok.text, operand)

    def _field_or_call(self, tok: Token) -> Expr:
        nxt = self._peek()
        if nxt.kind == "op" and nxt.text == "(":
            return self._call(tok)
        keys: list[str | int] = []
        while (nxt := self._peek()).kind == "op" and nxt.text == "[":
            self._next()
            key = self._next()
            if key.kind == "str":
                keys.append(key.value)
            elif key.kind == "num" and isinstance(key.value, int):
                keys.append(key.value)
            else:
                raise self._error(key, 'a string key or a non-negative integer index, '
                                  'as in meta["key"] or tags[0]')
            self._expect_op("]", "']' to close the subscript")
        return Path(tok.text, tuple(keys)) if keys else Field(tok.text)

    def _call(self, name_tok: Token) -> Expr:
        name = name_tok.text.lower()
        if name not in _FUNCTIONS:
            raise self._error(name_tok, "one of the functions " + ", ".join(sorted(_FUNCTIONS)),
                              f"unknown function {name_tok.text!r}")
        self._expect_op("(")
        args: list[tuple[Token, Expr]] = []
        if not (self._peek().kind == "op" and self._peek().text == ")"):
            while True:
                start = self._peek()
                args.append((start, self._expr(0)))
                if self._peek().kind == "op" and self._peek().text == ",":
                    self._next()
                    continue
                break
        close = self._peek()
        if not (close.kind == "op" and close.text == ")"):
            raise self._error(close, f"',' or ')' in the arguments of {name}")
        arity = 1 if _FUNCTIONS[name] == "length" else 2
        if len(args) != arity:
            shape = f"{name}(field)" if arity == 1 else f"{name}(field, value)"
            where = args[arity][0] if len(args) > arity else close
            raise self._error(where, f"{arity} argument{'s' if arity > 1 else ''}, as in "
                              f"{shape}")
        self._next()
        first_tok, first = args[0]
        if not isinstance(first, (Field, Path)):
            raise self._error(first_tok, f"a field or JSON path as the first argument of {name}")
        if arity == 2:
            value_tok, value = args[1]
            op = _FUNCTIONS[name]
            if op == "contains" and not _is_constant(value):
                raise self._error(value_tok, f"a constant value as the second argument of {name}")
            if op != "contains" and not isinstance(value, (ListLiteral, Template)):
                raise self._error(value_tok, f"a list such as [1, 2] or a {{param}} as the "
                                  f"second argument of {name}")
        return Call(name, tuple(a for _, a in args))

    def _list(self, open_tok: Token) -> Expr:
        items: list[Expr] = []
        while True:
            tok = self._peek()
            if tok.kind == "op" and tok.text == "]":
                self._next()
                return ListLiteral(tuple(items))
            item = self._expr(0)
            if not _is_constant(item):
                raise self._error(tok, "a constant list item (number, string, true/false, "
                                  "list or {param})")
            items.append(item)
            sep = self._next()
            if sep.kind == "op" and sep.text == "]":
                return ListLiteral(tuple(items))
            if not (sep.kind == "op" and sep.text == ","):
                raise self._error(sep, f"',' or ']' to close the list opened at position "
                                  f"{open_tok.pos}")

    def _template(self, open_tok: Token) -> Expr:
        name = self._next()
        if name.kind not in ("ident", "kw"):
            raise self._error(name, "a parameter name inside {...}, as in {min_age}")
        self._expect_op("}", "'}' to close the template parameter")
        # Keywords are lower-cased in tokens; take the name as written.
        return Template(self.source[name.pos:name.pos + len(name.text)])

    # -- infix positions -----------------------------------------------------------------

    def _infix(self, left: Expr, bp: int) -> Expr:
        tok = self._next()
        word = tok.text
        if word in ("or", "||", "and", "&&"):
            op = "or" if word in ("or", "||") else "and"
            return _logical(op, left, self._expr(bp))
        if tok.kind == "op" and word in _BP_ARITH:
            # "**" is right-associative: its right side may hold another "**".
            right = self._expr(bp - 1 if word == "**" else bp)
            return Arith(word, left, right)
        if tok.kind == "op" and word in _CMP_OPS:
            return self._comparison(left, tok)
        if word == "in":
            return In(left, self._options(tok), False)
        if word == "not":
            nxt = self._next()
            if nxt.kind == "kw" and nxt.text == "in":
                return In(left, self._options(nxt), True)
            if nxt.kind == "kw" and nxt.text == "like":
                raise self._error(tok, "not (field like \"...\") instead",
                                  "'not like', which Milvus does not have")
            raise self._error(nxt, "'in' after 'not' (as in x not in [1, 2])")
        if word == "like":
            pattern = self._next()
            if pattern.kind == "str":
                return Like(left, Literal(pattern.value))
            if pattern.kind == "op" and pattern.text == "{":
                return Like(left, self._template(pattern))
            raise self._error(pattern, "a quoted pattern after 'like', as in name like \"ab%\"")
        if word == "is":
            negated = self._peek().kind == "kw" and self._peek().text == "not"
            if negated:
                self._next()
            null = self._next()
            if not (null.kind == "kw" and null.text == "null"):
                raise self._error(null, "'null' (as in x is null / x is not null)")
            return IsNull(left, negated)
        raise self._error(tok, "an operator")  # unreachable: _infix_bp filtered the token

    def _comparison(self, left: Expr, tok: Token) -> Expr:
        right = self._expr(_BP_CMP)
        nxt = self._peek()
        if not (nxt.kind == "op" and nxt.text in _CMP_OPS):
            return Compare(tok.text, left, right)
        # A second comparison: only a same-direction range is allowed.
        for direction in (_ASCENDING, _DESCENDING):
            if tok.text in direction and nxt.text in direction:
                self._next()
                upper = self._expr(_BP_CMP)
                return Range(left, tok.text, right, nxt.text, upper)
        raise self._error(nxt, "'and' between the comparisons; only ranges in one direction "
                          "may be chained (1 < x < 5, 5 > x >= 1)")

    def _options(self, in_tok: Token) -> Expr:
        tok = self._peek()
        expected = f"a list such as [1, 2] or a {{param}} after {in_tok.text!r}"
        if tok.kind == "op" and tok.text in "[{(" and (
                tok.text != "(" or self._peek(1).text in ("[", "{", "(")):
            # A list, a template, or one of those in parentheses: x in ([1, 2]).
            options = self._expr(_BP_CMP)
            if isinstance(options, (ListLiteral, Template)):
                return options
        raise self._error(tok, expected)


def _logical(op: str, left: Expr, right: Expr) -> Logical:
    """Build ``left op right``, flattening chains so long ORs do not nest deeply."""
    operands: list[Expr] = []
    for side in (left, right):
        if isinstance(side, Logical) and side.op == op:
            operands.extend(side.operands)
        else:
            operands.append(side)
    return Logical(op, tuple(operands))


def _depth(node: _Node) -> int:
    """Depth of the AST, computed without recursion."""
    best, stack = 0, [(node, 1)]
    while stack:
        current, d = stack.pop()
        best = max(best, d)
        stack.extend((child, d + 1) for child in _children(current))
    return best


@functools.lru_cache(maxsize=1024)
def _parse_cached(expr: str) -> Expr:
    node = Parser(expr).parse()
    # Long left-deep chains (1 + 1 + 1 ...) are parsed in a loop but nest in the tree;
    # bound the depth so evaluation cannot hit the recursion limit.
    if _depth(node) > 2 * _MAX_NESTING:
        raise FilterError(f"filter is nested too deeply (more than {2 * _MAX_NESTING} levels); "
                          "simplify it or split it into several queries")
    return node


def parse(expr: str) -> Expr:
    """Parse a filter string into an AST. Cached; raises ``FilterError`` on bad syntax."""
    if not isinstance(expr, str):
        raise FilterError(f"a filter must be a string, got {type(expr).__name__}: {expr!r}")
    try:
        return _parse_cached(expr)
    except RecursionError:  # belt and braces: _MAX_NESTING should prevent this
        raise FilterError("filter is nested too deeply to parse") from None


# ----------------------------------------------------------------------------------------
# Values: one operand during evaluation, either a constant or a column
# ----------------------------------------------------------------------------------------

_NULL, _NUM, _STR, _BOOL, _LIST, _DICT, _MIXED = (
    "null", "number", "string", "bool", "list", "object", "mixed")
_DENSE = (_NUM, _STR, _BOOL)  # kinds evaluated with whole-array NumPy operations
_INT_TYPES = (int, np.integer)
_FLOAT_TYPES = (float, np.floating)


def _kind_of(v: object) -> str:
    """The JSON-ish kind of one Python value (bools are not numbers)."""
    if v is None:
        return _NULL
    if isinstance(v, (bool, np.bool_)):
        return _BOOL
    if isinstance(v, (_INT_TYPES, _FLOAT_TYPES)):
        return _NUM
    if isinstance(v, str):
        return _STR
    if isinstance(v, (list, tuple)):
        return _LIST
    if isinstance(v, dict):
        return _DICT
    return _MIXED


def _is_int(v: object) -> bool:
    return isinstance(v, _INT_TYPES) and not isinstance(v, (bool, np.bool_))


class Vals:
    """An operand: a Python constant (``scalar``) or one value per row.

    ``kind`` is one of number/string/bool (stored densely in ``data`` with a ``valid``
    mask; None means no nulls), list/object/mixed (an object array of Python values with
    None for null) or null (every row null). ``ints`` marks rows of a float array that
    hold integers (from JSON mixing ints and floats), so ``/`` can truncate them.
    ``typed`` is true for literals and scalar columns: a type mismatch there is an error
    in the filter, while for JSON values it only means the row does not match.
    """

    __slots__ = ("kind", "data", "valid", "ints", "typed", "scalar", "label")

    def __init__(self, kind: str, data: Any, *, valid: np.ndarray | None = None,
                 ints: np.ndarray | None = None, typed: bool = True, scalar: bool = False,
                 label: str = ""):
        self.kind, self.data, self.valid, self.ints = kind, data, valid, ints
        self.typed, self.scalar, self.label = typed, scalar, label

    @classmethod
    def const(cls, value: object, label: str) -> Vals:
        return cls(_kind_of(value), value, scalar=True, label=label)


def _normalise_param(value: object, name: str) -> object:
    """Turn a template parameter into plain Python values (numpy scalars, tuples...)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [_normalise_param(v, name) for v in value.tolist()]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_normalise_param(v, name) for v in value]
    if isinstance(value, dict):
        return {str(k): _normalise_param(v, name) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise FilterError(f"template parameter {{{name}}} has an unsupported type "
                      f"{type(value).__name__} ({value!r}); use a number, string, bool or list")


def _object_array(values: Iterable[object], n: int) -> np.ndarray:
    return np.fromiter(values, dtype=object, count=n)


def _classify(arr: np.ndarray, label: str, typed: bool) -> Vals:
    """Inspect an object array once and store it densely when its values allow."""
    types = set(map(type, arr))
    has_null = type(None) in types
    types.discard(type(None))
    if not types:
        return Vals(_NULL, arr, typed=typed, label=label)
    valid = np.not_equal(arr, None) if has_null else None
    if all(issubclass(t, (bool, np.bool_)) for t in types):
        filled = np.where(valid, arr, False) if has_null else arr
        return Vals(_BOOL, filled.astype(bool), valid=valid, typed=typed, label=label)
    if all(issubclass(t, (_INT_TYPES, _FLOAT_TYPES)) and not issubclass(t, bool) for t in types):
        filled = np.where(valid, arr, 0) if has_null else arr
        if all(issubclass(t, _INT_TYPES) for t in types):
            try:
                return Vals(_NUM, filled.astype(np.int64), valid=valid, typed=typed,
                            label=label)
            except OverflowError:  # integers beyond int64: keep them exact, row by row
                return Vals(_MIXED, arr, typed=typed, label=label)
        ints = None
        if any(issubclass(t, _INT_TYPES) for t in types):
            ints = np.fromiter(map(_is_int, arr), dtype=bool, count=len(arr))
        return Vals(_NUM, filled.astype(np.float64), valid=valid, ints=ints, typed=typed,
                    label=label)
    if all(issubclass(t, str) for t in types):
        return Vals(_STR, arr, valid=valid, typed=typed, label=label)
    if all(issubclass(t, (list, tuple)) for t in types):
        return Vals(_LIST, arr, typed=typed, label=label)
    if all(issubclass(t, dict) for t in types):
        return Vals(_DICT, arr, typed=typed, label=label)
    return Vals(_MIXED, arr, typed=typed, label=label)


def _rows(v: Vals, n: int) -> Iterable[object]:
    """Per-row Python values (None for null), for the row-by-row fallback."""
    if v.scalar:
        return repeat(v.data, n)
    if v.kind not in _DENSE:
        return v.data
    values = v.data.tolist()
    if v.ints is not None:
        for i in np.flatnonzero(v.ints):
            values[i] = int(values[i])
    if v.valid is not None:
        for i in np.flatnonzero(~v.valid):
            values[i] = None
    return values


# ----------------------------------------------------------------------------------------
# Row-level semantics (shared by constants and the row-by-row fallback)
# ----------------------------------------------------------------------------------------

_PY_CMP: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}


def _json_key(v: object) -> object:
    """A hashable key with JSON equality: 1 == 1.0, but true != 1 and "1" != 1."""
    kind = _kind_of(v)
    if kind == _NUM:
        return (_NUM, v)
    if kind == _BOOL:
        return (_BOOL, bool(v))  # type: ignore[arg-type]
    if kind == _STR:
        return (_STR, str(v))
    if kind == _LIST:
        return (_LIST, tuple(map(_json_key, v)))  # type: ignore[call-overload]
    if kind == _DICT:
        return (_DICT, tuple(sorted((str(k), _json_key(x)) for k, x in v.items())))  # type: ignore[attr-defined]
    if kind == _NULL:
        return (_NULL,)
    return (_MIXED, id(v))


def _row_compare(op: str, a: object, b: object) -> bool:
    if a is None or b is None:
        return False
    ka, kb = _kind_of(a), _kind_of(b)
    if ka != kb:
        return False  # a string row against a number does not match, whatever the op
    if ka in (_NUM, _STR):
        return bool(_PY_CMP[op](a, b))
    if op == "==":
        return _json_key(a) == _json_key(b)
    if op == "!=":
        return _json_key(a) != _json_key(b)
    return False  # bools, lists and objects have no order


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def _row_arith(op: str, a: object, b: object) -> object:
    if _kind_of(a) != _NUM or _kind_of(b) != _NUM:
        return None
    both_int = _is_int(a) and _is_int(b)
    if op == "+":
        return a + b  # type: ignore[operator]
    if op == "-":
        return a - b  # type: ignore[operator]
    if op == "*":
        return a * b  # type: ignore[operator]
    if op in ("/", "%"):
        if b == 0:
            return None
        if both_int:
            q = _trunc_div(int(a), int(b))  # type: ignore[call-overload]
            return q if op == "/" else int(a) - int(b) * q  # type: ignore[call-overload]
        return a / b if op == "/" else math.fmod(a, b)  # type: ignore[operator,arg-type]
    try:
        r = math.pow(a, b)  # type: ignore[arg-type]
    except (ValueError, OverflowError):
        return None
    return r if math.isfinite(r) else None


def _row_negate(a: object) -> object:
    return -a if _kind_of(a) == _NUM else None  # type: ignore[operator]


@functools.lru_cache(maxsize=256)
def _like_parts(pattern: str) -> tuple[tuple[str, str], ...]:
    """Split a like pattern into ("L", literal) and ("%", "") / ("_", "") parts."""
    parts: list[tuple[str, str]] = []
    buf: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            buf.append(pattern[i + 1])  # escaped: \% is a literal percent sign
            i += 2
            continue
        if c in "%_":
            if buf:
                parts.append(("L", "".join(buf)))
                buf = []
            if not (c == "%" and parts and parts[-1][0] == "%"):  # "%%" is "%"
                parts.append((c, ""))
        else:
            buf.append(c)
        i += 1
    if buf:
        parts.append(("L", "".join(buf)))
    return tuple(parts)


def _like_prefix(pattern: str) -> str | None:
    """The literal prefix when the pattern is "prefix%", else None."""
    parts = _like_parts(pattern)
    if len(parts) == 2 and parts[0][0] == "L" and parts[1][0] == "%":
        return parts[0][1]
    return None


@functools.lru_cache(maxsize=256)
def _like_matcher(pattern: str) -> Callable[[str], bool]:
    """Compile a like pattern to a predicate, using str methods for the common shapes."""
    parts = _like_parts(pattern)
    shape = [kind for kind, _ in parts]
    literals = [text for kind, text in parts if kind == "L"]
    if shape == []:
        return lambda s: s == ""
    if shape == ["L"]:
        lit = literals[0]
        return lambda s: s == lit
    if shape == ["%"]:
        return lambda s: True
    if shape == ["L", "%"]:
        return operator.methodcaller("startswith", literals[0])
    if shape == ["%", "L"]:
        return operator.methodcaller("endswith", literals[0])
    if shape == ["%", "L", "%"]:
        lit = literals[0]
        return lambda s: lit in s
    regex = "".join(".*" if kind == "%" else "." if kind == "_" else re.escape(text)
                    for kind, text in parts)
    compiled = re.compile(regex, re.DOTALL)
    return lambda s: compiled.fullmatch(s) is not None


# ----------------------------------------------------------------------------------------
# Evaluator
# ----------------------------------------------------------------------------------------

_NP_CMP: dict[str, Callable[[Any, Any], np.ndarray]] = {
    "==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal,
    ">": np.greater, ">=": np.greater_equal,
}
_NP_ARITH: dict[str, Callable[[Any, Any], np.ndarray]] = {
    "+": np.add, "-": np.subtract, "*": np.multiply,
}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


_KIND_WORDS = {_NUM: "a number", _STR: "a string", _BOOL: "a bool", _LIST: "a list",
               _DICT: "a JSON object", _NULL: "null", _MIXED: "a value of mixed types"}
_KIND_PLURALS = {_NUM: "numbers", _STR: "strings", _BOOL: "bools", _LIST: "lists",
                 _DICT: "JSON objects", _NULL: "only nulls", _MIXED: "values of mixed types"}


def _describe_kind(v: Vals) -> str:
    return _KIND_WORDS.get(v.kind, "a value")


def _what(v: Vals) -> str:
    """Name an operand for an error message: '"abc" (a string)', 'age (holds numbers)'."""
    if v.scalar:
        return f"{v.label} ({_describe_kind(v)})"
    return f"{v.label} (holds {_KIND_PLURALS.get(v.kind, 'values')})"


class Evaluator:
    """Evaluates one AST against one frame of columns."""

    def __init__(self, columns: Mapping[str, np.ndarray], n_rows: int,
                 params: Mapping[str, object] | None, dynamic_field: str | None):
        self.columns = columns
        self.n = n_rows
        self.params = params or {}
        self.dynamic_field = dynamic_field
        self._loaded: dict[tuple[str, tuple[str | int, ...]], Vals] = {}

    # -- helpers -------------------------------------------------------------------------

    def _full(self, value: bool) -> np.ndarray:
        return np.full(self.n, bool(value))

    def _valid(self, v: Vals) -> np.ndarray | None:
        """Mask of non-null rows (None: all rows non-null)."""
        if v.scalar:
            return None if v.data is not None else self._full(False)
        if v.kind == _NULL:
            return self._full(False)
        if v.kind in _DENSE:
            return v.valid
        return np.fromiter((x is not None for x in v.data), dtype=bool, count=self.n)

    @staticmethod
    def _and_valid(mask: np.ndarray, *valids: np.ndarray | None) -> np.ndarray:
        for valid in valids:
            if valid is not None:
                mask = mask & valid
        return mask

    # -- constants and columns -----------------------------------------------------------

    def _constant(self, node: Expr) -> object:
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, ListLiteral):
            return [self._constant(i) for i in node.items]
        if isinstance(node, Template):
            if node.name not in self.params:
                given = sorted(self.params)
                raise FilterError(
                    f"template parameter {{{node.name}}} has no value; params given: {given}. "
                    f"Pass it with the filter, e.g. filter_params={{{node.name!r}: ...}}")
            return _normalise_param(self.params[node.name], node.name)
        raise FilterError(f"{render(node)} is not a constant")  # parser prevents this

    def _column(self, name: str) -> np.ndarray:
        col = self.columns[name]
        if not isinstance(col, np.ndarray):
            col = _object_array(col, len(col)) if isinstance(col, (list, tuple)) \
                else np.asarray(col)
        if col.ndim != 1 or len(col) != self.n:
            raise FilterError(f"field {name!r} cannot be filtered on: its column has shape "
                              f"{col.shape}, expected ({self.n},) (vector fields cannot be "
                              "used in filters)")
        return col

    def _unknown_field(self, name: str) -> FilterError:
        known = sorted(self.columns)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return FilterError(f"unknown field {name!r} in filter; known fields: {known}.{hint}")

    def _load(self, name: str, keys: tuple[str | int, ...], label: str) -> Vals:
        cache_key = (name, keys)
        if cache_key in self._loaded:
            return self._loaded[cache_key]
        typed = not keys
        if name in self.columns:
            col = self._column(name)
        elif self.dynamic_field is not None:
            if self.dynamic_field not in self.columns:
                raise FilterError(
                    f"field {name!r} is not a schema field, so it is read from the dynamic "
                    f"field {self.dynamic_field!r}, but that column was not provided")
            col = self._column(self.dynamic_field)
            keys, typed = (name, *keys), False
        else:
            raise self._unknown_field(name)
        if keys:
            if col.dtype != object:
                raise FilterError(f"cannot use {label}: field {name!r} holds {col.dtype} "
                                  "values, and only JSON and ARRAY fields can be indexed "
                                  "with [...]")
            vals = _classify(_object_array((_walk(x, keys) for x in col), self.n), label,
                             typed=False)
        else:
            vals = self._column_vals(col, label)
        vals.typed = typed
        self._loaded[cache_key] = vals
        return vals

    def _column_vals(self, col: np.ndarray, label: str) -> Vals:
        kind = col.dtype.kind
        if kind == "b":
            return Vals(_BOOL, col, label=label)
        if kind in "iu":
            # Widen so arithmetic does not wrap at int8/int16/int32 like Milvus's int64 math.
            data = col if col.dtype == np.uint64 else col.astype(np.int64, copy=False)
            return Vals(_NUM, data, label=label)
        if kind == "f":
            return Vals(_NUM, col.astype(np.float32) if col.dtype == np.float16 else col,
                        label=label)
        if kind == "U":
            return Vals(_STR, col.astype(object), label=label)
        if kind == "O":
            return _classify(col, label, typed=True)
        if kind == "S":
            return _classify(col.astype(object), label, typed=True)
        raise FilterError(f"{label} has dtype {col.dtype}, which filters cannot read")

    # -- values --------------------------------------------------------------------------

    def value(self, node: Expr) -> Vals:
        if isinstance(node, (Literal, ListLiteral, Template)):
            return Vals.const(self._constant(node), render(node))
        if isinstance(node, Field):
            return self._load(node.name, (), node.name)
        if isinstance(node, Path):
            return self._load(node.field, node.keys, render(node))
        if isinstance(node, Arith):
            return self._arith(node)
        if isinstance(node, Unary):
            return self._unary(node)
        if isinstance(node, Call) and _FUNCTIONS[node.name] == "length":
            return self._array_length(node)
        # Everything else is a condition; as a value it is a bool column.
        return Vals(_BOOL, self.mask(node), label=render(node))

    def _require_number(self, v: Vals, op: str, node: Expr) -> None:
        if v.typed and v.kind not in (_NUM, _NULL, _MIXED):
            fix = "arithmetic works on numbers only"
            if v.scalar and v.kind == _STR:
                try:
                    float(v.data)
                    fix += f"; write {v.data} without quotes"
                except ValueError:
                    fix += "; remove the string from the arithmetic"
            raise FilterError(f"cannot apply {op!r} to {_what(v)} in {render(node)}: {fix}")

    def _arith(self, node: Arith) -> Vals:
        a, b = self.value(node.left), self.value(node.right)
        self._require_number(a, node.op, node)
        self._require_number(b, node.op, node)
        label, typed = render(node), a.typed and b.typed
        if a.scalar and b.scalar:
            out = Vals.const(_row_arith(node.op, a.data, b.data), label)
            out.typed = typed
            return out
        if _NULL in (a.kind, b.kind):
            return Vals(_NULL, np.full(self.n, None, dtype=object), typed=typed, label=label)
        if a.kind == _NUM and b.kind == _NUM:
            return self._dense_arith(node.op, a, b, label, typed)
        values = (_row_arith(node.op, x, y) for x, y in zip(_rows(a, self.n), _rows(b, self.n)))
        return _classify(_object_array(values, self.n), label, typed)

    def _dense_arith(self, op: str, a: Vals, b: Vals, label: str, typed: bool) -> Vals:
        """Arithmetic where both sides are numbers and at least one is a column."""
        x, y = _as_number(a), _as_number(b)
        both_int = _mask_and(_int_rows(a, x), _int_rows(b, y))
        valid = _combine_valid(a.valid, b.valid)
        if op in ("/", "%"):
            if np.ndim(y) == 0:
                if y == 0:  # every row divides by zero: all null
                    return Vals(_NULL, np.full(self.n, None, dtype=object), typed=typed,
                                label=label)
            else:
                zero = y == 0
                if zero.any():
                    valid = _combine_valid(valid, ~zero)
                    y = np.where(zero, 1, y)
        ints: np.ndarray | None = None
        if both_int is True and op != "**":
            # Exact int64 arithmetic; "/" truncates and "%" keeps the dividend's sign (C).
            if op == "/":
                q = np.floor_divide(x, y)
                data = q + ((q * y != x) & ((np.asarray(x) < 0) != (np.asarray(y) < 0)))
            elif op == "%":
                data = np.fmod(x, y)
            else:
                data = _NP_ARITH[op](x, y)
        else:
            xf = x if _is_float_array(x) else np.asarray(x, dtype=np.float64)
            yf = y if _is_float_array(y) else np.asarray(y, dtype=np.float64)
            if op == "**":
                data = np.power(xf, yf)
                valid = _combine_valid(valid, np.isfinite(data))
            elif op == "/":
                data = np.divide(xf, yf)
                if isinstance(both_int, np.ndarray):  # rows where both are JSON ints
                    data = np.where(both_int, np.trunc(data), data)
            elif op == "%":
                data = np.fmod(xf, yf)
            else:
                data = _NP_ARITH[op](xf, yf)
            if op != "**" and isinstance(both_int, np.ndarray):
                ints = both_int
        return Vals(_NUM, data, valid=valid, ints=ints, typed=typed, label=label)

    def _unary(self, node: Unary) -> Vals:
        v = self.value(node.operand)
        self._require_number(v, node.op, node)
        label = render(node)
        if node.op == "+":
            return v
        if v.scalar:
            out = Vals.const(_row_negate(v.data), label)
            out.typed = v.typed
            return out
        if v.kind == _NUM:
            return Vals(_NUM, np.negative(v.data), valid=v.valid, ints=v.ints, typed=v.typed,
                        label=label)
        if v.kind == _NULL:
            return v
        return _classify(_object_array(map(_row_negate, _rows(v, self.n)), self.n), label,
                         v.typed)

    def _array_length(self, node: Call) -> Vals:
        v = self.value(node.args[0])
        self._require_list(v, node)
        lengths = [len(x) if isinstance(x, (list, tuple)) else None for x in _rows(v, self.n)]
        return _classify(_object_array(lengths, self.n), render(node), typed=True)

    def _require_list(self, v: Vals, node: Call) -> None:
        if v.typed and v.kind in (_NUM, _STR, _BOOL):
            raise FilterError(f"{node.name} needs a JSON or ARRAY field, but {_what(v)} is "
                              f"not one; in {render(node)}")

    # -- conditions ----------------------------------------------------------------------

    def mask(self, node: Expr) -> np.ndarray:
        """Evaluate a condition to a bool mask of length n: the rows where it is true."""
        return self.truth(node)[0]

    def truth(self, node: Expr) -> tuple[np.ndarray, np.ndarray]:
        """(true, false) masks of a condition, in SQL's three-valued logic: a condition on a
        null value is neither true nor false (unknown), so ``not`` leaves it out too.
        Milvus: "the filtering results for null values are all false", also under ``not``."""
        if isinstance(node, Logical):
            parts = [self.truth(o) for o in node.operands]
            trues, falses = [p[0] for p in parts], [p[1] for p in parts]
            if node.op == "and":
                return np.logical_and.reduce(trues), np.logical_or.reduce(falses)
            return np.logical_or.reduce(trues), np.logical_and.reduce(falses)
        if isinstance(node, Not):
            true, false = self.truth(node.operand)
            return false, true
        true = self._leaf(node)
        if isinstance(node, IsNull):
            return true, ~true
        return true, ~true & self._known(node)

    def _known(self, node: Expr) -> np.ndarray:
        """Rows where every value a leaf condition reads is non-null."""
        operands = {Compare: lambda n: (n.left, n.right), Range: lambda n: (n.lower, n.value, n.upper),
                    In: lambda n: (n.value,), Like: lambda n: (n.value,),
                    Call: lambda n: n.args[:1]}.get(type(node), lambda n: (n,))(node)
        known = self._full(True)
        for operand in operands:
            valid = self._valid(self.value(operand))
            if valid is not None:
                known &= valid
        return known

    def _leaf(self, node: Expr) -> np.ndarray:
        """The rows where a condition without and/or/not is true."""
        if isinstance(node, Compare):
            return self._compare(node.op, self.value(node.left), self.value(node.right), node)
        if isinstance(node, Range):
            middle = self.value(node.value)
            lower = self._compare(node.lower_op, self.value(node.lower), middle, node)
            return lower & self._compare(node.upper_op, middle, self.value(node.upper), node)
        if isinstance(node, In):
            return self._in(node)
        if isinstance(node, Like):
            return self._like(node)
        if isinstance(node, IsNull):
            v = self.value(node.value)
            valid = self._valid(v)
            null = self._full(False) if valid is None else ~valid
            return ~null if node.negated else null
        if isinstance(node, Call) and _FUNCTIONS[node.name] != "length":
            return self._contains(node)
        return self._truth(self.value(node), node)

    def _truth(self, v: Vals, node: Expr) -> np.ndarray:
        """A bare value used as a condition: true where it is the boolean true."""
        if v.kind == _BOOL:
            if v.scalar:
                return self._full(bool(v.data))
            return self._and_valid(np.array(v.data, dtype=bool), v.valid)
        if v.kind == _NULL:
            return self._full(False)
        if v.typed and v.kind != _MIXED:
            raise FilterError(f"{_what(v)} is not a condition; compare it, "
                              f"e.g. {render(node)} == ... or {render(node)} > ...")
        if v.kind in _DENSE or v.scalar:
            return self._full(False)
        return np.fromiter((x is True or x is np.True_ for x in v.data), dtype=bool,
                           count=self.n)

    def _check_comparable(self, op: str, a: Vals, b: Vals, node: Expr) -> None:
        if not (a.typed and b.typed) or _NULL in (a.kind, b.kind) or _MIXED in (a.kind, b.kind):
            return
        if a.kind != b.kind:
            scalar = b if b.scalar else a
            other = a if scalar is b else b
            fix = f"compare {other.label} with {_describe_kind(other)}"
            if scalar.scalar and scalar.kind == _STR and other.kind == _NUM:
                try:
                    float(scalar.data)
                    fix += f", e.g. {scalar.data} without quotes"
                except ValueError:
                    pass
            elif scalar.scalar and scalar.kind == _NUM and other.kind == _STR:
                fix += f", e.g. \"{scalar.data}\" in quotes"
            raise FilterError(f"cannot compare {_what(a)} with {_what(b)} using {op!r} in "
                              f"{render(node)}: {fix}")
        if op not in ("==", "!=") and a.kind not in (_NUM, _STR):
            raise FilterError(f"cannot order {_what(a)} and {_what(b)} with {op!r} in "
                              f"{render(node)}: only numbers and strings can be ordered; "
                              "use == or !=")

    def _compare(self, op: str, a: Vals, b: Vals, node: Expr) -> np.ndarray:
        self._check_comparable(op, a, b, node)
        if a.scalar and b.scalar:
            return self._full(_row_compare(op, a.data, b.data))
        if _NULL in (a.kind, b.kind):
            return self._full(False)
        if a.kind == b.kind and (a.kind in (_NUM, _STR) or (a.kind == _BOOL and op in ("==", "!="))):
            x, y = self._dense_operand(a, op), self._dense_operand(b, op)
            return self._and_valid(np.asarray(_NP_CMP[op](x, y), dtype=bool), a.valid, b.valid)
        if a.kind in _DENSE and b.kind in _DENSE:
            return self._full(False)  # e.g. a JSON key holding numbers against a string
        return np.fromiter((_row_compare(op, x, y) for x, y in zip(_rows(a, self.n),
                                                                   _rows(b, self.n))),
                           dtype=bool, count=self.n)

    @staticmethod
    def _dense_operand(v: Vals, op: str) -> Any:
        if v.scalar:
            data = v.data
            if _is_int(data) and not _INT64_MIN <= data <= _INT64_MAX:
                return float(data)  # beyond int64: compare as float, never overflow
            return data
        if v.kind == _STR and v.valid is not None and op not in ("==", "!="):
            return np.where(v.valid, v.data, "")  # None cannot be ordered against str
        return v.data

    def _in(self, node: In) -> np.ndarray:
        v = self.value(node.value)
        options = self._constant(node.options)
        if not isinstance(options, list):
            raise FilterError(f"'in' needs a list, but {render(node.options)} is "
                              f"{_render_constant(options)}; pass a list such as [1, 2]")
        if v.typed and v.kind in _DENSE:
            for o in options:
                if _kind_of(o) not in (v.kind, _NULL):
                    raise FilterError(
                        f"list item {_render_constant(o)} in {render(node)} is "
                        f"{_describe_kind(Vals.const(o, ''))}, but {_what(v)}; "
                        f"use only {_describe_kind(v).removeprefix('a ')} items")
        if v.scalar:
            hit = self._full(any(_row_compare("==", v.data, o) for o in options))
        elif v.kind == _NULL:
            return self._full(False)
        elif v.kind in (_NUM, _BOOL):
            wanted = [o for o in options if _kind_of(o) == v.kind]
            if v.kind == _NUM and v.data.dtype.kind in "iu" and all(
                    _is_int(o) and _INT64_MIN <= o <= _INT64_MAX for o in wanted):
                table = np.array(wanted, dtype=np.int64)
            else:
                table = np.array(wanted, dtype=np.float64 if v.kind == _NUM else bool)
            hit = np.isin(v.data, table)
        elif v.kind == _STR:
            wanted_s = frozenset(o for o in options if isinstance(o, str))
            if len(wanted_s) <= 8:  # a few C-level equality passes beat a Python loop
                hit = self._full(False)
                for o in wanted_s:
                    hit |= np.asarray(v.data == o, dtype=bool)
            else:
                hit = np.fromiter(map(wanted_s.__contains__, v.data), dtype=bool,
                                  count=self.n)
        else:
            keys = {_json_key(o) for o in options}
            hit = np.fromiter((x is not None and _json_key(x) in keys for x in v.data),
                              dtype=bool, count=self.n)
        # Null rows match neither "in" nor "not in".
        return self._and_valid(~hit if node.negated else hit, self._valid(v))

    def _like(self, node: Like) -> np.ndarray:
        v = self.value(node.value)
        pattern = self._constant(node.pattern)
        if not isinstance(pattern, str):
            raise FilterError(f"'like' needs a string pattern, but {render(node.pattern)} is "
                              f"{_render_constant(pattern)}; pass a string such as \"ab%\"")
        if v.typed and v.kind in (_NUM, _BOOL, _LIST, _DICT):
            raise FilterError(f"'like' needs strings, but {_what(v)} in {render(node)}; "
                              "use it on a VARCHAR field or a JSON value")
        match = _like_matcher(pattern)
        if v.scalar:
            return self._full(isinstance(v.data, str) and match(v.data))
        if v.kind == _STR:
            prefix = _like_prefix(pattern)
            if prefix and prefix[-1] != chr(0x10FFFF):
                # s starts with p exactly when p <= s < p[:-1] + (p[-1] + 1): two C loops
                # instead of a Python call per row.
                upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
                data = self._dense_operand(v, "<")
                hit = np.asarray((data >= prefix) & (data < upper), dtype=bool)
                return self._and_valid(hit, v.valid)
            if v.valid is None:
                return np.fromiter(map(match, v.data), dtype=bool, count=self.n)
            return np.fromiter((x is not None and match(x) for x in v.data), dtype=bool,
                               count=self.n)
        if v.kind in _DENSE or v.kind == _NULL:
            return self._full(False)
        return np.fromiter((isinstance(x, str) and match(x) for x in v.data), dtype=bool,
                           count=self.n)

    def _contains(self, node: Call) -> np.ndarray:
        target = self.value(node.args[0])
        self._require_list(target, node)
        needle = self._constant(node.args[1])
        op = _FUNCTIONS[node.name]
        if op == "contains":
            key = _json_key(needle)

            def test(x: Any) -> bool:
                return any(_json_key(e) == key for e in x)
        else:
            if not isinstance(needle, list):
                raise FilterError(f"{node.name} needs a list as its second argument, but "
                                  f"{render(node.args[1])} is {_render_constant(needle)}")
            keys = frozenset(map(_json_key, needle))
            if op == "contains_all":
                def test(x: Any) -> bool:
                    return keys.issubset(map(_json_key, x))
            else:
                def test(x: Any) -> bool:
                    return not keys.isdisjoint(map(_json_key, x))
        if target.kind in _DENSE or target.kind == _NULL:
            return self._full(False)  # no row holds a list
        return np.fromiter((isinstance(x, (list, tuple)) and test(x)
                            for x in _rows(target, self.n)), dtype=bool, count=self.n)


def _walk(value: object, keys: tuple[str | int, ...]) -> object:
    """Follow a JSON path; a missing key or an index out of range gives None (null)."""
    for k in keys:
        if isinstance(k, str):
            value = value.get(k) if isinstance(value, dict) else None
        elif isinstance(value, (list, tuple)) and 0 <= k < len(value):
            value = value[k]
        else:
            return None
        if value is None:
            return None
    return value


def _as_number(v: Vals) -> Any:
    if v.scalar:
        d = v.data
        if isinstance(d, np.generic):
            d = d.item()
        if _is_int(d) and not _INT64_MIN <= d <= _INT64_MAX:
            return float(d)
        return d
    return v.data


def _int_rows(v: Vals, data: Any) -> bool | np.ndarray:
    """Which rows hold integers: True (all), False (none) or a mask."""
    if v.scalar:
        return _is_int(data)
    if data.dtype.kind in "iu":
        return True
    return v.ints if v.ints is not None else False


def _mask_and(a: bool | np.ndarray, b: bool | np.ndarray) -> bool | np.ndarray:
    if a is False or b is False:
        return False
    if a is True:
        return b
    if b is True:
        return a
    return a & b


def _combine_valid(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


def _is_float_array(x: Any) -> bool:
    return isinstance(x, np.ndarray) and x.dtype.kind == "f"


def evaluate(expr: Expr | str, columns: Mapping[str, np.ndarray], n_rows: int,
             params: Mapping[str, object] | None = None,
             dynamic_field: str | None = None) -> np.ndarray:
    """Evaluate a filter over ``n_rows`` rows; returns a bool mask of length ``n_rows``.

    ``columns`` maps field name to a 1-D array (see the module docstring for the layout);
    identifiers missing from it are read from ``columns[dynamic_field]`` when given.
    """
    node = parse(expr) if isinstance(expr, str) else expr
    if not isinstance(node, _Node):
        raise FilterError(f"expected a filter string or parsed expression, got {expr!r}")
    if params is not None and not isinstance(params, Mapping):
        raise FilterError(f"filter params must be a mapping of name to value, got "
                          f"{type(params).__name__}")
    try:
        evaluator = Evaluator(columns, int(n_rows), params, dynamic_field)
        with np.errstate(all="ignore"):  # division by zero etc. are handled as nulls
            mask = evaluator.mask(node)
    except FilterError:
        raise
    except RecursionError:
        raise FilterError("filter is nested too deeply to evaluate") from None
    except Exception as exc:  # never let an odd value escape as a bare Python error
        raise FilterError(f"could not evaluate filter {render(node)!r}: "
                          f"{type(exc).__name__}: {exc}") from exc
    return np.asarray(mask, dtype=bool)
