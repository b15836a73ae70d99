"""A retrieval test set made from WordNet's glosses (Debian's ``wordnet-base`` package).

Every synset is a document: its gloss, with id ``offset-pos`` (``"02084071-n"``). A sample
of synsets become queries that must find their own gloss (one relevant document each):

* ``query_from="example"``: the gloss's first quoted example sentence, which is then cut out
  of the document so the answer is not a copy of the question (synsets without one are not
  used as queries);
* ``"lemmas"``: the synset's words, underscores to spaces (``"dog, domestic dog"``);
* ``"auto"`` (default): the example when there is one, else the lemmas.

The parsed synsets are cached as JSON in ``~/.cache/harrierdb/data`` (``$HARRIER_DATA``).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from harrierdb.datasets import data_dir
from harrierdb.errors import ParamError
from harrierdb.quality.evaluate import RetrievalSet

#: Where Debian's wordnet-base puts the database (``$WNSEARCHDIR`` overrides it, as in WordNet).
WORDNET_DIR = Path("/usr/share/wordnet")
POS_FILES = {"n": "data.noun", "v": "data.verb", "a": "data.adj", "r": "data.adv"}
QUERY_SOURCES = ("auto", "example", "lemmas")
CACHE_NAME = "wordnet-synsets.json.gz"
CACHE_FORMAT = 2

_parsed: dict[str, list[Synset]] = {}  # the last database loaded, by its directory and files' stamp
_EXAMPLE = re.compile(r'"([^"]+)"')
_MARKER = re.compile(r"\((?:a|p|ip)\)$")  # adjective position markers: galore(ip)


@dataclasses.dataclass(frozen=True)
class Synset:
    """One synset: id (``offset-pos``), part of speech (n, v, a, s, r), words and gloss."""

    id: str
    pos: str
    lemmas: tuple[str, ...]
    gloss: str

    @property
    def examples(self) -> list[str]:
        """The quoted example sentences of the gloss."""
        return _EXAMPLE.findall(self.gloss)


def wordnet_dir() -> Path:
    env = os.environ.get("WNSEARCHDIR")
    return Path(env) if env else WORDNET_DIR


def load_synsets(pos: Sequence[str] = ("n", "v", "a", "r"), directory: str | os.PathLike[str] | None = None,
                 cache_dir: str | os.PathLike[str] | None = None) -> list[Synset]:
    """Every synset of the parts of speech ``pos`` (adjective satellites come with "a")."""
    unknown = sorted(set(pos) - set(POS_FILES))
    if unknown or not pos:
        raise ParamError(f"pos must be a non-empty subset of {sorted(POS_FILES)}, got {list(pos)!r}")
    root = Path(directory) if directory is not None else wordnet_dir()
    files = [root / POS_FILES[p] for p in POS_FILES]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise ParamError(
            f"WordNet is not installed: {', '.join(missing)} not found in {str(root)!r}. Install "
            "Debian's wordnet-base (apt-get install wordnet-base), or set $WNSEARCHDIR to a "
            "directory with WordNet 3.0's data.noun, data.verb, data.adj and data.adv")
    cache = (Path(cache_dir) if cache_dir is not None else data_dir()) / CACHE_NAME
    stamp = [str(root.resolve())] + [[f.name, f.stat().st_size, int(f.stat().st_mtime)] for f in files]
    key = json.dumps(stamp)
    synsets = _parsed.get(key) or _read_cache(cache, stamp)
    if synsets is None:
        synsets = [s for f in files for s in _parse_data_file(f)]
        _write_cache(cache, stamp, synsets)
    _parsed.clear()  # keep one parsed database in memory
    _parsed[key] = synsets
    wanted = {"s" if p == "a" else p for p in pos} | set(pos)
    return [s for s in synsets if s.pos in wanted]


def _parse_data_file(path: Path) -> list[Synset]:
    """Lines ``offset lex_filenum ss_type w_cnt word lex_id ... | gloss``; license lines start with spaces."""
    out = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith(" ") or " | " not in line:
                continue
            head, gloss = line.split(" | ", 1)
            cells = head.split()
            offset, ss_type, n_words = cells[0], cells[2], int(cells[3], 16)
            words = cells[4:4 + 2 * n_words:2]
            lemmas = tuple(_MARKER.sub("", w).replace("_", " ") for w in words)
            out.append(Synset(f"{offset}-{ss_type}", ss_type, lemmas, gloss.strip()))
    return out


def _read_cache(path: Path, stamp: list) -> list[Synset] | None:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if data.get("format") != CACHE_FORMAT or data.get("source") != stamp:
        return None
    return [Synset(i, p, tuple(lemmas), g) for i, p, lemmas, g in data["synsets"]]


def _write_cache(path: Path, stamp: list, synsets: list[Synset]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with gzip.open(tmp, "wt", encoding="utf-8") as f:
            json.dump({"format": CACHE_FORMAT, "source": stamp,
                       "synsets": [[s.id, s.pos, list(s.lemmas), s.gloss] for s in synsets]}, f)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs a re-parse next time


def without_example(gloss: str, example: str) -> str:
    """The gloss with the quoted ``example`` (and its separator) removed."""
    quoted = f'"{example}"'
    parts = [p.strip() for p in gloss.split(";")]
    kept = [p for p in parts if p != quoted]
    text = "; ".join(kept) if len(kept) < len(parts) else gloss.replace(quoted, "")
    return text.strip().strip(";").strip()


def query_text(synset: Synset, query_from: str = "auto") -> str | None:
    """The query for ``synset``, or None when it has no text of that kind."""
    examples = synset.examples
    if query_from in ("auto", "example") and examples:
        return examples[0]
    if query_from == "example":
        return None
    return ", ".join(synset.lemmas)


def wordnet_retrieval(n_queries: int = 1000, corpus_size: int | None = 5000, *, query_from: str = "auto",
                      pos: Sequence[str] = ("n", "v", "a", "r"), seed: int = 0,
                      directory: str | os.PathLike[str] | None = None,
                      cache_dir: str | os.PathLike[str] | None = None) -> RetrievalSet:
    """A retrieval set: ``corpus_size`` glosses (None: all), ``n_queries`` of them as queries.

    Synsets are sampled with ``seed``; the query synsets are the first ones sampled that have
    a query of kind ``query_from``, and the rest of the corpus is distractors.
    """
    if query_from not in QUERY_SOURCES:
        raise ParamError(f"query_from must be one of {QUERY_SOURCES}, got {query_from!r}")
    if isinstance(n_queries, bool) or not isinstance(n_queries, int) or n_queries < 1:
        raise ParamError(f"n_queries must be a positive int, got {n_queries!r}")
    if corpus_size is not None and (not isinstance(corpus_size, int) or corpus_size < n_queries):
        raise ParamError(f"corpus_size must be an int >= n_queries ({n_queries}) or None, got {corpus_size!r}")
    synsets = load_synsets(pos, directory, cache_dir)
    order = np.random.default_rng(seed).permutation(len(synsets))
    queries: dict[str, str] = {}
    corpus: dict[str, str] = {}
    for i in order.tolist():
        s = synsets[i]
        text = query_text(s, query_from) if len(queries) < n_queries else None
        if text is not None:
            queries[s.id] = text
            corpus[s.id] = without_example(s.gloss, text) if text in s.examples else s.gloss
        elif corpus_size is None or len(corpus) < corpus_size - (n_queries - len(queries)):
            corpus[s.id] = s.gloss
        if corpus_size is not None and len(corpus) >= corpus_size and len(queries) >= n_queries:
            break
    if len(queries) < n_queries:
        raise ParamError(f"WordNet has only {len(queries)} synsets with a query of kind {query_from!r} "
                         f"for pos {list(pos)}; ask for fewer queries")
    qrels = {qid: {qid: 1} for qid in queries}
    name = f"wordnet-{''.join(pos)}-{query_from}-{len(queries)}q-{len(corpus)}d"
    return RetrievalSet(name=name, corpus=corpus, queries=queries, qrels=qrels)
