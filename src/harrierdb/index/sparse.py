"""Exact search over sparse vectors by inner product, through an inverted index.

The inverted index is the CSC form of the collection's sparse matrix over a compact
vocabulary (the distinct indices seen, in sorted order): a query touches only the columns of
its own non-zero indices, so its cost is the length of those posting lists, not the size of
the collection. Rows that share no index with a query are not hits, as in Milvus.
``drop_ratio_search`` drops that share of a query's smallest values first (0 keeps search exact).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from harrierdb.index.exact import top_k


@dataclass
class InvertedIndex:
    """Posting lists of a sparse column: ``postings`` is (rows x vocabulary) in CSC form."""

    postings: sp.csc_array
    vocabulary: np.ndarray  # sorted original indices; column j of postings is vocabulary[j]

    @classmethod
    def build(cls, matrix: sp.csr_array, drop_ratio_build: float = 0.0) -> InvertedIndex:
        vocabulary, columns = np.unique(matrix.indices, return_inverse=True)
        data = matrix.data
        if drop_ratio_build > 0:
            data = _drop_small_per_row(matrix, drop_ratio_build)
        compact = sp.csr_array((data, columns.astype(np.int64), matrix.indptr),
                               shape=(matrix.shape[0], len(vocabulary)))
        compact.eliminate_zeros()
        return cls(compact.tocsc(), vocabulary)

    def columns_of(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Compact columns of original indices, and which of the indices are known."""
        pos = np.searchsorted(self.vocabulary, indices)
        pos = np.minimum(pos, max(len(self.vocabulary) - 1, 0))
        known = (self.vocabulary[pos] == indices) if len(self.vocabulary) else np.zeros(len(indices), bool)
        return pos[known], known

    def scores(self, indices: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows touched, their inner products) for one query."""
        cols, known = self.columns_of(indices)
        if not len(cols):
            return np.empty(0, np.int64), np.empty(0, np.float32)
        sub = self.postings[:, cols]
        touched = np.unique(sub.indices)
        return touched, (sub @ weights[known].astype(np.float32))[touched]


def search(index: InvertedIndex, queries: sp.csr_array, k: int, candidates: np.ndarray | None,
           drop_ratio_search: float = 0.0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Top-k (scores, row positions) per query; ``candidates`` is a row mask or None."""
    out = []
    for qi in range(queries.shape[0]):
        lo, hi = queries.indptr[qi], queries.indptr[qi + 1]
        idx, vals = queries.indices[lo:hi], queries.data[lo:hi]
        if drop_ratio_search > 0 and len(vals) > 1:
            keep = np.abs(vals) >= np.quantile(np.abs(vals), drop_ratio_search)
            idx, vals = idx[keep], vals[keep]
        rows, scores = index.scores(idx, vals)
        if candidates is not None:
            ok = candidates[rows]
            rows, scores = rows[ok], scores[ok]
        order, best = top_k(scores[None, :], k)
        out.append((best[0].astype(np.float32), rows[order[0]]))
    return out


def _drop_small_per_row(matrix: sp.csr_array, ratio: float) -> np.ndarray:
    """Zero the smallest ``ratio`` share of each row's values (SPARSE_INVERTED_INDEX's
    drop_ratio_build)."""
    data = matrix.data.copy()
    for r in range(matrix.shape[0]):
        lo, hi = matrix.indptr[r], matrix.indptr[r + 1]
        if hi - lo > 1:
            row = np.abs(data[lo:hi])
            data[lo:hi][row < np.quantile(row, ratio)] = 0
    return data
