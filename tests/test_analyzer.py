"""The text analyzer that BM25 and run_analyzer share (Milvus analyzer_params)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("Stemmer")

from harrierdb.analyzer import ENGLISH_STOP_WORDS, Analyzer, expand_params, run_analyzer  # noqa: E402
from harrierdb.errors import ParamError  # noqa: E402


def test_standard_tokenizer_words_numbers_apostrophes_and_cjk():
    text = "Don’t panic: U.S.A. costs $1,000.50 at example.com, the dogs' bowls; İce_Age 東京タワー!"
    assert Analyzer().analyze(text) == [
        "don't", "panic", "u.s.a", "costs", "1,000.50", "at", "example.com", "the", "dogs",
        "bowls", "i̇ce_age", "東", "京", "タワー"]


def test_default_is_milvus_standard_analyzer():
    assert run_analyzer("The Quick, brown FOX.") == ["the", "quick", "brown", "fox"]
    assert Analyzer.from_params({"type": "standard"}) == Analyzer.from_params(None) == Analyzer()


def test_english_built_in_matches_its_custom_definition():
    english = {"tokenizer": "standard", "filter": [
        "lowercase", {"type": "stemmer", "language": "english"}, {"type": "stop", "stop_words": "_english_"}]}
    texts = ["The runners were running into the gardens", "Cats and dogs are friends", ""]
    assert run_analyzer(texts, {"type": "english"}) == run_analyzer(texts, english) == [
        ["runner", "were", "run", "garden"], ["cat", "dog", "friend"], []]


def test_keyword_form_and_params_round_trip():
    a = Analyzer(stop_words="english", stemmer="english")
    assert a.analyze("The dogs' owners ran to the parks") == ["dog", "owner", "ran", "park"]
    b = Analyzer.from_params(a.params)
    assert b == a and b.analyze("Running in the gardens") == a.analyze("Running in the gardens")
    assert Analyzer(lowercase=False).analyze("Hello World") == ["Hello", "World"]


def test_stop_word_lists():
    assert len(ENGLISH_STOP_WORDS) == 33
    assert Analyzer(stop_words=["of", "the"]).analyze("The Lord of the Rings") == ["lord", "rings"]
    params = {"type": "standard", "stop_words": ["of"]}
    assert run_analyzer("the end of it", params) == ["the", "end", "it"]
    custom = {"type": "english", "stop_words": ["lord"]}  # replaces _english_, as in Milvus
    assert run_analyzer("The Lords of the Rings", custom) == ["the", "of", "the", "ring"]


def test_other_filters_and_whitespace_tokenizer():
    params = {"tokenizer": "whitespace",
              "filter": ["asciifolding", "lowercase", "alphanumonly", {"type": "length", "max": 6}]}
    assert run_analyzer("Naïve Café résumé-writing x42 extraordinary", params) == ["naive", "cafe", "x42"]
    assert run_analyzer("a-b c", {"tokenizer": {"type": "whitespace"}}) == ["a-b", "c"]


def test_run_analyzer_list_and_string():
    assert run_analyzer(["One two", "three"]) == [["one", "two"], ["three"]]
    assert run_analyzer([]) == []


@pytest.mark.parametrize("params, fragment", [
    ({"type": "chinese"}, "unknown built-in analyzer type"),
    ({"tokenizer": "jieba"}, "unknown tokenizer"),
    ({"tokenizer": "standard", "filter": ["uppercase"]}, "unknown filter"),
    ({"tokenizer": "standard", "filter": [{"type": "stemmer", "language": "klingon"}]}, "stemmer language"),
    ({"tokenizer": "standard", "filter": [{"type": "stop", "stop_words": "_french_"}]}, "stop word list"),
    ({"tokenizer": "standard", "filter": [{"type": "length"}]}, "length filter"),
    ({"tokenizer": "standard", "filter": "lowercase"}, "list of filters"),
    ({"tokenizer": "standard", "filters": []}, "unknown analyzer_params keys"),
    ({"filter": ["lowercase"]}, "need a 'tokenizer'"),
    ({"type": "english", "filter": []}, "takes only stop_words"),
    ("english", "must be a dict"),
])
def test_bad_params_raise_param_error(params, fragment):
    with pytest.raises(ParamError, match=fragment):
        Analyzer.from_params(params)


def test_bad_inputs():
    with pytest.raises(ParamError, match="expects a string"):
        Analyzer().analyze(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(ParamError):
        run_analyzer(42)  # type: ignore[arg-type]
    with pytest.raises(ParamError):
        Analyzer(lowercase="yes")  # type: ignore[arg-type]
    assert expand_params(None) == {"tokenizer": "standard", "filter": ["lowercase"]}


def test_threads_share_an_analyzer():
    a = Analyzer.from_params({"type": "english"})
    texts = [f"running dogs number {i} jumped over fences" for i in range(2000)]
    expected = [a.analyze(t) for t in texts]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(a.analyze, texts)) == expected


def test_fast_enough_for_a_dictionary_of_glosses():
    a = Analyzer.from_params({"type": "english"})
    glosses = [f"a domesticated carnivorous mammal number {i} that typically has a long snout"
               for i in range(20_000)]
    start = time.perf_counter()
    for g in glosses:
        a.analyze(g)
    assert time.perf_counter() - start < 5.0  # ~0.4 s here: 117k glosses in a few seconds
