"""Search planning: which index answers a vector search, and with which parameters.

The rule (see DESIGN.md, "Filtered search"): the filter is evaluated to a bitmap first. With no
ANN index, or when the candidates are few enough that scanning them is as fast, the search is
exact over the gathered candidates (one BLAS product). Otherwise the ANN index answers with the
bitmap as a selector, and any query that comes back with fewer hits than exist is finished
exactly, so a caller always gets min(limit, matching rows) hits.
"""

from __future__ import annotations

import math
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harrierdb import vectors
from harrierdb.engine.candidates import Candidates
from harrierdb.engine.fulltext import BM25Index
from harrierdb.engine.locks import ReadWriteLock
from harrierdb.errors import MetricMismatchError, ParamError
from harrierdb.index import sparse as sparse_index
from harrierdb.index.ann import AnnIndex, QueryBuffers, is_ann_type
from harrierdb.index.exact import SMALLER_IS_BETTER, exact_search, normalize_rows, top_k
from harrierdb.index.sparse import InvertedIndex
from harrierdb.index.spec import (
    COMMON_SEARCH_PARAMS,
    IndexSpec,
    check_metric,
    default_metric,
    field_kind,
    flatten_params,
)
from harrierdb.schema import DataType, FieldSchema

if TYPE_CHECKING:
    from harrierdb.engine.cache import CollectionCache
    from harrierdb.engine.collection import Collection

# Searching k + (number of deleted rows) and dropping the deleted ones beats gathering the
# live rows while deletions are few; past this many, gather.
_MAX_DEAD_TO_SKIP = 1024
# Exact search over n candidate rows of dimension d costs about n * d multiply-adds; below
# this budget it is as fast as an HNSW walk (measured: 2,048 x 384 rows ≈ one ef=64 search).
EXACT_BUDGET = 2048 * 384
# HNSW with a selector keeps recall only if it explores more as fewer rows pass the filter.
MAX_EF = 4096
# Quantised indexes (SQ8, PQ) fetch this many times k candidates, re-ranked exactly.
RERANK_FACTOR = 4
# MaxSim scores this many token vectors at a time (bounds the similarity matrix's memory).
MAXSIM_CHUNK_TOKENS = 262_144
# With an HNSW index on a multi-vector field, each query token fetches this many nearest
# token vectors; the rows owning them are the candidates scored exactly.
MAXSIM_TOKEN_CANDIDATES = 128
# A grouping search first ranks this many times (groups x group size) candidates.
GROUP_OVERSAMPLE = 4
# Rebuild an index once this share of its rows were deleted since it was built.
REBUILD_DEAD_FRACTION = 0.3
# Indexes smaller than this are rebuilt on open rather than saved (it is faster).
SAVE_MIN_ROWS = 10_000


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
    first_stage: dict | None = None  # binary first stage: {"field": ..., "oversample": ...}

    def with_queries(self, queries: Any) -> SearchRequest:
        """The same search for other query vectors."""
        return SearchRequest(self.field, queries, self.k, self.metric, self.params, self.radius,
                             self.range_filter, self.first_stage)

    def float_queries(self) -> np.ndarray:
        """Dense queries as float32, decoded from the field's storage type."""
        return vectors.codec_for(self.field.dtype).as_float32(self.queries)

    @classmethod
    def make(cls, f: FieldSchema, queries: Any, k: int, search_params: Mapping | None,
             extra: Mapping) -> SearchRequest:
        params = flatten_params(search_params)
        params.update(flatten_params(extra.get("param")))
        metric = params.pop("metric_type", None)
        metric = metric.upper() if isinstance(metric, str) and metric else None
        if metric:
            check_metric(f, metric)
        radius = params.pop("radius", None)
        range_filter = params.pop("range_filter", None)
        first_stage = params.pop("first_stage", None)
        if first_stage is not None and not (isinstance(first_stage, Mapping) and "field" in first_stage):
            raise ParamError(f"first_stage must be {{'field': BINARY_VECTOR field, 'oversample': n}}, "
                             f"got {first_stage!r}")
        for key in ("offset", "limit", "ignore_growing"):
            params.pop(key, None)
        return cls(f, queries, k, metric, params, _opt_float(radius, "radius"),
                   _opt_float(range_filter, "range_filter"), dict(first_stage) if first_stage else None)


@dataclass
class Grouping:
    """A grouping search: the best ``limit`` groups by ``field``, ``size`` hits per group.

    Groups are always filled when enough rows exist, so ``strict`` (Milvus's
    ``strict_group_size``) holds either way; it is kept for API compatibility."""

    field: str
    size: int = 1
    strict: bool = False

    @classmethod
    def make(cls, search_params: Mapping | None, extra: Mapping) -> Grouping | None:
        params = flatten_params(search_params)
        name = extra.get("group_by_field") or params.get("group_by_field")
        if not name:
            return None
        size = extra.get("group_size") or params.get("group_size") or 1
        strict = bool(extra.get("strict_group_size") or params.get("strict_group_size") or False)
        if not isinstance(size, int) or size < 1:
            raise ParamError(f"group_size must be a positive integer, got {size!r}")
        return cls(name, size, strict)

    def search(self, indexes: IndexSet, cache: CollectionCache, request: SearchRequest,
               rows: Candidates | None, values: np.ndarray, limit: int,
               offset: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Rank an oversampled candidate list, group it, and rank everything exactly only
        when the oversample did not fill ``limit + offset`` groups."""
        n_candidates = cache.n_alive if rows is None else rows.count
        groups_wanted = limit + offset
        k = min(n_candidates, max(groups_wanted * self.size * GROUP_OVERSAMPLE, 256))
        out = []
        for qi in range(len(request.queries)):
            one = replace(request, queries=request.queries[qi:qi + 1], k=k)
            d, p = indexes.search(cache, one, rows)[0]
            groups = self._group(d, p, values, groups_wanted)
            short = len(groups) < groups_wanted or any(len(g) < self.size for g in groups)
            if short and k < n_candidates:  # the oversample missed some: rank everything
                d, p = indexes._exact(cache, replace(one, k=n_candidates), indexes.metric_for(one), rows)[0]
                groups = self._group(d, p, values, groups_wanted)
            chosen = [hit for group in groups[offset:] for hit in group]
            out.append((np.array([h[0] for h in chosen], dtype=np.float32),
                        np.array([h[1] for h in chosen], dtype=np.int64)))
        return out

    def _group(self, distances: np.ndarray, positions: np.ndarray, values: np.ndarray,
               wanted: int) -> list[list[tuple[float, int]]]:
        groups: dict[Any, list[tuple[float, int]]] = {}
        for dist, pos in zip(distances.tolist(), positions.tolist()):
            key = _group_key(values[pos])
            if key is None:
                continue
            group = groups.get(key)
            if group is None:
                if len(groups) >= wanted:
                    continue
                groups[key] = group = []
            if len(group) < self.size:
                group.append((dist, pos))
        return list(groups.values())


def _group_key(value: Any) -> Any:
    """Group values must be hashable scalars; null rows belong to no group."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, dict)):
        raise ParamError("group_by_field must be a scalar field (not JSON or ARRAY)")
    return value


def _opt_float(value: Any, name: str) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ParamError(f"search parameter {name} must be a number, got {value!r}") from None


@dataclass(frozen=True)
class PreparedAnnSearch:
    """An unfiltered dense search that the ANN index answers as it stands, its parameters
    resolved once: an application repeats one search with new query vectors, and this is
    what each repetition runs. Valid for ``request`` while the cache stays at ``cache_version``
    and ``ann`` is the field's index (it then holds exactly the live rows, so any label found
    is a live row and no selector is needed)."""

    request: SearchRequest
    ann: AnnIndex
    cache_version: int
    params: Any  # FAISS's search parameters (ef or nprobe)
    cosine: bool
    lock: ReadWriteLock
    decode: Callable[[np.ndarray], np.ndarray] | None  # stored form to float32; None: it is float32
    pks: np.ndarray = field(compare=False)  # the cache's pk column at ``cache_version``, by row position
    # each thread's QueryBuffers for single queries (threads search at once, under the read lock)
    per_thread: threading.local = field(default_factory=threading.local, compare=False)

    def run(self, queries: np.ndarray) -> tuple[list[list[float]], np.ndarray] | None:
        """(distances as lists, row positions as an array), both (queries, k); None when a
        query came back short (the planner then finishes it exactly) or with a distance that
        is not finite.

        FAISS pads a short list with label -1 at its end, so the last label tells. A query
        holding NaN or inf has no finite distance to any row, so it need not be checked
        beforehand: its distances tell (and the caller checks the queries when this declines).
        """
        if self.decode is not None:  # BFLOAT16 keeps bit patterns, not numbers
            queries = self.decode(queries)
        if self.cosine:
            queries = normalize_rows(queries)
        with self.lock.local.read:
            distances, labels = self.ann.search_with(queries, self.request.k, self.params)
        rows = distances.tolist()  # what the hits show; Python's checks start faster than NumPy's
        if min(labels[:, -1].tolist()) < 0 or not all(math.isfinite(row[-1]) for row in rows):
            return None
        return rows, self.ann.row_positions[labels]

    def run_one(self, query: np.ndarray) -> tuple[list, list[float]] | None:
        """``run`` for one query (shape (1, dim)), an application's typical search, straight to
        its hits' primary keys and distances, in this thread's ``QueryBuffers``.

        Everything a single query needs happens in this one call: after a graph walk has
        evicted the CPU caches, each further Python function the result passes through costs
        2-3 µs, a few percent of the walk itself."""
        if self.decode is not None:
            query = self.decode(query)
        try:
            buffers = self.per_thread.buffers
        except AttributeError:
            buffers = self.per_thread.buffers = QueryBuffers(self.ann.dim, self.request.k)
        with self.lock.local.read:
            buffers.search(self.ann.index, query, self.params, self.cosine)
        distances = buffers.distances[0].tolist()  # copied out of the buffers, as are the keys
        if buffers.labels.item(-1) < 0 or not math.isfinite(distances[-1]):
            return None
        return self.pks[self.ann.row_positions[buffers.labels[0]]].tolist(), distances


class IndexSet:
    """The indexes of one collection and the planner that picks how to search."""

    def __init__(self, collection: Collection):
        self.collection = collection
        self.specs: dict[str, IndexSpec] = {}
        self.ann: dict[str, AnnIndex] = {}
        self._unsaved: set[str] = set()
        self._synced_version: dict[str, int] = {}  # cache.version each index last caught up with
        self._posting_lists: dict[str, tuple[int, Any]] = {}  # sparse fields: (cache.version, index)
        self._lock = ReadWriteLock()  # searches share the ANN indexes; catching them up is exclusive
        self._prepared: PreparedAnnSearch | None = None
        self.reload_specs()

    def reload_specs(self) -> None:
        stored = self.collection.store.indexes(self.collection.record)
        self.specs = {
            spec["field_name"]: IndexSpec.from_dict(spec) for _, (_, spec) in stored.items()
            if self.collection.schema.field(spec["field_name"]).dtype.is_vector
        }
        for name in list(self.ann):
            if self.specs.get(name) != self.ann[name].spec:
                del self.ann[name]
                AnnIndex.remove_files(self._path(name))

    def _path(self, field_name: str) -> Path:
        return self.collection.store.root / "indexes" / str(self.collection.record.id) / f"{field_name}.faiss"

    # -- life cycle ------------------------------------------------------------------------
    def sync(self, cache: CollectionCache) -> None:
        """Forget indexes whose row ids no longer hold (the cache was rebuilt by compaction).
        New rows are added lazily, at the next search, so inserts stay O(batch)."""
        for name in [n for n, ann in self.ann.items() if ann.epoch != cache.epoch]:
            del self.ann[name]

    def ensure_built(self, cache: CollectionCache | None) -> None:
        """Load or build every index now (``load_collection`` does this ahead of searches)."""
        if cache is None:
            return
        for name in self.specs:
            self._ready(cache, name)

    def release(self) -> None:
        self.save()
        self.ann.clear()

    def save(self) -> None:
        """Write indexes that grew since they were last saved."""
        for name in list(self._unsaved):
            if name in self.ann:
                self.ann[name].save(self._path(name))
        self._unsaved.clear()

    def remove_files(self) -> None:
        shutil.rmtree(self._path("x").parent, ignore_errors=True)

    def describe(self, field_name: str, total_rows: int) -> dict:
        ann = self.ann.get(field_name)
        if ann is None or field_name not in self.specs or not is_ann_type(self.specs[field_name].index_type):
            # FLAT, or not built yet: searches are exact over all rows, nothing is pending
            return {"indexed_rows": total_rows, "pending_index_rows": 0, "state": "Finished"}
        indexed = min(ann.ntotal, total_rows)
        return {"indexed_rows": indexed, "pending_index_rows": total_rows - indexed, "state": "Finished"}

    def _ready(self, cache: CollectionCache, name: str) -> AnnIndex | None:
        """The field's ANN index, loaded or built and holding every live row; None when the
        field has no ANN index or too few rows to train one (exact search serves then)."""
        ann = self.ann.get(name)
        if ann is not None and self._synced_version.get(name) == cache.version:
            return ann  # nothing changed since the last search: the hot path
        spec = self.specs.get(name)
        if spec is None or not is_ann_type(spec.index_type):
            return None
        # No search walks the index while it changes, and no write appends to the cache
        # while the new rows are read from it.
        with self._lock.write, self.collection.store.lock:
            return self._catch_up(cache, name, spec)

    def _catch_up(self, cache: CollectionCache, name: str, spec: IndexSpec) -> AnnIndex | None:
        """Load, build or extend the field's index to hold every live row (under the write lock)."""
        ann = self.ann.get(name)
        if ann is not None and self._synced_version.get(name) == cache.version:
            return ann  # another thread caught it up while this one waited
        f = self.collection.schema.field(name)
        if ann is None:
            ann = AnnIndex.load(self._path(name), spec, f.dim, cache.epoch)
        if ann is None or ann.ntotal > 0 and _dead_fraction(cache, ann) > REBUILD_DEAD_FRACTION:
            ann = AnnIndex(spec, f.dim)
            if not ann.can_train(cache.n_alive):
                return None
            alive = cache.alive.view
            ann.build(_index_vectors(cache, name, spec, alive), cache.seqs.view[alive], cache.epoch)
            self._unsaved.add(name)
        self.ann[name] = ann
        seqs = cache.seqs.view
        start = int(np.searchsorted(seqs, ann.covered_seq, side="right"))
        if start < len(seqs):
            new = start + np.flatnonzero(cache.alive.view[start:])
            if len(new):
                ann.add(_index_vectors(cache, name, spec, new), seqs[new])
                self._unsaved.add(name)
            ann.covered_seq = max(ann.covered_seq, int(seqs[-1]))
        _locate_labels(ann, cache)
        if name in self._unsaved and ann.ntotal >= SAVE_MIN_ROWS:
            self.save()
        self._synced_version[name] = cache.version
        return ann

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

    def prepared_search(self, cache: CollectionCache, request: SearchRequest) -> PreparedAnnSearch | None:
        """What runs an unfiltered dense ``request`` (its queries apart): the last such
        request's ``PreparedAnnSearch`` while it still holds; None when the planner must
        decide (no ANN index, deleted rows still in it, range search...)."""
        prepared = self._prepared
        if (prepared is None or prepared.request is not request or prepared.cache_version != cache.version
                or self.ann.get(request.field.name) is not prepared.ann):
            prepared = self._prepared = self._prepare(cache, request)
        return prepared

    def _prepare(self, cache: CollectionCache, request: SearchRequest) -> PreparedAnnSearch | None:
        if (field_kind(request.field) != "dense" or request.first_stage is not None
                or request.radius is not None or request.range_filter is not None
                or cache.n_alive * request.field.dim <= EXACT_BUDGET):
            return None
        metric = self.metric_for(request)
        ann = self._ready(cache, request.field.name)
        if ann is None or ann.needs_rerank or ann.ntotal != cache.n_alive:
            return None
        codec = vectors.codec_for(request.field.dtype)
        decode = None if codec.storage_dtype == np.float32 else codec.as_float32
        params = ann.search_params(ann.search_knob(request.params), request.k)
        return PreparedAnnSearch(request, ann, cache.version, params, metric == "COSINE", self._lock, decode,
                                 cache.pks.view)

    def search(self, cache: CollectionCache, request: SearchRequest,
               rows: Candidates | None) -> list[tuple[np.ndarray, np.ndarray]]:
        """(distances, row positions) per query, best first; ``rows`` (None: every live row)
        are the rows a filter or partition list lets through.

        The rule: exact when there is no trained ANN index, for range searches, and when the
        candidates are few enough that scanning them costs no more than a graph walk
        (``n_candidates * dim <= EXACT_BUDGET``); otherwise the ANN index with the candidates
        as a selector, HNSW's ef raised in proportion to how few rows pass the filter, and an
        exact finish for any query that came back short.
        """
        metric = self.metric_for(request)
        name = request.field.name
        kind = field_kind(request.field)
        if request.first_stage is not None:
            return self._binary_first_stage(cache, request, metric, rows)
        if kind == "sparse":
            return self._sparse(cache, request, metric, rows)
        if kind == "multi":
            return self._maxsim(cache, request, metric, rows)
        in_range = request.radius is not None or request.range_filter is not None
        n_candidates = cache.n_alive if rows is None else rows.count
        ann = None if in_range or n_candidates * request.field.dim <= EXACT_BUDGET else self._ready(cache, name)
        if ann is None:
            return self._exact(cache, request, metric, rows)
        return self._ann(cache, request, metric, rows, ann, n_candidates)

    def _ann(self, cache: CollectionCache, request: SearchRequest, metric: str,
             rows: Candidates | None, ann: AnnIndex, n_candidates: int) -> list[tuple[np.ndarray, np.ndarray]]:
        selector = None  # the FAISS labels the search may return, as a packed bitmap
        if rows is not None:
            selector = rows.derived(("selector", ann), lambda: ann.label_bitmap(rows.mask))
        elif ann.ntotal > cache.n_alive:  # the index still holds rows deleted since the build
            selector = cache.memoised(("alive selector", ann), lambda: ann.label_bitmap(cache.alive.view))
        knob = ann.search_knob(request.params)
        if n_candidates < ann.ntotal:  # explore more of the graph / more lists as fewer rows pass
            cap = MAX_EF if ann.kind == "HNSW" else ann.spec.params["nlist"]
            knob = int(min(knob * ann.ntotal / max(n_candidates, 1), cap))
        k = request.k
        k_search = k * RERANK_FACTOR if ann.needs_rerank else k
        queries = request.float_queries()
        if metric == "COSINE":
            queries = normalize_rows(queries)
        with self._lock.local.read:
            distances, labels = ann.search(queries, k_search, knob, selector)
        # Without a selector the index holds exactly the live rows (it holds every live row,
        # and no more rows than there are live ones), so a found label is a live row.
        positions = ann.row_positions[labels]
        if not ann.needs_rerank and np.minimum.reduce(positions, axis=None) >= 0:
            return list(zip(distances, positions))  # every query filled: the hot path
        found = positions >= 0
        data = cache.float_matrix(request.field.name, metric == "COSINE") if ann.needs_rerank else None
        results = []
        want = min(k, n_candidates)
        for qi in range(len(queries)):
            pos = positions[qi][found[qi]]
            if len(pos) < want:  # the graph came back short: finish this query exactly
                results.append(self._exact(cache, _one(request, qi), metric, rows)[0])
            elif data is not None:  # quantised codes: re-rank the candidates with exact distances
                d, order = exact_search(data, queries[qi:qi + 1], k, metric, pos)
                results.append((d[0], order[0]))
            else:
                results.append((distances[qi][found[qi]][:k], pos[:k]))
        return results

    def _binary_first_stage(self, cache: CollectionCache, request: SearchRequest, metric: str,
                            rows: Candidates | None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Binary quantization with re-ranking: Hamming search over sign codes of the float
        vectors (1/32 of their memory) for ``oversample * k`` candidates, then exact distances
        on the float vectors for those candidates only. The codes must be the signs of the
        float vectors, packed (``np.packbits(v > 0)``, as BinaryQuantizer(threshold="sign"))."""
        code_field = self.collection._field(request.first_stage["field"])
        if code_field.dtype is not DataType.BINARY_VECTOR or code_field.dim != request.field.dim:
            raise ParamError(
                f"first_stage field {code_field.name!r} must be a BINARY_VECTOR of dim {request.field.dim} "
                f"holding the sign codes of {request.field.name!r}")
        oversample = request.first_stage.get("oversample", 8)
        if not isinstance(oversample, int) or oversample < 1:
            raise ParamError(f"first_stage oversample must be a positive integer, got {oversample!r}")
        queries = request.float_queries()
        codes = np.packbits(queries > 0, axis=1)
        coarse = SearchRequest(code_field, codes, request.k * oversample, "HAMMING")
        data = cache.float_matrix(request.field.name, metric == "COSINE")
        results = []
        for qi, (_, candidates) in enumerate(self._exact(cache, coarse, "HAMMING", rows)):
            d, p = exact_search(data, queries[qi:qi + 1], request.k, metric, candidates)
            results.append((d[0], p[0]))
        return results

    def _sparse(self, cache: CollectionCache, request: SearchRequest, metric: str,
                rows: Candidates | None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Sparse inner product or BM25 through posting lists, rebuilt when rows changed."""
        name = request.field.name
        spec = self.specs.get(name)
        params = {**(spec.params if spec else {}), **request.params}
        built = self._posting_lists.get(name)
        if built is None or built[0] != cache.version:
            matrix = cache.vectors[name].view
            index = (BM25Index(matrix) if metric == "BM25"
                     else InvertedIndex.build(matrix, float(params.get("drop_ratio_build", 0))))
            built = self._posting_lists[name] = (cache.version, index)
        index = built[1]
        if metric == "BM25":
            results = index.search(request.queries, request.k, cache.alive.view, None if rows is None else rows.mask,
                                   float(params.get("bm25_k1", 1.2)), float(params.get("bm25_b", 0.75)))
        else:
            allowed = cache.alive.view if rows is None else rows.mask
            results = sparse_index.search(index, request.queries, request.k, allowed,
                                          float(params.get("drop_ratio_search", 0)))
        return [_range_filtered(d, p, request, metric) for d, p in results]

    def _maxsim(self, cache: CollectionCache, request: SearchRequest, metric: str,
                rows: Candidates | None) -> list[tuple[np.ndarray, np.ndarray]]:
        """MaxSim of each query's token vectors against candidate rows' token vectors.

        With an HNSW index on the field, the candidates are the rows owning the nearest
        token vectors of each query token (``MAXSIM_TOKEN_CANDIDATES`` per query token), then
        scored exactly; without one, or for few rows, every allowed row is scored exactly."""
        column = cache.vectors[request.field.name]
        allowed = cache.alive.view if rows is None else rows.mask
        token_index = self._token_index(cache, request.field)
        offsets, flat = request.queries
        doc_offsets = column.offsets.view
        results = []
        for qi in range(len(offsets) - 1):
            query = flat[offsets[qi]:offsets[qi + 1]]
            scored = np.flatnonzero(allowed)
            if token_index is not None:
                tokens = query / np.linalg.norm(query, axis=1, keepdims=True) if metric == "MAX_SIM_COSINE" else query
                k_tokens = max(MAXSIM_TOKEN_CANDIDATES, request.k)
                _, labels = token_index.search(tokens, k_tokens, max(64, k_tokens), None)
                token_ids = token_index.seqs[labels[labels >= 0]]  # the tokens' flat positions
                owners = np.unique(np.searchsorted(doc_offsets, token_ids, side="right") - 1)
                scored = owners[allowed[owners]]
            scores = maxsim_scores(column.flat.view, doc_offsets, query, metric, scored)
            rank = scores if metric != "MAX_SIM_L2" else -scores
            order, _ = top_k(rank[None, :], request.k)
            pos = scored[order[0]]
            results.append(_range_filtered(scores[order[0]].astype(np.float32), pos, request, metric))
        return results

    def _token_index(self, cache: CollectionCache, f: FieldSchema) -> AnnIndex | None:
        """An HNSW index over all token vectors of a multi-vector field, rebuilt when rows
        change; None when the field has no HNSW index or the rows are few enough to scan."""
        spec = self.specs.get(f.name)
        column = cache.vectors[f.name]
        if spec is None or spec.index_type != "HNSW" or column.flat.n * f.dim <= EXACT_BUDGET:
            return None
        built = self._posting_lists.get(f.name)
        if built is None or built[0] != cache.version:
            metric = {"MAX_SIM_COSINE": "COSINE", "MAX_SIM_IP": "IP", "MAX_SIM_L2": "L2"}[spec.metric_type]
            token_spec = IndexSpec(f.name, "HNSW", metric, dict(spec.params))
            index = AnnIndex(token_spec, f.dim)
            tokens = column.flat.view
            if metric == "COSINE":
                tokens = normalize_rows(tokens)
            index.build(tokens.astype(np.float32), np.arange(len(tokens), dtype=np.int64), cache.epoch)
            built = self._posting_lists[f.name] = (cache.version, index)
        return built[1]

    def _exact(self, cache: CollectionCache, request: SearchRequest, metric: str,
               rows: Candidates | None) -> list[tuple[np.ndarray, np.ndarray]]:
        name = request.field.name
        binary = metric in ("HAMMING", "JACCARD")
        data = cache.vectors[name].view if binary else cache.float_matrix(name, metric == "COSINE")
        queries = request.queries if binary else request.float_queries()
        n_dead = len(cache) - cache.n_alive
        in_range = request.radius is not None or request.range_filter is not None
        k = request.k
        candidates = None
        skip_dead = False
        if rows is not None:
            candidates = rows.positions
        elif n_dead and (n_dead > _MAX_DEAD_TO_SKIP or in_range):
            candidates = cache.memoised("alive positions", lambda: np.flatnonzero(cache.alive.view))
        elif n_dead:
            skip_dead, k = True, k + n_dead
        sq_norms = cache.sq_norms(name) if metric == "L2" else None
        if in_range:
            # A range search ranks every candidate, keeps those in range, then takes the top k.
            k = len(candidates) if candidates is not None else len(data)
        if rows is not None and len(candidates) * data.shape[1] <= EXACT_BUDGET:
            # Few rows: keep them gathered with the candidates, so a repeated filter skips the copy.
            key = ("gathered", name, metric == "COSINE")
            gathered = rows.derived(key, lambda: data[candidates])
            gathered_sq = None if sq_norms is None else rows.derived((key, "sq"), lambda: sq_norms[candidates])
            dist, pos = exact_search(gathered, queries, k, metric, None, gathered_sq)
            pos = candidates[pos]
        else:
            dist, pos = exact_search(data, queries, k, metric, candidates, sq_norms)
        if not skip_dead and not in_range:
            return list(zip(dist, pos))
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


def _range_filtered(d: np.ndarray, p: np.ndarray, request: SearchRequest,
                    metric: str) -> tuple[np.ndarray, np.ndarray]:
    if request.radius is None and request.range_filter is None:
        return d, p
    keep = _in_range(d, metric, request.radius, request.range_filter)
    return d[keep], p[keep]


def maxsim_scores(flat: np.ndarray, offsets: np.ndarray, query: np.ndarray, metric: str,
                  rows: np.ndarray) -> np.ndarray:
    """MaxSim of one query (q, dim) against ``rows``: the sum over query tokens of the best
    match among the row's tokens. COSINE and IP: larger is better; L2: the sum of the
    smallest squared distances, smaller is better."""
    out = np.empty(len(rows), np.float64)
    if metric == "MAX_SIM_COSINE":
        query = normalize_rows(query)
    q_sq = np.einsum("ij,ij->i", query, query)
    lengths = offsets[rows + 1] - offsets[rows]
    rows_per_chunk = max(1, MAXSIM_CHUNK_TOKENS // max(int(lengths.mean()) if len(rows) else 1, 1))
    for start in range(0, len(rows), rows_per_chunk):
        chunk = rows[start:start + rows_per_chunk]
        token_ids = np.concatenate([np.arange(offsets[r], offsets[r + 1]) for r in chunk])
        tokens = flat[token_ids]
        if metric == "MAX_SIM_COSINE":
            tokens = normalize_rows(tokens)
        sims = tokens @ query.T  # (tokens, query tokens)
        if metric == "MAX_SIM_L2":
            sims = -(np.einsum("ij,ij->i", tokens, tokens)[:, None] + q_sq[None, :] - 2 * sims)
        starts = np.concatenate([[0], np.cumsum(lengths[start:start + rows_per_chunk])[:-1]])
        best = np.maximum.reduceat(sims, starts, axis=0)
        out[start:start + len(chunk)] = best.sum(axis=1)
    return -out if metric == "MAX_SIM_L2" else out


def _one(request: SearchRequest, qi: int) -> SearchRequest:
    return replace(request, queries=request.queries[qi:qi + 1])


def _locate_labels(ann: AnnIndex, cache: CollectionCache) -> None:
    """Bring ``ann.row_positions`` up to date: the cache position of each label's row (-1
    for a row this cache does not hold), extended for labels added since the last call."""
    located = len(ann.row_positions) - 1 if ann.located_in is cache else 0
    if located < ann.ntotal:
        fresh = cache.positions_of_seqs(ann.seqs[located:])
        ann.row_positions = np.concatenate([ann.row_positions[:located], fresh, [-1]])
    ann.located_in = cache


def _dead_fraction(cache: CollectionCache, ann: AnnIndex) -> float:
    covered = int(np.searchsorted(cache.seqs.view, ann.covered_seq, side="right"))
    alive_covered = int(cache.alive.view[:covered].sum())
    return 1 - alive_covered / max(ann.ntotal, 1)


def _index_vectors(cache: CollectionCache, name: str, spec: IndexSpec, rows: np.ndarray) -> np.ndarray:
    """The float32 vectors of ``rows`` as the index takes them (unit length for COSINE),
    computed for those rows only."""
    vectors_ = cache.float_matrix(name)[rows]
    return normalize_rows(vectors_) if spec.metric_type == "COSINE" else vectors_
