"""Compare embedding models and index settings on one set of relevance judgements.

For each :class:`Setting` the corpus is embedded, stored in a HarrierDB collection of a
temporary database, searched with every query, and the hits scored against the qrels; the
report ranks the settings by nDCG@10, with 95% bootstrap confidence intervals over queries.

Built-in settings (:data:`BUILTIN_SETTINGS`): MiniLM int8 (HNSW and FLAT), MiniLM float32,
TF-IDF, the engine's BM25 function (standard and English analyzers), two hybrids of MiniLM and
BM25 (the weighted fusion chosen on a WordNet dev split, and Milvus's default RRF(60)) and
random vectors, the floor any model must beat.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harrierdb.embed.base import EmbeddingFunction, Embeddings, ModelIdentity, check_texts
from harrierdb.errors import ParamError
from harrierdb.quality.metrics import Qrels, Run, bootstrap_ci, load_qrels, parse_metric, per_query

REPORT_METRICS = ("ndcg@10", "recall@10", "mrr")
DEPTH = 100          # hits retrieved per query (MRR and MAP look this deep)
BATCH = 500          # rows per insert, queries per search call
MAX_VARCHAR = 65535  # bytes: the longest VARCHAR a collection takes


# -- data ---------------------------------------------------------------------------------------

@dataclasses.dataclass
class RetrievalSet:
    """Texts to search (``corpus``), texts to search with (``queries``), and the judgements."""

    name: str
    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def __post_init__(self) -> None:
        judged = [q for q in self.qrels if q in self.queries]
        if not judged:
            raise ParamError(f"retrieval set {self.name!r}: no judged query has a text in queries")
        self.queries = {q: self.queries[q] for q in judged}  # only judged queries with a text count
        self.qrels = {q: self.qrels[q] for q in judged}
        if not self.corpus:
            raise ParamError(f"retrieval set {self.name!r} has an empty corpus")


def load_retrieval_files(qrels: str | Path, corpus: str | Path, queries: str | Path) -> RetrievalSet:
    """Qrels (TREC or BEIR TSV), corpus and queries (BEIR JSONL ``_id``/``title``/``text``,
    or TSV ``id<TAB>text``)."""
    return RetrievalSet(name=Path(qrels).stem, corpus=load_texts(corpus), queries=load_texts(queries),
                        qrels=load_qrels(qrels))


def load_texts(path: str | Path) -> dict[str, str]:
    """``{id: text}`` from BEIR JSONL (title and text joined) or a two-column TSV."""
    p = Path(path)
    if not p.is_file():
        raise ParamError(f"no such file: {str(p)!r}")
    out: dict[str, str] = {}
    with p.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            if p.suffix in (".jsonl", ".json"):
                try:
                    row = json.loads(line)
                    out[str(row["_id"])] = " ".join(t for t in (row.get("title"), row.get("text")) if t)
                except (ValueError, KeyError, TypeError):
                    raise ParamError(f"{p}:{lineno}: expected a JSON object with '_id' and 'text'") from None
            else:
                cells = line.rstrip("\n").split("\t")
                if len(cells) < 2:
                    raise ParamError(f"{p}:{lineno}: expected 'id<TAB>text'")
                if lineno == 1 and cells[0] in ("_id", "id", "query-id", "corpus-id"):
                    continue
                out[cells[0]] = cells[-1] if len(cells) == 2 else " ".join(cells[1:])
    return out


# -- settings -----------------------------------------------------------------------------------

class RandomEmbedding(EmbeddingFunction):
    """Unit vectors drawn from a hash of each text: the score of a model that knows nothing."""

    def __init__(self, dim: int = 384, seed: int = 0):
        self.seed = seed
        self._identity = ModelIdentity("random", str(seed), dim, True, "")

    @property
    def identity(self) -> ModelIdentity:
        return self._identity

    def encode_documents(self, items: Sequence[str]) -> np.ndarray:
        out = np.empty((0, self.dim), np.float32)
        texts = check_texts(items)
        if texts:
            out = np.stack([self._vector(t) for t in texts])
        return Embeddings(out, self._identity)

    encode_queries = encode_documents

    def _vector(self, text: str) -> np.ndarray:
        digest = hashlib.sha256(f"{self.seed}\0{text}".encode()).digest()
        v = np.random.default_rng(int.from_bytes(digest[:8], "little")).standard_normal(self.dim)
        return (v / np.linalg.norm(v)).astype(np.float32)


def minilm_int8() -> EmbeddingFunction:
    from harrierdb.embed.dense import SentenceEmbedding

    return SentenceEmbedding(precision="int8")


def minilm_float32() -> EmbeddingFunction:
    from harrierdb.embed.dense import SentenceEmbedding

    return SentenceEmbedding(precision="float32")


def tfidf() -> EmbeddingFunction:
    from harrierdb.embed.sparse import TfidfEmbedding

    return TfidfEmbedding()


def random_vectors() -> EmbeddingFunction:
    return RandomEmbedding()


@dataclasses.dataclass(frozen=True)
class Setting:
    """One way to retrieve: an embedding model and an index, the engine's BM25, or both fused.

    ``embedding`` makes the model (called once per evaluation; settings sharing the same
    factory share its vectors). A model with ``fit`` that is not fitted is fitted on the corpus.
    ``analyzer_params`` is the BM25 text field's analyzer (None: standard tokenizer + lowercase;
    ``{"type": "english"}`` adds stop words and stemming). With an embedding and ``bm25`` both,
    ``hybrid_search`` fuses the two lists (``depth`` hits each) with ``WeightedRanker(*weights)``
    (dense weight first; Milvus's score normalisation) when ``weights`` is given, else with
    ``RRFRanker(rrf_k)``.
    """

    name: str
    embedding: Callable[[], EmbeddingFunction] | None = None
    index_type: str = "FLAT"
    metric: str = "COSINE"
    index_params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    search_params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    bm25: bool = False
    analyzer_params: Mapping[str, Any] | None = None
    rrf_k: int = 60
    weights: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.embedding is None and not self.bm25:
            raise ParamError(f"setting {self.name!r} needs an embedding, bm25=True, or both")
        if self.weights is not None:
            if self.embedding is None or not self.bm25:
                raise ParamError(f"setting {self.name!r}: weights fuse a hybrid; it needs an embedding and bm25=True")
            if len(self.weights) != 2 or not all(isinstance(w, (int, float)) and 0 <= w <= 1 for w in self.weights):
                raise ParamError(f"setting {self.name!r}: weights must be two numbers in [0, 1] "
                                 f"(dense, BM25), got {self.weights!r}")
        if self.analyzer_params is not None and not self.bm25:
            raise ParamError(f"setting {self.name!r}: analyzer_params needs bm25=True")

    def ranker(self) -> Any:
        """The ranker that fuses a hybrid's dense and BM25 lists."""
        from harrierdb.ranker import RRFRanker, WeightedRanker

        return WeightedRanker(*self.weights) if self.weights is not None else RRFRanker(self.rrf_k)


HNSW = {"M": 16, "efConstruction": 200}
ENGLISH = {"type": "english"}  # standard tokenizer, lowercase, English stemmer, _english_ stop words

# The hybrid was chosen on a WordNet DEV split, never on the test split (seed 0, the one the tests
# and `harrier eval --dataset wordnet` use): two draws of 1,000 queries over 5,000 glosses, seeds
# 1 and 2, less every query that is a seed-0 query or a query of the other draw (989 + 982 left).
# benchmarks/bench_hybrid.py reruns the sweep: each fusion applied to the engine's top-100 dense
# (MiniLM int8, FLAT) and BM25 lists; mean nDCG@10 of the two dev draws:
#   MiniLM int8 0.448; BM25 with the standard analyzer 0.214, with the English analyzer 0.281
#   RRF, English BM25: k=60 0.424, k=1 0.445, k=200 0.423; BM25 cut to its top 5, k=60: 0.429
#     (standard BM25: k=60 0.402); weighted RRF, k=60, dense weight 0.9: 0.451
#   convex combination of per-query min-max scores, English BM25, dense weight 0.5..0.95:
#     0.438..0.454 (best 0.75)
#   WeightedRanker (Milvus's normalisation: cosine (1+s)/2, BM25 2*atan(s)/pi), English BM25,
#     dense weight 0.90/0.92/0.94/0.95/0.96/0.97/0.98: 0.450/0.455/0.460/0.460/0.459/0.458/0.455
#     (standard BM25: at most 0.454, at 0.97)
# Chosen: the dev argmax, English BM25 fused by the engine's WeightedRanker(0.94, 0.06): +0.012
# over dense on dev (English RRF(60) is -0.024 there, failing hybrid >= max(dense, BM25) - 0.01). Its
# neighbours 0.92..0.97 are all within 0.005, so the weight is not a knife edge. With BM25 squashed
# by atan, the fusion is the dense ranking with a small bonus for lexical matches, so a BM25 this
# much weaker than dense cannot drag it down the way equal-weight rank fusion does.
# Scored once on the test split after the choice: dense 0.424, hybrid 0.427 (1,000 q, 5,000 glosses).
HYBRID_WEIGHTS = (0.94, 0.06)

BUILTIN_SETTINGS: dict[str, Setting] = {s.name: s for s in (
    Setting("minilm-int8-hnsw", minilm_int8, "HNSW", index_params=HNSW, search_params={"ef": 128}),
    Setting("minilm-int8-flat", minilm_int8),
    Setting("minilm-float32-flat", minilm_float32),
    Setting("tfidf", tfidf, "SPARSE_INVERTED_INDEX", "IP"),
    Setting("bm25", bm25=True),
    Setting("bm25-english", bm25=True, analyzer_params=ENGLISH),
    Setting("hybrid-minilm-bm25", minilm_int8, bm25=True, analyzer_params=ENGLISH, weights=HYBRID_WEIGHTS),
    Setting("hybrid-minilm-bm25-rrf", minilm_int8, bm25=True),  # Milvus's default RRF(60), standard analyzer
    Setting("random", random_vectors),
)}


# -- results ------------------------------------------------------------------------------------

@dataclasses.dataclass
class SettingResult:
    """One setting's per-query scores, their means and confidence intervals, and timings."""

    name: str
    per_query: dict[str, dict[str, float]]
    means: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    embed_seconds: float   # encoding corpus and queries (shared by settings with one model)
    index_seconds: float   # inserting and indexing
    search_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "means": self.means,
                "intervals": {k: list(v) for k, v in self.intervals.items()},
                "embed_seconds": self.embed_seconds, "index_seconds": self.index_seconds,
                "search_seconds": self.search_seconds,
                "queries": len(next(iter(self.per_query.values()), {}))}


@dataclasses.dataclass
class EvalReport:
    """Settings ranked by the first metric (nDCG@10), best first."""

    dataset: str
    n_queries: int
    n_documents: int
    results: list[SettingResult]
    confidence: float = 0.95

    def table(self) -> str:
        """A fixed-width table: rank, setting, each metric with its CI, timings in seconds."""
        names = list(self.results[0].means) if self.results else list(REPORT_METRICS)
        head = ["#", "setting", *[f"{m} [{self.confidence:.0%} CI]" for m in names], "embed s", "index s", "search s"]
        rows = [[str(i), r.name,
                 *[f"{r.means[m]:.3f} [{r.intervals[m][0]:.3f}, {r.intervals[m][1]:.3f}]" for m in names],
                 f"{r.embed_seconds:.1f}", f"{r.index_seconds:.1f}", f"{r.search_seconds:.1f}"]
                for i, r in enumerate(self.results, 1)]
        widths = [max(len(row[c]) for row in [head, *rows]) for c in range(len(head))]
        lines = [f"{self.dataset}: {self.n_queries} queries, {self.n_documents} documents"]
        for row in [head, *rows]:
            lines.append("  ".join(cell.ljust(w) if c < 2 else cell.rjust(w)
                                   for c, (cell, w) in enumerate(zip(row, widths))).rstrip())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "queries": self.n_queries, "documents": self.n_documents,
                "confidence": self.confidence, "results": [r.to_dict() for r in self.results]}

    def __getitem__(self, name: str) -> SettingResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)


# -- running ------------------------------------------------------------------------------------

def evaluate(data: RetrievalSet, settings: Sequence[Setting | str] | None = None, *,
             metrics: Sequence[str] = REPORT_METRICS, depth: int = DEPTH, confidence: float = 0.95,
             resamples: int = 1000, seed: int = 0, workdir: str | Path | None = None,
             log: Callable[[str], None] | None = None) -> EvalReport:
    """Index and search ``data`` with each setting; score the hits; rank by the first metric."""
    from harrierdb.client import MilvusClient

    chosen = [_setting(s) for s in (settings if settings is not None else BUILTIN_SETTINGS.values())]
    if not chosen:
        raise ParamError("evaluate needs at least one setting")
    if len({s.name for s in chosen}) != len(chosen):
        raise ParamError(f"setting names must be unique, got {[s.name for s in chosen]}")
    max_k = max((parse_metric(m)[1] or 0) for m in metrics)
    if depth < max_k:
        raise ParamError(f"depth {depth} is below the largest metric cut-off {max_k}")
    doc_ids, doc_texts = list(data.corpus), list(data.corpus.values())
    query_ids, query_texts = list(data.queries), list(data.queries.values())
    encoded: dict[Any, tuple[Any, Any, float]] = {}  # by embedding factory: settings share vectors
    results = []
    with tempfile.TemporaryDirectory(dir=workdir, prefix="harrier-eval-") as tmp:
        client = MilvusClient(str(Path(tmp) / "eval.db"))
        try:
            for n, setting in enumerate(chosen):
                if log:
                    log(f"[{n + 1}/{len(chosen)}] {setting.name}")
                vectors = None
                if setting.embedding is not None:
                    if setting.embedding not in encoded:
                        encoded[setting.embedding] = _encode(setting.embedding, doc_texts, query_texts)
                    vectors = encoded[setting.embedding]
                run, seconds = _run_setting(client, f"s{n}", setting, (doc_ids, doc_texts),
                                            (query_ids, query_texts), vectors, depth)
                results.append(_score(setting.name, data.qrels, run, metrics, confidence, resamples, seed,
                                      seconds))
        finally:
            client.close()
    results.sort(key=lambda r: -r.means[metrics[0]])
    return EvalReport(data.name, len(query_ids), len(doc_ids), results, confidence)


def _run_setting(client: Any, collection: str, setting: Setting, docs: tuple[list[str], list[str]],
                 queries: tuple[list[str], list[str]], vectors: tuple[Any, Any, float] | None,
                 depth: int) -> tuple[Run, tuple[float, float, float]]:
    """Build the collection, search it, drop it: the run and (embed, index, search) seconds."""
    started = time.perf_counter()
    _build(client, collection, setting, *docs, vectors)
    index_s = time.perf_counter() - started
    started = time.perf_counter()
    run = _search(client, collection, setting, *queries, vectors, depth)
    search_s = time.perf_counter() - started
    client.drop_collection(collection)
    return run, (vectors[2] if vectors else 0.0, index_s, search_s)


def _setting(s: Setting | str) -> Setting:
    if isinstance(s, Setting):
        return s
    if s not in BUILTIN_SETTINGS:
        raise ParamError(f"unknown setting {s!r}; built-in settings: {', '.join(BUILTIN_SETTINGS)}")
    return BUILTIN_SETTINGS[s]


def _encode(factory: Callable[[], EmbeddingFunction], docs: list[str],
            queries: list[str]) -> tuple[Any, Any, float]:
    """(document vectors, query vectors, seconds), fitting the model on ``docs`` if it needs it."""
    started = time.perf_counter()
    model = factory()
    if hasattr(model, "fit") and not getattr(model, "fitted", True):
        model.fit(docs)
    return model.encode_documents(docs), model.encode_queries(queries), time.perf_counter() - started


def _is_sparse(vectors: Any) -> bool:
    from scipy import sparse

    return sparse.issparse(vectors)


def _rows(vectors: Any) -> list[Any]:
    """Vectors as the engine takes them: dense rows, or {index: value} dicts for sparse ones."""
    if _is_sparse(vectors):
        from harrierdb.embed.sparse import to_sparse_dicts

        return to_sparse_dicts(vectors)
    return list(vectors)


def _build(client: Any, name: str, setting: Setting, ids: list[str], texts: list[str],
           vectors: tuple[Any, Any, float] | None) -> None:
    from harrierdb.schema import DataType, Function, FunctionType

    schema = client.create_schema(enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_VARCHAR)
    index = client.prepare_index_params()
    if vectors is not None:
        docs = vectors[0]
        if _is_sparse(docs):
            schema.add_field("vec", DataType.SPARSE_FLOAT_VECTOR)
        else:
            schema.add_field("vec", DataType.FLOAT_VECTOR, dim=int(docs.shape[1]))
        index.add_index("vec", index_type=setting.index_type, metric_type=setting.metric,
                        params=dict(setting.index_params))
    if setting.bm25:
        analyzer = {"analyzer_params": dict(setting.analyzer_params)} if setting.analyzer_params else {}
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_VARCHAR, enable_analyzer=True, **analyzer)
        schema.add_field("bm25", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(Function("bm25_fn", FunctionType.BM25, ["text"], ["bm25"]))
        index.add_index("bm25", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    client.create_collection(name, schema=schema, index_params=index)
    rows_vec = _rows(vectors[0]) if vectors is not None else None
    for start in range(0, len(ids), BATCH):
        batch = []
        for i in range(start, min(start + BATCH, len(ids))):
            row: dict[str, Any] = {"id": ids[i]}
            if rows_vec is not None:
                row["vec"] = rows_vec[i]
            if setting.bm25:
                row["text"] = texts[i]
            batch.append(row)
        client.insert(name, batch)


def _search(client: Any, name: str, setting: Setting, ids: list[str], texts: list[str],
            vectors: tuple[Any, Any, float] | None, depth: int) -> Run:
    """Each query's hits as a run; a hit's score is minus its rank, so the engine's order is kept."""
    from harrierdb.ranker import AnnSearchRequest

    params = {"metric_type": setting.metric, "params": dict(setting.search_params)}
    queries = _rows(vectors[1]) if vectors is not None else None
    run: Run = {}
    for start in range(0, len(ids), BATCH):
        stop = min(start + BATCH, len(ids))
        reqs = []
        if queries is not None:
            reqs.append(AnnSearchRequest(queries[start:stop], "vec", params, depth))
        if setting.bm25:
            reqs.append(AnnSearchRequest(texts[start:stop], "bm25", {"metric_type": "BM25"}, depth))
        if len(reqs) == 1:
            req = reqs[0]
            hits = client.search(name, req.data, limit=depth, anns_field=req.anns_field, search_params=req.param)
        else:
            hits = client.hybrid_search(name, reqs, setting.ranker(), limit=depth)
        for qid, found in zip(ids[start:stop], hits):
            run[qid] = {hit["id"]: -float(rank) for rank, hit in enumerate(found, 1)}
    return run


def _score(name: str, qrels: Qrels, run: Run, names: Sequence[str], confidence: float,
           resamples: int, seed: int, seconds: tuple[float, float, float]) -> SettingResult:
    scores = per_query(qrels, run, names)
    means = {m: float(np.mean(list(v.values()))) for m, v in scores.items()}
    intervals = {m: bootstrap_ci(list(v.values()), confidence, resamples, seed)
                 for m, v in scores.items()}
    return SettingResult(name, scores, means, intervals, *seconds)
