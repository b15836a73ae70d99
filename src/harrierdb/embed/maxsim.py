"""MaxSim: late-interaction scoring of a multi-vector query against multi-vector documents.

For each query token, take its best match among the document's tokens, then sum over
query tokens (ColBERT's score)::

    IP      sum_q max_t  q . t                  larger is better
    COSINE  sum_q max_t  q . t / (|q| |t|)      larger is better
    L2      sum_q min_t  |q - t|^2              smaller is better

L2 reports the sum of *minimum squared distances*, a distance (Milvus's MAX_SIM_L2
ranks ascending), which equals ``-sum_q max_t -|q - t|^2``.

Many documents are stored as one flat ``(total_tokens, d)`` matrix plus ``offsets``
(document ``j`` is rows ``offsets[j]:offsets[j+1]``), as :func:`pack` builds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harrierdb.errors import ParamError

METRICS = ("IP", "COSINE", "L2")
#: Similarity entries per batch in :func:`maxsim_batch` (64 MB of float32).
_CHUNK_ENTRIES = 1 << 24


def maxsim(query_tokens: np.ndarray, doc_tokens: np.ndarray, metric: str = "IP") -> float:
    """MaxSim of one ``(q, d)`` query against one ``(t, d)`` document (see the module doc)."""
    query = _check_tokens("query_tokens", query_tokens)
    doc = _check_tokens("doc_tokens", doc_tokens, query.shape[1])
    return float(maxsim_batch(query, doc, np.array([0, len(doc)]), metric)[0])


def maxsim_batch(query_tokens: np.ndarray, doc_tokens: np.ndarray, offsets: Sequence[int] | np.ndarray,
                 metric: str = "IP") -> np.ndarray:
    """MaxSim of one query against every document in a flat token matrix: ``(n_docs,)`` float32.

    A document with no tokens scores ``-inf`` (IP, COSINE) or ``+inf`` (L2): the worst.
    """
    _check_metric(metric)
    query = _check_tokens("query_tokens", query_tokens)
    docs = _check_tokens("doc_tokens", doc_tokens, query.shape[1])
    offs = _check_offsets(offsets, len(docs))
    n_docs = len(offs) - 1
    worst = np.inf if metric == "L2" else -np.inf
    out = np.full(n_docs, worst, dtype=np.float32)
    if len(query) == 0:
        out[:] = 0.0
        return out
    if metric == "COSINE":
        query, docs = _normalize(query), _normalize(docs)
    lengths = np.diff(offs)
    nonempty = np.flatnonzero(lengths > 0)
    if metric == "L2":
        q_sq = np.einsum("ij,ij->i", query, query)
    tokens_per_chunk = max(1, _CHUNK_ENTRIES // len(query))
    start = 0
    while start < len(nonempty):
        # Whole documents per chunk, at least one, up to the token budget.
        first = offs[nonempty[start]]
        stop = int(np.searchsorted(offs[nonempty + 1], first + tokens_per_chunk, side="right"))
        stop = max(stop, start + 1)
        chunk = nonempty[start:stop]
        lo, hi = offs[chunk[0]], offs[chunk[-1] + 1]
        sims = query @ docs[lo:hi].T                                  # (q, tokens)
        starts = offs[chunk] - lo                                      # all non-empty: reduceat is exact
        if metric == "L2":
            d_sq = np.einsum("ij,ij->i", docs[lo:hi], docs[lo:hi])
            dist = np.maximum(q_sq[:, None] - 2 * sims + d_sq[None, :], 0)
            out[chunk] = np.minimum.reduceat(dist, starts, axis=1).sum(axis=0)
        else:
            out[chunk] = np.maximum.reduceat(sims, starts, axis=1).sum(axis=0)
        start = stop
    return out


def pack(docs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack per-document ``(t_j, d)`` token matrices into ``(tokens, offsets)``."""
    if len(docs) == 0:
        raise ParamError("pack() needs at least one document")
    mats = [_check_tokens(f"docs[{j}]", d) for j, d in enumerate(docs)]
    dims = {m.shape[1] for m in mats}
    if len(dims) > 1:
        raise ParamError(f"documents have different token dimensions {sorted(dims)}")
    offsets = np.zeros(len(mats) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(m) for m in mats])
    return np.concatenate(mats).astype(np.float32, copy=False), offsets


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _check_metric(metric: object) -> None:
    if metric not in METRICS:
        raise ParamError(f"metric must be one of {METRICS}, got {metric!r}")


def _check_tokens(name: str, x: object, dim: int | None = None) -> np.ndarray:
    array = np.asarray(x)
    if array.ndim != 2:
        raise ParamError(f"{name} must be a 2-d (tokens, dim) array, got shape {array.shape}")
    if array.dtype.kind not in "fiu":
        raise ParamError(f"{name} must be numeric, got dtype {array.dtype}")
    if dim is not None and array.shape[1] != dim:
        raise ParamError(f"{name} has dimension {array.shape[1]}, the query has {dim}")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise ParamError(f"{name} contains NaN or infinity")
    return array


def _check_offsets(offsets: object, n_tokens: int) -> np.ndarray:
    offs = np.asarray(offsets)
    if offs.ndim != 1 or len(offs) < 1 or offs.dtype.kind not in "iu":
        raise ParamError(f"offsets must be a 1-d int array [0, ..., n_tokens], got {offs!r:.80}")
    offs = offs.astype(np.int64)
    if offs[0] != 0 or offs[-1] != n_tokens or (np.diff(offs) < 0).any():
        raise ParamError(f"offsets must rise from 0 to the {n_tokens} doc tokens, got "
                         f"{offs[:3].tolist()}...{offs[-1:].tolist()}")
    return offs
