"""Hybrid search: several vector searches on one collection, fused into one ranking.

The names and semantics are pymilvus's: ``AnnSearchRequest`` describes one search;
``RRFRanker(k)`` scores a row by sum(1 / (k + rank)) over the lists it appears in (ranks from
1); ``WeightedRanker(*weights, norm_score=True)`` by sum(weight * score), each score first
mapped into [0, 1] as Milvus does: COSINE (1 + s) / 2, IP 0.5 + atan(s) / pi, BM25
2 * atan(s) / pi, and distances (L2 and other smaller-is-better metrics) 1 - 2 * atan(d) / pi.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harrierdb.errors import ParamError
from harrierdb.index.exact import SMALLER_IS_BETTER


@dataclass
class AnnSearchRequest:
    """One of the searches of a ``hybrid_search``."""

    data: Any
    anns_field: str
    param: Mapping = field(default_factory=dict)
    limit: int = 10
    expr: str | None = None
    expr_params: Mapping | None = None


class RRFRanker:
    """Reciprocal rank fusion: sum over lists of 1 / (k + rank)."""

    def __init__(self, k: int = 60):
        if not isinstance(k, (int, float)) or not 0 < k < 16384:
            raise ParamError(f"RRFRanker k must be in (0, 16384), got {k!r}")
        self.k = k

    def fuse(self, lists: list[tuple[np.ndarray, np.ndarray, str]]) -> dict[int, float]:
        scores: dict[int, float] = {}
        for _, positions, _ in lists:
            for rank, pos in enumerate(positions.tolist(), start=1):
                scores[pos] = scores.get(pos, 0.0) + 1.0 / (self.k + rank)
        return scores


class WeightedRanker:
    """Weighted sum of (normalised) scores, one weight per request."""

    def __init__(self, *weights: float, norm_score: bool = True):
        if not weights or not all(isinstance(w, (int, float)) and 0 <= w <= 1 for w in weights):
            raise ParamError(f"WeightedRanker takes one weight in [0, 1] per request, got {weights!r}")
        self.weights = [float(w) for w in weights]
        self.norm_score = norm_score

    def fuse(self, lists: list[tuple[np.ndarray, np.ndarray, str]]) -> dict[int, float]:
        if len(lists) != len(self.weights):
            raise ParamError(f"WeightedRanker has {len(self.weights)} weights for {len(lists)} requests; "
                             "give one weight per AnnSearchRequest")
        scores: dict[int, float] = {}
        for weight, (distances, positions, metric) in zip(self.weights, lists):
            for d, pos in zip(distances.tolist(), positions.tolist()):
                value = normalize_score(d, metric) if self.norm_score else d
                scores[pos] = scores.get(pos, 0.0) + weight * value
        return scores


def normalize_score(score: float, metric: str) -> float:
    """Milvus's mapping of a metric's score into [0, 1], larger is better."""
    if metric == "COSINE":
        return (1.0 + score) * 0.5
    if metric == "IP":
        return 0.5 + math.atan(score) / math.pi
    if metric == "BM25":
        return 2.0 * math.atan(score) / math.pi
    if metric in SMALLER_IS_BETTER:
        return 1.0 - 2.0 * math.atan(score) / math.pi
    return score


def top(scores: dict[int, float], limit: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The best ``limit`` positions by fused score (ties by position for determinism)."""
    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[offset:offset + limit]
    return (np.array([s for _, s in ranked], dtype=np.float32), np.array([p for p, _ in ranked], dtype=np.int64))
