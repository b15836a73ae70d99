"""MaxSim against a naive double loop."""

from __future__ import annotations

import numpy as np
import pytest

from harrierdb.embed import maxsim as ms
from harrierdb.embed.maxsim import maxsim, maxsim_batch, pack
from harrierdb.errors import ParamError


def naive(query: np.ndarray, doc: np.ndarray, metric: str) -> float:
    total = 0.0
    for q in query.astype(np.float64):
        best = np.inf if metric == "L2" else -np.inf
        for t in doc.astype(np.float64):
            if metric == "IP":
                best = max(best, q @ t)
            elif metric == "COSINE":
                best = max(best, q @ t / (np.linalg.norm(q) * np.linalg.norm(t)))
            else:
                best = min(best, ((q - t) ** 2).sum())
        total += best
    return total


@pytest.mark.parametrize("metric", ["IP", "COSINE", "L2"])
def test_single_document_matches_the_loop(metric):
    rng = np.random.default_rng(0)
    query, doc = rng.normal(size=(5, 8)), rng.normal(size=(7, 8))
    assert maxsim(query, doc, metric) == pytest.approx(naive(query, doc, metric), rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("metric", ["IP", "COSINE", "L2"])
@pytest.mark.parametrize("chunk", [1 << 24, 7], ids=["one-chunk", "many-chunks"])
def test_batch_matches_the_loop(metric, chunk, monkeypatch):
    monkeypatch.setattr(ms, "_CHUNK_ENTRIES", chunk)
    rng = np.random.default_rng(1)
    query = rng.normal(size=(4, 6)).astype(np.float32)
    docs = [rng.normal(size=(n, 6)).astype(np.float32) for n in (3, 1, 9, 2, 5)]
    tokens, offsets = pack(docs)
    got = maxsim_batch(query, tokens, offsets, metric)
    want = [naive(query, d, metric) for d in docs]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_empty_documents_score_worst():
    rng = np.random.default_rng(2)
    query = rng.normal(size=(3, 4))
    tokens = rng.normal(size=(4, 4))
    offsets = [0, 0, 2, 2, 4, 4]  # docs 0, 2 and 4 are empty
    ip = maxsim_batch(query, tokens, offsets, "IP")
    assert np.isneginf(ip[[0, 2, 4]]).all()
    np.testing.assert_allclose(ip[[1, 3]], [naive(query, tokens[:2], "IP"), naive(query, tokens[2:], "IP")],
                               rtol=1e-5)
    assert np.isposinf(maxsim_batch(query, tokens, offsets, "L2")[[0, 2, 4]]).all()


def test_identical_document_is_best_and_l2_is_a_distance():
    rng = np.random.default_rng(3)
    query = rng.normal(size=(4, 8))
    docs = [query.copy(), rng.normal(size=(6, 8)), rng.normal(size=(6, 8))]
    tokens, offsets = pack(docs)
    assert maxsim_batch(query, tokens, offsets, "L2").argmin() == 0
    assert maxsim_batch(query, tokens, offsets, "L2")[0] == pytest.approx(0, abs=1e-4)
    assert maxsim_batch(query, tokens, offsets, "COSINE")[0] == pytest.approx(4, abs=1e-5)


def test_bad_input():
    q = np.ones((2, 3))
    with pytest.raises(ParamError, match="metric"):
        maxsim(q, q, "HAMMING")
    with pytest.raises(ParamError, match="dimension"):
        maxsim(q, np.ones((2, 4)))
    with pytest.raises(ParamError, match="2-d"):
        maxsim(np.ones(3), q)
    with pytest.raises(ParamError, match="offsets"):
        maxsim_batch(q, q, [0, 1])
    with pytest.raises(ParamError, match="offsets"):
        maxsim_batch(q, q, [0, 2, 1, 2])
    with pytest.raises(ParamError, match="NaN"):
        maxsim(q, np.full((1, 3), np.nan))
    with pytest.raises(ParamError, match="different token dimensions"):
        pack([np.ones((1, 2)), np.ones((1, 3))])
