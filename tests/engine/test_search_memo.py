"""Filtered searches reuse a filter's evaluation until the rows change, and never serve a stale one."""

import numpy as np
import pytest

from harrierdb import MilvusClient

DIM = 8


@pytest.fixture
def coll(client, rng):
    schema = MilvusClient.create_schema()
    schema.add_field("id", "INT64", is_primary=True)
    schema.add_field("tag", "INT64")
    schema.add_field("vec", "FLOAT_VECTOR", dim=DIM)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection("c", schema=schema, index_params=ip)
    vecs = rng.standard_normal((200, DIM)).astype(np.float32)
    client.insert("c", [{"id": i, "tag": i % 4, "vec": vecs[i]} for i in range(200)])
    return client, vecs


def ids_of(result):
    return [[hit["id"] for hit in hits] for hits in result]


def brute(vecs, ids, query, k):
    order = np.argsort(((vecs[ids] - query) ** 2).sum(1), kind="stable")[:k]
    return [int(ids[i]) for i in order]


def test_repeated_filter_is_evaluated_once(coll, monkeypatch):
    client, vecs = coll
    collection = client._db.collection("c")
    calls = []
    real = collection._filter_mask
    monkeypatch.setattr(collection, "_filter_mask", lambda *a: calls.append(a) or real(*a))
    for _ in range(3):
        client.search("c", [vecs[0]], limit=5, filter="tag == 1")
    assert len(calls) == 1


def test_memo_is_dropped_when_rows_change(coll, rng):
    client, vecs = coll
    query = vecs[3] + np.float32(0.01)
    tagged = np.flatnonzero(np.arange(200) % 4 == 3)
    assert ids_of(client.search("c", [query], limit=5, filter="tag == 3")) == [brute(vecs, tagged, query, 5)]
    # a new row that passes the filter, right at the query, must show up
    client.insert("c", [{"id": 1000, "tag": 3, "vec": query}])
    assert ids_of(client.search("c", [query], limit=1, filter="tag == 3")) == [[1000]]
    # and a deleted one must vanish
    client.delete("c", ids=[1000])
    assert ids_of(client.search("c", [query], limit=5, filter="tag == 3")) == [brute(vecs, tagged, query, 5)]


def test_filter_params_key_the_memo(coll):
    client, vecs = coll
    for tag in range(4):
        hits = client.search("c", [vecs[0]], limit=100, filter="tag == {t}", filter_params={"t": tag},
                             output_fields=["tag"])[0]
        assert {hit["entity"]["tag"] for hit in hits} == {tag}


def test_array_filter_params_are_not_memoised_by_their_abridged_repr(coll):
    client, vecs = coll
    first = np.arange(0, 200, 2)
    second = first.copy()
    second[50] = 1  # same length and repr prefix, one element differs
    for allowed in (first, second):
        hits = client.search("c", [vecs[1]], limit=200, filter="id in {ids}", filter_params={"ids": allowed})[0]
        assert sorted(hit["id"] for hit in hits) == sorted(allowed.tolist())


def test_query_cannot_corrupt_a_memoised_mask(coll):
    client, vecs = coll
    client.search("c", [vecs[0]], limit=5, filter="tag == 2")
    assert len(client.query("c", filter="tag == 2", ids=[2, 6], output_fields=["id"])) == 2
    hits = client.search("c", [vecs[0]], limit=100, filter="tag == 2")[0]
    assert len(hits) == 50


def test_mutating_search_params_between_calls_takes_effect(coll):
    client, vecs = coll
    params = {"params": {}, "offset": 0}
    first = ids_of(client.search("c", [vecs[0]], limit=5, search_params=params))[0]
    params["offset"] = 2  # the same dict, changed in place: must not match the remembered parse
    shifted = ids_of(client.search("c", [vecs[0]], limit=3, search_params=params))[0]
    assert shifted == first[2:5]
    params["params"]["radius"] = 1e-9  # an L2 range that nothing but an exact duplicate meets
    assert ids_of(client.search("c", [vecs[0] + 1], limit=5, search_params=params)) == [[]]


def test_positions_with_gapped_sequence_numbers():
    from harrierdb.engine.cache import CollectionCache

    schema = MilvusClient.create_schema()
    schema.add_field("id", "INT64", is_primary=True)
    schema.add_field("vec", "FLOAT_VECTOR", dim=2)
    for batches in ([[1, 2, 3, 4, 5]], [[1, 2, 3], [5, 6]], [[2, 4, 6]]):
        cache = CollectionCache(schema, epoch=0)
        for seqs in batches:
            cache.append(np.array(seqs), seqs, "_default", {}, {"vec": np.zeros((len(seqs), 2), np.float32)})
        all_seqs = [s for b in batches for s in b]
        ask = np.array([[all_seqs[-1], all_seqs[0]], [-1, all_seqs[1]]])
        expected = [[len(all_seqs) - 1, 0], [-1, 1]]
        assert cache.positions_of_seqs(ask).tolist() == expected
        assert cache.positions_of_seqs(np.array([all_seqs[-1] + 1, 0])).tolist() == [-1, -1]
