"""The ORM-style ``Collection`` handle of pymilvus, over ``MilvusClient``.

Tutorials written for pymilvus's ORM (``Collection(name).insert(...)``, ``.create_index(field,
params)``, ``.load()``, ``.search(data, anns_field, param, limit, expr, output_fields)``) run
unchanged. A handle holds no engine state: every call goes through its client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harrierdb.client import IndexParams, MilvusClient
from harrierdb.errors import DataError, ParamError
from harrierdb.schema import CollectionSchema


class _Connections:
    """pymilvus's ``connections`` registry: ``connections.connect(uri="demo.db")``."""

    def __init__(self) -> None:
        self._clients: dict[str, MilvusClient] = {}

    def connect(self, alias: str = "default", uri: str = "milvus_demo.db", **kwargs: Any) -> None:
        self._clients[alias] = MilvusClient(uri, **kwargs)

    def disconnect(self, alias: str = "default") -> None:
        client = self._clients.pop(alias, None)
        if client is not None:
            client.close()

    def has_connection(self, alias: str = "default") -> bool:
        return alias in self._clients

    def client(self, alias: str = "default") -> MilvusClient:
        try:
            return self._clients[alias]
        except KeyError:
            raise ParamError(
                f"no connection {alias!r}; call connections.connect(uri='demo.db') first, "
                "or pass client= to Collection") from None


connections = _Connections()


@dataclass
class MutationResult:
    """What insert/upsert/delete report, with pymilvus's attribute names."""

    primary_keys: list = field(default_factory=list)
    insert_count: int = 0
    delete_count: int = 0
    upsert_count: int = 0

    @property
    def succ_count(self) -> int:
        return self.insert_count + self.delete_count + self.upsert_count

    @property
    def err_count(self) -> int:
        return 0


class Collection:
    """A handle on one collection, creating it when a schema is given and it does not exist."""

    def __init__(self, name: str, schema: CollectionSchema | None = None, using: str = "default",
                 client: MilvusClient | None = None, **kwargs: Any):
        self.name = name
        self._client = client or connections.client(using)
        if not self._client.has_collection(name):
            if schema is None:
                raise ParamError(f"collection {name!r} does not exist; pass schema= to create it")
            self._client.create_collection(name, schema=schema, **kwargs)

    @property
    def _coll(self) -> Any:
        return self._client._db.collection(self.name)

    @property
    def schema(self) -> CollectionSchema:
        return self._coll.schema

    @property
    def num_entities(self) -> int:
        return self._coll.count()

    @property
    def is_empty(self) -> bool:
        return self.num_entities == 0

    @property
    def primary_field(self) -> Any:
        return self.schema.primary_field

    def describe(self) -> dict:
        return self._client.describe_collection(self.name)

    # -- data ------------------------------------------------------------------------------
    def insert(self, data: Any, partition_name: str | None = None, **kwargs: Any) -> MutationResult:
        """Insert rows (list of dicts, a DataFrame) or columns (one list per field, in order)."""
        res = self._client.insert(self.name, self._rows(data), partition_name=partition_name)
        return MutationResult(primary_keys=res["ids"], insert_count=res["insert_count"])

    def upsert(self, data: Any, partition_name: str | None = None, **kwargs: Any) -> MutationResult:
        res = self._client.upsert(self.name, self._rows(data), partition_name=partition_name)
        return MutationResult(primary_keys=res["ids"], upsert_count=res["upsert_count"])

    def delete(self, expr: str, partition_name: str | None = None, **kwargs: Any) -> MutationResult:
        res = self._client.delete(self.name, filter=expr, partition_name=partition_name, **kwargs)
        return MutationResult(delete_count=res["delete_count"])

    def flush(self, **kwargs: Any) -> None:
        self._client.flush(self.name)

    def _rows(self, data: Any) -> Any:
        """Column-form data (a list with one sequence per field) becomes a list of row dicts."""
        if hasattr(data, "to_dict") and hasattr(data, "columns"):  # a pandas DataFrame
            return data.to_dict(orient="records")
        if isinstance(data, Mapping) or not isinstance(data, (list, tuple)) or not data:
            return data
        if all(isinstance(row, Mapping) for row in data):
            return data
        fields = [f for f in self.schema.fields if not (f.is_primary and f.auto_id)
                  and not f.is_function_output]
        if len(data) != len(fields):
            raise DataError(
                f"column-form insert got {len(data)} columns but collection {self.name!r} expects "
                f"{len(fields)}: {[f.name for f in fields]} (in that order)")
        lengths = {len(col) for col in data}
        if len(lengths) != 1:
            raise DataError(f"columns have different lengths {sorted(lengths)}; each needs one value per row")
        return [dict(zip((f.name for f in fields), values)) for values in zip(*data)]

    # -- indexes and loading ---------------------------------------------------------------
    def create_index(self, field_name: str, index_params: Mapping | None = None,
                     index_name: str = "", **kwargs: Any) -> None:
        """Build an index: ``{"index_type": ..., "metric_type": ..., "params": {...}}``."""
        params = dict(index_params or {})
        index_type = params.pop("index_type", "AUTOINDEX")
        ip = IndexParams()
        ip.add_index(field_name, index_type=index_type, index_name=index_name, **params)
        self._client.create_index(self.name, ip)

    def drop_index(self, index_name: str = "", **kwargs: Any) -> None:
        names = [index_name] if index_name else self._client.list_indexes(self.name)
        for name in names:
            self._client.drop_index(self.name, name)

    @property
    def indexes(self) -> list[dict]:
        return [self._client.describe_index(self.name, n) for n in self._client.list_indexes(self.name)]

    def has_index(self, index_name: str = "") -> bool:
        names = self._client.list_indexes(self.name)
        return bool(names) if not index_name else index_name in names

    def load(self, partition_names: Sequence[str] | None = None, **kwargs: Any) -> None:
        self._client.load_collection(self.name)

    def release(self, **kwargs: Any) -> None:
        self._client.release_collection(self.name)

    def drop(self, **kwargs: Any) -> None:
        self._client.drop_collection(self.name)

    def compact(self, **kwargs: Any) -> None:
        self._client.compact(self.name)

    # -- reads -----------------------------------------------------------------------------
    def search(self, data: Any, anns_field: str, param: Mapping | None = None, limit: int = 10,
               expr: str | None = None, partition_names: Sequence[str] | None = None,
               output_fields: Sequence[str] | None = None, **kwargs: Any) -> Any:
        """Nearest neighbours: result[i] holds the hits of query i (``.id``, ``.distance``,
        ``.entity.get(name)``)."""
        if isinstance(data, np.ndarray) and data.ndim == 1:
            data = [data]
        return self._client.search(
            self.name, data, filter=expr or "", limit=limit, output_fields=output_fields,
            search_params=param, partition_names=partition_names, anns_field=anns_field, **kwargs)

    def query(self, expr: str = "", output_fields: Sequence[str] | None = None,
              partition_names: Sequence[str] | None = None, **kwargs: Any) -> list[dict]:
        return self._client.query(self.name, filter=expr, output_fields=output_fields,
                                  partition_names=partition_names, **kwargs)

    def __repr__(self) -> str:
        return f"<Collection {self.name!r} ({self.num_entities} entities)>"
