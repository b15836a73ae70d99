"""The prepared path of a repeated unfiltered search (``IndexSet.prepared_search``): it must
answer exactly as the planner would, and give way whenever what it resolved once no longer holds."""

import numpy as np
import pytest

from harrierdb import MilvusClient
from harrierdb.errors import MetricMismatchError, ParamError
from tests.index.test_ann import DATA, DIM, QUERIES, build, exact_ids, recall

SEARCH = {"params": {"ef": 64}}


def _cosine_hnsw(tmp_path_factory, name):
    c = MilvusClient(str(tmp_path_factory.mktemp(name) / "db"))
    build(c, "c", "HNSW", "COSINE", {"M": 16, "efConstruction": 100})
    yield c
    c.close()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    yield from _cosine_hnsw(tmp_path_factory, "prepared")


def _search(client, queries=QUERIES, **kw):
    return client.search("c", queries, limit=10, search_params=SEARCH, anns_field="vec", **kw)


def test_repeated_search_matches_exact_search_and_takes_the_prepared_path(client):
    indexes = client._db.collection("c").indexes
    first = _search(client)
    prepared = indexes._prepared
    assert prepared is not None and prepared.cosine
    second = _search(client)
    assert indexes._prepared is prepared  # resolved once, reused
    assert [[h["id"] for h in r] for r in first] == [[h["id"] for h in r] for r in second]
    assert recall(second, exact_ids("COSINE")) >= 0.95
    distances = np.array([[h["distance"] for h in r] for r in second])
    assert np.all(distances <= 1.0 + 1e-5) and np.all(np.diff(distances, axis=1) <= 1e-6)


def test_single_query_shapes_agree(client):
    as_matrix = _search(client, QUERIES[:1])[0]
    as_vector = _search(client, QUERIES[0])[0]
    as_list = _search(client, [QUERIES[0].tolist()])[0]
    assert [h["id"] for h in as_matrix] == [h["id"] for h in as_vector] == [h["id"] for h in as_list]


def test_rows_written_after_preparing_are_seen_and_deleted_ones_never_come_back(client):
    _search(client)
    query = QUERIES[3]
    new_id = 10_000_000
    client.insert("c", [{"id": new_id, "bucket": 0, "vec": query * 2}])  # nearest by cosine
    assert _search(client, query[None])[0][0]["id"] == new_id
    client.delete("c", ids=[new_id])
    assert new_id not in {h["id"] for h in _search(client, query[None])[0]}
    hits = _search(client)  # deleted rows still in the graph: the planner's selector path
    assert all(len(r) == 10 for r in hits)
    assert recall(hits, exact_ids("COSINE")) >= 0.95


def test_changed_parameters_are_not_answered_by_a_stale_preparation(client):
    _search(client)
    with pytest.raises(MetricMismatchError):
        client.search("c", QUERIES[:1], limit=10, anns_field="vec", search_params={"metric_type": "L2"})
    with pytest.raises(ParamError):
        client.search("c", QUERIES[:1], limit=10, anns_field="vec", search_params={"params": {"ef": 0}})
    hits = client.search("c", QUERIES[:1], limit=3, anns_field="vec", search_params=SEARCH)
    assert len(hits[0]) == 3


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_queries_are_refused(client, bad):
    # the prepared path looks for NaN and inf only when no distance came back finite
    query = QUERIES[:1].copy()
    query[0, 5] = bad
    with pytest.raises(ParamError, match="vector 0 contains NaN or inf"):
        _search(client, query)
    batch = QUERIES[:4].copy()
    batch[2, 0] = bad
    with pytest.raises(ParamError, match="vector 2 contains NaN or inf"):
        _search(client, batch)
    assert recall(_search(client), exact_ids("COSINE")) >= 0.95  # and nothing stuck


@pytest.fixture(scope="module")
def other_indexes(tmp_path_factory):
    c = MilvusClient(str(tmp_path_factory.mktemp("prepared-other") / "db"))
    build(c, "l2_sq8", "IVF_SQ8", "L2", {"nlist": 64})
    build(c, "ip_hnsw", "HNSW", "IP", {"M": 8, "efConstruction": 40})
    yield c
    c.close()


@pytest.mark.parametrize("name", ["l2_sq8", "ip_hnsw"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_queries_are_refused_by_every_index_kind(other_indexes, name, bad):
    query = QUERIES[:1].copy()
    query[0, -1] = bad
    for _ in range(2):  # the first search prepares, the second reuses the preparation
        with pytest.raises(ParamError, match="NaN or inf"):
            other_indexes.search(name, query, limit=10, anns_field="vec")
        other_indexes.search(name, QUERIES[:1], limit=10, anns_field="vec")


def test_finite_queries_whose_distances_overflow_are_answered(other_indexes):
    # squared L2 distances beyond float32's range are inf: not a reason to refuse the query
    huge = QUERIES[:1] * np.float32(1e30)
    hits = other_indexes.search("l2_sq8", huge, limit=10, anns_field="vec")[0]
    assert len(hits) == 10 and all(h["distance"] == np.inf for h in hits)


def test_an_index_recreated_with_another_metric_is_used_at_once(tmp_path):
    c = MilvusClient(str(tmp_path / "db"))
    build(c, "c", "HNSW", "COSINE", {"M": 16, "efConstruction": 100})
    _search(c)
    c.release_collection("c")
    c.drop_index("c", "vec")
    ip = c.prepare_index_params()
    ip.add_index("vec", index_type="HNSW", metric_type="L2", params={"M": 16, "efConstruction": 100})
    c.create_index("c", ip)
    c.load_collection("c")
    hits = _search(c)
    assert not c._db.collection("c").indexes._prepared.cosine
    assert recall(hits, exact_ids("L2")) >= 0.95
    c.close()


def test_dimension_mismatch_is_a_clear_error(client):
    with pytest.raises(ParamError, match=f"dim {DIM}"):
        _search(client, DATA[:1, :-1])


@pytest.mark.parametrize("n", [1, 5, 40])  # one query; a few (one OpenMP thread); many
def test_ann_search_through_search_c_equals_faiss_own_search(client, n):
    import faiss

    ann = client._db.collection("c").indexes.ann["vec"]
    queries = QUERIES[:n] / np.linalg.norm(QUERIES[:n], axis=1, keepdims=True)
    distances, labels = ann.search(queries, 10, 64, None)
    want_d, want_l = ann.index.search(queries.astype(np.float32), 10, params=faiss.SearchParametersHNSW(efSearch=64))
    assert np.array_equal(labels, want_l) and np.allclose(distances, want_d)
    with pytest.raises(ParamError, match=f"index of dim {DIM}"):
        ann.search(queries[:, :-1], 10, 64, None)


@pytest.mark.parametrize("vtype", ["BFLOAT16_VECTOR", "FLOAT16_VECTOR", "INT8_VECTOR"])
def test_compact_vector_types_are_decoded_before_the_prepared_search(tmp_path, vtype):
    # large enough for the ANN index (not the exact path); BFLOAT16 stores bit patterns
    n, dim = 5000, 192
    rng = np.random.default_rng(5)
    if vtype == "INT8_VECTOR":
        data = rng.integers(-100, 100, (n, dim)).astype(np.float32)
    else:
        data = rng.standard_normal((n, dim)).astype(np.float32)
    c = MilvusClient(str(tmp_path / "db"))
    schema = c.create_schema()
    schema.add_field("id", "INT64", is_primary=True)
    schema.add_field("v", vtype, dim=dim)
    ip = c.prepare_index_params()
    ip.add_index("v", index_type="HNSW", metric_type="L2", params={"M": 16, "efConstruction": 64})
    c.create_collection("h", schema=schema, index_params=ip)
    c.insert("h", [{"id": i, "v": data[i]} for i in range(n)])
    for _ in range(2):  # the first search prepares, the second reuses the preparation
        hits = c.search("h", data[:5], limit=3, search_params={"params": {"ef": 64}})
        assert c._db.collection("h").indexes._prepared is not None
        assert [h[0]["id"] for h in hits] == [0, 1, 2, 3, 4]
        assert all(h[0]["distance"] < 0.05 * np.sum(data[i] ** 2) for i, h in enumerate(hits))
    c.close()


@pytest.fixture(scope="module")
def untouched(tmp_path_factory):
    """A collection no test writes to, so that its searches always take the prepared path."""
    yield from _cosine_hnsw(tmp_path_factory, "prepared-untouched")


def test_single_queries_one_by_one_equal_the_batch_answer(untouched):
    # one query runs in its thread's reused buffers, a batch in fresh arrays: the same answers,
    # and no answer changes when the buffers are reused by the next query
    client = untouched
    batch = _search(client, QUERIES[:40])
    singles = [_search(client, q[None])[0] for q in QUERIES[:40]]
    assert client._db.collection("c").indexes._prepared.per_thread.buffers is not None  # the path taken
    as_float64 = [_search(client, q[None].astype(np.float64))[0] for q in QUERIES[:5]]
    assert [[(h["id"], h["distance"]) for h in r] for r in singles] == \
        [[(h["id"], h["distance"]) for h in r] for r in batch]
    assert [[h["id"] for h in r] for r in as_float64] == [[h["id"] for h in r] for r in batch[:5]]


def test_threads_searching_single_queries_at_once_each_get_their_own_answer(untouched):
    from concurrent.futures import ThreadPoolExecutor

    client = untouched

    want = [[h["id"] for h in r] for r in _search(client, QUERIES[:64])]

    def search_slice(start: int) -> list[list[int]]:
        return [[h["id"] for h in _search(client, QUERIES[i:i + 1])[0]] for i in range(start, 64, 4)]

    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(search_slice, range(4)))
    for start, answers in enumerate(got):
        assert answers == want[start::4]


def test_query_buffers_refuse_a_query_of_another_shape():
    import faiss

    from harrierdb.index.ann import QueryBuffers

    index = faiss.IndexFlatL2(DIM)
    index.add(DATA[:100])
    buffers = QueryBuffers(DIM, 5)
    buffers.search(index, DATA[7:8], None, False)
    assert buffers.labels[0, 0] == 7 and buffers.distances[0, 0] == 0
    for bad in (DATA[:1, :-1], DATA[:1, :1], DATA[:2]):  # (1, 1) would broadcast if copied as is
        with pytest.raises(ParamError, match=f"pass \\(1, {DIM}\\) vectors"):
            buffers.search(index, bad, None, False)


def test_a_single_query_on_string_keys_returns_the_keys_themselves(tmp_path):
    c = MilvusClient(str(tmp_path / "db"))
    schema = c.create_schema()
    schema.add_field("key", "VARCHAR", is_primary=True, max_length=16)
    schema.add_field("vec", "FLOAT_VECTOR", dim=DIM)
    index = c.prepare_index_params()
    index.add_index("vec", index_type="HNSW", metric_type="L2", params={"M": 16, "efConstruction": 100})
    c.create_collection("s", schema=schema, index_params=index)
    c.insert("s", [{"key": f"row-{i}", "vec": v} for i, v in enumerate(DATA)])
    truth = np.argsort(((DATA - QUERIES[5]) ** 2).sum(axis=1))[:10]
    for _ in range(2):  # the first search prepares, the second runs prepared
        hits = c.search("s", QUERIES[5][None], limit=10, search_params=SEARCH)[0]
        assert c._db.collection("s").indexes._prepared is not None
        keys = [h["key"] for h in hits]
        assert all(type(k) is str for k in keys)
        assert len(set(keys) & {f"row-{i}" for i in truth}) >= 9
        assert [h.id for h in hits] == keys
    c.close()
