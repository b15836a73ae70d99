"""One collection of the embedded engine: writes go to the store, reads run on the cache.

Every write is one SQLite transaction (all rows or none). Reads first bring the in-memory
cache up to date with what any process committed (a 3 µs check when nothing changed), then
filter with the vectorised expression evaluator and rank with exact or indexed search.
"""

from __future__ import annotations

import copy
import itertools
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from harrierdb import vectors
from harrierdb.engine import filter as filter_lang
from harrierdb.engine import fulltext, functions, search_plan
from harrierdb.engine.cache import CollectionCache
from harrierdb.engine.candidates import Candidates
from harrierdb.engine.storage import CollectionRecord, Store
from harrierdb.errors import (
    DataError,
    FieldNotFoundError,
    IndexNotFoundError,
    ParamError,
    PartitionNotFoundError,
    PrimaryKeyError,
)
from harrierdb.index.spec import IndexSpec, field_kind, flatten_params, make_index_spec
from harrierdb.quality.drift import batch_summary
from harrierdb.ranker import top as ranker_top
from harrierdb.results import Hit, Hits, SearchResult
from harrierdb.schema import DEFAULT_PARTITION, DYNAMIC_FIELD, DataType, RowBatch, validate_rows

COUNT_STAR = "count(*)"
_FLOAT32 = np.dtype(np.float32)  # NumPy's one native float32 dtype: tested by identity
STATS_MIN_BATCH = 64


class Collection:
    """The engine side of a collection; ``harrierdb.client`` is the public face."""

    def __init__(self, store: Store, record: CollectionRecord):
        self.store = store
        self.record = record
        self.schema = record.schema
        self._cache: CollectionCache | None = None
        self._synced_at: int | None = None  # store.data_version() when the cache was last synced
        # The data version the Database read when it handed this collection out for the current
        # call, so one call checks for other processes' commits once, not twice.
        self.version_hint: int | None = None
        self.indexes = search_plan.IndexSet(self)
        self._last_parse: tuple[tuple, ParsedSearch] | None = None
        self._pk_name = self.schema.primary_field.name

    @property
    def name(self) -> str:
        return self.record.name

    # -- the cache -------------------------------------------------------------------------
    @property
    def is_loaded(self) -> bool:
        return self._cache is not None

    def cache(self) -> CollectionCache:
        """The cache, loaded on first use and brought up to date with other processes' commits."""
        version, self.version_hint = self.version_hint, None
        if version is None:
            version = self.store.data_version()
        cache = self._cache
        if cache is not None and version == self._synced_at:  # nothing new: no lock needed
            return cache
        with self.store.lock:
            if self._cache is None or version != self._synced_at:
                with self.store.read() as c:
                    self._catch_up(c)
                self._synced_at = version
            return self._cache

    def _catch_up(self, c: Any) -> None:
        """Apply committed changes to the cache (inside a transaction of the caller's)."""
        if self._cache is None:
            self._cache = CollectionCache(self.schema, epoch=-1)
        cache = self._cache
        changes = self.store.changes_since(c, self.record, cache.last_seq, cache.last_delete)
        if changes.epoch != cache.epoch and cache.epoch != -1:
            # Compaction rewrote history elsewhere: start over from the rows.
            self._cache = cache = CollectionCache(self.schema, changes.epoch)
            changes = self.store.changes_since(c, self.record, 0, 0)
        cache.epoch = changes.epoch
        cache.delete_seqs(changes.deleted_seqs)
        cache.append_stored(changes.rows, changes.vector_chunks)
        cache.last_seq = changes.last_seq
        cache.last_delete = changes.last_delete
        self.indexes.sync(cache)

    def mark_stale(self) -> None:
        """Make the next read catch up from the store (after a write that bypassed the cache)."""
        self._synced_at = None

    def load(self) -> None:
        self.cache()
        self.indexes.ensure_built(self._cache)

    def release(self) -> None:
        """Free the memory of the cache and indexes; the next read loads them again."""
        with self.store.lock:
            self._cache = None
            self._synced_at = None
            self.indexes.release()

    # -- writes ----------------------------------------------------------------------------
    def insert(self, data: Any, partition_name: str | None = None) -> dict:
        partition = self._partition(partition_name)
        pk = self.schema.primary_field
        batch = validate_rows(self.schema, data, assign_ids=itertools.count() if pk.auto_id else None)
        new_models = self._check_models(data)
        self._compute_fields(batch)
        with self.store.lock:  # commit and cache update as one step for other threads
            with self.store.write() as c:
                self._catch_up_if_loaded(c)
                if pk.auto_id:
                    batch.pks = list(self.store.take_auto_ids(c, self.record, len(batch)))
                try:
                    seqs = self._append(c, batch, partition)
                except sqlite3.IntegrityError:  # the pk column is UNIQUE: some keys already exist
                    existing = self.store.existing_pks(c, self.record, batch.pks)
                    dup = next(iter(existing), None)
                    raise PrimaryKeyError(
                        f"primary key {dup!r} already exists in collection {self.name!r} "
                        f"({len(existing)} of {len(batch)} keys do); use upsert to replace rows") from None
                self._record_models(c, new_models)
            self._after_write(batch, partition, seqs, deleted=[])
        return {"insert_count": len(batch), "ids": list(batch.pks)}

    def upsert(self, data: Any, partition_name: str | None = None) -> dict:
        partition = self._partition(partition_name)
        batch = validate_rows(self.schema, data)
        new_models = self._check_models(data)
        self._compute_fields(batch)
        with self.store.lock:  # commit and cache update as one step for other threads
            with self.store.write() as c:
                self._catch_up_if_loaded(c)
                existing = list(self.store.existing_pks(c, self.record, batch.pks).values())
                self.store.delete_seqs(c, self.record, existing)
                seqs = self._append(c, batch, partition)
                last_delete = self.store.last_delete_id(c, self.record)
                self._record_models(c, new_models)
            self._after_write(batch, partition, seqs, deleted=existing, last_delete=last_delete)
        return {"upsert_count": len(batch), "ids": list(batch.pks)}

    def _compute_fields(self, batch: RowBatch) -> None:
        """Fill function output fields: BM25 term frequencies, TEXT_EMBEDDING vectors."""
        fulltext.apply_functions(self.schema, batch)
        functions.embed_batch(self.schema, batch)

    def _check_models(self, data: Any) -> dict:
        """Refuse vectors from a model other than the recorded one; return models to record."""
        rows = [data] if isinstance(data, Mapping) else data
        new = {}
        for f in self.schema.vector_fields:
            values = (row.get(f.name) for row in rows if isinstance(row, Mapping))
            identity = functions.check_identity(self.schema, self.record.properties, f.name, values, self.name)
            if identity is not None:
                new[f.name] = identity
        return new

    def _record_models(self, c: Any, new_models: dict) -> None:
        if new_models:
            props = dict(self.record.properties)
            models = dict(props.get(functions.MODELS_PROPERTY, {}))
            models.update({name: ident.to_dict() for name, ident in new_models.items()})
            props[functions.MODELS_PROPERTY] = models
            self.store.update_properties(c, self.record, props)
            self.record.properties = props

    def delete(self, ids: Sequence | None = None, filter: str = "", partition_name: str | None = None,
               filter_params: Mapping | None = None) -> dict:
        if ids is None and not filter:
            raise ParamError("delete needs ids= or a filter=; to remove everything use drop_collection")
        with self.store.lock:  # commit and cache update as one step for other threads
            with self.store.write() as c:
                self._catch_up(c)
                cache = self._cache
                mask = cache.alive.view.copy()
                if ids is not None:
                    positions = [cache.pos_of_pk[p] for p in self._coerce_ids(ids) if p in cache.pos_of_pk]
                    chosen = np.zeros(len(cache), bool)
                    chosen[positions] = True
                    mask &= chosen
                if filter:
                    mask &= self._filter_mask(cache, filter, filter_params)
                if partition_name:
                    mask &= cache.partition_mask([self._partition(partition_name)])
                seqs = cache.seqs.view[mask].tolist()
                self.store.delete_seqs(c, self.record, seqs)
                last_delete = self.store.last_delete_id(c, self.record)
            cache.delete_seqs(seqs)
            cache.last_delete = last_delete
        return {"delete_count": len(seqs)}

    def _append(self, c: Any, batch: RowBatch, partition: str) -> list[int]:
        first = self.store.allocate_seqs(c, self.record, len(batch))
        self.store.insert(c, self.record, batch, partition, first)
        # Summary statistics of each dense field per batch: what drift monitoring compares.
        # A summary is ~13 KB at 384-d, so batches too small to say much are not summarised.
        for f in self.schema.vector_fields if len(batch) >= STATS_MIN_BATCH else ():
            if field_kind(f) == "dense" and f.name in batch.vectors:
                floats = vectors.codec_for(f.dtype).as_float32(batch.vectors[f.name])
                self.store.add_vector_stats(c, self.record, f.name, first, len(batch), batch_summary(floats))
        return list(range(first, first + len(batch)))

    def vector_stats(self, field_name: str) -> list[dict]:
        """Per-insert-batch summaries of a dense vector field (mean, norms, sketch), oldest first."""
        f = self._field(field_name)
        if not f.dtype.is_vector or field_kind(f) != "dense":
            raise ParamError(f"field {field_name!r} is {f.dtype.name}; statistics are kept for dense vector fields")
        return self.store.vector_stats(self.record, field_name)

    def _catch_up_if_loaded(self, c: Any) -> None:
        if self._cache is not None:
            self._catch_up(c)

    def _after_write(self, batch: RowBatch, partition: str, seqs: list[int], deleted: list[int],
                     last_delete: int | None = None) -> None:
        """Apply our own committed write to the cache, sparing a read back from disk."""
        cache = self._cache
        if cache is None:
            return
        cache.delete_seqs(deleted)
        if last_delete is not None:
            cache.last_delete = last_delete
        columns = {name: [row.get(name) for row in batch.scalars] for name in cache.columns}
        cache.append(seqs, batch.pks, partition, columns, batch.vectors)
        self.indexes.sync(cache)

    # -- reads -----------------------------------------------------------------------------
    def count(self, partition_names: Sequence[str] | None = None) -> int:
        if not partition_names:
            return self.store.count(self.record)
        return sum(self.store.count(self.record, self._partition(p)) for p in partition_names)

    def get(self, ids: Any, output_fields: Sequence[str] | None = None,
            partition_names: Sequence[str] | None = None) -> list[dict]:
        cache = self.cache()
        positions = [cache.pos_of_pk[p] for p in self._coerce_ids(ids) if p in cache.pos_of_pk]
        if partition_names:
            allowed = cache.partition_mask([self._partition(p) for p in partition_names])
            positions = [p for p in positions if allowed[p]]
        fields = self._output_fields(output_fields, default_all=True)
        return [self._entity(cache, pos, fields, with_pk=True) for pos in positions]

    def query(self, filter: str = "", output_fields: Sequence[str] | None = None,
              limit: int | None = None, offset: int = 0, partition_names: Sequence[str] | None = None,
              filter_params: Mapping | None = None, ids: Any = None) -> list[dict]:
        cache = self.cache()
        mask = self._candidate_mask(cache, filter, filter_params, partition_names)
        if ids is not None:
            chosen = np.zeros(len(cache), bool)
            chosen[[cache.pos_of_pk[p] for p in self._coerce_ids(ids) if p in cache.pos_of_pk]] = True
            mask &= chosen
        if output_fields and COUNT_STAR in output_fields:
            if len(output_fields) > 1:
                raise ParamError("count(*) cannot be combined with other output fields")
            return [{COUNT_STAR: int(mask.sum())}]
        positions = np.flatnonzero(mask)
        _check_limit(limit, offset)
        positions = positions[offset: None if limit is None or limit < 0 else offset + limit]
        fields = self._output_fields(output_fields, default_all=True)
        return [self._entity(cache, pos, fields, with_pk=True) for pos in positions.tolist()]

    def search(self, data: Any, anns_field: str | None = None, filter: str = "", limit: int = 10,
               offset: int | None = None, output_fields: Sequence[str] | None = None,
               search_params: Mapping | None = None, partition_names: Sequence[str] | None = None,
               filter_params: Mapping | None = None, **kwargs: Any) -> SearchResult:
        """Nearest neighbours per query; with ``group_by_field``, the best ``limit`` groups of
        up to ``group_size`` hits each (groups ordered by their best hit). ``offset`` may also
        come in ``search_params``, as pymilvus allows."""
        parsed = self._parse_search(anns_field, limit, offset, output_fields, search_params, kwargs)
        field = parsed.request.field
        # NaN and inf are looked for only when the prepared search declines (it sees them in
        # its distances): a pass over each query costs a quarter of the engine's time.
        queries = self._query_vectors(data, field, check_finite=False)
        cache = self.cache()
        offset, grouping = parsed.offset, parsed.grouping
        if not (filter or partition_names or offset or grouping):  # the common search: one lookup
            prepared = self.indexes.prepared_search(cache, parsed.request)
            if prepared is not None:
                if len(queries) == 1 and not parsed.fields:  # an application's typical search
                    found = prepared.run_one(queries)
                    if found is not None:
                        return SearchResult([self._plain_hits(*found)])
                else:
                    found = prepared.run(queries)
                    if found is not None:
                        return self._matrix_hits(cache, *found, parsed.fields)
        if isinstance(queries, np.ndarray) and field_kind(field) == "dense":
            self._check_finite(queries, field)
        request = parsed.request.with_queries(queries)
        rows = None
        if filter or partition_names:
            rows = self._candidates(cache, filter, filter_params, partition_names)
        if grouping is None:
            results = self.indexes.search(cache, request, rows)
            if offset:
                results = [(d[offset:], p[offset:]) for d, p in results]
        else:
            values = cache.column(self._field(grouping.field).name)
            results = grouping.search(self.indexes, cache, request, rows, values, limit, offset)
        return self._hits(cache, results, parsed.fields)

    def _parse_search(self, anns_field: str | None, limit: int, offset: int | None,
                      output_fields: Sequence[str] | None, search_params: Mapping | None,
                      kwargs: dict) -> ParsedSearch:
        """The search's arguments checked and normalised; the last parse is reused when a
        search repeats them (an application's queries differ in their vectors only)."""
        args = (self.record, anns_field, limit, offset, output_fields, search_params, kwargs)
        last = self._last_parse
        if last is not None:
            try:  # equal values, the record first (tuples try identity before __eq__)
                if last[0] == args:
                    return last[1]
            except (ValueError, TypeError):  # e.g. NumPy arrays among the parameters: no memo
                pass
        field = self._vector_field(anns_field)
        flat = flatten_params(search_params)  # once: every parser below reads it
        if offset is None:
            offset = flat.get("offset", 0)
        _check_limit(limit, offset)
        grouping = search_plan.Grouping.make(flat, kwargs)
        request = search_plan.SearchRequest.make(field, None, limit + offset, flat, kwargs)
        fields = self._output_fields(output_fields, default_all=False)
        if grouping is not None and grouping.field not in fields:
            fields.append(grouping.field)  # Milvus returns the group value with each hit
        parsed = ParsedSearch(request, offset, grouping, fields)
        try:  # a copy, so that a caller mutating its dicts afterwards cannot match a stale parse
            self._last_parse = ((self.record, *copy.deepcopy(args[1:])), parsed)
        except (TypeError, copy.Error):
            self._last_parse = None
        return parsed

    def hybrid_search(self, reqs: Sequence[Any], ranker: Any, limit: int = 10, offset: int = 0,
                      output_fields: Sequence[str] | None = None,
                      partition_names: Sequence[str] | None = None) -> SearchResult:
        """Run each AnnSearchRequest, then fuse the lists per query with the ranker."""
        if not reqs:
            raise ParamError("hybrid_search needs at least one AnnSearchRequest")
        _check_limit(limit, offset)
        cache = self.cache()
        per_request = []
        for req in reqs:
            field = self._vector_field(req.anns_field)
            queries = self._query_vectors(req.data, field)
            rows = None
            if req.expr or partition_names:
                rows = self._candidates(cache, req.expr or "", req.expr_params, partition_names)
            request = search_plan.SearchRequest.make(field, queries, req.limit, req.param, {})
            metric = self.indexes.metric_for(request)
            per_request.append([(d, p, metric) for d, p in self.indexes.search(cache, request, rows)])
        n_queries = {len(r) for r in per_request}
        if len(n_queries) != 1:
            raise ParamError(f"every AnnSearchRequest must have the same number of queries, got {sorted(n_queries)}")
        fused = [ranker_top(ranker.fuse([r[qi] for r in per_request]), limit, offset)
                 for qi in range(n_queries.pop())]
        return self._hits(cache, fused, self._output_fields(output_fields, default_all=False))

    def ranked(self, data: Any, anns_field: str | None, filter: str, limit: int,
               search_params: Mapping | None, filter_params: Mapping | None,
               partition_names: Sequence[str] | None) -> tuple[Any, np.ndarray, np.ndarray]:
        """The cache and (distances, positions) of up to ``limit`` best rows for one query
        (every matching row when ``limit`` < 0): what ``search_iterator`` pages through."""
        field = self._vector_field(anns_field)
        queries = self._query_vectors(data, field)
        if len(queries) != 1:
            raise ParamError(f"search_iterator takes one query vector, got {len(queries)}")
        cache = self.cache()
        rows = self._candidates(cache, filter, filter_params, partition_names)
        k = rows.count if limit is None or limit < 0 else min(limit, rows.count)
        request = search_plan.SearchRequest.make(field, queries, max(k, 1), search_params, {})
        distances, positions = self.indexes.search(cache, request, rows)[0]
        return cache, distances[:k], positions[:k]

    def _hits(self, cache: CollectionCache, results: Iterable[tuple[np.ndarray, np.ndarray]],
              fields: list[str]) -> SearchResult:
        """One ``Hits`` per query from its (distances, row positions), best first."""
        pks = cache.pks.view
        return SearchResult([
            self._query_hits(cache, pks[positions].tolist(), distances.tolist(), positions, fields)
            for distances, positions in results])

    def _matrix_hits(self, cache: CollectionCache, distances: list[list[float]], positions: np.ndarray,
                     fields: list[str]) -> SearchResult:
        """``_hits`` of (queries, k) results, every query with k hits: looked up in one go."""
        ids = cache.pks.view[positions].tolist()  # plain Python ints / strs in one call
        if fields:
            return SearchResult([self._query_hits(cache, i, d, p, fields) for i, d, p in zip(ids, distances, positions)])
        return SearchResult(map(self._plain_hits, ids, distances))

    def _query_hits(self, cache: CollectionCache, ids: list, distances: list, positions: np.ndarray,
                    fields: list[str]) -> Hits:
        """The hits of one query; ``positions`` are read only with ``fields``."""
        if not fields:
            return self._plain_hits(ids, distances)
        pk_name = self._pk_name
        entities = [self._entity(cache, pos, fields, with_pk=False) for pos in positions.tolist()]
        return Hits([Hit({pk_name: pk, "distance": dist, "entity": entity})
                     for pk, dist, entity in zip(ids, distances, entities)])

    def _plain_hits(self, ids: list, distances: list) -> Hits:
        """The hits of one query without output fields: the common case, spelled out. Hits are
        a fifth of a small search's overhead, and filling an empty Hit saves the temporary dict
        that Hit({...}) would copy."""
        pk_name = self._pk_name
        hits = Hits()
        for pk, dist in zip(ids, distances):
            hit = Hit()
            hit[pk_name] = pk
            hit["distance"] = dist
            hit["entity"] = {}
            hits.append(hit)
        return hits

    # -- indexes ---------------------------------------------------------------------------
    def create_index(self, field_name: str, **kwargs: Any) -> IndexSpec:
        f = self._field(field_name)
        spec = make_index_spec(f, **kwargs)
        name = spec.index_name or field_name
        for existing_name, (existing_field, _) in self.store.indexes(self.record).items():
            if existing_field == field_name and existing_name != name:
                raise ParamError(
                    f"field {field_name!r} already has index {existing_name!r}; drop it first")
        spec.index_name = name
        self.store.create_index(self.record, name, field_name, spec.to_dict())
        self.indexes.reload_specs()
        if self._cache is not None:
            self.indexes.ensure_built(self.cache())
        return spec

    def drop_index(self, index_name: str) -> None:
        if index_name not in self.store.indexes(self.record):
            raise IndexNotFoundError(
                f"index {index_name!r} does not exist on collection {self.name!r}; "
                f"existing: {self.list_indexes()}")
        self.store.drop_index(self.record, index_name)
        self.indexes.reload_specs()

    def list_indexes(self, field_name: str | None = None) -> list[str]:
        return [name for name, (f, _) in self.store.indexes(self.record).items()
                if field_name is None or f == field_name]

    def describe_index(self, index_name: str) -> dict:
        specs = self.store.indexes(self.record)
        if index_name not in specs:
            raise IndexNotFoundError(
                f"index {index_name!r} does not exist on collection {self.name!r}; existing: {list(specs)}")
        field, spec = specs[index_name]
        total = self.count()
        described = {**spec["params"], "index_type": spec["index_type"], "metric_type": spec["metric_type"],
                     "field_name": field, "index_name": index_name, "total_rows": total}
        described.update(self.indexes.describe(field, total))
        return described

    # -- maintenance -----------------------------------------------------------------------
    def compact(self) -> None:
        """Reclaim the space of deleted rows and rebuild the cache and indexes without them."""
        self.store.compact(self.record)
        self.release()

    # -- helpers ---------------------------------------------------------------------------
    def _partition(self, name: str | None) -> str:
        if not name:
            return DEFAULT_PARTITION
        if name not in self.store.partitions(self.record):
            raise PartitionNotFoundError(
                f"partition {name!r} does not exist in collection {self.name!r}; "
                f"create it with create_partition, existing: {self.store.partitions(self.record)}")
        return name

    def _field(self, name: str) -> Any:
        try:
            return self.schema.field(name)
        except KeyError:
            raise FieldNotFoundError(
                f"field {name!r} is not in collection {self.name!r}; fields: {self.schema.field_names}") from None

    def _vector_field(self, anns_field: str | None) -> Any:
        vector_fields = self.schema.vector_fields
        if not anns_field:
            if len(vector_fields) > 1:
                raise ParamError(
                    f"collection {self.name!r} has several vector fields "
                    f"{[f.name for f in vector_fields]}; pass anns_field= to pick one")
            return vector_fields[0]
        f = self._field(anns_field)
        if not f.dtype.is_vector:
            raise ParamError(f"anns_field {anns_field!r} is {f.dtype.name}, not a vector field")
        return f

    def _query_vectors(self, data: Any, field: Any, check_finite: bool = True) -> Any:
        """Query data encoded as the field stores vectors (texts for a BM25 field). Without
        ``check_finite``, the caller checks dense vectors with ``_check_finite``."""
        if (type(data) is np.ndarray and data.dtype is _FLOAT32 and field.dtype is DataType.FLOAT_VECTOR
                and data.ndim == 2 and data.shape[1] == field.dim and data.flags.c_contiguous):
            # Already what a FLOAT_VECTOR field stores, as an application's queries usually are.
            # Checked here, before the codec's general path: that path's calls cost a tenth of
            # a single query's engine time, after a graph walk has evicted the CPU caches.
            if check_finite:
                self._check_finite(data, field)
            return data
        codec = vectors.codec_for(field.dtype)
        if type(data) is np.ndarray and data.ndim == 2 and isinstance(codec, vectors.FixedWidthCodec):
            # a plain matrix of dense or binary vectors: no model identity to check
            return self._encode_queries(codec, data, field, check_finite)
        if field.is_function_output:
            texts = [data] if isinstance(data, str) else list(data)
            if not texts or not all(isinstance(t, str) for t in texts):
                raise ParamError(f"field {field.name!r} is filled by BM25: search it with query texts")
            src = fulltext.source_field(self.schema, field)
            return fulltext.term_frequencies(texts, fulltext.analyzer_for(src), field.name)
        if isinstance(data, str) or (isinstance(data, (list, tuple)) and data and isinstance(data[0], str)):
            texts = [data] if isinstance(data, str) else list(data)
            embedded = functions.embed_queries(self.schema, field, texts)
            if embedded is None:
                raise ParamError(
                    f"field {field.name!r} takes vectors; query texts need a TEXT_EMBEDDING or BM25 "
                    "function on it (or embed them with harrierdb.embed first)")
            return embedded
        functions.check_identity(self.schema, self.record.properties, field.name, [data] if isinstance(data, np.ndarray)
                                 else list(data) if isinstance(data, (list, tuple)) else [], self.name)
        if _is_single_query(data, field):
            data = [data]
        if data is None or (not sp.issparse(data) and len(data) == 0):
            raise ParamError("search data is empty; pass one vector or a list of vectors")
        return self._encode_queries(codec, data, field, check_finite)

    @staticmethod
    def _encode_queries(codec: Any, data: Any, field: Any, check_finite: bool) -> Any:
        try:
            if isinstance(codec, vectors.FixedWidthCodec):
                return codec.encode(data, field.dim, field.name, check_finite)
            return codec.encode(data, field.dim, field.name)
        except DataError as exc:
            raise ParamError(f"query vectors: {exc.message}") from None

    @staticmethod
    def _check_finite(queries: np.ndarray, field: Any) -> None:
        """ParamError naming the first query with NaN or inf (BFLOAT16 decoded first: it
        stores bit patterns)."""
        try:
            vectors.check_finite_rows(vectors.codec_for(field.dtype).as_float32(queries), field.name)
        except DataError as exc:
            raise ParamError(f"query vectors: {exc.message}") from None

    def _coerce_ids(self, ids: Any) -> list:
        if isinstance(ids, np.ndarray):
            ids = ids.tolist()
        if not isinstance(ids, (list, tuple, set)):
            ids = [ids]
        pk = self.schema.primary_field
        try:
            return [int(i) if pk.dtype.name == "INT64" else str(i) for i in ids]
        except (TypeError, ValueError):
            raise ParamError(f"ids must be {pk.dtype.name} primary keys, got {ids!r:.80}") from None

    def _filter_mask(self, cache: CollectionCache, expr: str, params: Mapping | None) -> np.ndarray:
        ast = filter_lang.parse(expr)
        dynamic = DYNAMIC_FIELD if self.schema.enable_dynamic_field else None
        columns = {}
        for name in filter_lang.field_names(ast):
            if name in self.schema.field_names and not self.schema.field(name).dtype.is_vector:
                columns[name] = cache.column(name)
        if dynamic:
            columns[DYNAMIC_FIELD] = cache.column(DYNAMIC_FIELD)
        return filter_lang.evaluate(ast, columns, len(cache), params or {}, dynamic_field=dynamic)

    def _candidates(self, cache: CollectionCache, expr: str, params: Mapping | None,
                    partition_names: Sequence[str] | None) -> Candidates:
        """The rows a filtered search may return, memoised in the cache until rows change
        (when the filter's parameters are plain values that can key the memo)."""
        def compute() -> Candidates:
            mask = cache.alive.view.copy()
            if expr and expr.strip():
                mask &= self._filter_mask(cache, expr, params)
            if partition_names:
                mask &= cache.partition_mask([self._partition(p) for p in partition_names])
            return Candidates(mask)

        params_key = _params_key(params)
        if params_key is None:
            return compute()
        parts = (partition_names,) if isinstance(partition_names, str) else tuple(partition_names or ())
        return cache.memoised(("filter", expr, params_key, parts), compute)

    def _candidate_mask(self, cache: CollectionCache, expr: str, params: Mapping | None,
                        partition_names: Sequence[str] | None) -> np.ndarray:
        """A writable mask of the rows alive, in the partitions and passing the filter."""
        return self._candidates(cache, expr, params, partition_names).mask.copy()

    def _output_fields(self, names: Sequence[str] | None, default_all: bool) -> list[str]:
        """Resolve output field names ('*' = all; unknown names are dynamic keys if allowed)."""
        if names is None:
            names = ["*"] if default_all else []
        if isinstance(names, str):
            names = [names]
        resolved: list[str] = []
        for name in names:
            if name == "*":
                resolved += [f.name for f in self.schema.fields
                             if f.name not in resolved and not f.is_function_output]
                if self.schema.enable_dynamic_field:
                    resolved.append(DYNAMIC_FIELD)
            elif name in self.schema.field_names or name == DYNAMIC_FIELD:
                resolved.append(name)
            elif self.schema.enable_dynamic_field:
                resolved.append(f"{DYNAMIC_FIELD}.{name}")
            else:
                raise FieldNotFoundError(
                    f"output field {name!r} is not in collection {self.name!r}; "
                    f"fields: {self.schema.field_names}")
        return list(dict.fromkeys(resolved))

    def _entity(self, cache: CollectionCache, pos: int, fields: Iterable[str], with_pk: bool) -> dict:
        if not fields and not with_pk:
            return {}
        pk_name = self._pk_name
        entity: dict[str, Any] = {}
        if with_pk:
            entity[pk_name] = _py(cache.pks.view[pos])
        for name in fields:
            if name == pk_name:
                entity[name] = _py(cache.pks.view[pos])
            elif name == DYNAMIC_FIELD:
                entity.update(cache.columns[DYNAMIC_FIELD].view[pos] or {})
            elif name.startswith(DYNAMIC_FIELD + "."):
                meta = cache.columns[DYNAMIC_FIELD].view[pos] or {}
                key = name[len(DYNAMIC_FIELD) + 1:]
                if key in meta:
                    entity[key] = meta[key]
            elif name in cache.vectors:
                f = self.schema.field(name)
                entity[name] = vectors.codec_for(f.dtype).output(cache.vectors[name], pos)
            else:
                entity[name] = _py(cache.columns[name].view[pos])
        return entity


def _is_single_query(data: Any, field: Any) -> bool:
    """One query given bare rather than in a list (a vector, a sparse dict, a token matrix)."""
    if isinstance(data, (dict, bytes)):
        return True
    if field.dtype is DataType.ARRAY_OF_VECTOR:
        return isinstance(data, np.ndarray) and data.ndim == 2 or (
            isinstance(data, (list, tuple)) and bool(data) and _is_vector_like(data[0]))
    if isinstance(data, np.ndarray):
        return data.ndim == 1
    return (isinstance(data, (list, tuple)) and bool(data) and np.isscalar(data[0])
            and not isinstance(data[0], (str, bytes)))


def _is_vector_like(x: Any) -> bool:
    return isinstance(x, (list, tuple, np.ndarray)) and len(x) > 0 and np.isscalar(x[0])


@dataclass(frozen=True)
class ParsedSearch:
    """A search's arguments once checked: everything but the query vectors."""

    request: search_plan.SearchRequest  # with queries=None
    offset: int
    grouping: search_plan.Grouping | None
    fields: list[str]


def _params_key(params: Mapping | None) -> tuple | None:
    """Filter parameters as a memo key; None when a value is not a plain scalar or a list of
    them (an array's repr is abridged, so it could not key the memo safely)."""
    if not params:
        return ()
    plain = (str, int, float, bool, type(None))
    items = []
    for name, value in params.items():
        if isinstance(value, (list, tuple)) and all(isinstance(v, plain) for v in value):
            value = (type(value).__name__, *value)
        elif not isinstance(value, plain):
            return None
        items.append((str(name), value))
    return tuple(sorted(items))


def _py(value: Any) -> Any:
    """NumPy scalars to plain Python for results."""
    return value.item() if isinstance(value, np.generic) else value


def _check_limit(limit: int | None, offset: int) -> None:
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < -1 or limit > 16384):
        raise ParamError(f"limit must be an integer in [1, 16384], got {limit!r}")
    if not isinstance(offset, (int, np.integer)) or offset < 0:
        raise ParamError(f"offset must be a non-negative integer, got {offset!r}")
