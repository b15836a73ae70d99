"""Sparse, BM25, binary, half-precision, int8 and multi-vector fields, and hybrid search,
each checked against a straightforward NumPy/SciPy reference."""

import math
import re

import numpy as np
import pytest
import scipy.sparse as sp

from harrierdb import (
    AnnSearchRequest,
    DataType,
    Function,
    FunctionType,
    MilvusClient,
    RRFRanker,
    WeightedRanker,
)
from harrierdb.analyzer import Analyzer
from harrierdb.errors import DataError, ParamError


def collection(client, name, vec_type, dim=None, metric=None, index_type="AUTOINDEX", extra=(), params=None):
    s = client.create_schema()
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("tag", DataType.INT64)
    s.add_field("v", vec_type, **({"dim": dim} if dim else {}))
    for name_, dtype, kw in extra:
        s.add_field(name_, dtype, **kw)
    ip = client.prepare_index_params()
    ip.add_index("v", index_type=index_type, metric_type=metric, params=params or {})
    client.create_collection(name, schema=s, index_params=ip)


def random_sparse(rng, n, vocab=50_000, nnz=20):
    rows = []
    for _ in range(n):
        idx = rng.choice(vocab, nnz, replace=False)
        rows.append(dict(zip(idx.tolist(), rng.random(nnz).astype(np.float32).tolist())))
    return rows


def to_csr(rows, vocab=50_000):
    m = sp.lil_array((len(rows), vocab), dtype=np.float32)
    for i, r in enumerate(rows):
        for k, v in r.items():
            m[i, k] = v
    return m.tocsr()


@pytest.mark.parametrize("index_type", ["SPARSE_INVERTED_INDEX", "SPARSE_WAND"])
def test_sparse_search_equals_scipy_reference(client, rng, index_type):
    collection(client, "sp", DataType.SPARSE_FLOAT_VECTOR, metric="IP", index_type=index_type)
    docs = random_sparse(rng, 300, vocab=500, nnz=15)
    # the three input forms Milvus accepts
    forms = [docs[i] if i % 3 == 0 else (to_csr([docs[i]], 500) if i % 3 == 1
             else (list(docs[i].keys()), list(docs[i].values()))) for i in range(300)]
    client.insert("sp", [{"id": i, "tag": i % 2, "v": forms[i]} for i in range(300)])
    queries = random_sparse(rng, 8, vocab=500, nnz=6)
    X, Q = to_csr(docs, 500), to_csr(queries, 500)
    scores = (X @ Q.T).toarray()
    touched = ((X != 0).astype(np.int32) @ (Q != 0).astype(np.int32).T).toarray() > 0
    res = client.search("sp", queries, limit=10, filter="tag == 0",
                        search_params={"params": {"drop_ratio_search": 0.0}})
    for qi, hits in enumerate(res):
        ok = touched[:, qi] & (np.arange(300) % 2 == 0)
        cand = np.flatnonzero(ok)
        want = cand[np.argsort(-scores[cand, qi], kind="stable")][:10]
        assert np.allclose([h["distance"] for h in hits], scores[want, qi], rtol=1e-5)
        assert set(h["id"] for h in hits) == set(want.tolist()) or len(set(np.round(scores[want, qi], 5))) < 10
    got = client.get("sp", ids=[0])[0]["v"]
    assert got == pytest.approx(docs[0])


def test_sparse_input_errors(client):
    collection(client, "sp", DataType.SPARSE_FLOAT_VECTOR, metric="IP")
    with pytest.raises(DataError, match="index outside"):
        client.insert("sp", [{"id": 1, "tag": 0, "v": {-3: 1.0}}])
    with pytest.raises(DataError, match="NaN"):
        client.insert("sp", [{"id": 1, "tag": 0, "v": {3: float("nan")}}])


def bm25_reference(docs, query, k1=1.2, b=0.75):
    an = Analyzer.from_params(None)
    toks = [an.analyze(d) for d in docs]
    n = len(docs)
    avgdl = sum(len(t) for t in toks) / n
    scores = []
    for t in toks:
        s = 0.0
        for term in an.analyze(query):
            df = sum(term in u for u in toks)
            if df == 0 or term not in t:
                continue
            tf = t.count(term)
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            s += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(t) / avgdl))
        scores.append(s)
    return np.array(scores)


CORPUS = [
    "The quick brown fox jumps over the lazy dog",
    "A fast brown fox leaps over a sleeping dog in the sun",
    "Vector databases store embeddings for similarity search",
    "Milvus is a vector database built for scalable similarity search",
    "Dogs and foxes are both canines",
    "Search engines rank documents with BM25 and vectors",
    "The lazy cat sleeps all day",
    "Embeddings map text to vectors of numbers",
]


def bm25_collection(client, name="bm"):
    s = client.create_schema()
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("text", DataType.VARCHAR, max_length=500, enable_analyzer=True)
    s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    s.add_field("dense", DataType.FLOAT_VECTOR, dim=4)
    s.add_function(Function("bm25", FunctionType.BM25, ["text"], ["sparse"]))
    ip = client.prepare_index_params()
    ip.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    ip.add_index("dense", index_type="FLAT", metric_type="COSINE")
    client.create_collection(name, schema=s, index_params=ip)
    rng = np.random.default_rng(3)
    client.insert(name, [{"id": i, "text": t, "dense": rng.standard_normal(4)} for i, t in enumerate(CORPUS)])


@pytest.mark.parametrize("query", ["brown fox dog", "vector similarity search", "lazy", "embeddings numbers"])
def test_bm25_scores_equal_reference_and_follow_deletes(client, query):
    bm25_collection(client)
    ref = bm25_reference(CORPUS, query)
    res = client.search("bm", [query], anns_field="sparse", limit=8, output_fields=["text"])[0]
    want = np.flatnonzero(ref > 0)
    assert {h["id"] for h in res} == set(want.tolist())
    for h in res:
        assert h["distance"] == pytest.approx(ref[h["id"]], rel=1e-5)
        assert h["entity"]["text"] == CORPUS[h["id"]]
    # deleting documents changes N, df and avgdl: scores follow the live rows
    client.delete("bm", ids=[0, 3])
    live = [i for i in range(len(CORPUS)) if i not in (0, 3)]
    ref2 = bm25_reference([CORPUS[i] for i in live], query)
    res2 = client.search("bm", [query], anns_field="sparse", limit=8)[0]
    got = {h["id"]: h["distance"] for h in res2}
    assert set(got) == {live[j] for j in np.flatnonzero(ref2 > 0)}
    for j, i in enumerate(live):
        if ref2[j] > 0:
            assert got[i] == pytest.approx(ref2[j], rel=1e-5)


def test_bm25_field_needs_text_queries_and_analyzer(client):
    bm25_collection(client)
    with pytest.raises(ParamError, match="query texts"):
        client.search("bm", [{1: 0.5}], anns_field="sparse")
    s = client.create_schema()
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("text", DataType.VARCHAR, max_length=50)
    s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    s.add_function(Function("bm25", FunctionType.BM25, ["text"], ["sparse"]))
    from harrierdb.errors import SchemaError
    with pytest.raises(SchemaError, match="enable_analyzer"):
        client.create_collection("bad", schema=s)


@pytest.mark.parametrize("metric", ["HAMMING", "JACCARD"])
def test_binary_metrics_equal_bitcount_reference(client, rng, metric):
    collection(client, "bin", DataType.BINARY_VECTOR, dim=64, metric=metric, index_type="BIN_FLAT")
    bits = rng.integers(0, 2, (400, 64)).astype(np.uint8)
    packed = np.packbits(bits, axis=1)
    client.insert("bin", [{"id": i, "tag": 0, "v": packed[i].tobytes() if i % 2 else bits[i].tolist()}
                          for i in range(400)])
    q = rng.integers(0, 2, (5, 64)).astype(np.uint8)
    res = client.search("bin", [np.packbits(x).tobytes() for x in q], limit=10)
    for qi, hits in enumerate(res):
        inter = (bits & q[qi]).sum(1)
        union = (bits | q[qi]).sum(1)
        ref = (bits != q[qi]).sum(1) if metric == "HAMMING" else 1 - inter / np.maximum(union, 1)
        assert np.allclose([h["distance"] for h in hits], np.sort(ref)[:10], atol=1e-6)
        assert all(abs(ref[h["id"]] - h["distance"]) < 1e-6 for h in hits)
    assert client.get("bin", ids=[1])[0]["v"] == packed[1].tobytes()


@pytest.mark.parametrize("vtype, tol", [(DataType.FLOAT16_VECTOR, 2e-3), (DataType.BFLOAT16_VECTOR, 2e-2),
                                        (DataType.INT8_VECTOR, 0)])
@pytest.mark.parametrize("index_type", ["FLAT", "HNSW", "IVF_FLAT"])
def test_compact_float_types_match_float32(client, rng, vtype, tol, index_type):
    collection(client, "h", vtype, dim=16, metric="L2", index_type=index_type,
               params={"nlist": 8} if index_type == "IVF_FLAT" else {})
    if vtype is DataType.INT8_VECTOR:
        data = rng.integers(-100, 100, (3000, 16)).astype(np.float32)
    else:
        data = rng.standard_normal((3000, 16)).astype(np.float32)
    client.insert("h", [{"id": i, "tag": 0, "v": data[i]} for i in range(3000)])
    q = data[:5] if vtype is DataType.INT8_VECTOR else data[:5] + 0.01
    res = client.search("h", q, limit=5, search_params={"params": {"nprobe": 8, "ef": 128}})
    for qi, hits in enumerate(res):
        d = ((data - q[qi]) ** 2).sum(1)
        assert hits[0]["id"] == qi
        for h in hits:
            assert h["distance"] == pytest.approx(d[h["id"]], rel=max(tol, 1e-5) * 10, abs=tol * 10)
    stored = client.get("h", ids=[7])[0]["v"]
    assert np.allclose(stored, data[7], rtol=tol, atol=tol)


@pytest.mark.parametrize("metric", ["MAX_SIM_COSINE", "MAX_SIM_IP", "MAX_SIM_L2"])
def test_multi_vector_maxsim_equals_reference(client, rng, metric):
    collection(client, "mv", DataType.ARRAY_OF_VECTOR, dim=8, metric=metric)
    docs = [rng.standard_normal((rng.integers(1, 12), 8)).astype(np.float32) for _ in range(150)]
    client.insert("mv", [{"id": i, "tag": i % 3, "v": d} for i, d in enumerate(docs)])
    queries = [rng.standard_normal((4, 8)).astype(np.float32) for _ in range(3)]

    def ref(q, d):
        if metric == "MAX_SIM_COSINE":
            qn, dn = q / np.linalg.norm(q, axis=1, keepdims=True), d / np.linalg.norm(d, axis=1, keepdims=True)
            return max_over(qn @ dn.T)
        if metric == "MAX_SIM_IP":
            return max_over(q @ d.T)
        return sum(min(((t - x) ** 2).sum() for x in d) for t in q)

    def max_over(m):
        return m.max(axis=1).sum()

    res = client.search("mv", queries, limit=5, filter="tag != 1")
    for q, hits in zip(queries, res):
        scores = np.array([ref(q, d) if i % 3 != 1 else np.nan for i, d in enumerate(docs)])
        valid = np.flatnonzero(~np.isnan(scores))
        order = valid[np.argsort(scores[valid] if metric == "MAX_SIM_L2" else -scores[valid])][:5]
        assert [h["id"] for h in hits] == order.tolist()
        assert np.allclose([h["distance"] for h in hits], scores[order], rtol=1e-4, atol=1e-4)
    assert np.allclose(client.get("mv", ids=[3])[0]["v"], docs[3])


def test_hybrid_search_equals_reference_fusion(client):
    bm25_collection(client)
    rng = np.random.default_rng(11)
    dense_q = rng.standard_normal(4).tolist()
    text_q = "vector search"
    dense_hits = client.search("bm", [dense_q], anns_field="dense", limit=5)[0]
    text_hits = client.search("bm", [text_q], anns_field="sparse", limit=5)[0]
    reqs = [AnnSearchRequest([dense_q], "dense", {"metric_type": "COSINE"}, 5),
            AnnSearchRequest([text_q], "sparse", {}, 5)]
    rrf = client.hybrid_search("bm", reqs, RRFRanker(60), limit=4, output_fields=["text"])[0]
    want = {}
    for hits in (dense_hits, text_hits):
        for rank, h in enumerate(hits, start=1):
            want[h["id"]] = want.get(h["id"], 0) + 1 / (60 + rank)
    best = sorted(want.items(), key=lambda kv: (-kv[1], kv[0]))[:4]
    assert [h["id"] for h in rrf] == [i for i, _ in best]
    assert np.allclose([h["distance"] for h in rrf], [s for _, s in best])
    assert rrf[0]["entity"]["text"] == CORPUS[rrf[0]["id"]]
    weighted = client.hybrid_search("bm", reqs, WeightedRanker(0.7, 0.3), limit=4)[0]
    want = {}
    for w, hits, norm in ((0.7, dense_hits, lambda s: (1 + s) / 2),
                          (0.3, text_hits, lambda s: 2 * math.atan(s) / math.pi)):
        for h in hits:
            want[h["id"]] = want.get(h["id"], 0) + w * norm(h["distance"])
    best = sorted(want.items(), key=lambda kv: (-kv[1], kv[0]))[:4]
    assert [h["id"] for h in weighted] == [i for i, _ in best]
    assert np.allclose([h["distance"] for h in weighted], [s for _, s in best], rtol=1e-5)
    with pytest.raises(ParamError, match="weights"):
        client.hybrid_search("bm", reqs, WeightedRanker(1.0), limit=4)


def test_vector_types_survive_reopen(db_path, rng):
    c = MilvusClient(db_path)
    bm25_collection(c)
    collection(c, "mv", DataType.ARRAY_OF_VECTOR, dim=4, metric="MAX_SIM_IP")
    c.insert("mv", [{"id": 1, "tag": 0, "v": [[1, 0, 0, 0], [0, 1, 0, 0]]}])
    before = c.search("bm", ["lazy dog"], anns_field="sparse", limit=3)
    c.close()
    c = MilvusClient(db_path)
    after = c.search("bm", ["lazy dog"], anns_field="sparse", limit=3)
    assert [(h["id"], round(h["distance"], 5)) for h in after[0]] == [(h["id"], round(h["distance"], 5)) for h in before[0]]
    assert c.get("mv", ids=[1])[0]["v"] == [[1, 0, 0, 0], [0, 1, 0, 0]]
    c.compact("mv")
    c.close()


def test_binary_first_stage_with_float_rerank(client, rng):
    s = client.create_schema()
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=64)
    s.add_field("code", DataType.BINARY_VECTOR, dim=64)
    client.create_collection("bq", schema=s)
    centers = rng.standard_normal((20, 64))
    data = (centers[rng.integers(0, 20, 3000)] + 0.5 * rng.standard_normal((3000, 64))).astype(np.float32)
    client.insert("bq", [{"id": i, "vec": data[i], "code": np.packbits(data[i] > 0).tobytes()} for i in range(3000)])
    q = data[:50] + 0.1 * rng.standard_normal((50, 64)).astype(np.float32)
    exact = client.search("bq", q, anns_field="vec", limit=10, search_params={"metric_type": "COSINE"})
    fast = client.search("bq", q, anns_field="vec", limit=10,
                         search_params={"metric_type": "COSINE", "first_stage": {"field": "code", "oversample": 16}})
    recall = np.mean([len({h["id"] for h in a} & {h["id"] for h in b}) / 10 for a, b in zip(exact, fast)])
    assert recall >= 0.95
    # what comes back are exact float distances for the re-ranked candidates
    for a, b in zip(exact, fast):
        common = {h["id"]: h["distance"] for h in a}
        for h in b:
            if h["id"] in common:
                assert h["distance"] == pytest.approx(common[h["id"]], rel=1e-5)
    with pytest.raises(ParamError, match="BINARY_VECTOR"):
        client.search("bq", q[:1], anns_field="vec", search_params={"first_stage": {"field": "id"}})


def test_multi_vector_hnsw_candidates_keep_recall(client, rng, monkeypatch):
    from harrierdb.engine import search_plan
    monkeypatch.setattr(search_plan, "EXACT_BUDGET", 0)  # use the token index even on small data
    collection(client, "exact", DataType.ARRAY_OF_VECTOR, dim=16, metric="MAX_SIM_COSINE", index_type="MAX_SIM_FLAT")
    collection(client, "ann", DataType.ARRAY_OF_VECTOR, dim=16, metric="MAX_SIM_COSINE", index_type="HNSW")
    centers = rng.standard_normal((30, 16))
    docs = [(centers[rng.integers(0, 30, rng.integers(2, 10))] + 0.3 * rng.standard_normal((1, 16)))
            .astype(np.float32) for _ in range(800)]
    for name in ("exact", "ann"):
        client.insert(name, [{"id": i, "tag": 0, "v": d} for i, d in enumerate(docs)])
    queries = [docs[i][:3] + 0.05 for i in range(0, 800, 40)]
    a = client.search("exact", queries, limit=10)
    b = client.search("ann", queries, limit=10)
    recall = np.mean([len({h["id"] for h in x} & {h["id"] for h in y}) / 10 for x, y in zip(a, b)])
    assert recall >= 0.9
    assert client._db.collection("ann").indexes._posting_lists["v"][1].ntotal == sum(len(d) for d in docs)


def test_sparse_batch_from_scipy_with_int32_indices(client, rng):
    collection(client, "sp", DataType.SPARSE_FLOAT_VECTOR, metric="IP")
    docs = sp.random(20, 1000, density=0.05, format="csr", dtype=np.float32, random_state=1)
    assert docs.indices.dtype == np.int32
    client.insert("sp", [{"id": i, "tag": 0, "v": docs[[i]]} for i in range(20)])
    res = client.search("sp", docs[[3]], limit=1)  # a SciPy batch as the query
    assert res[0][0]["id"] == 3


def test_run_analyzer_shows_what_bm25_indexes(client):
    assert client.run_analyzer("The Running dogs", {"type": "english"}) == ["run", "dog"]
    assert client.run_analyzer(["Hello World", "x"]) == [["hello", "world"], ["x"]]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_dense_vectors_are_refused_and_huge_finite_ones_kept(client, bad):
    schema = client.create_schema()
    schema.add_field("id", "INT64", is_primary=True)
    schema.add_field("v", "FLOAT_VECTOR", dim=4)
    client.create_collection("dense", schema=schema)
    huge = [3e38, 3e38, 3e38, 1.0]  # finite, but their sum overflows float32
    client.insert("dense", [{"id": 1, "v": huge}])
    with pytest.raises(DataError, match="vector 1 contains NaN or inf"):
        client.insert("dense", [{"id": 2, "v": [0.0, 1.0, 0.0, 0.0]}, {"id": 3, "v": [0.0, bad, 0.0, 0.0]}])
    assert client.query("dense", filter="", output_fields=["id"], limit=10) == [{"id": 1}]
    with pytest.raises(ParamError, match="NaN or inf"):
        client.search("dense", [[1.0, 0.0, bad, 0.0]], limit=1)
    assert client.search("dense", np.array([huge], dtype=np.float32), limit=1)[0][0]["id"] == 1


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_float32_query_matrices_are_taken_as_they_are_but_still_checked(client, bad):
    # a float32 matrix for a FLOAT_VECTOR field skips the codec: it must be refused all the same
    schema = client.create_schema()
    schema.add_field("id", "INT64", is_primary=True)
    schema.add_field("v", "FLOAT_VECTOR", dim=4)
    client.create_collection("f32", schema=schema)
    rows = np.eye(4, dtype=np.float32) + 0.1
    client.insert("f32", [{"id": i, "v": v} for i, v in enumerate(rows)])
    poisoned = rows[:2].copy()
    poisoned[1, 2] = bad
    with pytest.raises(ParamError, match="vector 1 contains NaN or inf"):
        client.search("f32", poisoned, limit=1)
    request = AnnSearchRequest(poisoned, "v", {"metric_type": "COSINE"}, 2)
    with pytest.raises(ParamError, match="vector 1 contains NaN or inf"):
        client.hybrid_search("f32", [request], RRFRanker(), limit=2)
    with pytest.raises(ParamError, match="dim 4"):
        client.search("f32", rows[:, :3].copy(), limit=1)
    # not C-contiguous (a Fortran-ordered copy, a strided view): the same answers as a plain copy
    for layout in (np.asfortranarray(rows[::-1]), np.repeat(rows, 2, axis=0)[::2][::-1]):
        hits = client.search("f32", layout, limit=1)
        assert [r[0]["id"] for r in hits] == [3, 2, 1, 0]


@pytest.mark.parametrize("vtype, too_big, limit", [("FLOAT_VECTOR", 1e300, "3.40282e+38"),
                                                   ("FLOAT16_VECTOR", 70000.0, "65504")])
def test_values_the_storage_type_cannot_hold_are_refused_not_stored_as_inf(client, vtype, too_big, limit):
    schema = client.create_schema()
    schema.add_field("id", "INT64", is_primary=True)
    schema.add_field("v", vtype, dim=2)
    client.create_collection("narrow", schema=schema)
    with pytest.raises(DataError, match=f"values beyond ±{re.escape(limit)} do not fit {vtype}"):
        client.insert("narrow", [{"id": 1, "v": [1.0, 1.0]}, {"id": 2, "v": [too_big, 1.0]}])
    assert client.query("narrow", filter="", output_fields=["id"], limit=10) == []
    with pytest.raises(ParamError, match=f"do not fit {vtype}"):
        client.search("narrow", np.array([[too_big, 1.0]]), limit=1)


@pytest.mark.parametrize("vtype", ["FLOAT16_VECTOR", "BFLOAT16_VECTOR"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_queries_to_half_precision_fields_are_refused(client, vtype, bad):
    schema = client.create_schema()
    schema.add_field("id", "INT64", is_primary=True)
    schema.add_field("v", vtype, dim=4)
    client.create_collection("half", schema=schema)
    client.insert("half", [{"id": i, "v": [float(i), 1.0, 0.0, 0.0]} for i in range(20)])
    with pytest.raises(ParamError, match="vector 1 contains NaN or inf"):
        client.search("half", np.array([[1.0, 1.0, 0.0, 0.0], [0.0, bad, 0.0, 0.0]], dtype=np.float32), limit=3)
    assert client.search("half", np.array([[3.0, 1.0, 0.0, 0.0]], dtype=np.float32), limit=1)[0][0]["id"] == 3
