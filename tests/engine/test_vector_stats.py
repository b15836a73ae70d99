"""Per-batch vector statistics kept for drift monitoring."""

import numpy as np
import pytest

from harrierdb.errors import ParamError


def test_each_large_batch_gets_a_summary_and_small_ones_do_not(client, rng):
    client.create_collection("s", dimension=8)
    a = rng.standard_normal((100, 8)).astype(np.float32)
    b = rng.standard_normal((80, 8)).astype(np.float32) + 3
    client.insert("s", [{"id": i, "vector": a[i]} for i in range(100)])
    client.insert("s", [{"id": 100 + i, "vector": b[i]} for i in range(80)])
    client.insert("s", [{"id": 1000, "vector": a[0]}])  # too small to summarise
    stats = client.get_vector_stats("s", "vector")
    assert [s["count"] for s in stats] == [100, 80]
    assert np.allclose(stats[0]["summary"]["mean"], a.mean(axis=0), atol=1e-5)
    assert np.allclose(stats[1]["summary"]["mean"], b.mean(axis=0), atol=1e-5)
    assert stats[0]["first_seq"] < stats[1]["first_seq"]


def test_stats_only_for_dense_fields(client):
    client.create_collection("s", dimension=4)
    with pytest.raises(ParamError):
        client.get_vector_stats("s", "id")
