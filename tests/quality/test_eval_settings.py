"""Comparing settings: the pipeline on a tiny set, file loading, ``harrier eval``, and the
issue-5 WordNet check (MiniLM > TF-IDF > random on >= 1,000 queries)."""

import json

import pytest

from harrierdb.errors import ParamError
from harrierdb.quality.evaluate import (
    BUILTIN_SETTINGS,
    RandomEmbedding,
    RetrievalSet,
    Setting,
    evaluate,
    load_retrieval_files,
    random_vectors,
    tfidf,
)
from harrierdb.quality.wordnet import wordnet_retrieval

CORPUS = {
    "d1": "the cat sat on the mat", "d2": "dogs bark at night", "d3": "stock markets fell sharply",
    "d4": "the recipe needs two eggs and flour", "d5": "rain is expected tomorrow in the north",
    "d6": "the striker scored a late goal", "d7": "volcanoes erupt molten rock", "d8": "bees make honey",
}
QUERIES = {"q1": "cat mat", "q2": "bark dogs", "q3": "markets stock", "q4": "eggs flour recipe",
           "q5": "goal striker", "q6": "honey bees"}
QRELS = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}, "q4": {"d4": 1}, "q5": {"d6": 2}, "q6": {"d8": 1}}


def tiny():
    return RetrievalSet("tiny", dict(CORPUS), dict(QUERIES), QRELS)


def test_lexical_settings_beat_random_on_a_tiny_set():
    settings = [BUILTIN_SETTINGS["bm25"], BUILTIN_SETTINGS["tfidf"], BUILTIN_SETTINGS["random"],
                Setting("tfidf-hnsw-like-flat", tfidf, "SPARSE_INVERTED_INDEX", "IP")]
    report = evaluate(tiny(), settings, resamples=200)
    assert report["bm25"].means["ndcg@10"] == pytest.approx(1.0)
    assert report["tfidf"].means["recall@10"] == pytest.approx(1.0)
    assert report.results[-1].name == "random"  # ranked by nDCG@10, best first
    lo, hi = report["tfidf"].intervals["mrr"]
    assert lo <= report["tfidf"].means["mrr"] <= hi
    table = report.table()
    assert "ndcg@10 [95% CI]" in table and "random" in table.splitlines()[-1]
    json.dumps(report.to_dict())


def test_settings_are_checked():
    with pytest.raises(ParamError, match="unknown setting"):
        evaluate(tiny(), ["nope"])
    with pytest.raises(ParamError, match="needs an embedding"):
        Setting("empty")
    with pytest.raises(ParamError, match="unique"):
        evaluate(tiny(), ["bm25", "bm25"])
    with pytest.raises(ParamError, match="no judged query"):
        RetrievalSet("x", CORPUS, {"other": "text"}, QRELS)


def test_random_embedding_is_deterministic_and_unit_length():
    model = random_vectors()
    a, b = model.encode_documents(["x", "y"]), RandomEmbedding().encode_queries(["y"])
    assert a.shape == (2, 384) and (abs((a ** 2).sum(axis=1) - 1) < 1e-5).all()
    assert (a[1] == b[0]).all()


def write_files(tmp_path):
    (tmp_path / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": k, "title": "", "text": v}) + "\n" for k, v in CORPUS.items()))
    (tmp_path / "queries.tsv").write_text("".join(f"{k}\t{v}\n" for k, v in QUERIES.items()))
    (tmp_path / "qrels.txt").write_text("".join(f"{q} 0 {d} {r}\n" for q, j in QRELS.items() for d, r in j.items()))
    return tmp_path / "qrels.txt", tmp_path / "corpus.jsonl", tmp_path / "queries.tsv"


def test_load_files_and_harrier_eval(tmp_path, run_cli, capsys):
    qrels, corpus, queries = write_files(tmp_path)
    data = load_retrieval_files(qrels, corpus, queries)
    assert data.corpus == CORPUS and data.queries == QUERIES and data.qrels == QRELS
    out = tmp_path / "report.json"
    assert run_cli(["eval", "--qrels", str(qrels), "--corpus", str(corpus), "--queries", str(queries),
                    "--settings", "bm25,random", "--limit", "4", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "bm25" in printed and "nDCG" not in printed and "ndcg@10" in printed
    report = json.loads(out.read_text())
    assert report["queries"] == 4 and [r["name"] for r in report["results"]] == ["bm25", "random"]
    assert run_cli(["eval", "--qrels", str(qrels)]) == 2  # the three files go together
    assert run_cli(["eval", "--list-settings"]) == 0
    assert "minilm-int8-hnsw" in capsys.readouterr().out


def test_wordnet_minilm_beats_tfidf_beats_random(synsets, minilm, capsys):
    """The issue-5 check: nDCG@10 on 1,000 WordNet queries over 3,000 glosses (4,000 texts to embed,
    about 16 CPU-seconds; `harrier eval --dataset wordnet --corpus-size M` runs larger sets)."""
    data = wordnet_retrieval(1000, 3000, seed=0)
    settings = [BUILTIN_SETTINGS[name] for name in
                ("minilm-int8-flat", "tfidf", "bm25", "hybrid-minilm-bm25-rrf", "random")]
    report = evaluate(data, settings)
    with capsys.disabled():
        print("\n" + report.table())
    ndcg = {r.name: r.means["ndcg@10"] for r in report.results}
    ci = {r.name: r.intervals["ndcg@10"] for r in report.results}
    assert ndcg["minilm-int8-flat"] > ndcg["tfidf"] > ndcg["random"]
    assert ci["minilm-int8-flat"][0] > ci["tfidf"][1]  # apart beyond their 95% intervals
    assert ci["tfidf"][0] > ci["random"][1]
    assert ndcg["random"] < 0.02
