"""Chunking: a document's text cut into overlapping windows of MiniLM tokens.

A document is split into sections at its headings, so a chunk never straddles two of them
and carries the heading of its own. Within a section, windows of ``chunk_tokens`` tokens
advance by ``chunk_tokens - overlap`` and end on a word boundary where one is in reach.
Every chunk keeps its character span in the document: ``text[chunk.start:chunk.end]`` is
exactly ``chunk.text``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from harrierdb.errors import ParamError

#: The MiniLM encoder sees at most 256 tokens, two of which are [CLS] and [SEP].
MAX_CHUNK_TOKENS = 254
#: A chunk longer than this many characters (a run of [UNK] "words") is cut here.
MAX_CHUNK_CHARS = 16_000


@dataclass(frozen=True)
class Heading:
    """A heading and the character offset where its section begins."""

    start: int
    title: str


@dataclass(frozen=True)
class Chunk:
    """One window of a document: its text, character span, section heading and number."""

    text: str
    start: int
    end: int
    heading: str
    index: int


class TokenCounter:
    """The MiniLM (BERT WordPiece) tokenizer, without special tokens or truncation."""

    def __init__(self) -> None:
        from tokenizers import Tokenizer

        from harrierdb.embed.weights import TOKENIZER

        self._tok = Tokenizer.from_file(str(TOKENIZER))
        self._tok.no_truncation()
        self._tok.no_padding()

    def count(self, text: str) -> int:
        """Number of tokens in ``text``."""
        return len(self._tok.encode(text, add_special_tokens=False).ids)

    def spans(self, text: str) -> tuple[list[tuple[int, int]], list[bool]]:
        """Character span of each token, and whether each token continues the previous word."""
        enc = self._tok.encode(text, add_special_tokens=False)
        return list(enc.offsets), [t.startswith("##") for t in enc.tokens]

    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest prefix of ``text`` with at most ``max_tokens`` tokens."""
        offsets, _ = self.spans(text)
        if len(offsets) <= max_tokens:
            return text
        return text[:offsets[max_tokens - 1][1]] if max_tokens > 0 else ""


@functools.cache
def token_counter() -> TokenCounter:
    """The shared tokenizer (loaded once per process)."""
    return TokenCounter()


def check_window(chunk_tokens: int, overlap: int) -> None:
    """Refuse window sizes the model cannot embed or that would never advance."""
    if isinstance(chunk_tokens, bool) or not isinstance(chunk_tokens, int) \
            or not 1 <= chunk_tokens <= MAX_CHUNK_TOKENS:
        raise ParamError(f"chunk_tokens must be an int in [1, {MAX_CHUNK_TOKENS}] (the model's "
                         f"window), got {chunk_tokens!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < chunk_tokens:
        raise ParamError(f"overlap must be an int in [0, chunk_tokens), got {overlap!r} "
                         f"with chunk_tokens={chunk_tokens}")


def sections(text: str, headings: Sequence[Heading]) -> Iterator[tuple[int, int, str]]:
    """(start, end, heading title) of each section: text before the first heading has ""."""
    marks = sorted((h for h in headings if 0 <= h.start <= len(text)), key=lambda h: h.start)
    bounds = [(0, "")] + [(h.start, h.title) for h in marks]
    for (start, title), (end, _) in zip(bounds, bounds[1:] + [(len(text), "")]):
        if end > start and text[start:end].strip():
            yield start, end, title


def chunk_text(text: str, headings: Sequence[Heading] = (), chunk_tokens: int = 200,
               overlap: int = 40) -> list[Chunk]:
    """The chunks of a document, in order, numbered from 0."""
    check_window(chunk_tokens, overlap)
    tokenizer = token_counter()
    chunks: list[Chunk] = []
    for sec_start, sec_end, title in sections(text, headings):
        offsets, continues = tokenizer.spans(text[sec_start:sec_end])
        for first, last in windows(continues, chunk_tokens, overlap):
            start = sec_start + offsets[first][0]
            end = min(sec_start + offsets[last - 1][1], start + MAX_CHUNK_CHARS)
            chunks.append(Chunk(text[start:end], start, end, title, len(chunks)))
    return chunks


def windows(continues: Sequence[bool], size: int, overlap: int) -> Iterator[tuple[int, int]]:
    """Token ranges [first, last) of at most ``size`` tokens, consecutive ones sharing about
    ``overlap``; a range ends before a word that it would cut, unless the word fills it."""
    n, first = len(continues), 0
    while first < n:
        last = min(first + size, n)
        cut = last
        while first < cut < n and continues[cut]:
            cut -= 1
        if cut > first:
            last = cut
        yield first, last
        if last >= n:
            return
        nxt = max(last - overlap, first + 1)
        while first + 1 < nxt < last and continues[nxt]:
            nxt -= 1
        first = nxt
