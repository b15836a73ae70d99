"""Choosing the MiniLM + BM25 hybrid on a WordNet dev split, then scoring it on the test split.

    python benchmarks/bench_hybrid.py [--queries 1000] [--corpus-size 5000] [--skip-dev] [--skip-test]

* DEV: ``wordnet_retrieval`` draws with seeds 1 and 2 (same sizes as the test split), minus
  every query that is a test query or a query of the earlier dev draw. The engine returns the
  top-100 dense (MiniLM int8, FLAT cosine) and BM25 (standard and English analyzers) lists once;
  each fusion is then applied to those lists and scored (mean nDCG@10 over the dev draws). The
  built-in ``hybrid-minilm-bm25`` setting of :mod:`harrierdb.quality.evaluate` was chosen here.
* TEST: seed 0 (the split the tests and ``harrier eval --dataset wordnet`` use), scored once with
  the built-in settings through ``evaluate`` (the engine's ``hybrid_search``), with 95% bootstrap
  intervals, and the issue's check: hybrid >= max(dense, BM25) - 0.01.

MiniLM vectors are cached as .npy files under ``--cache`` (default /tmp/harrierdb-bench-hybrid).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from harrierdb import MilvusClient
from harrierdb.embed.base import EmbeddingFunction, Embeddings, ModelIdentity
from harrierdb.quality.evaluate import BUILTIN_SETTINGS, ENGLISH, RetrievalSet, evaluate
from harrierdb.quality.metrics import bootstrap_ci, per_query
from harrierdb.quality.wordnet import wordnet_retrieval
from harrierdb.schema import DataType, Function, FunctionType

DEPTH = 100
TEST_SEED, DEV_SEEDS = 0, (1, 2)
ANALYZERS = {"standard": None, "english": ENGLISH}

Hits = dict[str, list[tuple[str, float]]]  # query id -> [(doc id, score)], best first


class CachedMiniLM(EmbeddingFunction):
    """MiniLM int8 with its vectors saved as .npy files, keyed by a hash of the texts."""

    def __init__(self, cache: Path):
        self.cache = cache
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from harrierdb.embed.dense import SentenceEmbedding

            self._model = SentenceEmbedding(precision="int8")
        return self._model

    @property
    def identity(self) -> ModelIdentity:
        return self.model.identity

    def _cached(self, texts: Sequence[str], kind: str) -> Embeddings:
        key = hashlib.sha256(("\0".join(texts) + "\0" + kind).encode()).hexdigest()[:20]
        path = self.cache / f"minilm-int8-{kind}-{len(texts)}-{key}.npy"
        if path.is_file():
            return Embeddings(np.load(path), self.identity)
        started = time.perf_counter()
        encode = self.model.encode_documents if kind == "doc" else self.model.encode_queries
        vectors = np.asarray(encode(list(texts)))
        print(f"  encoded {len(texts)} {kind} texts in {time.perf_counter() - started:.0f} s", flush=True)
        self.cache.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
        return Embeddings(vectors, self.identity)

    def encode_documents(self, items: Sequence[str]) -> Embeddings:
        return self._cached(items, "doc")

    def encode_queries(self, items: Sequence[str]) -> Embeddings:
        return self._cached(items, "query")


# -- splits -------------------------------------------------------------------------------------

def splits(n_queries: int, corpus_size: int) -> tuple[RetrievalSet, list[RetrievalSet]]:
    """The test split and the dev draws, whose queries are disjoint from the test's and each other's."""
    test = wordnet_retrieval(n_queries, corpus_size, seed=TEST_SEED)
    taken = set(test.queries)
    devs = []
    for seed in DEV_SEEDS:
        draw = wordnet_retrieval(n_queries, corpus_size, seed=seed)
        keep = {q: t for q, t in draw.queries.items() if q not in taken}
        devs.append(RetrievalSet(f"{draw.name}-seed{seed}-dev", draw.corpus, keep, {q: draw.qrels[q] for q in keep}))
        taken |= set(keep)
    return test, devs


def engine_lists(data: RetrievalSet, model: EmbeddingFunction) -> dict[str, Hits]:
    """Top-``DEPTH`` dense and BM25 (each analyzer) hits per query, from one collection."""
    ids, docs = list(data.corpus), list(data.corpus.values())
    qids, queries = list(data.queries), list(data.queries.values())
    doc_vectors, query_vectors = model.encode_documents(docs), model.encode_queries(queries)
    with tempfile.TemporaryDirectory(prefix="bench-hybrid-") as tmp:
        client = MilvusClient(str(Path(tmp) / "dev.db"))
        schema = client.create_schema(enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=65535)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=int(doc_vectors.shape[1]))
        index = client.prepare_index_params()
        index.add_index("vec", index_type="FLAT", metric_type="COSINE")
        for name, params in ANALYZERS.items():
            extra = {"analyzer_params": dict(params)} if params else {}
            schema.add_field(f"text_{name}", DataType.VARCHAR, max_length=65535, enable_analyzer=True, **extra)
            schema.add_field(f"bm25_{name}", DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(Function(f"fn_{name}", FunctionType.BM25, [f"text_{name}"], [f"bm25_{name}"]))
            index.add_index(f"bm25_{name}", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        client.create_collection("c", schema=schema, index_params=index)
        for start in range(0, len(ids), 500):
            client.insert("c", [{"id": ids[i], "vec": doc_vectors[i], **{f"text_{a}": docs[i] for a in ANALYZERS}}
                                for i in range(start, min(start + 500, len(ids)))])
        found = {"dense": client.search("c", list(query_vectors), limit=DEPTH, anns_field="vec",
                                        search_params={"metric_type": "COSINE"})}
        for name in ANALYZERS:
            found[name] = client.search("c", queries, limit=DEPTH, anns_field=f"bm25_{name}",
                                        search_params={"metric_type": "BM25"})
        client.close()
    return {name: {q: [(h["id"], float(h["distance"])) for h in hits] for q, hits in zip(qids, res)}
            for name, res in found.items()}


# -- fusions (applied to the engine's lists) ----------------------------------------------------

def ranked(hits: Hits) -> dict[str, dict[str, float]]:
    return {q: {d: -float(r) for r, (d, _) in enumerate(h, 1)} for q, h in hits.items()}


def rrf(dense: Hits, bm25: Hits, k: float = 60, w: float = 0.5, bm25_depth: int = DEPTH):
    """sum of weight / (k + rank); w = 0.5 is plain RRF (up to a constant factor)."""
    run = {}
    for q in dense:
        scores: dict[str, float] = {}
        for weight, hits in ((w, dense[q]), (1 - w, bm25[q][:bm25_depth])):
            for rank, (doc, _) in enumerate(hits, 1):
                scores[doc] = scores.get(doc, 0.0) + weight / (k + rank)
        run[q] = scores
    return run


def minmax(values: list[float]) -> list[float]:
    lo, hi = (min(values), max(values)) if values else (0.0, 0.0)
    return [(v - lo) / (hi - lo) if hi > lo else 1.0 for v in values]


def milvus_cosine(values: list[float]) -> list[float]:
    return [(1 + v) / 2 for v in values]


def milvus_bm25(values: list[float]) -> list[float]:
    return [2 * math.atan(v) / math.pi for v in values]


def convex(dense: Hits, bm25: Hits, w: float, norm_dense: Callable, norm_bm25: Callable):
    """w * norm(dense score) + (1 - w) * norm(BM25 score); a list a document is missing from adds 0."""
    run = {}
    for q in dense:
        scores: dict[str, float] = {}
        for weight, hits, norm in ((w, dense[q], norm_dense), (1 - w, bm25[q], norm_bm25)):
            for (doc, _), value in zip(hits, norm([s for _, s in hits])):
                scores[doc] = scores.get(doc, 0.0) + weight * value
        run[q] = scores
    return run


def fusions() -> dict[str, Callable[[dict[str, Hits]], dict]]:
    out: dict[str, Callable] = {"dense": lambda L: ranked(L["dense"])}
    for a in ANALYZERS:
        out[f"bm25 {a}"] = lambda L, a=a: ranked(L[a])
    for a in ANALYZERS:
        for k in (1, 10, 60, 200):
            out[f"rrf k={k} {a}"] = lambda L, a=a, k=k: rrf(L["dense"], L[a], k)
        for d in (5, 20):
            out[f"rrf k=60 bm25 top {d} {a}"] = lambda L, a=a, d=d: rrf(L["dense"], L[a], 60, bm25_depth=d)
        for w in (0.7, 0.8, 0.9):
            out[f"weighted rrf k=60 w={w} {a}"] = lambda L, a=a, w=w: rrf(L["dense"], L[a], 60, w)
        for w in (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95):
            out[f"convex min-max w={w} {a}"] = lambda L, a=a, w=w: convex(L["dense"], L[a], w, minmax, minmax)
        for w in (0.5, 0.8, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99):
            out[f"WeightedRanker w={w} {a}"] = (
                lambda L, a=a, w=w: convex(L["dense"], L[a], w, milvus_cosine, milvus_bm25))
    return out


def ndcg10(data: RetrievalSet, run: dict) -> dict[str, float]:
    return per_query(data.qrels, run, ["ndcg@10"])["ndcg@10"]


def dev_sweep(devs: list[RetrievalSet], model: EmbeddingFunction) -> None:
    lists = []
    for d in devs:
        print(f"dev {d.name}: {len(d.queries)} queries, {len(d.corpus)} glosses", flush=True)
        lists.append(engine_lists(d, model))
    rows = []
    for name, fuse in fusions().items():
        per_draw = [float(np.mean(list(ndcg10(d, fuse(L)).values()))) for d, L in zip(devs, lists)]
        rows.append((float(np.mean(per_draw)), name, per_draw))
    print(f"\nDEV nDCG@10 (mean of {len(devs)} draws; per draw)")
    for mean, name, per_draw in rows:
        print(f"  {name:34s} {mean:.4f}  " + " ".join(f"{v:.4f}" for v in per_draw))
    best = max(rows)
    print(f"  best on dev: {best[1]} ({best[0]:.4f})")


# -- test -----------------------------------------------------------------------------------------

TEST_SETTINGS = ("minilm-int8-flat", "bm25", "bm25-english", "hybrid-minilm-bm25", "hybrid-minilm-bm25-rrf")


def test_report(test: RetrievalSet, model: EmbeddingFunction, resamples: int = 1000) -> bool:
    shared = lambda: model  # noqa: E731 - one factory, so the MiniLM settings share their vectors
    settings = [dataclasses.replace(BUILTIN_SETTINGS[n], embedding=shared)
                if BUILTIN_SETTINGS[n].embedding is not None else BUILTIN_SETTINGS[n] for n in TEST_SETTINGS]
    report = evaluate(test, settings, resamples=resamples)
    print("\nTEST\n" + report.table())
    ndcg = {r.name: r.per_query["ndcg@10"] for r in report.results}
    hybrid = report["hybrid-minilm-bm25"].means["ndcg@10"]
    floor = max(report[n].means["ndcg@10"] for n in ("minilm-int8-flat", "bm25", "bm25-english")) - 0.01
    diff = [ndcg["hybrid-minilm-bm25"][q] - ndcg["minilm-int8-flat"][q] for q in test.qrels]
    lo, hi = bootstrap_ci(diff, resamples=resamples)
    print(f"hybrid - dense, paired per query: {np.mean(diff):+.4f} [95% CI {lo:+.4f}, {hi:+.4f}]")
    ok = hybrid >= floor
    print(f"check hybrid >= max(dense, BM25) - 0.01: {hybrid:.4f} >= {floor:.4f}: {'PASS' if ok else 'FAIL'}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--corpus-size", type=int, default=5000)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "harrierdb-bench-hybrid")
    parser.add_argument("--skip-dev", action="store_true")
    parser.add_argument("--skip-test", action="store_true")
    args = parser.parse_args()
    test, devs = splits(args.queries, args.corpus_size)
    model = CachedMiniLM(args.cache)
    if not args.skip_dev:
        dev_sweep(devs, model)
    if not args.skip_test:
        raise SystemExit(0 if test_report(test, model) else 1)


if __name__ == "__main__":
    main()
