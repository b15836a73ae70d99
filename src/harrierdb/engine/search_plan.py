"""Search planning: which index answers a vector search, and with which parameters.

The rule (see DESIGN.md, "Filtered search"): the filter is evaluated to a bitmap first. With no
ANN index, or when the candidates are few enough that scanning them is as fast, the search is
exact over the gathered candidates (one BLAS product). Otherwise the ANN index answers with the
bitmap as a selector, and any query that comes back with fewer hits than exist is finished
exactly, so a caller always gets min(limit, matching rows) hits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from harrierdb.errors import MetricMismatchError, ParamError
from harrierdb.index.exact import SMALLER_IS_BETTER, exact_search
from harrierdb.index.spec import COMMON_SEARCH_PARAMS, IndexSpec, check_metric, default_metric, flatten_params
from harrierdb.schema import FieldSchema

if TYPE_CHECKING:
    from harrierdb.engine.cache import CollectionCache
    from harrierdb.engine.collection import Collection

# Searching k + (number of deleted rows) and dropping the deleted ones beats gathering the
# live rows while deletions are few; past this many, gather.
_MAX_DEAD_TO_SKIP = 1024


@dataclass
class SearchRequest:
    """A vector search, its parameters normalised from pymilvus's shapes."""

    field: FieldSchema
    queries: np.ndarray            # encoded as the field stores vectors
    k: int
    metric: str | None
    params: dict = field(default_factory=dict)
    radius: float | None = None
    range_filter: float | None = None

    @classmethod
    def make(cls, f: FieldSchema, queries: np.ndarray, k: int, search_params: Mapping | None,
             extra: Mapping) -> "SearchRequest":
        params = flatten_params(search_params)
        params.update(flatten_params(extra.get("param")))
        metric = params.pop("metric_type", None)
        metric = metric.upper() if isinstance(metric, str) and metric else None
        if metric:
            check_metric(f, metric)
        radius = params.pop("radius", None)
        range_filter = params.pop("range_filter", None)
        for key in ("offset", "limit", "ignore_growing"):
            params.pop(key, None)
        return cls(f, queries, k, metric, params, _opt_float(radius, "radius"),
                   _opt_float(range_filter, "range_filter"))


def _opt_float(value: Any, name: str) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ParamError(f"search parameter {name} must be a number, got {value!r}") from None


class IndexSet:
    """The indexes of one collection and the planner that picks how to search."""

    def __init__(self, collection: "Collection"):
        self.collection = collection
        self.specs: dict[str, IndexSpec] = {}
        self.reload_specs()

    def reload_specs(self) -> None:
        stored = self.collection.store.indexes(self.collection.record)
        self.specs = {
            spec["field_name"]: IndexSpec.from_dict(spec) for _, (_, spec) in stored.items()
            if self.collection.schema.field(spec["field_name"]).dtype.is_vector
        }

    # -- life cycle hooks ------------------------------------------------------------------
    def sync(self, cache: "CollectionCache") -> None:
        """Bring indexes up to date with the cache after rows were added or deleted."""

    def ensure_built(self, cache: "CollectionCache | None") -> None:
        """Build or load the indexes of loaded fields."""

    def release(self) -> None:
        """Drop in-memory indexes."""

    def remove_files(self) -> None:
        """Delete saved index files (the collection is being dropped)."""

    def describe(self, field_name: str, total_rows: int) -> dict:
        return {"indexed_rows": total_rows, "pending_index_rows": 0, "state": "Finished"}

    # -- search ----------------------------------------------------------------------------
    def metric_for(self, request: SearchRequest) -> str:
        """The metric a search uses: the index's; asking for another one is an error."""
        spec = self.specs.get(request.field.name)
        if spec is None:
            return request.metric or default_metric(request.field)
        if request.metric and request.metric != spec.metric_type:
            raise MetricMismatchError(
                f"search asked for metric {request.metric} but the index on field "
                f"{request.field.name!r} was built with {spec.metric_type}; search with "
                f"metric_type={spec.metric_type!r}, or drop the index and create one with {request.metric}")
        return spec.metric_type

    def search(self, cache: "CollectionCache", request: SearchRequest,
               mask: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
        """(distances, row positions) per query, best first."""
        metric = self.metric_for(request)
        return self._exact(cache, request, metric, mask)

    def _exact(self, cache: "CollectionCache", request: SearchRequest, metric: str,
               mask: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
        name = request.field.name
        binary = metric in ("HAMMING", "JACCARD")
        data = cache.vectors[name].view if binary else cache.float_matrix(name, metric == "COSINE")
        queries = request.queries if binary else request.queries.astype(np.float32, copy=False)
        n_dead = len(cache) - cache.n_alive
        in_range = request.radius is not None or request.range_filter is not None
        k = request.k
        candidates = None
        skip_dead = False
        if mask is not None:
            candidates = np.flatnonzero(mask)
        elif n_dead and (n_dead > _MAX_DEAD_TO_SKIP or in_range):
            candidates = np.flatnonzero(cache.alive.view)
        elif n_dead:
            skip_dead, k = True, k + n_dead
        if in_range:
            # A range search ranks every candidate, keeps those in range, then takes the top k.
            k_all = len(candidates) if candidates is not None else len(data)
            dist, pos = exact_search(data, queries, k_all, metric, candidates)
        else:
            dist, pos = exact_search(data, queries, k, metric, candidates)
        alive = cache.alive.view
        results = []
        for d, p in zip(dist, pos):
            keep = np.ones(len(p), bool)
            if skip_dead:
                keep &= alive[p]
            if in_range:
                keep &= _in_range(d, metric, request.radius, request.range_filter)
            results.append((d[keep][: request.k], p[keep][: request.k]))
        return results


def _in_range(d: np.ndarray, metric: str, radius: float | None, range_filter: float | None) -> np.ndarray:
    """Milvus's range semantics: for distances, range_filter <= d < radius; for
    similarities, radius < d <= range_filter."""
    keep = np.ones(len(d), bool)
    if metric in SMALLER_IS_BETTER:
        if radius is not None:
            keep &= d < radius
        if range_filter is not None:
            keep &= d >= range_filter
    else:
        if radius is not None:
            keep &= d > radius
        if range_filter is not None:
            keep &= d <= range_filter
    return keep


__all__ = ["IndexSet", "SearchRequest", "COMMON_SEARCH_PARAMS"]
