"""``MilvusClient``: pymilvus's client API over the embedded engine.

The names, arguments and result shapes are pymilvus's, so code written for Milvus runs here
unchanged; a URI that names a server (``http://host:19530``) is handed to pymilvus itself, so
the same code moves to a real Milvus cluster by changing the URI.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from harrierdb.engine.database import Database
from harrierdb.errors import ParamError
from harrierdb.iterators import QueryIterator, SearchIterator
from harrierdb.schema import CollectionSchema, DataType, FieldSchema

_REMOTE_PREFIXES = ("http://", "https://", "tcp://", "grpc://")


class LoadState(enum.IntEnum):
    """pymilvus's load states."""

    NotExist = 0
    NotLoad = 1
    Loading = 2
    Loaded = 3

    def __str__(self) -> str:
        return self.name


class IndexParams:
    """A list of index definitions, as ``MilvusClient.prepare_index_params()`` returns."""

    def __init__(self, field_name: str = "", **kwargs: Any):
        self._indexes: list[dict] = []
        if field_name:
            self.add_index(field_name, **kwargs)

    def add_index(self, field_name: str, index_type: str = "", index_name: str = "", **kwargs: Any) -> None:
        self._indexes.append({"field_name": field_name, "index_type": index_type,
                              "index_name": index_name, **kwargs})

    def __iter__(self) -> Iterator[dict]:
        return iter(self._indexes)

    def __len__(self) -> int:
        return len(self._indexes)

    def __repr__(self) -> str:
        return f"IndexParams({self._indexes!r})"


class MilvusClient:
    """A client for an embedded HarrierDB database at ``uri`` (a directory path).

    >>> client = MilvusClient("demo.db")
    >>> client.create_collection("docs", dimension=4)
    >>> client.insert("docs", [{"id": 1, "vector": [0.1, 0.2, 0.3, 0.4]}])
    {'insert_count': 1, 'ids': [1]}
    """

    def __new__(cls, uri: str = "milvus_demo.db", *args: Any, **kwargs: Any) -> Any:
        if isinstance(uri, str) and uri.startswith(_REMOTE_PREFIXES):
            try:
                import pymilvus
            except ImportError:
                raise ParamError(
                    f"{uri!r} names a Milvus server; install pymilvus (pip install pymilvus) to "
                    "connect to it, or pass a local path for an embedded database") from None
            return pymilvus.MilvusClient(uri, *args, **kwargs)
        return super().__new__(cls)

    def __init__(self, uri: str = "milvus_demo.db", user: str = "", password: str = "",
                 db_name: str = "", token: str = "", timeout: float | None = None, **kwargs: Any):
        if not isinstance(uri, (str, Path)) or not str(uri):
            raise ParamError(f"uri must be a path to a database directory, got {uri!r}")
        self.uri = str(uri)
        self._db = Database(uri)

    # -- schema and index helpers ----------------------------------------------------------
    @staticmethod
    def create_schema(**kwargs: Any) -> CollectionSchema:
        """An empty schema to ``add_field`` to (``auto_id``, ``enable_dynamic_field``, ...)."""
        return CollectionSchema([], **kwargs)

    @staticmethod
    def prepare_index_params(field_name: str = "", **kwargs: Any) -> IndexParams:
        return IndexParams(field_name, **kwargs)

    # -- collections -----------------------------------------------------------------------
    def create_collection(self, collection_name: str, dimension: int | CollectionSchema | None = None,
                          primary_field_name: str = "id", id_type: str = "int",
                          vector_field_name: str = "vector", metric_type: str = "COSINE",
                          auto_id: bool = False, timeout: float | None = None,
                          schema: CollectionSchema | None = None, index_params: IndexParams | None = None,
                          **kwargs: Any) -> Any:
        """Create a collection: quick form with ``dimension``, or full form with ``schema``.

        Passing the schema positionally (``create_collection("name", schema)``, as the ORM-era
        tutorials do) returns an ORM-style ``Collection`` handle for the new collection.
        """
        handle = isinstance(dimension, CollectionSchema)
        if handle:
            schema, dimension = dimension, None
        if schema is None:
            if dimension is None:
                raise ParamError("create_collection needs dimension= (quick form) or schema=")
            schema = self._quick_schema(dimension, primary_field_name, id_type, vector_field_name,
                                        auto_id, kwargs)
            if index_params is None:
                index_params = IndexParams(vector_field_name, index_type="AUTOINDEX", metric_type=metric_type)
        properties = dict(kwargs.get("properties") or {})
        coll = self._db.create_collection(collection_name, schema, properties)
        try:
            for spec in index_params or []:
                self._create_one_index(coll, spec)
        except Exception:
            self._db.drop_collection(collection_name)
            raise
        if handle:
            from harrierdb.orm import Collection

            return Collection(collection_name, client=self)
        return None

    @staticmethod
    def _quick_schema(dimension: Any, pk: str, id_type: str, vector: str, auto_id: bool,
                      kwargs: Mapping) -> CollectionSchema:
        if not isinstance(dimension, int) or isinstance(dimension, bool):
            raise ParamError(f"dimension must be an integer, got {dimension!r}")
        if id_type in ("int", DataType.INT64):
            pk_field = FieldSchema(pk, DataType.INT64, is_primary=True, auto_id=auto_id)
        elif id_type in ("str", "string", DataType.VARCHAR):
            pk_field = FieldSchema(pk, DataType.VARCHAR, is_primary=True,
                                   max_length=kwargs.get("max_length", 65535))
        else:
            raise ParamError(f"id_type must be 'int' or 'string', got {id_type!r}")
        return CollectionSchema(
            [pk_field, FieldSchema(vector, DataType.FLOAT_VECTOR, dim=dimension)],
            enable_dynamic_field=kwargs.get("enable_dynamic_field", True))

    def has_collection(self, collection_name: str, **kwargs: Any) -> bool:
        return self._db.has_collection(collection_name)

    def list_collections(self, **kwargs: Any) -> list[str]:
        return self._db.list_collections()

    def drop_collection(self, collection_name: str, **kwargs: Any) -> None:
        self._db.drop_collection(collection_name)

    def rename_collection(self, old_name: str, new_name: str, **kwargs: Any) -> None:
        self._db.rename_collection(old_name, new_name)

    def describe_collection(self, collection_name: str, **kwargs: Any) -> dict:
        coll = self._db.collection(collection_name)
        schema = coll.schema
        fields = []
        for i, f in enumerate(schema.fields):
            d = {"field_id": 100 + i, "name": f.name, "description": f.description, "type": f.dtype,
                 "params": f.to_dict().get("params", {})}
            for key in ("is_primary", "auto_id", "nullable", "default_value", "is_partition_key",
                        "element_type"):
                value = getattr(f, key)
                if value not in (None, False):
                    d[key] = value
            fields.append(d)
        return {
            "collection_name": coll.name, "auto_id": schema.auto_id, "num_shards": 1,
            "description": schema.description, "fields": fields,
            "functions": [fn.to_dict() for fn in schema.functions], "aliases": [],
            "collection_id": coll.record.id, "consistency_level": 0,
            "consistency_level_name": "Strong", "properties": coll.record.properties,
            "num_partitions": len(self._db.list_partitions(collection_name)),
            "enable_dynamic_field": schema.enable_dynamic_field, "created_timestamp": coll.record.created,
        }

    def get_collection_stats(self, collection_name: str, **kwargs: Any) -> dict:
        return {"row_count": self._db.collection(collection_name).count()}

    # -- data ------------------------------------------------------------------------------
    def insert(self, collection_name: str, data: Any, timeout: float | None = None,
               partition_name: str | None = "", **kwargs: Any) -> dict:
        """Insert rows (a dict or a list of dicts); returns ``insert_count`` and ``ids``."""
        return self._db.collection(collection_name).insert(data, partition_name or None)

    def upsert(self, collection_name: str, data: Any, timeout: float | None = None,
               partition_name: str | None = "", **kwargs: Any) -> dict:
        """Insert rows, replacing any with the same primary key; returns ``upsert_count``."""
        return self._db.collection(collection_name).upsert(data, partition_name or None)

    def delete(self, collection_name: str, ids: Any = None, timeout: float | None = None,
               filter: str | None = None, partition_name: str | None = None, **kwargs: Any) -> dict:
        """Delete by primary keys (``ids=``) or by ``filter=``; returns ``delete_count``."""
        ids = kwargs.pop("pks", ids)
        return self._db.collection(collection_name).delete(
            ids=ids, filter=filter or "", partition_name=partition_name,
            filter_params=kwargs.get("filter_params"))

    def get(self, collection_name: str, ids: Any, output_fields: Sequence[str] | None = None,
            timeout: float | None = None, partition_names: Sequence[str] | None = None,
            **kwargs: Any) -> list[dict]:
        return self._db.collection(collection_name).get(ids, output_fields, partition_names)

    def query(self, collection_name: str, filter: str = "", output_fields: Sequence[str] | None = None,
              timeout: float | None = None, ids: Any = None,
              partition_names: Sequence[str] | None = None, **kwargs: Any) -> list[dict]:
        """Rows matching a filter expression (``limit``, ``offset``, ``count(*)`` supported)."""
        return self._db.collection(collection_name).query(
            filter=filter or "", output_fields=output_fields, limit=kwargs.get("limit"),
            offset=kwargs.get("offset", 0), partition_names=partition_names,
            filter_params=kwargs.get("filter_params"), ids=ids)

    def search(self, collection_name: str, data: Any, filter: str = "", limit: int = 10,
               output_fields: Sequence[str] | None = None, search_params: Mapping | None = None,
               timeout: float | None = None, partition_names: Sequence[str] | None = None,
               anns_field: str | None = None, **kwargs: Any) -> Any:
        """Nearest neighbours of each query vector: one list of hits per query."""
        offset = kwargs.pop("offset", None)
        filter_params = kwargs.pop("filter_params", None)
        return self._db.collection(collection_name).search(
            data, anns_field, filter or "", limit, offset, output_fields, search_params,
            partition_names, filter_params, **kwargs)

    def hybrid_search(self, collection_name: str, reqs: Sequence[Any], ranker: Any, limit: int = 10,
                      output_fields: Sequence[str] | None = None, timeout: float | None = None,
                      partition_names: Sequence[str] | None = None, **kwargs: Any) -> Any:
        """Several searches (dense, sparse, BM25, ...) fused by ``RRFRanker`` or ``WeightedRanker``."""
        return self._db.collection(collection_name).hybrid_search(
            reqs, ranker, limit, kwargs.get("offset", 0), output_fields, partition_names)

    def search_iterator(self, collection_name: str, data: Any, batch_size: int = 1000, limit: int = -1,
                        filter: str = "", output_fields: Sequence[str] | None = None,
                        search_params: Mapping | None = None, timeout: float | None = None,
                        partition_names: Sequence[str] | None = None, anns_field: str | None = None,
                        **kwargs: Any) -> SearchIterator:
        """Hits of one query vector, best first, a page of ``batch_size`` per ``next()``."""
        return SearchIterator(self._db.collection(collection_name), data, batch_size, limit,
                              filter or "", output_fields, search_params, anns_field,
                              partition_names, kwargs.get("filter_params"))

    def query_iterator(self, collection_name: str, batch_size: int = 1000, limit: int = -1,
                       filter: str = "", output_fields: Sequence[str] | None = None,
                       partition_names: Sequence[str] | None = None, timeout: float | None = None,
                       **kwargs: Any) -> QueryIterator:
        """Rows matching ``filter`` in primary-key order, a page of ``batch_size`` per ``next()``."""
        return QueryIterator(self._db.collection(collection_name), batch_size, limit, filter or "",
                             output_fields, partition_names, kwargs.get("filter_params"))

    def run_analyzer(self, texts: str | Sequence[str], analyzer_params: Mapping | None = None,
                     **kwargs: Any) -> Any:
        """The tokens an analyzer makes of ``texts`` (what BM25 indexes), as pymilvus's
        ``run_analyzer``: one token list per text, or one list for a single string."""
        from harrierdb.analyzer import run_analyzer

        return run_analyzer(texts, dict(analyzer_params) if analyzer_params else None)

    def get_vector_stats(self, collection_name: str, field_name: str) -> list[dict]:
        """HarrierDB extension: summary statistics of each inserted batch of a dense vector
        field (count, mean, norm quantiles, a random-projection sketch), oldest first; what
        drift monitoring (``harrierdb.quality.drift``) watches over time."""
        return self._db.collection(collection_name).vector_stats(field_name)

    def flush(self, collection_name: str = "", **kwargs: Any) -> None:
        """Make everything written so far durable against power loss (fsync)."""
        if collection_name:
            self._db.collection(collection_name)
        self._db.flush()

    def compact(self, collection_name: str, **kwargs: Any) -> int:
        """Reclaim the space of deleted rows; returns a job id (compaction is synchronous)."""
        self._db.collection(collection_name).compact()
        return 0

    def get_compaction_state(self, job_id: int, **kwargs: Any) -> str:
        return "Completed"

    # -- indexes ---------------------------------------------------------------------------
    def create_index(self, collection_name: str, index_params: IndexParams, timeout: float | None = None,
                     **kwargs: Any) -> None:
        coll = self._db.collection(collection_name)
        if isinstance(index_params, Mapping):  # the ORM-style dict, for convenience
            raise ParamError("create_index takes IndexParams (client.prepare_index_params()); "
                             "for a dict use Collection(name).create_index(field, params)")
        for spec in index_params:
            self._create_one_index(coll, spec)

    @staticmethod
    def _create_one_index(coll: Any, spec: Mapping) -> None:
        spec = dict(spec)
        field = spec.pop("field_name")
        coll.create_index(field, **spec)

    def list_indexes(self, collection_name: str, field_name: str | None = "", **kwargs: Any) -> list[str]:
        return self._db.collection(collection_name).list_indexes(field_name or None)

    def describe_index(self, collection_name: str, index_name: str, **kwargs: Any) -> dict:
        return self._db.collection(collection_name).describe_index(index_name)

    def drop_index(self, collection_name: str, index_name: str, **kwargs: Any) -> None:
        self._db.collection(collection_name).drop_index(index_name)

    # -- loading (lazy: searches load what they need; these exist for pymilvus code) -------
    def load_collection(self, collection_name: str, **kwargs: Any) -> None:
        self._db.collection(collection_name).load()

    def release_collection(self, collection_name: str, **kwargs: Any) -> None:
        self._db.collection(collection_name).release()

    def get_load_state(self, collection_name: str, partition_name: str = "", **kwargs: Any) -> dict:
        if not self._db.has_collection(collection_name):
            return {"state": LoadState.NotExist}
        loaded = self._db.collection(collection_name).is_loaded
        return {"state": LoadState.Loaded if loaded else LoadState.NotLoad}

    def refresh_load(self, collection_name: str, **kwargs: Any) -> None:
        self.load_collection(collection_name)

    # -- partitions ------------------------------------------------------------------------
    def create_partition(self, collection_name: str, partition_name: str, **kwargs: Any) -> None:
        self._db.create_partition(collection_name, partition_name)

    def drop_partition(self, collection_name: str, partition_name: str, **kwargs: Any) -> None:
        self._db.drop_partition(collection_name, partition_name)

    def has_partition(self, collection_name: str, partition_name: str, **kwargs: Any) -> bool:
        return partition_name in self._db.list_partitions(collection_name)

    def list_partitions(self, collection_name: str, **kwargs: Any) -> list[str]:
        return self._db.list_partitions(collection_name)

    def load_partitions(self, collection_name: str, partition_names: Sequence[str] | str, **kwargs: Any) -> None:
        self.load_collection(collection_name)

    def release_partitions(self, collection_name: str, partition_names: Sequence[str] | str,
                           **kwargs: Any) -> None:
        """Partitions share the collection's memory; releasing one is a no-op here."""

    def get_partition_stats(self, collection_name: str, partition_name: str, **kwargs: Any) -> dict:
        return {"row_count": self._db.collection(collection_name).count([partition_name])}

    # -- the rest --------------------------------------------------------------------------
    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> MilvusClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


Client = MilvusClient
