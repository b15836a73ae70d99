"""Index specifications: Milvus's index types, their parameters and metrics, validated.

pymilvus sends index parameters in several shapes (flat ``params={"nlist": 128}``, nested
``{"params": {"nlist": 128}}``, or as keywords of ``add_index``); all of them mean the same
thing here, and an unknown type, metric or parameter is an error rather than silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harrierdb.errors import ParamError
from harrierdb.index.exact import BINARY_METRICS, FLOAT_METRICS
from harrierdb.schema import DataType, FieldSchema

# index type -> (build parameters with defaults, search parameters with defaults)
VECTOR_INDEX_TYPES: dict[str, tuple[dict, dict]] = {
    "FLAT": ({}, {}),
    "IVF_FLAT": ({"nlist": 128}, {"nprobe": 8}),
    "IVF_SQ8": ({"nlist": 128}, {"nprobe": 8}),
    "IVF_PQ": ({"nlist": 128, "m": 0, "nbits": 8}, {"nprobe": 8}),
    "HNSW": ({"M": 16, "efConstruction": 200}, {"ef": 64}),
    "AUTOINDEX": ({"M": 16, "efConstruction": 200}, {"ef": 64}),
    "BIN_FLAT": ({}, {}),
    "BIN_IVF_FLAT": ({"nlist": 128}, {"nprobe": 8}),
    "SPARSE_INVERTED_INDEX": ({"drop_ratio_build": 0.0, "inverted_index_algo": "DAAT_MAXSCORE",
                               "bm25_k1": 1.2, "bm25_b": 0.75}, {"drop_ratio_search": 0.0}),
    "SPARSE_WAND": ({"drop_ratio_build": 0.0, "bm25_k1": 1.2, "bm25_b": 0.75}, {"drop_ratio_search": 0.0}),
    "MAX_SIM_FLAT": ({}, {}),
}
# Which index types fit which kind of vector field.
_TYPES_FOR_KIND = {
    "binary": {"BIN_FLAT", "BIN_IVF_FLAT", "AUTOINDEX"},
    "sparse": {"SPARSE_INVERTED_INDEX", "SPARSE_WAND", "AUTOINDEX"},
    "multi": {"MAX_SIM_FLAT", "HNSW", "AUTOINDEX"},  # HNSW over the token vectors finds candidates
    "dense": {"FLAT", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "HNSW", "AUTOINDEX"},
}
MAX_SIM_METRICS = ("MAX_SIM_COSINE", "MAX_SIM_IP", "MAX_SIM_L2")
SPARSE_METRICS = ("IP", "BM25")
SCALAR_INDEX_TYPES = ("INVERTED", "STL_SORT", "TRIE", "BITMAP", "AUTOINDEX", "")
# Search parameters that apply to any index (handled by the search itself, not the kernel).
COMMON_SEARCH_PARAMS = {"radius", "range_filter", "level", "offset", "limit", "group_by_field",
                        "group_size", "strict_group_size", "ignore_growing", "search_list"}
_FLOAT_TYPES = {DataType.FLOAT_VECTOR, DataType.FLOAT16_VECTOR, DataType.BFLOAT16_VECTOR,
                DataType.INT8_VECTOR}


@dataclass
class IndexSpec:
    """A validated index definition for one field."""

    field_name: str
    index_type: str
    metric_type: str
    params: dict = field(default_factory=dict)
    index_name: str = ""

    def to_dict(self) -> dict:
        return {"field_name": self.field_name, "index_type": self.index_type,
                "metric_type": self.metric_type, "params": dict(self.params),
                "index_name": self.index_name or self.field_name}

    @classmethod
    def from_dict(cls, d: Mapping) -> IndexSpec:
        return cls(d["field_name"], d["index_type"], d["metric_type"], dict(d.get("params", {})),
                   d.get("index_name", ""))

    @property
    def search_defaults(self) -> dict:
        return dict(VECTOR_INDEX_TYPES.get(self.index_type, ({}, {}))[1])


_FIELD_KINDS = {DataType.BINARY_VECTOR: "binary", DataType.SPARSE_FLOAT_VECTOR: "sparse",
                DataType.ARRAY_OF_VECTOR: "multi"}


def field_kind(f: FieldSchema) -> str:
    """How a vector field is searched: "dense", "binary", "sparse" or "multi" (MaxSim)."""
    return _FIELD_KINDS.get(f.dtype, "dense")


def default_metric(f: FieldSchema) -> str:
    if f.is_function_output:
        return "BM25"
    return {"binary": "HAMMING", "sparse": "IP", "multi": "MAX_SIM_COSINE"}.get(field_kind(f), "COSINE")


def allowed_metrics(f: FieldSchema) -> tuple[str, ...]:
    if f.is_function_output:
        return ("BM25",)
    return {"binary": BINARY_METRICS, "sparse": ("IP",), "multi": MAX_SIM_METRICS}.get(field_kind(f), FLOAT_METRICS)


def flatten_params(params: Any) -> dict:
    """Merge pymilvus's nested ``{"params": {...}}`` into one flat dict of parameters."""
    if params is None:
        return {}
    if isinstance(params, str):
        import json

        try:
            params = json.loads(params)
        except ValueError:
            raise ParamError(f"params must be a dict, got the string {params!r}") from None
    if not isinstance(params, Mapping):
        raise ParamError(f"params must be a dict, got {type(params).__name__}: {params!r}")
    flat = {k: v for k, v in params.items() if k != "params"}
    inner = params.get("params")
    if inner is not None:
        flat.update(flatten_params(inner))
    return flat


def make_index_spec(f: FieldSchema, index_type: str | None = None, metric_type: str | None = None,
                    params: Any = None, index_name: str = "", **kwargs: Any) -> IndexSpec:
    """Validate an index definition for field ``f`` and fill in defaults."""
    flat = flatten_params(params)
    flat.update(flatten_params(kwargs))
    index_type = (flat.pop("index_type", None) or index_type or "AUTOINDEX").upper()
    metric_type = (flat.pop("metric_type", None) or metric_type or "").upper()
    if not f.dtype.is_vector:
        if index_type not in SCALAR_INDEX_TYPES:
            raise ParamError(
                f"index type {index_type!r} is for vectors; field {f.name!r} is {f.dtype.name}: "
                f"use one of {[t for t in SCALAR_INDEX_TYPES if t]} or none")
        return IndexSpec(f.name, index_type or "INVERTED", "", flat, index_name)
    if index_type not in VECTOR_INDEX_TYPES:
        raise ParamError(
            f"unknown index type {index_type!r} for field {f.name!r}; use one of {sorted(VECTOR_INDEX_TYPES)}")
    fits = _TYPES_FOR_KIND[field_kind(f)]
    if index_type not in fits:
        raise ParamError(
            f"index type {index_type} does not fit {f.dtype.name} field {f.name!r}; use one of {sorted(fits)}")
    metric_type = metric_type or default_metric(f)
    check_metric(f, metric_type)
    build_defaults = VECTOR_INDEX_TYPES[index_type][0]
    allowed = set(build_defaults) | set(VECTOR_INDEX_TYPES[index_type][1]) | {"mmap.enabled"}
    unknown = set(flat) - allowed
    if unknown:
        raise ParamError(
            f"unknown parameter(s) {sorted(unknown)} for index type {index_type}; "
            f"it takes {sorted(build_defaults) or 'no parameters'}")
    merged = {**build_defaults, **flat}
    for key, value in merged.items():
        default = build_defaults.get(key, VECTOR_INDEX_TYPES[index_type][1].get(key))
        if isinstance(default, str) or key == "mmap.enabled":
            continue
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if isinstance(default, float):
            if not numeric or value < 0 or (key.startswith("drop_ratio") and value >= 1):
                raise ParamError(f"index parameter {key}={value!r} must be a number in [0, 1)"
                                 if key.startswith("drop_ratio") else f"index parameter {key}={value!r} must be >= 0")
        elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ParamError(f"index parameter {key}={value!r} must be a non-negative integer")
    if index_type == "IVF_PQ" and merged["m"] and f.dim % merged["m"]:
        raise ParamError(f"IVF_PQ m={merged['m']} must divide the dimension {f.dim} of field {f.name!r}")
    return IndexSpec(f.name, index_type, metric_type, merged, index_name)


def check_metric(f: FieldSchema, metric_type: str) -> None:
    allowed = allowed_metrics(f)
    if metric_type not in allowed:
        raise ParamError(
            f"metric {metric_type!r} does not apply to {f.dtype.name} field {f.name!r}; use one of {list(allowed)}")
