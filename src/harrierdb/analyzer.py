"""Text analyzers: text -> tokens, configured like Milvus's ``analyzer_params``.

An :class:`Analyzer` is a tokenizer followed by token filters, run in order. It is what
BM25 (in the engine and in :mod:`harrierdb.embed.sparse`) and ``run_analyzer`` share::

    Analyzer(stop_words="english", stemmer="english").analyze("The dogs' owners ran")
    # ['dog', 'owner', 'ran']
    run_analyzer(["Running dogs"], {"type": "english"})   # [['run', 'dog']]

Supported ``analyzer_params`` (a subset of Milvus's):

* built-ins ``{"type": "standard"}`` (standard tokenizer + lowercase) and
  ``{"type": "english"}`` (+ English stemmer + ``_english_`` stop words), both taking an
  optional ``"stop_words": [...]``;
* custom ``{"tokenizer": "standard" | "whitespace", "filter": [...]}`` with filters
  ``"lowercase"``, ``"asciifolding"``, ``"alphanumonly"``, ``{"type": "length", "max": n}``,
  ``{"type": "stop", "stop_words": [...] | "_english_"}`` and
  ``{"type": "stemmer", "language": "english"}`` (any Snowball language; needs PyStemmer).

The standard tokenizer approximates Unicode word boundaries (UAX #29): runs of letters,
digits and ``_``, joined across an inner apostrophe or period (``don't``, ``u.s.a``,
``example.com``) and across a comma between digits (``1,000``); each CJK ideograph and
hiragana character is a token of its own.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

from harrierdb.errors import ParamError

#: Lucene's (and Tantivy's, hence Milvus's ``_english_``) English stop words.
ENGLISH_STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their "
    "then there these they this to was will with".split())

TOKENIZERS = ("standard", "whitespace")
FILTERS = ("lowercase", "asciifolding", "alphanumonly", "length", "stop", "stemmer")
BUILT_INS = ("standard", "english")

_CJK = "\u3040-\u309f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
_WORD = rf"[^\W{_CJK}]"
_STANDARD = re.compile(rf"[{_CJK}]|{_WORD}+(?:(?:['.]|(?<=\d),(?=\d)){_WORD}+)*")
_ALNUM = re.compile(r"[^\W_]+")

Filter = Callable[[list[str]], list[str]]


class Analyzer:
    """A tokenizer and a chain of token filters; ``analyze(text)`` returns the tokens.

    The keyword form runs: tokenizer, ``lowercase``, stop words, stemmer.
    ``stop_words="english"`` is Lucene's 33-word list; a list gives your own.
    For Milvus's exact filter order use :meth:`from_params` (``{"type": "english"}``
    stems before it removes stop words, as Milvus does).
    """

    def __init__(self, tokenizer: str = "standard", lowercase: bool = True,
                 stop_words: str | Sequence[str] | None = None, stemmer: str | None = None):
        if not isinstance(lowercase, bool):
            raise ParamError(f"lowercase must be a bool, got {lowercase!r}")
        filters: list[Any] = ["lowercase"] if lowercase else []
        if stop_words is not None:
            words = "_english_" if stop_words == "english" else stop_words
            filters.append({"type": "stop", "stop_words": words})
        if stemmer is not None:
            filters.append({"type": "stemmer", "language": stemmer})
        self._init(tokenizer, filters)

    @classmethod
    def from_params(cls, analyzer_params: dict[str, Any] | None = None) -> Analyzer:
        """An analyzer from Milvus-style ``analyzer_params``; ``None`` is the standard one."""
        params = expand_params(analyzer_params)
        self = cls.__new__(cls)
        self._init(params["tokenizer"], params["filter"])
        return self

    def _init(self, tokenizer: Any, filters: Sequence[Any]) -> None:
        name = tokenizer.get("type") if isinstance(tokenizer, dict) else tokenizer
        if name not in TOKENIZERS:
            raise ParamError(f"unknown tokenizer {tokenizer!r}; supported: {list(TOKENIZERS)}")
        if isinstance(filters, (str, dict)) or not isinstance(filters, Sequence):
            raise ParamError(f"filter must be a list of filters, got {filters!r}")
        self.tokenizer: str = name
        self._filters: list[Filter] = []
        self._specs: list[Any] = []
        for spec in filters:
            self._filters.append(_make_filter(spec))
            self._specs.append(_normalize_spec(spec))

    @property
    def params(self) -> dict[str, Any]:
        """Milvus-style ``analyzer_params`` that rebuild this analyzer (JSON-ready)."""
        return {"tokenizer": self.tokenizer, "filter": [s if isinstance(s, str) else dict(s)
                                                        for s in self._specs]}

    def analyze(self, text: str) -> list[str]:
        """The tokens of ``text``, after every filter."""
        if not isinstance(text, str):
            raise ParamError(f"analyze expects a string, got {type(text).__name__} ({text!r:.60})")
        if self.tokenizer == "standard":
            tokens = _STANDARD.findall(text.replace("\u2019", "'") if "\u2019" in text else text)
        else:
            tokens = text.split()
        for f in self._filters:
            if not tokens:
                break
            tokens = f(tokens)
        return tokens

    __call__ = analyze

    def __repr__(self) -> str:
        return f"Analyzer.from_params({self.params!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Analyzer) and self.params == other.params

    def __hash__(self) -> int:
        return hash(repr(self))


def run_analyzer(texts: str | Sequence[str],
                 analyzer_params: dict[str, Any] | None = None) -> list[str] | list[list[str]]:
    """Tokens of each text (a single string gives a single token list), as Milvus would."""
    analyzer = Analyzer.from_params(analyzer_params)
    if isinstance(texts, str):
        return analyzer.analyze(texts)
    if isinstance(texts, bytes) or not isinstance(texts, Sequence):
        raise ParamError(f"texts must be a string or a list of strings, got {type(texts).__name__}")
    return [analyzer.analyze(t) for t in texts]


def expand_params(analyzer_params: dict[str, Any] | None) -> dict[str, Any]:
    """``{"tokenizer": ..., "filter": [...]}`` for built-in or custom ``analyzer_params``."""
    if analyzer_params is None:
        return {"tokenizer": "standard", "filter": ["lowercase"]}
    if not isinstance(analyzer_params, dict):
        raise ParamError(f"analyzer_params must be a dict, got {type(analyzer_params).__name__}")
    params = dict(analyzer_params)
    kind = params.pop("type", None)
    if kind is not None:
        if kind not in BUILT_INS:
            raise ParamError(f"unknown built-in analyzer type {kind!r}; supported: {list(BUILT_INS)} "
                             "(or a custom {'tokenizer': ..., 'filter': [...]})")
        stop = params.pop("stop_words", "_english_" if kind == "english" else None)
        if params:
            raise ParamError(f"analyzer type {kind!r} takes only stop_words, got {sorted(params)}")
        filters: list[Any] = ["lowercase"]
        if kind == "english":
            filters.append({"type": "stemmer", "language": "english"})
        if stop is not None:
            filters.append({"type": "stop", "stop_words": stop})
        return {"tokenizer": "standard", "filter": filters}
    unknown = sorted(set(params) - {"tokenizer", "filter"})
    if unknown:
        raise ParamError(f"unknown analyzer_params keys {unknown}; expected 'type', or "
                         "'tokenizer' and 'filter'")
    if "tokenizer" not in params:
        raise ParamError("custom analyzer_params need a 'tokenizer' (e.g. 'standard')")
    return {"tokenizer": params["tokenizer"], "filter": params.get("filter", [])}


def _normalize_spec(spec: Any) -> Any:
    if isinstance(spec, dict) and spec.get("type") == "stop":
        return {"type": "stop", "stop_words": sorted(_stop_set(spec.get("stop_words")))}
    return spec


def _make_filter(spec: Any) -> Filter:
    if isinstance(spec, str):
        kind, options = spec, {}
    elif isinstance(spec, dict) and isinstance(spec.get("type"), str):
        kind, options = spec["type"], {k: v for k, v in spec.items() if k != "type"}
    else:
        raise ParamError(f"a filter is a name or a dict with a 'type', got {spec!r}")
    if kind not in FILTERS:
        raise ParamError(f"unknown filter {kind!r}; supported: {list(FILTERS)}")
    allowed = {"length": {"max"}, "stop": {"stop_words"}, "stemmer": {"language"}}.get(kind, set())
    extra = sorted(set(options) - allowed)
    if extra:
        raise ParamError(f"filter {kind!r} does not take {extra}")
    if kind == "lowercase":  # tokens never hold spaces, so one lower() call does them all
        return lambda tokens: " ".join(tokens).lower().split(" ")
    if kind == "asciifolding":
        return lambda tokens: [t for t in map(_fold, tokens) if t]
    if kind == "alphanumonly":
        return lambda tokens: [t for t in tokens if _ALNUM.fullmatch(t)]
    if kind == "length":
        limit = options.get("max")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ParamError(f"length filter needs 'max', a positive int, got {limit!r}")
        return lambda tokens: [t for t in tokens if len(t) <= limit]
    if kind == "stop":
        stop = _stop_set(options.get("stop_words"))
        return lambda tokens: [t for t in tokens if t not in stop]
    return _Stemmer(options.get("language"))


def _stop_set(words: Any) -> frozenset[str]:
    if isinstance(words, str):
        words = [words]
    if not isinstance(words, (list, tuple, set, frozenset)) or not all(isinstance(w, str) for w in words):
        raise ParamError(f"stop_words must be a list of strings (or '_english_'), got {words!r}")
    out: set[str] = set()
    for w in words:
        if w in ("_english_", "english"):
            out |= ENGLISH_STOP_WORDS
        elif w.startswith("_") and w.endswith("_") and len(w) > 2:
            raise ParamError(f"unknown stop word list {w!r}; only '_english_' is built in")
        else:
            out.add(w)
    return frozenset(out)


def _fold(token: str) -> str:
    if token.isascii():
        return token
    decomposed = unicodedata.normalize("NFKD", token)
    return "".join(c for c in decomposed if not unicodedata.combining(c) and not c.isspace())


class _Stemmer:
    """A Snowball stemmer (PyStemmer), one instance per thread: they are not thread-safe."""

    def __init__(self, language: Any):
        try:
            import Stemmer
        except ImportError as exc:
            raise ImportError("the stemmer filter needs PyStemmer: pip install PyStemmer") from exc
        if language not in Stemmer.algorithms():
            raise ParamError(f"unknown stemmer language {language!r}; "
                             f"supported: {Stemmer.algorithms()}")
        self._new = lambda: Stemmer.Stemmer(language, 100_000)
        self._local = threading.local()

    def __call__(self, tokens: list[str]) -> list[str]:
        stemmer = getattr(self._local, "stemmer", None)
        if stemmer is None:
            stemmer = self._local.stemmer = self._new()
        return stemmer.stemWords(tokens)
