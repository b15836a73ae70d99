"""TfidfEmbedding and BM25Embedding: sparse vectors whose inner products are the scores."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("scipy")
pytest.importorskip("sklearn")
pytest.importorskip("Stemmer")

from scipy import sparse  # noqa: E402

from harrierdb.analyzer import Analyzer  # noqa: E402
from harrierdb.embed.base import EmbeddingFunction  # noqa: E402
from harrierdb.embed.sparse import BM25Embedding, TfidfEmbedding, to_sparse_dicts  # noqa: E402
from harrierdb.errors import ParamError  # noqa: E402

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A dog and a cat are friends; the dog barks, the cat meows.",
    "Foxes are quick and clever animals that live in forests.",
    "The cat sleeps all day long on the warm sofa.",
    "Ice is frozen water; glaciers are rivers of ice.",
    "Steam is water vapour, and it is hot.",
    "Quick quick quick: the fox ran from the dogs and the hunters.",
    "Democracy is government by the people, through elected representatives.",
    "",
]
QUERIES = ["quick fox", "lazy cats", "dog dog cat sofa", "frozen water ice", "zebra", "the",
           "government of the people by the people"]


def reference_bm25(query: list[str], docs: list[list[str]], k1: float, b: float) -> np.ndarray:
    """BM25 with Lucene's IDF and the (k1 + 1) numerator, term by term."""
    n = len(docs)
    avgdl = sum(map(len, docs)) / n
    scores = np.zeros(n)
    for term in query:
        df = sum(term in d for d in docs)
        if df == 0:
            continue
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for i, d in enumerate(docs):
            tf = d.count(term)
            if tf:
                scores[i] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avgdl))
    return scores


@pytest.mark.parametrize("k1, b", [(1.2, 0.75), (1.5, 0.3), (0.9, 1.0), (2.0, 0.0)])
def test_bm25_inner_product_is_the_bm25_score(k1, b):
    model = BM25Embedding(k1=k1, b=b, analyzer={"type": "english"}).fit(CORPUS)
    docs = [model.analyzer.analyze(t) for t in CORPUS]
    d = model.encode_documents(CORPUS)
    for q in QUERIES:
        ours = (model.encode_queries([q]) @ d.T).toarray().ravel()
        np.testing.assert_allclose(ours, reference_bm25(model.analyzer.analyze(q), docs, k1, b),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k1, b", [(1.2, 0.75), (1.5, 0.3)])
def test_bm25_agrees_with_bm25s_lucene(k1, b):
    """bm25s's "lucene" method has the same IDF and drops the constant (k1 + 1) factor."""
    bm25s = pytest.importorskip("bm25s")
    model = BM25Embedding(k1=k1, b=b, analyzer={"type": "english"}).fit(CORPUS)
    ref = bm25s.BM25(method="lucene", k1=k1, b=b)
    ref.index([model.analyzer.analyze(t) for t in CORPUS], show_progress=False)
    d = model.encode_documents(CORPUS)
    worst = 0.0
    for q in QUERIES:
        tokens = model.analyzer.analyze(q)
        theirs = ref.get_scores(tokens) * (k1 + 1) if tokens else np.zeros(len(CORPUS))
        ours = (model.encode_queries([q]) @ d.T).toarray().ravel()
        worst = max(worst, float(np.abs(ours - theirs).max()))
        assert np.array_equal(np.argsort(-ours, kind="stable")[:3], np.argsort(-theirs, kind="stable")[:3]) \
            or np.allclose(np.sort(ours)[-3:], np.sort(theirs)[-3:], atol=1e-5)
    assert worst < 1e-5


def test_bm25_statistics_and_sides():
    model = BM25Embedding().fit(["a b c", "a a d", "e b"])
    assert model.vocabulary == ["a", "b", "c", "d", "e"] and model.dim == 5
    assert model.n_docs == 3 and model.avgdl == pytest.approx(8 / 3)
    np.testing.assert_array_equal(model.df, [2, 2, 1, 1, 1])
    np.testing.assert_allclose(model.idf, np.log1p((3 - model.df + 0.5) / (model.df + 0.5)))
    q = model.encode_queries(["a a zebra"])  # repeated query terms count again; unknown dropped
    assert to_sparse_dicts(q) == [{0: pytest.approx(2 * model.idf[0])}]
    doc = model.encode_documents(["a a d"]).toarray()[0]
    norm = 1.2 * (1 - 0.75 + 0.75 * 3 / model.avgdl)
    assert doc[0] == pytest.approx(2 * 2.2 / (2 + norm)) and doc[3] == pytest.approx(2.2 / (1 + norm))
    assert model.score("a", ["a b c", "e b"]) == pytest.approx([model.idf[0] * 2.2 / (1 + norm), 0.0])


def test_outputs_are_float32_csr_arrays():
    for model in (BM25Embedding().fit(CORPUS), TfidfEmbedding().fit(CORPUS)):
        assert isinstance(model, EmbeddingFunction)
        for out in (model.encode_documents(CORPUS[:3]), model.encode_queries(["fox"]), model(["x"])):
            assert isinstance(out, sparse.csr_array) and out.dtype == np.float32
            assert out.shape[1] == model.dim == len(model.vocabulary)
        assert model.encode_documents([]).shape == (0, model.dim)
        assert model.identity.dim == model.dim and model.identity.metric == "IP"


def test_tfidf_matches_sklearn_with_the_same_analyzer():
    from sklearn.feature_extraction.text import TfidfVectorizer

    analyzer = Analyzer(stop_words="english", stemmer="english")
    model = TfidfEmbedding(analyzer, sublinear_tf=True).fit(CORPUS)
    ref = TfidfVectorizer(analyzer=analyzer.analyze, sublinear_tf=True).fit(CORPUS)
    assert model.vocabulary == list(ref.get_feature_names_out())
    np.testing.assert_allclose(model.encode_documents(QUERIES).toarray(),
                               ref.transform(QUERIES).toarray(), rtol=1e-6)
    rows = model.encode_documents(CORPUS[:-1]).toarray()
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-6)
    assert model.identity.normalized
    scores = (model.encode_queries(["frozen ice"]) @ model.encode_documents(CORPUS).T).toarray()
    assert scores.argmax() == 4


@pytest.mark.parametrize("cls, kwargs", [(BM25Embedding, {"k1": 1.4, "b": 0.6}),
                                         (TfidfEmbedding, {"sublinear_tf": True, "min_df": 1})])
def test_save_load_round_trip(tmp_path, cls, kwargs):
    model = cls(analyzer={"type": "english"}, **kwargs).fit(CORPUS)
    model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["arrays.npz", "config.json"]
    loaded = cls.load(tmp_path / "m")
    assert loaded.identity == model.identity
    assert loaded.analyzer == model.analyzer and loaded.vocabulary == model.vocabulary
    for enc in ("encode_documents", "encode_queries"):
        a, b = getattr(model, enc)(QUERIES), getattr(loaded, enc)(QUERIES)
        assert (a != b).nnz == 0


def test_identity_tracks_parameters_and_corpus(tmp_path):
    base = BM25Embedding().fit(CORPUS).identity
    assert BM25Embedding().fit(CORPUS).identity == base
    assert BM25Embedding(k1=1.3).fit(CORPUS).identity.weights_sha256 != base.weights_sha256
    assert BM25Embedding().fit(CORPUS[:-1]).identity.weights_sha256 != base.weights_sha256
    assert BM25Embedding(analyzer={"type": "english"}).fit(CORPUS).identity != base
    tfidf = TfidfEmbedding().fit(CORPUS).identity
    assert tfidf.name == "tfidf" and tfidf.weights_sha256 != TfidfEmbedding(norm=None).fit(CORPUS).identity.weights_sha256


def test_load_refuses_edited_or_foreign_files(tmp_path):
    BM25Embedding().fit(CORPUS).save(tmp_path / "bm25")
    with pytest.raises(ParamError, match="not 'tfidf'"):
        TfidfEmbedding.load(tmp_path / "bm25")
    config = json.loads((tmp_path / "bm25" / "config.json").read_text())
    config["params"]["k1"] = 3.0
    (tmp_path / "bm25" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ParamError, match="SHA-256"):
        BM25Embedding.load(tmp_path / "bm25")
    with pytest.raises(ParamError, match="not a saved"):
        BM25Embedding.load(tmp_path / "missing")


def test_to_sparse_dicts():
    m = sparse.csr_array(np.array([[0, 1.5, 0], [0, 0, 0], [2, 0, 3]], dtype=np.float32))
    assert to_sparse_dicts(m) == [{1: 1.5}, {}, {0: 2.0, 2: 3.0}]
    assert BM25Embedding.to_sparse_dicts(m.toarray()) == to_sparse_dicts(m)


def test_input_validation():
    with pytest.raises(ParamError, match="not fitted"):
        BM25Embedding().encode_documents(["x"])
    with pytest.raises(ParamError, match="not fitted"):
        _ = TfidfEmbedding().identity
    model = BM25Embedding().fit(CORPUS)
    with pytest.raises(ParamError, match="wrap it in a list"):
        model.encode_queries("quick fox")
    with pytest.raises(ParamError, match="item 1"):
        model.encode_documents(["ok", 3])
    with pytest.raises(ParamError, match="no tokens"):
        BM25Embedding().fit(["", "  ... "])
    with pytest.raises(ParamError, match="cannot fit TF-IDF"):
        TfidfEmbedding().fit(["", "!!"])
    for bad in ({"k1": -1}, {"b": 1.5}, {"k1": "1"}):
        with pytest.raises(ParamError):
            BM25Embedding(**bad)
    with pytest.raises(ParamError, match="norm"):
        TfidfEmbedding(norm="max")
    with pytest.raises(ParamError, match="analyzer"):
        BM25Embedding(analyzer="english")  # type: ignore[arg-type]
