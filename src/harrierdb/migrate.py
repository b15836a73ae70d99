"""Move a collection to a new embedding model: ``harrier reembed``.

The source collection is left as it is; a target collection with the same fields (the vector
field resized to the new model) receives every row, its text re-embedded by the new model.
Rows are copied in primary-key order, a batch per transaction, and rows already in the target
are skipped, so an interrupted migration resumes where it stopped when run again.
"""

from __future__ import annotations

import copy

from tqdm import tqdm

from harrierdb.client import MilvusClient
from harrierdb.embed.base import EmbeddingFunction
from harrierdb.errors import FieldNotFoundError, ParamError
from harrierdb.schema import CollectionSchema, DataType, FunctionType


def target_schema(schema: CollectionSchema, vector_field: str, model: EmbeddingFunction,
                  model_params: dict) -> CollectionSchema:
    """The source schema with ``vector_field`` sized for ``model`` (and any TEXT_EMBEDDING
    function on it pointed at the new model)."""
    new = CollectionSchema.from_dict(copy.deepcopy(schema.to_dict()))
    new.field(vector_field).dim = model.dim
    for fn in new.functions:
        if fn.function_type is FunctionType.TEXTEMBEDDING and vector_field in fn.output_field_names:
            fn.params = dict(model_params)
    return new


def reembed(client: MilvusClient, collection: str, text_field: str, vector_field: str,
            model: EmbeddingFunction, target: str, model_params: dict | None = None,
            batch_size: int = 256) -> int:
    """Copy ``collection`` into ``target`` with ``vector_field`` re-embedded from
    ``text_field`` by ``model``; returns the number of rows written by this run."""
    source = client._db.collection(collection)
    schema = source.schema
    for name in (text_field, vector_field):
        if name not in schema.field_names:
            raise FieldNotFoundError(f"field {name!r} is not in collection {collection!r}: {schema.field_names}")
    if schema.field(text_field).dtype is not DataType.VARCHAR:
        raise ParamError(f"text field {text_field!r} must be VARCHAR")
    computed = any(vector_field in fn.output_field_names for fn in schema.functions)
    if not client.has_collection(target):
        client.create_collection(target, schema=target_schema(schema, vector_field, model, model_params or {}))
        for index_name in source.list_indexes(vector_field):
            spec = source.describe_index(index_name)
            ip = client.prepare_index_params()
            params = {k: v for k, v in spec.items() if k not in (
                "index_type", "metric_type", "field_name", "index_name", "total_rows", "indexed_rows",
                "pending_index_rows", "state")}
            ip.add_index(vector_field, index_type=spec["index_type"], metric_type=spec["metric_type"], params=params)
            client.create_index(target, ip)
    pk = schema.primary_field.name
    ids = sorted(row[pk] for row in client.query(collection, filter="", output_fields=[pk]))
    done = {row[pk] for row in client.query(target, filter="", output_fields=[pk])}
    todo = [i for i in ids if i not in done]
    written = 0
    fields = [f.name for f in schema.fields if not f.is_function_output or f.name == vector_field]
    for start in tqdm(range(0, len(todo), batch_size), desc=f"re-embedding {collection}", unit="batch",
                      disable=None):
        rows = client.get(collection, ids=todo[start:start + batch_size], output_fields=fields)
        if not computed:
            texts = [row[text_field] or "" for row in rows]
            vectors = model.encode_documents(texts)
            for row, vec in zip(rows, vectors):
                row[vector_field] = vec
        else:
            for row in rows:
                row.pop(vector_field, None)
        written += client.insert(target, rows)["insert_count"]
    return written
