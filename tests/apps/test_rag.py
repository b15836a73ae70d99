"""Retrieval-augmented answers: extractive accuracy on WordNet, prompts, budgets, a chat endpoint."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harrierdb import MilvusClient
from harrierdb.apps.chunking import token_counter
from harrierdb.apps.documents import index_directory, search_documents
from harrierdb.apps.rag import (
    EXTRACTIVE,
    SYSTEM_PROMPT,
    ChatLLM,
    LLMError,
    answer,
    build_prompt,
    split_sentences,
)
from harrierdb.errors import ParamError

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")

N_QUESTIONS = 200
NOTES = {
    "volcano.md": "# Volcanoes\n\nA volcano is an opening in the crust where molten rock, ash and gases "
                  "escape. Magma that reaches the surface is called lava.\n",
    "bees.txt": "Honey bees live in colonies ruled by a single queen. Worker bees collect nectar and "
                "turn it into honey. Drones mate with the queen.\n",
    "rivers.md": "# Rivers\n\nA river delta forms where a river deposits sediment as it enters the sea. "
                 "The Nile delta is one of the largest.\n",
    "piano.txt": "The piano is a keyboard instrument whose hammers strike strings. It has 88 keys.\n",
}


@pytest.fixture(scope="module")
def wordnet_client(wordnet_corpus, tmp_path_factory):
    directory, _, _ = wordnet_corpus
    client = MilvusClient(str(tmp_path_factory.mktemp("wndb") / "db"))
    report = index_directory(client, "wordnet", directory)
    print(f"\nindexed WordNet corpus: {report.summary()}")
    yield client
    client.close()


@pytest.fixture
def notes(client, tmp_path):
    for name, text in NOTES.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    index_directory(client, "notes", tmp_path)
    return client


def test_extractive_answers_cite_the_right_gloss_first(wordnet_corpus, wordnet_client):
    _, synsets, questions = wordnet_corpus
    assert len(questions) >= N_QUESTIONS
    right = 0
    for offset, question in questions[:N_QUESTIONS]:
        result = answer(wordnet_client, "wordnet", question, llm=EXTRACTIVE)
        assert result.mode == EXTRACTIVE and result.cited
        assert re.search(r"\[\d+\]$", result.text)
        first = result.citations[result.cited[0]]
        right += Path(first.source).stem == offset
    accuracy = right / N_QUESTIONS
    print(f"\nextractive RAG on {len(synsets)} WordNet synsets: right gloss cited first in "
          f"{right}/{N_QUESTIONS} = {accuracy:.1%}")
    assert accuracy >= 0.8


def test_llm_request_carries_numbered_chunks_and_answer_keeps_citations(notes, chat_server):
    server = chat_server(lambda body: "Lava is magma that reached the surface [1]. It erupts from "
                                      "volcanoes [1][2].")
    question = "What is lava?"
    result = answer(notes, "notes", question, k=3, url=server.url, model="test-model", api_key="sekret")
    assert len(server.requests) == 1
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sekret"
    body = request["body"]
    assert body["model"] == "test-model"
    assert body["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    prompt = body["messages"][1]["content"]
    assert prompt == result.prompt and question in prompt
    hits = search_documents(notes, "notes", question, k=3)
    for number, hit in enumerate(hits, start=1):  # every top chunk, in rank order, with its number
        assert f"[{number}] {Path(hit.source).name}" in prompt
        assert hit.text in prompt
        assert result.citations[number].source == hit.source
    positions = [prompt.index(f"[{n}] ") for n in range(1, len(hits) + 1)]
    assert positions == sorted(positions)
    assert Path(result.citations[1].source).name == "volcano.md"
    assert result.mode == "llm" and result.text.endswith("volcanoes [1][2].")
    assert result.cited == [1, 2]


def test_endpoint_from_environment(notes, chat_server, monkeypatch):
    server = chat_server(lambda body: f"model={body.get('model')} [1]")
    monkeypatch.setenv("HARRIER_LLM_URL", server.url + "/v1")
    monkeypatch.setenv("HARRIER_LLM_MODEL", "env-model")
    monkeypatch.delenv("HARRIER_LLM_API_KEY", raising=False)
    result = answer(notes, "notes", "How many keys does a piano have?", k=2)
    assert result.text == "model=env-model [1]"
    assert "Authorization" not in server.requests[0]["headers"]
    assert answer(notes, "notes", "How many keys does a piano have?", llm=EXTRACTIVE).mode == EXTRACTIVE
    assert len(server.requests) == 1


def test_endpoint_errors_are_reported(notes, chat_server):
    broken = chat_server(lambda body: "", status=500)
    with pytest.raises(LLMError, match="HTTP 500.*model exploded"):
        answer(notes, "notes", "What is a delta?", url=broken.url)
    with pytest.raises(LLMError, match="cannot reach"):
        ChatLLM("http://127.0.0.1:9/v1", timeout=2)([{"role": "user", "content": "hi"}])
    with pytest.raises(ParamError, match="http"):
        ChatLLM("ftp://example.org")


def test_extractive_answer_without_endpoint(notes, monkeypatch):
    monkeypatch.delenv("HARRIER_LLM_URL", raising=False)
    result = answer(notes, "notes", "Who rules a colony of honey bees?")
    assert result.mode == EXTRACTIVE
    assert result.text.startswith("Honey bees live in colonies ruled by a single queen. [")
    first = result.citations[result.cited[0]]
    assert Path(first.source).name == "bees.txt"
    assert Path(first.source).read_text()[first.start:first.end] == first.text


def test_prompt_stays_within_the_token_budget(notes):
    hits = search_documents(notes, "notes", "volcano lava magma", k=4)
    count = token_counter().count
    for budget in (90, 100, 130, 200, 400):
        prompt, citations, used = build_prompt("What is lava?", hits, budget)
        assert used <= budget
        assert count(SYSTEM_PROMPT) + count(prompt) <= budget + 2
        assert list(citations) == list(range(1, len(citations) + 1))
        for n, c in citations.items():
            assert f"[{n}]" in prompt and c.text in prompt
    _, tight, _ = build_prompt("What is lava?", hits, 100)  # the first chunk is cut to fit
    assert len(tight) == 1 and hits[0].text.startswith(tight[1].text) and tight[1].text != hits[0].text
    _, roomy, _ = build_prompt("What is lava?", hits, 400)
    assert len(roomy) == 4
    with pytest.raises(ParamError, match="token_budget"):
        build_prompt("What is lava?", hits, 60)


def test_rerank_hook_reorders_before_the_prompt(notes):
    seen = []

    def reverse(question, hits):
        seen.append(len(hits))
        return list(reversed(hits))

    plain = answer(notes, "notes", "What is lava?", k=2, llm=EXTRACTIVE)
    reranked = answer(notes, "notes", "What is lava?", k=2, llm=EXTRACTIVE, rerank=reverse)
    assert seen == [4]  # 4k candidates are offered to the reranker (only 4 chunks exist here)
    assert reranked.citations[1].source != plain.citations[1].source
    with pytest.raises(ParamError, match="rerank"):
        answer(notes, "notes", "What is lava?", rerank=lambda q, hits: ["nonsense"])


@pytest.mark.parametrize("kwargs, match", [({"question": ""}, "question"), ({"k": 0}, "k must"),
                                           ({"token_budget": 0}, "token_budget"), ({"llm": 42}, "llm")])
def test_answer_refuses_bad_arguments(notes, kwargs, match):
    args = {"question": "What is lava?", **kwargs}
    with pytest.raises(ParamError, match=match):
        answer(notes, "notes", **args)


def test_sentences_split_on_ends_paragraphs_and_headings():
    text = ("# Title line\nFirst one here. Second one (quoted.) Third one?\nStill the third\n"
            "paragraph.\n\n- item one\n- item two\n1. numbered thing")
    assert [text[s:e] for s, e in split_sentences(text)] == [
        "# Title line", "First one here.", "Second one (quoted.)", "Third one?",
        "Still the third\nparagraph.", "- item one", "- item two", "1. numbered thing"]
