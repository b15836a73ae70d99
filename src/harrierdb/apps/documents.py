"""Semantic search over a directory of documents (.txt, .md, .html, .pdf).

``index_directory`` reads each file, cuts it into token windows (:mod:`.chunking`) and stores
the chunks in a collection that embeds them itself (a TEXT_EMBEDDING function running the
offline MiniLM model, COSINE) and weighs their terms for BM25 (a BM25 function). Running it
again touches only what changed, by content hash: new files are added, changed files have
their chunks replaced, deleted files' chunks are removed, and the rest is skipped.

``search_documents`` answers a query in ``"dense"``, ``"bm25"`` or ``"hybrid"`` mode (both,
fused by reciprocal rank), each hit with its source, character span, heading and a snippet
with the query's terms marked.

Offsets are into the document's text: the file itself for .txt and .md, the extracted text
for .html and .pdf (``read_document(path).text``).
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from harrierdb.apps.chunking import Chunk, Heading, check_window, chunk_text
from harrierdb.errors import ParamError
from harrierdb.ranker import AnnSearchRequest, RRFRanker
from harrierdb.schema import DataType, Function, FunctionType

TEXT_SUFFIXES = {".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown",
                 ".html": "html", ".htm": "html", ".pdf": "pdf"}
MODES = ("hybrid", "dense", "bm25")
PLAIN_MARKERS = ("«", "»")
ANSI_MARKERS = ("\x1b[1m", "\x1b[0m")
MODEL_PARAMS = {"model_name": "all-MiniLM-L6-v2", "precision": "int8"}
OUTPUT_FIELDS = ["source", "char_start", "char_end", "heading", "chunk", "text"]
INSERT_BATCH_ROWS = 64  # chunks embedded and committed together (whole files at a time)
MAX_SOURCE_CHARS = 4096
MAX_HEADING_CHARS = 1024


# -- reading files ------------------------------------------------------------------------------

@dataclass
class Document:
    """A document's text and its headings (each with the offset where its section starts)."""

    text: str
    headings: list[Heading] = field(default_factory=list)


def read_document(path: str | os.PathLike[str], data: bytes | None = None) -> Document:
    """The text and headings of a .txt, .md, .html or .pdf file (``data``: its bytes, if read)."""
    p = Path(path)
    kind = TEXT_SUFFIXES.get(p.suffix.lower())
    if kind is None:
        raise ParamError(f"cannot read {str(p)!r}: supported extensions are {sorted(TEXT_SUFFIXES)}")
    if data is None:
        data = p.read_bytes()
    if kind == "pdf":
        return read_pdf(data, str(p))
    text = data.decode("utf-8", errors="replace")  # no newline translation: offsets stay exact
    if kind == "markdown":
        return Document(text, markdown_headings(text))
    if kind == "html":
        return html_document(text)
    return Document(text)


_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t#]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def markdown_headings(text: str) -> list[Heading]:
    """ATX (``# Title``) and setext (``Title`` over ``===``) headings outside code fences."""
    headings: list[Heading] = []
    fence = None
    prev: tuple[int, str] | None = None  # the previous line, if it is plain paragraph text
    pos = 0
    for line in text.splitlines(keepends=True):
        start, body = pos, line.rstrip("\r\n")
        pos += len(line)
        m = _FENCE.match(body)
        if fence is not None or m:
            if fence is None:
                fence = m.group(1)
            elif body.strip().startswith(fence):
                fence = None
            prev = None
            continue
        atx = _ATX.match(body)
        if atx:
            headings.append(Heading(start, (atx.group(2) or "").strip()))
            prev = None
        elif prev is not None and _SETEXT.match(body):
            headings.append(Heading(prev[0], prev[1].strip()))
            prev = None
        else:
            plain = body.strip() and not body.lstrip().startswith(("-", "*", "+", ">", "|"))
            prev = (start, body) if plain else None
    return headings


class _HtmlText(HTMLParser):
    """Visible text of an HTML page, one line per block, with its h1-h6 headings."""

    BLOCKS = {"p", "div", "li", "ul", "ol", "tr", "table", "section", "article", "header",
              "footer", "nav", "aside", "main", "blockquote", "pre", "hr", "dt", "dd", "dl",
              "figure", "figcaption", "form", "h1", "h2", "h3", "h4", "h5", "h6", "title"}
    HIDDEN = {"script", "style", "noscript", "template", "svg"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.length = 0
        self.headings: list[Heading] = []
        self._hidden = 0
        self._pre = 0
        self._heading: tuple[int, list[str]] | None = None
        self._title: list[str] | None = None
        self.title = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._title = []
        elif tag in self.HIDDEN:
            self._hidden += 1
        if tag in self.BLOCKS:
            self._break()
        elif tag == "br" and self.parts and not self.parts[-1].endswith("\n"):
            self._emit("\n")
        if tag == "pre":
            self._pre += 1
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self._heading = (self.length, [])

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._title is not None:
            self.title = " ".join("".join(self._title).split())
            self._title = None
        elif tag in self.HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        if tag == "pre":
            self._pre = max(0, self._pre - 1)
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6") and self._heading is not None:
            start, words = self._heading
            title = " ".join("".join(words).split())
            if title:
                self.headings.append(Heading(start, title))
            self._heading = None
        if tag in self.BLOCKS:
            self._break()

    def handle_data(self, data: str) -> None:
        if self._title is not None:
            self._title.append(data)
            return
        if self._hidden:
            return
        if not self._pre:
            data = re.sub(r"\s+", " ", data)
            if not self.parts or self.parts[-1].endswith((" ", "\n")):
                data = data.lstrip(" ")
        if data:
            if self._heading is not None:
                self._heading[1].append(data)
            self._emit(data)

    def _break(self) -> None:
        if self.parts and not self.parts[-1].endswith("\n\n"):
            if self.parts[-1].endswith(" "):  # a trailing space before a break is noise
                self.parts[-1] = self.parts[-1][:-1]
                self.length -= 1
            self._emit("\n" if self.parts[-1].endswith("\n") else "\n\n")

    def _emit(self, s: str) -> None:
        self.parts.append(s)
        self.length += len(s)


def html_document(html: str) -> Document:
    """Visible text of an HTML page; headings are its h1-h6 (the <title> heads what precedes them)."""
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    headings = list(parser.headings)
    if parser.title and not any(h.start == 0 for h in headings):
        headings.insert(0, Heading(0, parser.title))
    return Document(text, headings)


def read_pdf(data: bytes, name: str = "PDF") -> Document:
    """The text of each page (pypdf), pages separated by a blank line; headings "page N"."""
    try:
        from pypdf import PdfReader
    except ImportError:
        raise ParamError(f"reading {name!r} needs pypdf: pip install pypdf") from None
    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted and not reader.decrypt(""):
        raise ParamError(f"{name!r} is encrypted")
    parts: list[str] = []
    headings: list[Heading] = []
    length = 0
    for number, page in enumerate(reader.pages, start=1):
        if parts:
            parts.append("\n\n")
            length += 2
        headings.append(Heading(length, f"page {number}"))
        page_text = page.extract_text() or ""
        parts.append(page_text)
        length += len(page_text)
    return Document("".join(parts), headings)


# -- the collection -----------------------------------------------------------------------------

def analyzer_params() -> dict:
    """English stemming when PyStemmer is installed (better recall), else standard + stop words."""
    try:
        import Stemmer  # noqa: F401
    except ImportError:
        return {"tokenizer": "standard", "filter": ["lowercase", {"type": "stop", "stop_words": "_english_"}]}
    return {"type": "english"}


def create_documents_collection(client: Any, collection: str) -> None:
    """A chunk collection: text embedded by MiniLM (``dense``) and weighed by BM25 (``sparse``)."""
    s = client.create_schema(auto_id=True)
    s.add_field("id", DataType.INT64, is_primary=True, auto_id=True)
    s.add_field("text", DataType.VARCHAR, max_length=65535, enable_analyzer=True,
                analyzer_params=analyzer_params())
    s.add_field("source", DataType.VARCHAR, max_length=MAX_SOURCE_CHARS)
    s.add_field("chunk", DataType.INT32)
    s.add_field("char_start", DataType.INT64)
    s.add_field("char_end", DataType.INT64)
    s.add_field("heading", DataType.VARCHAR, max_length=MAX_HEADING_CHARS)
    s.add_field("file_hash", DataType.VARCHAR, max_length=64)
    s.add_field("mtime", DataType.DOUBLE)
    s.add_field("chunking", DataType.VARCHAR, max_length=32)
    s.add_field("dense", DataType.FLOAT_VECTOR, dim=384)
    s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    s.add_function(Function("minilm", FunctionType.TEXTEMBEDDING, ["text"], ["dense"], params=MODEL_PARAMS))
    s.add_function(Function("bm25", FunctionType.BM25, ["text"], ["sparse"]))
    index = client.prepare_index_params()
    index.add_index("dense", index_type="AUTOINDEX", metric_type="COSINE")
    index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    client.create_collection(collection, schema=s, index_params=index)


def check_documents_collection(client: Any, collection: str) -> None:
    """Refuse a collection that was not made by :func:`create_documents_collection`."""
    names = {f["name"] for f in client.describe_collection(collection)["fields"]}
    missing = sorted({"text", "dense", "sparse", *OUTPUT_FIELDS, "file_hash", "chunking"} - names)
    if missing:
        raise ParamError(f"collection {collection!r} is not a documents collection (no fields "
                         f"{missing}); index into a new collection name")


# -- indexing -----------------------------------------------------------------------------------

@dataclass
class IndexReport:
    """What one ``index_directory`` run did (paths are the stored ``source`` values)."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # path -> why it could not be read
    chunks_inserted: int = 0
    chunks_deleted: int = 0
    bytes_read: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        rate = self.chunks_inserted / self.seconds if self.seconds else 0.0
        return (f"{len(self.added)} added, {len(self.changed)} changed, {len(self.deleted)} deleted, "
                f"{len(self.unchanged)} unchanged, {len(self.skipped)} skipped; "
                f"{self.chunks_inserted} chunks inserted, {self.chunks_deleted} deleted "
                f"in {self.seconds:.1f} s ({rate:.1f} chunks/s)")


def index_directory(client: Any, collection: str, directory: str | os.PathLike[str],
                    chunk_tokens: int = 200, overlap: int = 40) -> IndexReport:
    """Index the supported files under ``directory`` (recursively, hidden entries skipped),
    re-indexing only files whose content or chunking changed since the last run."""
    check_window(chunk_tokens, overlap)
    root = Path(directory)
    if not root.is_dir():
        raise ParamError(f"{str(directory)!r} is not a directory")
    root = root.resolve()
    if client.has_collection(collection):
        check_documents_collection(client, collection)
    else:
        create_documents_collection(client, collection)
    started = time.perf_counter()
    report = IndexReport()
    chunking = f"{chunk_tokens}/{overlap}"
    stored = _stored_files(client, collection, root)
    pending: list[dict] = []
    seen: set[str] = set()
    for path in _files(root):
        source = str(path)
        seen.add(source)
        try:
            data = path.read_bytes()
            stat = path.stat()
        except OSError as exc:
            report.skipped[source] = exc.strerror or str(exc)
            continue
        digest = hashlib.sha256(data).hexdigest()
        if stored.get(source) == (digest, chunking):
            report.unchanged.append(source)
            continue
        try:
            doc = read_document(path, data)
        except Exception as exc:  # a corrupt PDF raises whatever pypdf raises
            report.skipped[source] = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            continue  # a stored earlier version stays searchable
        rows = [_row(c, source, digest, stat.st_mtime, chunking)
                for c in chunk_text(doc.text, doc.headings, chunk_tokens, overlap)]
        if not rows and source not in stored:
            report.skipped[source] = "no text"
            continue
        report.bytes_read += len(data)
        if source in stored:
            report.chunks_deleted += _delete_source(client, collection, source)
            report.changed.append(source)
        else:
            report.added.append(source)
        pending.extend(rows)  # a file's rows go in one insert: it is indexed whole or not at all
        if len(pending) >= INSERT_BATCH_ROWS:
            report.chunks_inserted += _insert(client, collection, pending)
    report.chunks_inserted += _insert(client, collection, pending)
    for source in sorted(set(stored) - seen):
        report.chunks_deleted += _delete_source(client, collection, source)
        report.deleted.append(source)
    report.seconds = time.perf_counter() - started
    return report


def _files(root: Path) -> Iterator[Path]:
    """Supported files under ``root`` in a stable order, not following directory links."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() in TEXT_SUFFIXES:
                yield Path(dirpath) / name


def _stored_files(client: Any, collection: str, root: Path) -> dict[str, tuple[str, str]]:
    """source -> (content hash, chunking) of the files under ``root`` already indexed."""
    prefix = str(root).rstrip(os.sep) + os.sep
    rows = client.query(collection, filter="chunk == 0", output_fields=["source", "file_hash", "chunking"])
    return {r["source"]: (r["file_hash"], r["chunking"]) for r in rows if r["source"].startswith(prefix)}


def _delete_source(client: Any, collection: str, source: str) -> int:
    result = client.delete(collection, filter="source == {source}", filter_params={"source": source})
    return int(result["delete_count"])


def _insert(client: Any, collection: str, rows: list[dict]) -> int:
    """Insert and clear ``rows``; returns how many were inserted."""
    if not rows:
        return 0
    count = int(client.insert(collection, rows)["insert_count"])
    rows.clear()
    return count


def _row(chunk: Chunk, source: str, digest: str, mtime: float, chunking: str) -> dict:
    if len(source) > MAX_SOURCE_CHARS:
        raise ParamError(f"path {source[:80]!r}... is longer than {MAX_SOURCE_CHARS} characters")
    return {"text": chunk.text, "source": source, "chunk": chunk.index, "char_start": chunk.start,
            "char_end": chunk.end, "heading": chunk.heading[:MAX_HEADING_CHARS], "file_hash": digest,
            "mtime": float(mtime), "chunking": chunking}


# -- searching ----------------------------------------------------------------------------------

@dataclass
class DocumentHit:
    """One ranked chunk: ``score`` is cosine (dense), BM25 (bm25) or the RRF score (hybrid)."""

    rank: int
    score: float
    id: int
    source: str
    start: int
    end: int
    heading: str
    chunk: int
    text: str
    snippet: str


def search_documents(client: Any, collection: str, query: str, k: int = 5, mode: str = "hybrid",
                     markers: tuple[str, str] = PLAIN_MARKERS, candidates: int | None = None,
                     query_vector: Any = None) -> list[DocumentHit]:
    """The ``k`` chunks that best answer ``query``.

    ``candidates`` (default ``max(3k, 20)``) is how many each search of a hybrid query
    contributes to the fusion; ``query_vector``, the query already embedded by the
    collection's model, spares embedding it again.
    """
    if not isinstance(query, str) or not query.strip():
        raise ParamError(f"query must be a non-empty string, got {query!r}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 16384:
        raise ParamError(f"k must be an int in [1, 16384], got {k!r}")
    if mode not in MODES:
        raise ParamError(f"mode must be one of {MODES}, got {mode!r}")
    check_documents_collection(client, collection)
    dense_query = [query] if query_vector is None else [query_vector]
    if mode == "hybrid":
        n = candidates if candidates is not None else min(max(3 * k, 20), 16384)
        reqs = [AnnSearchRequest(dense_query, "dense", {"metric_type": "COSINE"}, n),
                AnnSearchRequest([query], "sparse", {"metric_type": "BM25"}, n)]
        hits = client.hybrid_search(collection, reqs, RRFRanker(60), limit=k, output_fields=OUTPUT_FIELDS)[0]
    else:
        field_name, data = ("dense", dense_query) if mode == "dense" else ("sparse", [query])
        hits = client.search(collection, data, anns_field=field_name, limit=k, output_fields=OUTPUT_FIELDS)[0]
    terms = query_terms(query)
    out = []
    for rank, hit in enumerate(hits, start=1):
        e = hit["entity"]
        out.append(DocumentHit(rank, float(hit["distance"]), hit["id"], e["source"], e["char_start"],
                               e["char_end"], e["heading"], e["chunk"], e["text"],
                               snippet(e["text"], terms, markers)))
    return out


# -- snippets -----------------------------------------------------------------------------------

_WORD = re.compile(r"\w+(?:['.’]\w+)*")


@functools.cache
def _analyzer() -> Any:
    from harrierdb.analyzer import Analyzer

    return Analyzer.from_params(analyzer_params())


def query_terms(query: str) -> frozenset[str]:
    """The query's terms as the collection's analyzer normalises them (stems, no stop words)."""
    from harrierdb.analyzer import ENGLISH_STOP_WORDS

    return frozenset(t for t in _analyzer().analyze(query) if t not in ENGLISH_STOP_WORDS)


def snippet(text: str, terms: frozenset[str], markers: tuple[str, str] = PLAIN_MARKERS,
            width: int = 240) -> str:
    """About ``width`` characters of ``text`` around its densest run of ``terms``, each
    occurrence wrapped in ``markers``, whitespace collapsed, cuts marked with "…"."""
    analyzer = _analyzer()
    matches = [(m.start(), m.end()) for m in _WORD.finditer(text)
               if terms.intersection(analyzer.analyze(m.group()))]
    start = 0
    if matches:
        best = max(range(len(matches)),
                   key=lambda i: sum(1 for s, _ in matches[i:] if s < matches[i][0] + width - 40))
        start = max(0, matches[best][0] - 40)
        while 0 < start and not text[start - 1].isspace() and matches[best][0] - start < 80:
            start -= 1
    end = min(len(text), start + width)
    while end < len(text) and not text[end].isspace() and end - start < width + 40:
        end += 1
    open_, close = markers
    parts, pos = [], start
    for s, e in matches:
        if s >= start and e <= end:
            parts += [text[pos:s], open_, text[s:e], close]
            pos = e
    parts.append(text[pos:end])
    body = " ".join("".join(parts).split())
    return ("…" if start > 0 else "") + body + ("…" if end < len(text) else "")
