"""Retrieval metrics over TREC/BEIR relevance judgements, computed as ``trec_eval`` does.

* ``qrels``: ``{query_id: {doc_id: relevance}}`` (graded; relevance >= 1 counts as relevant);
* a ``run``: ``{query_id: {doc_id: score}}``, ranked by score, highest first, ties broken by
  doc id in reverse lexicographic order (``trec_eval``'s rule, so results match it exactly).

Metric names: ``ndcg@k`` (gain = relevance, discount log2(rank + 1)), ``recall@k``,
``precision@k``, ``mrr`` (or ``mrr@k``), ``map`` (or ``map@k``). Queries with no relevant
document are left out; a judged query missing from the run scores 0.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from harrierdb.errors import ParamError

Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]

_METRIC = re.compile(r"^(ndcg|recall|precision|p|mrr|map)(?:@(\d+))?$")


# -- reading judgements and runs ----------------------------------------------------------------

def load_qrels(path: str | Path) -> Qrels:
    """Judgements from a TREC file (``qid 0 docid rel``) or a BEIR TSV (``query-id corpus-id score``).

    The format is told by the number of columns; a BEIR header line is skipped.
    """
    qrels: Qrels = {}
    for lineno, cells in _rows(path):
        if len(cells) == 4:
            qid, _, docid, rel = cells
        elif len(cells) == 3:
            qid, docid, rel = cells
        else:
            raise ParamError(f"{path}:{lineno}: expected 'qid 0 docid rel' (TREC) or "
                             f"'query-id<TAB>corpus-id<TAB>score' (BEIR), got {len(cells)} columns")
        if lineno == 1 and not _is_number(rel):  # BEIR header: query-id corpus-id score
            continue
        if not _is_number(rel):
            raise ParamError(f"{path}:{lineno}: relevance {rel!r} is not a number")
        qrels.setdefault(qid, {})[docid] = int(float(rel))
    if not qrels:
        raise ParamError(f"{path}: no judgements found")
    return qrels


def load_run(path: str | Path) -> Run:
    """A TREC run file: ``qid Q0 docid rank score tag`` per line."""
    run: Run = {}
    for lineno, cells in _rows(path):
        if len(cells) != 6 or not _is_number(cells[4]):
            raise ParamError(f"{path}:{lineno}: expected 'qid Q0 docid rank score tag'")
        run.setdefault(cells[0], {})[cells[2]] = float(cells[4])
    return run


def _rows(path: str | Path) -> Iterable[tuple[int, list[str]]]:
    p = Path(path)
    if not p.is_file():
        raise ParamError(f"no such file: {str(p)!r}")
    with p.open(encoding="utf-8", newline="") as f:
        tsv = "\t" in f.readline()
        f.seek(0)
        lines = csv.reader(f, delimiter="\t") if tsv else (line.split() for line in f)
        for lineno, cells in enumerate(lines, 1):
            cells = [c.strip() for c in cells]
            if any(cells):
                yield lineno, cells


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# -- one query ----------------------------------------------------------------------------------

def ranking(scores: Mapping[str, float]) -> list[str]:
    """Doc ids by score, highest first; ties by doc id, reverse lexicographic (as trec_eval)."""
    by_id = sorted(scores, reverse=True)
    return sorted(by_id, key=lambda d: -scores[d])  # stable: keeps the doc-id order in ties


def query_metric(name: str, judged: Mapping[str, int], ranked: Sequence[str]) -> float:
    """The metric ``name`` for one query's judgements and ranked doc ids."""
    kind, k = parse_metric(name)
    top = ranked if k is None else ranked[:k]
    relevant = {d for d, rel in judged.items() if rel > 0}
    hits = [d in relevant for d in top]
    if kind == "recall":
        return sum(hits) / len(relevant)
    if kind == "precision":
        return sum(hits) / (k if k is not None else max(len(top), 1))
    if kind == "mrr":
        return next((1.0 / rank for rank, hit in enumerate(hits, 1) if hit), 0.0)
    if kind == "map":
        found, total = 0, 0.0
        for rank, hit in enumerate(hits, 1):
            if hit:
                found += 1
                total += found / rank
        return total / len(relevant)
    # ndcg
    dcg = sum(judged.get(d, 0) / math.log2(rank + 1) for rank, d in enumerate(top, 1) if judged.get(d, 0) > 0)
    ideal = sorted((rel for rel in judged.values() if rel > 0), reverse=True)
    idcg = sum(rel / math.log2(rank + 1) for rank, rel in enumerate(ideal[:k] if k else ideal, 1))
    return dcg / idcg


def parse_metric(name: str) -> tuple[str, int | None]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``; ParamError for unknown names."""
    m = _METRIC.match(name.strip().lower()) if isinstance(name, str) else None
    if m is None:
        raise ParamError(f"unknown metric {name!r}; use ndcg@k, recall@k, precision@k, mrr[@k] or map[@k]")
    kind = "precision" if m.group(1) == "p" else m.group(1)
    k = int(m.group(2)) if m.group(2) else None
    if k is None and kind in ("ndcg", "recall", "precision"):
        raise ParamError(f"metric {name!r} needs a cut-off, e.g. {kind}@10")
    if k is not None and k < 1:
        raise ParamError(f"metric {name!r}: the cut-off must be >= 1")
    return kind, k


# -- whole runs ---------------------------------------------------------------------------------

def per_query(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]],
              metrics: Sequence[str] = ("ndcg@10", "recall@10", "mrr", "map")) -> dict[str, dict[str, float]]:
    """``{metric: {query_id: value}}`` over the judged queries that have a relevant document."""
    for name in metrics:
        parse_metric(name)
    out: dict[str, dict[str, float]] = {name: {} for name in metrics}
    for qid, judged in qrels.items():
        if not any(rel > 0 for rel in judged.values()):
            continue
        ranked = ranking(run.get(qid, {}))
        for name in metrics:
            out[name][qid] = query_metric(name, judged, ranked)
    return out


def evaluate(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]],
             metrics: Sequence[str] = ("ndcg@10", "recall@10", "mrr", "map")) -> dict[str, float]:
    """Each metric's mean over the judged queries."""
    scores = per_query(qrels, run, metrics)
    return {name: float(np.mean(list(values.values()))) if values else 0.0
            for name, values in scores.items()}


def recall_at_k(qrels: Mapping, run: Mapping, k: int) -> float:
    return evaluate(qrels, run, [f"recall@{k}"])[f"recall@{k}"]


def precision_at_k(qrels: Mapping, run: Mapping, k: int) -> float:
    return evaluate(qrels, run, [f"precision@{k}"])[f"precision@{k}"]


def ndcg_at_k(qrels: Mapping, run: Mapping, k: int) -> float:
    return evaluate(qrels, run, [f"ndcg@{k}"])[f"ndcg@{k}"]


def mrr(qrels: Mapping, run: Mapping, k: int | None = None) -> float:
    name = "mrr" if k is None else f"mrr@{k}"
    return evaluate(qrels, run, [name])[name]


def mean_average_precision(qrels: Mapping, run: Mapping, k: int | None = None) -> float:
    name = "map" if k is None else f"map@{k}"
    return evaluate(qrels, run, [name])[name]


# -- ANN recall and confidence intervals --------------------------------------------------------

def ann_recall(found: Sequence[Sequence], exact: Sequence[Sequence], k: int | None = None) -> float:
    """Mean over queries of |found[:k] & exact[:k]| / k: how many true neighbours an index returns."""
    if len(found) != len(exact):
        raise ParamError(f"ann_recall: {len(found)} result lists but {len(exact)} exact lists")
    if len(exact) == 0:
        raise ParamError("ann_recall needs at least one query")
    total = 0.0
    for got, want in zip(found, exact):
        kk = k if k is not None else len(want)
        if kk < 1 or len(want) < kk:
            raise ParamError(f"ann_recall: k={kk} but an exact list has {len(want)} ids")
        total += len(set(list(got)[:kk]) & set(list(want)[:kk])) / kk
    return total / len(exact)


def bootstrap_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95, resamples: int = 1000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over queries (resampled with replacement)."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or len(x) == 0:
        raise ParamError("bootstrap_ci needs a non-empty 1-D list of per-query values")
    if not 0 < confidence < 1:
        raise ParamError(f"confidence must be in (0, 1), got {confidence!r}")
    if resamples < 1:
        raise ParamError(f"resamples must be >= 1, got {resamples!r}")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // len(x))  # bound the index matrix's memory
    for start in range(0, resamples, chunk):
        n = min(chunk, resamples - start)
        means[start:start + n] = x[rng.integers(0, len(x), (n, len(x)))].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(lo), float(hi)
