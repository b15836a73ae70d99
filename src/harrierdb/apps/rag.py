"""Retrieval-augmented answers over a documents collection (see :mod:`.documents`).

``answer`` retrieves chunks (hybrid search), lets an optional ``rerank`` hook reorder them,
builds a prompt that numbers them [1]..[n] within a token budget (MiniLM tokens), and asks
an OpenAI-compatible chat endpoint (``/v1/chat/completions``) to answer with citations.
With no endpoint configured (arguments, or ``HARRIER_LLM_URL`` / ``HARRIER_LLM_MODEL`` /
``HARRIER_LLM_API_KEY``) it answers extractively: the retrieved sentences most similar to
the question (MiniLM embeddings), best first, each followed by its citation number.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harrierdb.apps.chunking import token_counter
from harrierdb.apps.documents import DocumentHit, search_documents
from harrierdb.errors import LLMError, ParamError

ENV_URL, ENV_MODEL, ENV_KEY = "HARRIER_LLM_URL", "HARRIER_LLM_MODEL", "HARRIER_LLM_API_KEY"
EXTRACTIVE = "extractive"  # pass as ``llm`` to answer extractively even if an endpoint is set
SYSTEM_PROMPT = ("Answer the question using only the numbered sources below. After each claim, "
                 "cite the sources it comes from by number in brackets, like [1] or [2][3]. "
                 "If the sources do not contain the answer, say that you do not know.")
MIN_CHUNK_TOKENS = 16  # a first chunk cut shorter than this to fit the budget is not worth it

Messages = list[dict[str, str]]
Reranker = Callable[[str, list[DocumentHit]], Sequence[DocumentHit]]


@dataclass
class Citation:
    """A numbered source of an answer: where the chunk is and the text the prompt quoted."""

    number: int
    id: int
    source: str
    start: int
    end: int
    heading: str
    text: str
    score: float


@dataclass
class Answer:
    """``text`` (with [n] citations), ``citations`` by number, the ``prompt`` sent or built."""

    text: str
    citations: dict[int, Citation]
    prompt: str
    mode: str  # "llm" or "extractive"
    messages: Messages = field(default_factory=list)
    prompt_tokens: int = 0

    @property
    def cited(self) -> list[int]:
        """The citation numbers the text uses, in order of first use."""
        numbers = (int(n) for n in re.findall(r"\[(\d+)\]", self.text))
        return list(dict.fromkeys(n for n in numbers if n in self.citations))


# -- the chat endpoint --------------------------------------------------------------------------

class ChatLLM:
    """A client of an OpenAI-compatible ``/v1/chat/completions`` endpoint (stdlib urllib).

    ``url`` is the server (``http://host:8000``), its ``/v1`` base or the full endpoint.
    """

    def __init__(self, url: str, model: str | None = None, api_key: str | None = None,
                 timeout: float = 120.0, temperature: float = 0.0, max_tokens: int | None = None):
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ParamError(f"LLM url must be an http(s) URL, got {url!r}")
        self.url = url
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.temperature = temperature
        self.max_tokens = max_tokens

    @classmethod
    def from_env(cls, url: str | None = None, model: str | None = None,
                 api_key: str | None = None) -> ChatLLM | None:
        """A client from the arguments, else the environment; None if no URL is set."""
        url = url or os.environ.get(ENV_URL)
        if not url:
            return None
        return cls(url, model or os.environ.get(ENV_MODEL) or None,
                   api_key or os.environ.get(ENV_KEY) or None)

    @property
    def endpoint(self) -> str:
        base = self.url.rstrip("/")
        if base.endswith("/chat/completions"):
            return base
        return base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")

    def __call__(self, messages: Messages) -> str:
        """The assistant's reply to ``messages``."""
        body: dict[str, Any] = {"messages": messages, "temperature": self.temperature, "stream": False}
        if self.model:
            body["model"] = self.model
        if self.max_tokens:
            body["max_tokens"] = self.max_tokens
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.endpoint, json.dumps(body).encode("utf-8"), headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                reply = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", errors="replace")[:300]
            raise LLMError(f"{self.endpoint} answered HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise LLMError(f"cannot reach {self.endpoint}: {getattr(exc, 'reason', exc)}") from None
        except json.JSONDecodeError:
            raise LLMError(f"{self.endpoint} did not answer JSON") from None
        try:
            content = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise LLMError(f"{self.endpoint} answered without choices[0].message.content: "
                           f"{json.dumps(reply)[:300]}") from None
        if not isinstance(content, str):
            raise LLMError(f"{self.endpoint} answered a non-text message: {content!r:.100}")
        return content


# -- the prompt ---------------------------------------------------------------------------------

def build_prompt(question: str, hits: Sequence[DocumentHit], token_budget: int
                 ) -> tuple[str, dict[int, Citation], int]:
    """The user prompt quoting as many hits as fit (best first), its citations, and the tokens
    of system prompt + user prompt. A hit that does not fit is skipped; the first is cut to fit."""
    count = token_counter().count
    head, tail = "Sources:\n\n", f"Question: {question}\nAnswer, citing sources by number:"
    used = count(SYSTEM_PROMPT) + count(head) + count(tail)
    if used > token_budget:
        raise ParamError(f"token_budget={token_budget} is smaller than the instructions and the "
                         f"question ({used} tokens)")
    blocks: list[str] = []
    citations: dict[int, Citation] = {}
    for hit in hits:
        number = len(citations) + 1
        label = f"[{number}] {Path(hit.source).name}" + (f" — {hit.heading}" if hit.heading else "")
        text = hit.text
        cost = count(label) + count(text)
        if used + cost > token_budget:
            room = token_budget - used - count(label)
            if citations or room < MIN_CHUNK_TOKENS:
                continue
            text = token_counter().truncate(text, room)
            cost = count(label) + count(text)
        blocks.append(f"{label}\n{text}\n\n")
        citations[number] = Citation(number, hit.id, hit.source, hit.start, hit.start + len(text), hit.heading,
                                     text, hit.score)
        used += cost
    return head + "".join(blocks) + tail, citations, used


# -- extractive answers -------------------------------------------------------------------------

_NEW_BLOCK = r"[ \t]*(?:#|[-*+] |\d+[.)] )"  # a heading or list item starts a block of its own
_BLOCK = re.compile(rf"[ \t]*#[^\n]*|[^\n]+(?:\n(?!{_NEW_BLOCK}|[ \t]*\n)[^\n]+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?])(?<!\b\d\.)(?<!\b\d\d\.)([\"')\]]*)\s+")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text``; headings, list items and paragraphs
    end sentences too. Spans with fewer than two words are left out."""
    out = []
    for block in _BLOCK.finditer(text):
        start = block.start()
        ends = [(m.end(1), m.end()) for m in _SENTENCE_END.finditer(text, block.start(), block.end())]
        for end, nxt in ends + [(block.end(), block.end())]:
            s, e = start, end
            while s < e and text[s].isspace():
                s += 1
            while e > s and text[e - 1].isspace():
                e -= 1
            if len(re.findall(r"\w+", text[s:e])) >= 2:
                out.append((s, e))
            start = nxt
    return out


def extractive_answer(question_vector: np.ndarray, citations: dict[int, Citation], model: Any,
                      chunk_vectors: dict[int, np.ndarray] | None = None, max_sentences: int = 3,
                      margin: float = 0.15) -> str:
    """The cited sentences most similar to the question (at most ``max_sentences``, within
    ``margin`` of the best cosine), best first, each followed by its citation number.

    ``chunk_vectors`` (citation number -> the chunk's stored vector) spares embedding a
    chunk that is a single sentence: its vector is that sentence's.
    """
    chunk_vectors = chunk_vectors or {}
    candidates: list[tuple[int, str]] = []
    known: list[np.ndarray | None] = []
    seen: set[str] = set()
    for number, c in citations.items():
        spans = split_sentences(c.text)
        whole = len(spans) == 1 and not c.text[:spans[0][0]].strip() and not c.text[spans[0][1]:].strip()
        for s, e in spans:
            sentence = " ".join(c.text[s:e].split())
            if sentence.lower() not in seen:  # overlapping chunks repeat sentences
                seen.add(sentence.lower())
                candidates.append((number, sentence))
                known.append(chunk_vectors.get(number) if whole else None)
    if not candidates:
        return "The indexed documents do not answer this question."
    todo = [i for i, v in enumerate(known) if v is None]
    if todo:
        fresh = np.asarray(model.encode_documents([candidates[i][1] for i in todo]), dtype=np.float32)
        for i, v in zip(todo, fresh):
            known[i] = v
    scores = np.stack(known) @ np.asarray(question_vector, dtype=np.float32)
    order = np.argsort(-scores, kind="stable")[:max_sentences]
    best = scores[order[0]]
    picked = [candidates[i] for i in order if scores[i] >= best - margin]
    return " ".join(f"{sentence} [{number}]" for number, sentence in picked)


def collection_model(client: Any, collection: str) -> Any:
    """The embedding model of the collection's TEXT_EMBEDDING function (loaded once)."""
    from harrierdb.engine.functions import model_for
    from harrierdb.schema import Function, FunctionType

    for spec in client.describe_collection(collection)["functions"]:
        fn = Function.from_dict(spec)
        if fn.function_type is FunctionType.TEXTEMBEDDING:
            return model_for(fn)
    raise ParamError(f"collection {collection!r} has no TEXT_EMBEDDING function")


# -- answering ----------------------------------------------------------------------------------

def answer(client: Any, collection: str, question: str, k: int = 5, token_budget: int = 1500,
           llm: ChatLLM | Callable[[Messages], str] | str | None = None, rerank: Reranker | None = None,
           url: str | None = None, model: str | None = None, api_key: str | None = None) -> Answer:
    """Answer ``question`` from the ``k`` best chunks of ``collection``, citing them.

    ``llm``: a :class:`ChatLLM` or any callable taking chat messages and returning the reply;
    None builds one from ``url``/``model``/``api_key`` or the environment, and answers
    extractively if no URL is set; ``"extractive"`` always answers extractively.
    ``rerank(question, hits)`` may reorder the 4k retrieved hits; the first k are kept.
    """
    if not isinstance(question, str) or not question.strip():
        raise ParamError(f"question must be a non-empty string, got {question!r}")
    if isinstance(token_budget, bool) or not isinstance(token_budget, int) or token_budget < 1:
        raise ParamError(f"token_budget must be a positive int, got {token_budget!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ParamError(f"k must be a positive int, got {k!r}")
    if llm is None:
        llm = ChatLLM.from_env(url, model, api_key)
    elif llm != EXTRACTIVE and not callable(llm):
        raise ParamError(f"llm must be a ChatLLM, a callable, {EXTRACTIVE!r} or None, got {llm!r}")
    model_ = collection_model(client, collection)
    question_vector = model_.encode_queries([question])[0]
    hits = search_documents(client, collection, question, k=k if rerank is None else 4 * k,
                            query_vector=question_vector)
    if rerank is not None:
        hits = list(rerank(question, hits))
        if not all(isinstance(h, DocumentHit) for h in hits):
            raise ParamError("rerank must return DocumentHit objects (a reordering of its input)")
    prompt, citations, used = build_prompt(question, hits[:k], token_budget)
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]
    if llm is None or llm == EXTRACTIVE:
        text = extractive_answer(question_vector, citations, model_,
                                 _stored_vectors(client, collection, citations, hits))
        return Answer(text, citations, prompt, EXTRACTIVE, messages, used)
    return Answer(llm(messages), citations, prompt, "llm", messages, used)


def _stored_vectors(client: Any, collection: str, citations: dict[int, Citation],
                    hits: Sequence[DocumentHit]) -> dict[int, np.ndarray]:
    """The stored vector of each citation that quotes its whole chunk."""
    whole = {h.id for h in hits} & {c.id for c in citations.values()}
    full_text = {h.id: h.text for h in hits}
    ids = [c.id for c in citations.values() if c.id in whole and c.text == full_text[c.id]]
    if not ids:
        return {}
    rows = {r["id"]: r["dense"] for r in client.get(collection, ids, output_fields=["dense"])}
    return {n: np.asarray(rows[c.id], dtype=np.float32) for n, c in citations.items() if c.id in rows}
