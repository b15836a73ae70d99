"""Exact (brute-force) k-nearest-neighbour search with Milvus's metric semantics.

``L2`` reports squared Euclidean distance (smaller first); ``IP`` and ``COSINE`` report
similarity (larger first); ``HAMMING`` counts differing bits and ``JACCARD`` reports
1 - |a & b| / |a | b| (smaller first). Scores come back in the metric's own units; internally
everything is ranked as "larger is better" so one top-k routine serves all metrics.
"""

from __future__ import annotations

import faiss
import numpy as np

FLOAT_METRICS = ("L2", "IP", "COSINE")
BINARY_METRICS = ("HAMMING", "JACCARD")
SMALLER_IS_BETTER = {"L2", "HAMMING", "JACCARD", "MAX_SIM_L2"}
# The score matrix of one chunk holds at most this many floats (64 MiB): big enough that a
# batch of 100 queries over 100k rows is one BLAS product, small enough to bound memory.
_CHUNK_SCORES = 1 << 24


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as a float32 copy (zero rows stay zero).

    FAISS's C loop: for one query it is ~5x faster than the NumPy expression, and the query
    path of every COSINE search runs it."""
    out = np.array(x, dtype=np.float32, order="C")
    faiss.normalize_L2(out)
    return out


def top_k(rank: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the k largest entries of each row, best first."""
    m = rank.shape[1]
    k = min(k, m)
    if k == 0:
        empty = np.empty((rank.shape[0], 0))
        return empty.astype(np.int64), empty.astype(rank.dtype)
    if k < m:  # the k largest sit after position m - k (no negated copy of the matrix)
        part = np.argpartition(rank, m - k, axis=1)[:, m - k:]
    else:
        part = np.broadcast_to(np.arange(m), rank.shape).copy()
    vals = np.take_along_axis(rank, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)


def rank_scores(data: np.ndarray, queries: np.ndarray, metric: str,
                sq_norms: np.ndarray | None = None) -> np.ndarray:
    """Scores of every query against every row, oriented so that larger is better."""
    if metric in BINARY_METRICS:
        return -binary_distances(data, queries, metric)
    sims = queries @ data.T
    if metric == "L2":
        # Ranking by 2 q.x - |x|^2 is ranking by -|q - x|^2, since |q|^2 is the same along a
        # row; in place, that is two passes over the score matrix (exact_search adds |q|^2).
        if sq_norms is None:
            sq_norms = np.einsum("ij,ij->i", data, data)
        sims *= 2
        sims -= sq_norms[None, :]
    return sims


def to_metric(rank: np.ndarray, metric: str) -> np.ndarray:
    """Turn internal 'larger is better' scores back into the metric's units."""
    return -rank if metric in SMALLER_IS_BETTER else rank


def exact_search(data: np.ndarray, queries: np.ndarray, k: int, metric: str,
                 candidates: np.ndarray | None = None,
                 sq_norms: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k rows of ``data`` for each query: (distances (nq, k'), row positions (nq, k')).

    ``data`` must already be unit-normalised for COSINE (queries are normalised here).
    ``candidates``, when given, restricts the search to those row positions; gathering them
    first and running one BLAS product is the fastest exact filtered search.
    """
    if metric == "COSINE":
        queries = normalize_rows(queries)
    if candidates is not None:
        data = data[candidates]
        sq_norms = sq_norms[candidates] if sq_norms is not None else None
    best_pos = np.empty((len(queries), 0), np.int64)
    best_rank = np.empty((len(queries), 0), np.float32)
    # Chunk the rows so the score matrix stays bounded for big collections and batches.
    step = max(_CHUNK_SCORES // max(len(queries), 1), 4096)
    for start in range(0, len(data), step):
        stop = min(start + step, len(data))
        rank = rank_scores(data[start:stop], queries, metric,
                           None if sq_norms is None else sq_norms[start:stop])
        pos, vals = top_k(rank, k)
        best_pos = np.concatenate([best_pos, pos + start], axis=1)
        best_rank = np.concatenate([best_rank, vals.astype(np.float32)], axis=1)
        if start > 0:
            order, best_rank = top_k(best_rank, k)
            best_pos = np.take_along_axis(best_pos, order, axis=1)
    if candidates is not None:
        best_pos = candidates[best_pos]
    if metric == "L2":  # |q|^2 - (2 q.x - |x|^2), clipped at 0 against rounding
        q_norms = np.einsum("ij,ij->i", queries, queries)
        return np.maximum(q_norms[:, None] - best_rank, 0).astype(np.float32), best_pos
    return to_metric(best_rank, metric), best_pos


def binary_distances(data: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    """HAMMING or JACCARD distances between packed-bit queries and rows."""
    q = queries[:, None, :]
    x = data[None, :, :]
    differ = np.bitwise_count(q ^ x).sum(axis=2, dtype=np.int64)
    if metric == "HAMMING":
        return differ.astype(np.float32)
    union = np.bitwise_count(q | x).sum(axis=2, dtype=np.int64)
    inter = union - differ
    return np.where(union == 0, 0.0, 1.0 - inter / np.maximum(union, 1)).astype(np.float32)
