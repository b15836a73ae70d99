"""An embedded database: one directory on disk holding the store and index files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harrierdb.engine import functions
from harrierdb.engine.collection import Collection
from harrierdb.engine.fulltext import bm25_functions
from harrierdb.engine.storage import Store
from harrierdb.errors import CollectionExistsError, CollectionNotFoundError, ParamError
from harrierdb.schema import DEFAULT_PARTITION, CollectionSchema, check_collection_name


class Database:
    """The collections under one path; safe to share between threads of a process, and
    between processes (each opens its own ``Database`` on the same path)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.store = Store(self.path)
        self._collections: dict[str, Collection] = {}
        self._catalog_version: int | None = None
        self._data_version: int | None = None
        self._refresh(force=True)

    # -- catalog ---------------------------------------------------------------------------
    def _refresh(self, force: bool = False) -> None:
        """Re-read the catalog if any process changed it since we last looked (``force``
        after our own catalog changes, which SQLite's data_version does not report)."""
        data_version = self.store.data_version()
        if force or data_version != self._data_version:
            self._reload_catalog(data_version)

    def _reload_catalog(self, data_version: int) -> None:
        with self.store.lock:
            self._data_version = data_version
            version = self.store.catalog_version()
            if version == self._catalog_version:
                return
            records = self.store.load_collections()
            by_id = {c.record.id: c for c in self._collections.values()}
            fresh: dict[str, Collection] = {}
            for name, record in records.items():
                existing = by_id.get(record.id)
                if existing is not None:
                    existing.record = record
                    existing.indexes.reload_specs()
                    fresh[name] = existing
                else:
                    fresh[name] = Collection(self.store, record)
            self._collections = fresh
            self._catalog_version = version

    def collection(self, name: str) -> Collection:
        """The named collection, or CollectionNotFoundError listing those that exist."""
        data_version = self.store.data_version()  # ``_refresh``, spelled out: every call comes here
        if data_version != self._data_version:
            self._reload_catalog(data_version)
        try:
            coll = self._collections[name]
        except KeyError:
            raise CollectionNotFoundError(
                f"collection {name!r} does not exist in {str(self.path)!r}; "
                f"existing collections: {sorted(self._collections)}") from None
        coll.version_hint = data_version
        return coll

    def has_collection(self, name: str) -> bool:
        self._refresh()
        return name in self._collections

    def list_collections(self) -> list[str]:
        self._refresh()
        return sorted(self._collections)

    def create_collection(self, name: str, schema: CollectionSchema, properties: dict | None = None) -> Collection:
        check_collection_name(name)
        schema.verify()
        bm25_functions(schema)  # validates the schema's functions
        functions.prepare_schema(schema)  # loads embedding models, records their identity
        with self.store.lock:
            if self.has_collection(name):
                raise CollectionExistsError(
                    f"collection {name!r} already exists; drop it first or pick another name")
            self.store.create_collection(name, schema, properties or {}, [DEFAULT_PARTITION])
            self._refresh(force=True)
            return self._collections[name]

    def drop_collection(self, name: str) -> None:
        with self.store.lock:
            if not self.has_collection(name):
                return  # Milvus treats dropping a missing collection as done
            coll = self._collections[name]
            coll.release()
            self.store.drop_collection(coll.record)
            coll.indexes.remove_files()
            self._refresh(force=True)

    def rename_collection(self, old: str, new: str) -> None:
        check_collection_name(new)
        with self.store.lock:
            coll = self.collection(old)
            if self.has_collection(new):
                raise CollectionExistsError(f"cannot rename {old!r} to {new!r}: {new!r} already exists")
            self.store.rename_collection(coll.record, new)
            self._refresh(force=True)

    # -- partitions ------------------------------------------------------------------------
    def create_partition(self, collection: str, partition: str) -> None:
        check_collection_name(partition)
        self.store.create_partition(self.collection(collection).record, partition)

    def drop_partition(self, collection: str, partition: str) -> None:
        if partition == DEFAULT_PARTITION:
            raise ParamError("the _default partition cannot be dropped")
        coll = self.collection(collection)
        if partition in self.store.partitions(coll.record):
            self.store.drop_partition(coll.record, partition)
            coll.mark_stale()

    def list_partitions(self, collection: str) -> list[str]:
        return self.store.partitions(self.collection(collection).record)

    # -- whole database --------------------------------------------------------------------
    def flush(self) -> None:
        for coll in self._collections.values():
            coll.indexes.save()
        self.store.flush()

    def close(self) -> None:
        for coll in self._collections.values():
            coll.release()
        self.store.close()

    def info(self) -> dict[str, Any]:
        """A summary for ``harrier info``: collections, rows, fields, indexes, size on disk."""
        out: dict[str, Any] = {"path": str(self.path), "size_bytes": self.store.size_on_disk(),
                               "collections": {}}
        for name in self.list_collections():
            coll = self._collections[name]
            out["collections"][name] = {
                "rows": coll.count(),
                "fields": [f"{f.name}:{f.dtype.name}" + (f"({f.dim})" if f.dim else "")
                           for f in coll.schema.fields],
                "indexes": {n: coll.describe_index(n)["index_type"] for n in coll.list_indexes()},
                "partitions": self.store.partitions(coll.record),
            }
        return out
