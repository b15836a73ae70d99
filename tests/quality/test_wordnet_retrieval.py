"""The WordNet retrieval set: parsing, caching, queries, the clear error without wordnet-base,
and the hybrid check (hybrid nDCG@10 >= max(dense, BM25) - 0.01 on the test split)."""

import dataclasses

import pytest

from harrierdb.errors import ParamError
from harrierdb.quality import wordnet
from harrierdb.quality.evaluate import BUILTIN_SETTINGS, evaluate
from harrierdb.quality.wordnet import load_synsets, without_example, wordnet_retrieval

LICENSE = "  1 This software and database is being provided to you, the LICENSEE, by  \n"
FILES = {
    "data.noun": [
        "00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which is perceived to have its own distinct existence  ",
        "02084071 05 n 02 dog 0 domestic_dog 0 001 @ 02083346 n 0000 | a member of the genus Canis; "
        '"the dog barked all night"  ',
        "02121620 05 n 01 cat 0 001 @ 02120997 n 0000 | feline mammal usually having thick soft fur; "
        '"the cat sat on the mat"; "cats purr"  ',
    ],
    "data.verb": ["01166351 34 v 01 eat 0 001 @ 01157517 v 0000 01 + 02 00 | take in solid food; "
                  '"She was eating a banana"  '],
    "data.adj": ["00014358 00 s 02 abounding 0 galore(ip) 0 001 & 00013887 a 0000 | existing in abundance  "],
    "data.adv": ["00001740 02 r 01 barely 0 000 | only just  "],
}


@pytest.fixture
def fake_wordnet(tmp_path):
    root = tmp_path / "wordnet"
    root.mkdir()
    for name, lines in FILES.items():
        (root / name).write_text(LICENSE + "\n".join(lines) + "\n")
    return root


def test_parses_ids_lemmas_and_glosses(fake_wordnet, tmp_path):
    synsets = {s.id: s for s in load_synsets(directory=fake_wordnet, cache_dir=tmp_path / "cache")}
    assert set(synsets) == {"00001740-n", "02084071-n", "02121620-n", "01166351-v", "00014358-s", "00001740-r"}
    assert synsets["02084071-n"].lemmas == ("dog", "domestic dog")
    assert synsets["00014358-s"].lemmas == ("abounding", "galore")  # position marker dropped
    assert synsets["02121620-n"].examples == ["the cat sat on the mat", "cats purr"]
    assert synsets["00001740-r"].gloss == "only just"
    nouns = load_synsets(["n"], directory=fake_wordnet, cache_dir=tmp_path / "cache")
    assert {s.pos for s in nouns} == {"n"}
    adjectives = load_synsets(["a"], directory=fake_wordnet, cache_dir=tmp_path / "cache")
    assert [s.id for s in adjectives] == ["00014358-s"]  # satellites count as adjectives


def test_cache_is_used_and_refreshed(fake_wordnet, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = load_synsets(directory=fake_wordnet, cache_dir=cache)
    assert (cache / wordnet.CACHE_NAME).is_file()

    def no_parse(path):
        raise AssertionError("parsed again although the cache is fresh")

    monkeypatch.setattr(wordnet, "_parse_data_file", no_parse)
    assert load_synsets(directory=fake_wordnet, cache_dir=cache) == first
    monkeypatch.undo()
    (fake_wordnet / "data.adv").write_text(LICENSE + "00001740 02 r 01 barely 0 000 | only just; hardly  \n")
    changed = {s.id: s for s in load_synsets(directory=fake_wordnet, cache_dir=cache)}
    assert changed["00001740-r"].gloss == "only just; hardly"


def test_missing_wordnet_says_how_to_install(tmp_path):
    with pytest.raises(ParamError, match="apt-get install wordnet-base"):
        load_synsets(directory=tmp_path / "nowhere", cache_dir=tmp_path)


def test_queries_documents_and_qrels(fake_wordnet, tmp_path):
    data = wordnet_retrieval(6, 6, directory=fake_wordnet, cache_dir=tmp_path)
    assert data.queries["02121620-n"] == "the cat sat on the mat"
    assert data.corpus["02121620-n"] == 'feline mammal usually having thick soft fur; "cats purr"'
    assert data.queries["02084071-n"] == "the dog barked all night"
    assert data.corpus["02084071-n"] == "a member of the genus Canis"
    assert data.queries["00014358-s"] == "abounding, galore"  # no example: the lemmas
    assert data.corpus["00014358-s"] == "existing in abundance"
    assert data.qrels == {q: {q: 1} for q in data.queries}
    by_id = {s.id: s for s in load_synsets(directory=fake_wordnet, cache_dir=tmp_path)}
    lemmas = wordnet_retrieval(2, 6, query_from="lemmas", directory=fake_wordnet, cache_dir=tmp_path, seed=3)
    for qid, text in lemmas.queries.items():
        assert text == ", ".join(by_id[qid].lemmas)
        assert lemmas.corpus[qid] == by_id[qid].gloss  # lemma queries leave the gloss whole
    examples = wordnet_retrieval(3, None, query_from="example", directory=fake_wordnet, cache_dir=tmp_path)
    assert set(examples.queries) == {"02084071-n", "02121620-n", "01166351-v"}
    assert len(examples.corpus) == 6
    with pytest.raises(ParamError, match="only 3"):
        wordnet_retrieval(4, None, query_from="example", directory=fake_wordnet, cache_dir=tmp_path)
    with pytest.raises(ParamError):
        wordnet_retrieval(5, 2, directory=fake_wordnet, cache_dir=tmp_path)


def test_without_example():
    assert without_example('a gloss; "one"; "two"', "one") == 'a gloss; "two"'
    assert without_example('a gloss; "one"', "one") == "a gloss"


def test_real_wordnet_set(synsets):
    data = wordnet_retrieval(1000, 5000)
    assert len(data.queries) == 1000 and len(data.corpus) == 5000
    assert len(synsets) > 100_000
    for qid, text in data.queries.items():
        assert data.qrels[qid] == {qid: 1}
        assert f'"{text}"' not in data.corpus[qid]  # an example used as the query leaves its gloss


def test_hybrid_is_no_worse_than_dense_or_bm25(synsets, minilm, capsys):
    """The issue's check on the test split (seed 0): nDCG@10 of dense, BM25 and hybrid reported,
    and hybrid >= max(dense, BM25) - 0.01. The hybrid (English BM25, WeightedRanker(0.94, 0.06))
    was chosen on dev draws with seeds 1 and 2 and disjoint queries (see evaluate.HYBRID_WEIGHTS),
    not here. 1,000 queries over 3,000 glosses keeps this to 4,000 texts to embed; the 5,000-gloss
    split (benchmarks/bench_hybrid.py) gave dense 0.424, BM25 0.194 (English 0.260), hybrid 0.427."""
    data = wordnet_retrieval(1000, 3000, seed=0)
    model = lambda: minilm  # noqa: E731 - one factory: the dense and hybrid settings share vectors
    settings = [dataclasses.replace(BUILTIN_SETTINGS[name], embedding=model)
                if BUILTIN_SETTINGS[name].embedding is not None else BUILTIN_SETTINGS[name]
                for name in ("minilm-int8-flat", "bm25", "bm25-english", "hybrid-minilm-bm25")]
    report = evaluate(data, settings)
    with capsys.disabled():
        print("\n" + report.table())
    ndcg = {r.name: r.means["ndcg@10"] for r in report.results}
    ci = {r.name: r.intervals["ndcg@10"] for r in report.results}
    assert ndcg["hybrid-minilm-bm25"] >= max(ndcg["minilm-int8-flat"], ndcg["bm25"], ndcg["bm25-english"]) - 0.01
    assert ci["bm25-english"][0] > ci["bm25"][1]  # stemming and stop words help BM25 beyond the 95% intervals
