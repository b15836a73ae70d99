"""Embedding models bound to collections: TEXT_EMBEDDING functions and the model guard.

A vector field remembers the identity (name, version, dimension, normalisation, weights hash)
of the model whose vectors filled it, taken from the first vectors that carried one (every
``harrierdb.embed`` function tags its output). From then on, vectors or queries from another
model are refused with ``ModelMismatchError`` naming both: mixing two models' vectors in one
field silently ruins every search.

A ``Function(function_type=FunctionType.TEXTEMBEDDING)`` goes further: the collection embeds
its input text field itself at insert, and embeds query texts at search, with a model named in
the function's params (``{"model_name": "all-MiniLM-L6-v2", "precision": "int8"}`` or
``{"model_dir": "/path/to/model"}``); the model's identity is recorded when the collection is
created and checked every time the model is loaded again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from harrierdb.errors import ModelMismatchError, SchemaError
from harrierdb.schema import CollectionSchema, DataType, FieldSchema, Function, FunctionType, RowBatch

MODELS_PROPERTY = "embedding_models"
_loaded: dict[tuple, Any] = {}


def text_embedding_functions(schema: CollectionSchema) -> list[tuple[Function, FieldSchema, FieldSchema]]:
    """(function, input text field, output vector field) of each TEXT_EMBEDDING function."""
    out = []
    for fn in schema.functions:
        if fn.function_type is not FunctionType.TEXTEMBEDDING:
            continue
        if len(fn.input_field_names) != 1 or len(fn.output_field_names) != 1:
            raise SchemaError(f"text embedding function {fn.name!r} takes one input and one output field")
        src, dst = schema.field(fn.input_field_names[0]), schema.field(fn.output_field_names[0])
        if src.dtype is not DataType.VARCHAR:
            raise SchemaError(f"text embedding function {fn.name!r}: input {src.name!r} must be VARCHAR")
        if dst.dtype is not DataType.FLOAT_VECTOR:
            raise SchemaError(f"text embedding function {fn.name!r}: output {dst.name!r} must be FLOAT_VECTOR")
        out.append((fn, src, dst))
    return out


def model_for(fn: Function) -> Any:
    """The embedding function a TEXT_EMBEDDING function names, loaded once per process."""
    from harrierdb.embed.dense import SentenceEmbedding

    p = fn.params
    key = (p.get("model_name", "all-MiniLM-L6-v2"), p.get("precision", "int8"), p.get("model_dir"))
    if key not in _loaded:
        kwargs = {"precision": key[1]}
        if key[2]:
            kwargs["model_dir"] = key[2]
        else:
            kwargs["model"] = key[0]
        _loaded[key] = SentenceEmbedding(**kwargs)
    model = _loaded[key]
    recorded = p.get("identity")
    if recorded is not None:
        _recorded_identity(recorded).check_matches(model.identity)
    return model


def prepare_schema(schema: CollectionSchema) -> None:
    """At creation: load each TEXT_EMBEDDING model, check its dimension, record its identity."""
    for fn, _, dst in text_embedding_functions(schema):
        model = model_for(fn)
        if model.dim != dst.dim:
            raise SchemaError(
                f"function {fn.name!r}: model {model.identity.name!r} makes {model.dim}-d vectors "
                f"but field {dst.name!r} has dim {dst.dim}; set dim={model.dim}")
        fn.params["identity"] = model.identity.to_dict()


def embed_batch(schema: CollectionSchema, batch: RowBatch) -> None:
    """Fill TEXT_EMBEDDING output fields of a validated batch from its text fields."""
    for fn, src, dst in text_embedding_functions(schema):
        texts = ["" if row.get(src.name) is None else row[src.name] for row in batch.scalars]
        batch.vectors[dst.name] = np.asarray(model_for(fn).encode_documents(texts), dtype=np.float32)


def embed_queries(schema: CollectionSchema, field: FieldSchema, texts: list[str]) -> np.ndarray | None:
    """Query vectors for texts searched against a TEXT_EMBEDDING output field, else None."""
    for fn, _, dst in text_embedding_functions(schema):
        if dst.name == field.name:
            return np.asarray(model_for(fn).encode_queries(texts), dtype=np.float32)
    return None


def incoming_identities(values: Iterable[Any]) -> set:
    from harrierdb.embed.base import identity_of

    return {ident for ident in (identity_of(v) for v in values) if ident is not None}


def check_identity(schema: CollectionSchema, properties: dict, field: str, values: Iterable[Any],
                   collection: str) -> Any:
    """Refuse vectors whose model differs from the one recorded for ``field`` (by a
    TEXT_EMBEDDING function on it, or by the first tagged vectors stored in it).

    Returns the identity to record when the field has none yet and the vectors carry one.
    """
    from harrierdb.embed.base import ModelIdentity

    found = incoming_identities(values)
    if len(found) > 1:
        names = sorted(f"{i.name}/{i.version}" for i in found)
        raise ModelMismatchError(f"field {field!r}: one call mixes vectors from several models: {names}")
    if not found:
        return None
    incoming = found.pop()
    recorded = next((fn.params.get("identity") for fn, _, dst in text_embedding_functions(schema)
                     if dst.name == field), None) or properties.get(MODELS_PROPERTY, {}).get(field)
    if recorded is None:
        return incoming
    recorded = ModelIdentity.from_dict(recorded)
    if recorded != incoming:
        raise ModelMismatchError(
            f"collection {collection!r} field {field!r} holds vectors of model {_describe(recorded)}, "
            f"but these come from {_describe(incoming)}; embed with the recorded model, or migrate "
            "the collection with `harrier reembed`")
    return None


def _describe(identity: Any) -> str:
    return (f"{identity.name!r} ({identity.version}, dim {identity.dim}, "
            f"weights {identity.weights_sha256[:12]})")


def _recorded_identity(data: dict) -> Any:
    from harrierdb.embed.base import ModelIdentity

    return ModelIdentity.from_dict(data)
