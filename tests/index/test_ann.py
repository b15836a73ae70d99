"""ANN indexes: recall against exact search, life cycle, filtered, range and grouped search."""

import shutil

import numpy as np
import pytest

from harrierdb import MilvusClient
from harrierdb.engine import search_plan

N, DIM, NQ, K = 20_000, 48, 100, 10


def clustered(n, dim, seed, centers=None):
    rng = np.random.default_rng(seed)
    if centers is None:
        centers = np.random.default_rng(99).standard_normal((64, dim)).astype(np.float32) * 3
    x = centers[rng.integers(0, len(centers), n)] + rng.standard_normal((n, dim)).astype(np.float32)
    return x.astype(np.float32)


DATA = clustered(N, DIM, 1)
QUERIES = clustered(NQ, DIM, 2)
BUCKET = np.arange(N) % 1000  # bucket < t selects t/1000 of the rows


def exact_ids(metric, mask=None, data=DATA, queries=QUERIES, k=K):
    idx = np.arange(len(data)) if mask is None else np.flatnonzero(mask)
    x = data[idx]
    if metric == "L2":
        score = -((queries[:, None, :] - x[None]) ** 2).sum(-1)
    elif metric == "COSINE":
        score = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ (
            x / np.linalg.norm(x, axis=1, keepdims=True)).T
    else:
        score = queries @ x.T
    order = np.argsort(-score, axis=1, kind="stable")[:, :k]
    return idx[order]


def recall(results, truth):
    return np.mean([len({h["id"] for h in r} & set(t.tolist())) / max(len(t), 1) for r, t in zip(results, truth)])


def build(client, name, index_type, metric, params=None):
    schema = client.create_schema()
    schema.add_field("id", "INT64", is_primary=True)
    schema.add_field("bucket", "INT64")
    schema.add_field("vec", "FLOAT_VECTOR", dim=DIM)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type=index_type, metric_type=metric, params=params or {})
    client.create_collection(name, schema=schema, index_params=ip)
    for start in range(0, N, 5000):
        client.insert(name, [{"id": i, "bucket": int(BUCKET[i]), "vec": DATA[i]} for i in range(start, start + 5000)])
    client.load_collection(name)


CASES = [("HNSW", "COSINE"), ("IVF_FLAT", "L2"), ("IVF_SQ8", "IP"), ("IVF_PQ", "L2"), ("AUTOINDEX", "COSINE"),
         ("FLAT", "L2")]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("ann") / "ann.db")
    client = MilvusClient(path)
    for index_type, metric in CASES:
        build(client, index_type.lower(), index_type, metric)
    yield client, path
    client.close()


@pytest.mark.parametrize("index_type, metric", CASES)
def test_recall_at_default_search_params(indexed, index_type, metric):
    client, _ = indexed
    coll = client._db.collection(index_type.lower())
    if index_type != "FLAT":
        assert coll.indexes.ann.get("vec") is not None, "the ANN index should be built"
    res = client.search(index_type.lower(), QUERIES, limit=K)
    assert all(len(r) == K for r in res)
    assert recall(res, exact_ids(metric)) >= 0.95


@pytest.mark.parametrize("index_type, metric", CASES[:4])
def test_same_results_after_reopen_without_rebuild(indexed, index_type, metric):
    client, path = indexed
    name = index_type.lower()
    before = client.search(name, QUERIES[:20], limit=K)
    client._db.flush()  # saves index files
    other = MilvusClient(path)
    after = other.search(name, QUERIES[:20], limit=K)
    assert [[h["id"] for h in r] for r in after] == [[h["id"] for h in r] for r in before]
    assert other._db.collection(name).indexes._unsaved == set(), "loaded from disk, not rebuilt"
    other.close()


@pytest.mark.parametrize("forced_ann", [False, True])
@pytest.mark.parametrize("selectivity", [0.5, 0.1, 0.01, 0.001])
@pytest.mark.parametrize("index_type, metric", [("HNSW", "COSINE"), ("IVF_FLAT", "L2")])
def test_filtered_search_returns_min_limit_matches_with_recall(indexed, monkeypatch, forced_ann, selectivity,
                                                               index_type, metric):
    client, _ = indexed
    if forced_ann:  # make the planner use the graph/IVF with a selector even for few rows
        if selectivity < 0.01 and index_type == "HNSW":
            pytest.skip("a graph walk cannot reach 20 scattered rows; the planner never sends it there")
        monkeypatch.setattr(search_plan, "EXACT_BUDGET", 0)
    threshold = int(selectivity * 1000)
    mask = BUCKET < threshold
    res = client.search(index_type.lower(), QUERIES, limit=K, filter=f"bucket < {threshold}")
    assert all(len(r) == min(K, int(mask.sum())) for r in res)
    assert all(BUCKET[h["id"]] < threshold for r in res for h in r)
    assert recall(res, exact_ids(metric, mask)) >= 0.95


def test_deleted_never_returned_and_new_rows_visible_at_once(tmp_path):
    client = MilvusClient(str(tmp_path / "d.db"))
    build(client, "h", "HNSW", "L2")
    gone = exact_ids("L2")[:, 0][:20].tolist()  # the true nearest neighbours of 20 queries
    client.delete("h", ids=gone)
    res = client.search("h", QUERIES[:20], limit=K)
    assert not {h["id"] for r in res for h in r} & set(gone)
    # a row inserted after the build is found at once
    client.insert("h", [{"id": N + 1, "bucket": 0, "vec": QUERIES[5]}])
    assert client.search("h", QUERIES[5:6], limit=1)[0][0]["id"] == N + 1
    client.close()


def test_deleted_rows_stay_hidden_in_a_reopened_index(tmp_path):
    # The saved index still holds the deleted rows; a new client maps its labels to its own
    # cache and masks them (unfiltered and filtered searches alike).
    path = str(tmp_path / "r.db")
    client = MilvusClient(path)
    build(client, "h", "HNSW", "L2")
    gone = exact_ids("L2")[:, 0][:20].tolist()
    client.delete("h", ids=gone)
    client.close()
    again = MilvusClient(path)
    alive = np.ones(N, bool)
    alive[gone] = False
    for expr, mask in (("", alive), ("bucket < 500", alive & (BUCKET < 500))):
        res = again.search("h", QUERIES, limit=K, filter=expr)
        assert all(len(r) == K for r in res)
        assert not {h["id"] for r in res for h in r} & set(gone)
        assert recall(res, exact_ids("L2", mask)) >= 0.95
    again.close()


def test_missing_or_corrupt_index_file_is_rebuilt(tmp_path):
    path = tmp_path / "r.db"
    client = MilvusClient(str(path))
    build(client, "h", "IVF_FLAT", "L2")
    want = [[h["id"] for h in r] for r in client.search("h", QUERIES[:10], limit=K)]
    client.close()
    files = list((path / "indexes").rglob("*.faiss"))
    assert files, "the index was saved next to the rows"
    files[0].write_bytes(b"garbage")
    again = MilvusClient(str(path))
    assert [[h["id"] for h in r] for r in again.search("h", QUERIES[:10], limit=K)] == want
    again.close()
    # the label -> seq map beside the index: truncated, then gone
    (seqs_file,) = (path / "indexes").rglob("*.seqs.npy")
    seqs_file.write_bytes(seqs_file.read_bytes()[:200])
    truncated = MilvusClient(str(path))
    assert [[h["id"] for h in r] for r in truncated.search("h", QUERIES[:10], limit=K)] == want
    truncated.close()
    seqs_file.unlink()
    without_map = MilvusClient(str(path))
    assert [[h["id"] for h in r] for r in without_map.search("h", QUERIES[:10], limit=K)] == want
    without_map.close()
    shutil.rmtree(path / "indexes")
    third = MilvusClient(str(path))
    assert [[h["id"] for h in r] for r in third.search("h", QUERIES[:10], limit=K)] == want
    third.close()


def test_range_search_matches_brute_force(indexed):
    client, _ = indexed
    q = QUERIES[:5]
    d = ((q[:, None, :] - DATA[None]) ** 2).sum(-1)
    lo, hi = np.quantile(d, 0.001), np.quantile(d, 0.004)
    res = client.search("ivf_flat", q, limit=1000, search_params={"params": {"radius": hi, "range_filter": lo}})
    for qi, r in enumerate(res):
        want = set(np.flatnonzero((d[qi] >= lo) & (d[qi] < hi)).tolist())
        assert {h["id"] for h in r} == want
        assert all(lo - 1e-3 <= h["distance"] < hi + 1e-3 for h in r)
    res = client.search("hnsw", q, limit=50, search_params={"params": {"radius": 0.9}})
    cos = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (DATA / np.linalg.norm(DATA, axis=1, keepdims=True)).T
    for qi, r in enumerate(res):
        want = np.flatnonzero(cos[qi] > 0.9)
        want = want[np.argsort(-cos[qi, want])][:50]
        assert [h["id"] for h in r] == want.tolist()


@pytest.mark.parametrize("group_size, strict", [(1, False), (3, False), (3, True)])
def test_grouping_search_matches_brute_force(indexed, group_size, strict):
    client, _ = indexed
    res = client.search("hnsw", QUERIES[:5], limit=5, group_by_field="bucket", group_size=group_size,
                        strict_group_size=strict, output_fields=["bucket"])
    cos = (QUERIES[:5] / np.linalg.norm(QUERIES[:5], axis=1, keepdims=True)) @ (
        DATA / np.linalg.norm(DATA, axis=1, keepdims=True)).T
    for qi, r in enumerate(res):
        groups: dict = {}
        for i in np.argsort(-cos[qi], kind="stable"):
            g = groups.setdefault(int(BUCKET[i]), []) if len(groups) < 5 or int(BUCKET[i]) in groups else None
            if g is not None and len(g) < group_size:
                g.append(int(i))
        want = [i for g in groups.values() for i in g]
        assert [h["id"] for h in r] == want
        assert all(h["entity"]["bucket"] == BUCKET[h["id"]] for h in r)


def test_iterators_return_every_match_exactly_once(indexed):
    client, _ = indexed
    it = client.query_iterator("hnsw", batch_size=333, filter="bucket < 50", output_fields=["bucket"])
    seen = [row["id"] for page in it for row in page]
    assert seen == sorted(np.flatnonzero(BUCKET < 50).tolist())
    it = client.search_iterator("hnsw", QUERIES[0], batch_size=100, limit=1000, filter="bucket < 500")
    pages = []
    while page := it.next():
        pages.append(page)
    ids = [h["id"] for p in pages for h in p]
    assert len(ids) == len(set(ids)) == 1000 and [len(p) for p in pages] == [100] * 10
    dists = [h["distance"] for p in pages for h in p]
    assert dists == sorted(dists, reverse=True)
    assert recall([[{"id": i} for i in ids]], exact_ids("COSINE", BUCKET < 500, queries=QUERIES[:1], k=1000)) >= 0.95


@pytest.mark.parametrize("bad", [0, -3, "many", True, None])
def test_bad_search_knob_is_a_param_error(indexed, bad):
    from harrierdb.errors import ParamError

    client, _ = indexed
    with pytest.raises(ParamError, match="ef must be a positive integer"):
        client.search("hnsw", QUERIES[:1], limit=K, search_params={"params": {"ef": bad}})


def test_locality_reorder_keeps_every_result_and_shortens_links():
    import faiss

    from harrierdb.index.ann import reorder_for_locality

    data = clustered(4000, DIM, 7)
    seqs = np.arange(4000, dtype=np.int64) * 3 + 11  # ids unlike positions, as seqs after deletes
    index = faiss.IndexHNSWFlat(DIM, 16)
    index.add(data)

    def median_link_span():
        graph = index.hnsw
        starts = faiss.vector_to_array(graph.offsets)[:-1].astype(np.int64)
        links = faiss.vector_to_array(graph.neighbors)[starts[:, None] + np.arange(graph.nb_neighbors(0))]
        valid = links >= 0
        return np.median(np.abs(links - np.arange(len(starts))[:, None])[valid])

    before_d, before_labels = index.search(QUERIES, K)
    span = median_link_span()
    order = reorder_for_locality(index)
    after_d, after_labels = index.search(QUERIES, K)
    reordered_seqs = seqs[order]  # how AnnIndex permutes its label -> seq map
    np.testing.assert_array_equal(reordered_seqs[after_labels], seqs[before_labels])
    np.testing.assert_allclose(after_d, before_d, rtol=1e-6)
    assert median_link_span() < 0.8 * span  # neighbours closer in memory
    # the vectors moved with their labels: the row of every seq still holds its own vector
    label = int(np.flatnonzero(reordered_seqs == seqs[123])[0])
    np.testing.assert_array_equal(index.reconstruct(label), data[123])


def test_threads_search_while_rows_arrive(tmp_path):
    import threading

    client = MilvusClient(str(tmp_path / "t.db"))
    build(client, "h", "HNSW", "COSINE")
    problems = []
    done = threading.Event()

    def search_until_done():
        try:
            while not done.is_set():
                for hits in client.search("h", QUERIES[:4], limit=K):
                    ids = [hit["id"] for hit in hits]
                    assert len(ids) == len(set(ids)) == K, ids  # no row twice, none missing
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            problems.append(exc)

    searchers = [threading.Thread(target=search_until_done) for _ in range(3)]
    for thread in searchers:
        thread.start()
    for i in range(20):  # each insert makes the next searches catch the index up
        client.insert("h", [{"id": N + i, "bucket": 0, "vec": QUERIES[i]}])
    done.set()
    for thread in searchers:
        thread.join()
    assert not problems
    nearest = client.search("h", QUERIES[:20], limit=1)
    assert [hits[0]["id"] for hits in nearest] == [N + i for i in range(20)]
    client.close()
