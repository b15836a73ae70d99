"""Retrieval metrics: hand-computed cases, file formats, and equality with trec_eval (pytrec_eval)."""

import math

import numpy as np
import pytest

from harrierdb.errors import ParamError
from harrierdb.quality import metrics
from harrierdb.quality.metrics import (
    ann_recall,
    bootstrap_ci,
    evaluate,
    load_qrels,
    load_run,
    mean_average_precision,
    mrr,
    ndcg_at_k,
    per_query,
    precision_at_k,
    ranking,
    recall_at_k,
)

# one query: relevant a (3), b (2), d (1); c judged not relevant; ranked x, a, d, b
QRELS = {"q1": {"a": 3, "b": 2, "c": 0, "d": 1}}
RUN = {"q1": {"x": 0.9, "a": 0.8, "d": 0.7, "b": 0.6}}


def test_hand_computed_values():
    assert recall_at_k(QRELS, RUN, 2) == pytest.approx(1 / 3)
    assert recall_at_k(QRELS, RUN, 10) == 1.0
    assert precision_at_k(QRELS, RUN, 2) == pytest.approx(1 / 2)
    assert precision_at_k(QRELS, RUN, 5) == pytest.approx(3 / 5)  # the cut-off is the denominator
    assert mrr(QRELS, RUN) == pytest.approx(1 / 2)
    assert mrr(QRELS, RUN, k=1) == 0.0
    assert mean_average_precision(QRELS, RUN) == pytest.approx((1 / 2 + 2 / 3 + 3 / 4) / 3)
    dcg = 3 / math.log2(3) + 1 / math.log2(4)
    idcg = 3 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(QRELS, RUN, 3) == pytest.approx(dcg / idcg)
    perfect = {"q1": {"a": 3, "b": 2, "d": 1}}
    assert ndcg_at_k(QRELS, perfect, 10) == pytest.approx(1.0)


def test_ties_missing_queries_and_unjudged_queries():
    assert ranking({"a": 1.0, "b": 1.0, "c": 2.0}) == ["c", "b", "a"]  # trec_eval: ties by doc id, descending
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 0}}  # q3 has nothing relevant: left out
    run = {"q1": {"a": 1.0}}  # q2 missing from the run: scores 0
    scores = per_query(qrels, run, ["recall@10"])
    assert scores == {"recall@10": {"q1": 1.0, "q2": 0.0}}
    assert evaluate(qrels, run, ["recall@10"]) == {"recall@10": 0.5}


@pytest.mark.parametrize("name", ["ndcg", "recall@0", "hits@10", "precision"])
def test_bad_metric_names(name):
    with pytest.raises(ParamError):
        metrics.parse_metric(name)


def test_load_trec_and_beir_qrels(tmp_path):
    trec = tmp_path / "qrels.txt"
    trec.write_text("q1 0 d1 2\nq1 0 d2 0\n\nq2 0 d3 1\n")
    assert load_qrels(trec) == {"q1": {"d1": 2, "d2": 0}, "q2": {"d3": 1}}
    beir = tmp_path / "test.tsv"
    beir.write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq2\td3\t1\n")
    assert load_qrels(beir) == {"q1": {"d1": 2}, "q2": {"d3": 1}}
    run = tmp_path / "run.txt"
    run.write_text("q1 Q0 d1 1 3.5 tag\nq1 Q0 d2 2 1.0 tag\n")
    assert load_run(run) == {"q1": {"d1": 3.5, "d2": 1.0}}
    bad = tmp_path / "bad.txt"
    bad.write_text("q1 d1\n")
    with pytest.raises(ParamError, match="TREC"):
        load_qrels(bad)
    with pytest.raises(ParamError, match="no such file"):
        load_qrels(tmp_path / "missing.txt")


def test_equal_to_trec_eval_on_random_runs():
    pytrec_eval = pytest.importorskip("pytrec_eval")
    rng = np.random.default_rng(7)
    docs = [f"d{i}" for i in range(60)]
    qrels, run = {}, {}
    for q in range(40):
        judged = rng.choice(docs, 15, replace=False)
        qrels[f"q{q}"] = {d: int(rng.integers(0, 4)) for d in judged}
        qrels[f"q{q}"][judged[0]] = int(rng.integers(1, 4))  # at least one relevant
        retrieved = rng.choice(docs, int(rng.integers(5, 40)), replace=False)
        run[f"q{q}"] = {d: float(rng.standard_normal()) for d in retrieved}
    theirs = pytrec_eval.RelevanceEvaluator(
        qrels, {"ndcg_cut.5", "ndcg_cut.10", "recall.10", "P.5", "recip_rank", "map"}).evaluate(run)
    names = {"ndcg@5": "ndcg_cut_5", "ndcg@10": "ndcg_cut_10", "recall@10": "recall_10",
             "precision@5": "P_5", "mrr": "recip_rank", "map": "map"}
    ours = per_query(qrels, run, list(names))
    for mine, trec in names.items():
        for qid in qrels:
            assert ours[mine][qid] == pytest.approx(theirs[qid][trec], abs=1e-9), (mine, qid)


def test_ann_recall():
    exact = [[1, 2, 3, 4], [5, 6, 7, 8]]
    found = [[1, 2, 9, 4], [8, 7, 6, 5]]
    assert ann_recall(found, exact) == pytest.approx((3 / 4 + 1) / 2)
    assert ann_recall(found, exact, k=2) == pytest.approx((1 + 0) / 2)
    assert ann_recall(np.array(found), np.array(exact), k=4) == pytest.approx(0.875)
    with pytest.raises(ParamError):
        ann_recall(found, exact[:1])
    with pytest.raises(ParamError):
        ann_recall(found, exact, k=5)


def test_bootstrap_ci():
    rng = np.random.default_rng(0)
    values = rng.random(400)
    lo, hi = bootstrap_ci(values, seed=1)
    assert lo < values.mean() < hi
    assert bootstrap_ci(values, seed=1) == (lo, hi)  # the seed fixes it
    se = values.std() / math.sqrt(len(values))
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.15)
    lo99, hi99 = bootstrap_ci(values, confidence=0.99, seed=1)
    assert lo99 < lo and hi < hi99
    assert bootstrap_ci([0.5] * 10) == (0.5, 0.5)
    with pytest.raises(ParamError):
        bootstrap_ci([])
    with pytest.raises(ParamError):
        bootstrap_ci(values, confidence=1.5)
