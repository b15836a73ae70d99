"""Schemas: data types, fields, collections, and the validation of rows against them.

The names and arguments follow pymilvus (``DataType``, ``FieldSchema``, ``CollectionSchema``,
``schema.add_field(...)``) so code written for Milvus runs unchanged. A pymilvus ``DataType``
member is accepted wherever ours is (it is matched by name).
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harrierdb import vectors
from harrierdb.errors import DataError, PrimaryKeyError, SchemaError

DYNAMIC_FIELD = "$meta"
DEFAULT_PARTITION = "_default"


class DataType(enum.IntEnum):
    """Field types, with pymilvus's names and numeric values."""

    NONE = 0
    BOOL = 1
    INT8 = 2
    INT16 = 3
    INT32 = 4
    INT64 = 5
    FLOAT = 10
    DOUBLE = 11
    STRING = 20
    VARCHAR = 21
    ARRAY = 22
    JSON = 23
    BINARY_VECTOR = 100
    FLOAT_VECTOR = 101
    FLOAT16_VECTOR = 102
    BFLOAT16_VECTOR = 103
    SPARSE_FLOAT_VECTOR = 104
    INT8_VECTOR = 105
    ARRAY_OF_VECTOR = 106  # several FLOAT vectors per row (ColBERT-style), scored by MaxSim
    UNKNOWN = 999

    @classmethod
    def coerce(cls, value: Any) -> DataType:
        """Accept our member, a pymilvus member, a name or a number."""
        if isinstance(value, cls):
            return value
        name = getattr(value, "name", value)
        try:
            if isinstance(name, str):
                return cls[name.upper().lstrip("_")]  # pymilvus spells it _ARRAY_OF_VECTOR
            return cls(int(name))
        except (KeyError, ValueError, TypeError):
            known = ", ".join(m.name for m in cls if m not in (cls.NONE, cls.UNKNOWN))
            raise SchemaError(f"unknown data type {value!r}; use one of: {known}") from None

    @property
    def is_vector(self) -> bool:
        return 100 <= self.value < 200

    @property
    def is_integer(self) -> bool:
        return self in _INT_RANGES


_INT_RANGES = {
    DataType.INT8: (-(2**7), 2**7 - 1),
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.INT64: (-(2**63), 2**63 - 1),
}
_SCALAR_ELEMENT_TYPES = {
    DataType.BOOL, DataType.INT8, DataType.INT16, DataType.INT32, DataType.INT64,
    DataType.FLOAT, DataType.DOUBLE, DataType.VARCHAR,
}
# numpy dtype of a scalar column held in memory (object for strings and nullable fields).
NUMPY_DTYPES = {
    DataType.BOOL: np.bool_, DataType.INT8: np.int8, DataType.INT16: np.int16,
    DataType.INT32: np.int32, DataType.INT64: np.int64, DataType.FLOAT: np.float32,
    DataType.DOUBLE: np.float64,
}


class FunctionType(enum.IntEnum):
    """Kinds of schema functions (fields computed from other fields), as in pymilvus."""

    UNKNOWN = 0
    BM25 = 1
    TEXTEMBEDDING = 2


@dataclass
class Function:
    """A field computed from other fields at insert and search time (BM25, text embedding)."""

    name: str
    function_type: FunctionType
    input_field_names: list[str] | str
    output_field_names: list[str] | str
    description: str = ""
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.input_field_names, str):
            self.input_field_names = [self.input_field_names]
        if isinstance(self.output_field_names, str):
            self.output_field_names = [self.output_field_names]
        self.function_type = FunctionType(getattr(self.function_type, "value", self.function_type))

    def to_dict(self) -> dict:
        return {
            "name": self.name, "type": self.function_type.name, "description": self.description,
            "input_field_names": list(self.input_field_names),
            "output_field_names": list(self.output_field_names), "params": dict(self.params),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> Function:
        return cls(d["name"], FunctionType[d["type"]], d["input_field_names"],
                   d["output_field_names"], d.get("description", ""), d.get("params", {}))


class FieldSchema:
    """One field of a collection: name, type and the type's parameters."""

    def __init__(
        self,
        name: str,
        dtype: Any,
        description: str = "",
        *,
        is_primary: bool = False,
        auto_id: bool = False,
        max_length: int | None = None,
        dim: int | None = None,
        element_type: Any = None,
        max_capacity: int | None = None,
        nullable: bool = False,
        default_value: Any = None,
        is_partition_key: bool = False,
        enable_analyzer: bool = False,
        analyzer_params: dict | None = None,
        is_function_output: bool = False,
        **kwargs: Any,
    ):
        self.name = _check_name(name, "field")
        self.dtype = DataType.coerce(dtype)
        self.description = description
        self.is_primary = bool(is_primary)
        self.auto_id = bool(auto_id)
        # pymilvus passes type parameters either as keywords or inside params={...}.
        params = dict(kwargs.pop("params", None) or {})
        self.max_length = _opt_int(max_length if max_length is not None else params.get("max_length"))
        self.dim = _opt_int(dim if dim is not None else params.get("dim"))
        self.max_capacity = _opt_int(
            max_capacity if max_capacity is not None else params.get("max_capacity"))
        self.element_type = DataType.coerce(element_type) if element_type is not None else None
        self.nullable = bool(nullable)
        self.default_value = default_value
        self.is_partition_key = bool(is_partition_key)
        self.enable_analyzer = bool(enable_analyzer)
        self.analyzer_params = analyzer_params
        self.is_function_output = bool(is_function_output)
        self.extra = kwargs
        self._check()

    def _check(self) -> None:
        t, name = self.dtype, self.name
        if t in (DataType.NONE, DataType.UNKNOWN, DataType.STRING):
            raise SchemaError(f"field {name!r}: type {t.name} cannot be stored; use VARCHAR for text")
        if t is DataType.VARCHAR and not (self.max_length and 0 < self.max_length <= 65535):
            raise SchemaError(
                f"field {name!r}: VARCHAR needs max_length between 1 and 65535, got {self.max_length!r}")
        if t is DataType.ARRAY:
            if self.element_type not in _SCALAR_ELEMENT_TYPES:
                raise SchemaError(
                    f"field {name!r}: ARRAY needs element_type, one of "
                    f"{sorted(e.name for e in _SCALAR_ELEMENT_TYPES)}; got {self.element_type!r}")
            if not (self.max_capacity and 0 < self.max_capacity <= 4096):
                raise SchemaError(
                    f"field {name!r}: ARRAY needs max_capacity between 1 and 4096, got {self.max_capacity!r}")
            if self.element_type is DataType.VARCHAR and not self.max_length:
                raise SchemaError(f"field {name!r}: an ARRAY of VARCHAR needs max_length")
        if t.is_vector:
            vectors.codec_for(t).check_dim(name, self.dim)
            if self.nullable:
                raise SchemaError(f"field {name!r}: vector fields cannot be nullable")
        if self.is_primary:
            if t not in (DataType.INT64, DataType.VARCHAR):
                raise SchemaError(f"primary key {name!r} must be INT64 or VARCHAR, got {t.name}")
            if self.nullable:
                raise SchemaError(f"primary key {name!r} cannot be nullable")
            if self.auto_id and t is not DataType.INT64:
                raise SchemaError(f"auto_id needs an INT64 primary key; {name!r} is {t.name}")
        if self.default_value is not None:
            if t.is_vector or t is DataType.JSON or t is DataType.ARRAY or self.is_primary:
                raise SchemaError(f"field {name!r}: a {t.name} field cannot have a default_value")
            self.default_value = coerce_scalar(self, self.default_value)

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"name": self.name, "type": self.dtype.name}
        for key in ("description", "is_primary", "auto_id", "max_length", "dim", "max_capacity",
                    "nullable", "default_value", "is_partition_key", "enable_analyzer",
                    "analyzer_params", "is_function_output"):
            value = getattr(self, key)
            if value not in (None, False, ""):
                d[key] = value
        if self.element_type is not None:
            d["element_type"] = self.element_type.name
        params = {k: getattr(self, k) for k in ("max_length", "dim", "max_capacity")
                  if getattr(self, k) is not None}
        if params:
            d["params"] = params
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> FieldSchema:
        d = dict(d)
        name, dtype = d.pop("name"), d.pop("type")
        d.pop("params", None)
        return cls(name, dtype, **d)

    def __repr__(self) -> str:
        return f"FieldSchema({self.to_dict()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldSchema) and self.to_dict() == other.to_dict()


class CollectionSchema:
    """The fields of a collection, its primary key and whether undeclared keys are kept."""

    def __init__(
        self,
        fields: Iterable[FieldSchema] | None = None,
        description: str = "",
        *,
        enable_dynamic_field: bool = False,
        auto_id: bool | None = None,
        primary_field: str | None = None,
        functions: Iterable[Function] | None = None,
        **kwargs: Any,
    ):
        self.description = description
        self.enable_dynamic_field = bool(enable_dynamic_field)
        self.fields: list[FieldSchema] = []
        self.functions: list[Function] = []
        self._auto_id = auto_id
        self._primary_name = primary_field
        for f in fields or []:
            self._append(f)
        for fn in functions or []:
            self.add_function(fn)

    # -- building ---------------------------------------------------------------------------
    def add_field(self, field_name: str, datatype: Any, **kwargs: Any) -> CollectionSchema:
        """Add a field (pymilvus's ``schema.add_field``); returns the schema for chaining."""
        self._append(FieldSchema(field_name, datatype, **kwargs))
        return self

    def add_function(self, function: Function) -> CollectionSchema:
        """Declare a field computed from others (e.g. BM25 from a text field)."""
        if any(f.name == function.name for f in self.functions):
            raise SchemaError(f"function {function.name!r} is declared twice")
        self.functions.append(function)
        if function.function_type is FunctionType.BM25:  # a BM25 field holds term weights, not vectors
            for out in function.output_field_names:
                if out in self.field_names:
                    self.field(out).is_function_output = True
        return self

    def _append(self, f: FieldSchema) -> None:
        if not isinstance(f, FieldSchema):
            raise SchemaError(f"expected a FieldSchema, got {type(f).__name__}: {f!r}")
        if f.name in self.field_names:
            raise SchemaError(f"field {f.name!r} is declared twice; field names must be unique")
        if f.name == self._primary_name:
            f.is_primary = True
        if f.is_primary and self._auto_id is not None:
            f.auto_id = bool(self._auto_id)
        self.fields.append(f)

    # -- reading ----------------------------------------------------------------------------
    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def field(self, name: str) -> FieldSchema:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def primary_field(self) -> FieldSchema:
        return next(f for f in self.fields if f.is_primary)

    @property
    def auto_id(self) -> bool:
        return self.primary_field.auto_id

    @property
    def vector_fields(self) -> list[FieldSchema]:
        return [f for f in self.fields if f.dtype.is_vector]

    @property
    def scalar_fields(self) -> list[FieldSchema]:
        """Non-vector fields other than the primary key."""
        return [f for f in self.fields if not f.dtype.is_vector and not f.is_primary]

    def verify(self) -> None:
        """Check the schema as a whole before a collection is created from it."""
        primaries = [f.name for f in self.fields if f.is_primary]
        if len(primaries) != 1:
            raise SchemaError(
                f"a collection needs exactly one primary key field, found {primaries or 'none'}; "
                "pass is_primary=True on one INT64 or VARCHAR field")
        if not self.vector_fields:
            raise SchemaError("a collection needs at least one vector field (e.g. FLOAT_VECTOR with dim)")
        if len([f for f in self.fields if f.is_partition_key]) > 1:
            raise SchemaError("at most one field can be the partition key")
        for fn in self.functions:
            for name in [*fn.input_field_names, *fn.output_field_names]:
                if name not in self.field_names:
                    raise SchemaError(f"function {fn.name!r} names field {name!r}, which is not declared")

    def to_dict(self) -> dict:
        return {
            "description": self.description,
            "enable_dynamic_field": self.enable_dynamic_field,
            "fields": [f.to_dict() for f in self.fields],
            "functions": [fn.to_dict() for fn in self.functions],
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> CollectionSchema:
        return cls(
            [FieldSchema.from_dict(f) for f in d["fields"]],
            d.get("description", ""),
            enable_dynamic_field=d.get("enable_dynamic_field", False),
            functions=[Function.from_dict(fn) for fn in d.get("functions", [])],
        )

    def __repr__(self) -> str:
        return f"CollectionSchema({self.to_dict()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CollectionSchema) and self.to_dict() == other.to_dict()


# -- validation of rows -----------------------------------------------------------------------

@dataclass
class RowBatch:
    """Rows validated against a schema, ready to store.

    ``scalars`` holds one dict per row with every scalar field (nulls as None) and, when the
    dynamic field is on, the undeclared keys under ``$meta``; ``vectors`` one encoded array per
    vector field.
    """

    pks: list
    scalars: list[dict]
    vectors: dict[str, Any]

    def __len__(self) -> int:
        return len(self.pks)


def validate_rows(schema: CollectionSchema, rows: Any, *, assign_ids: Iterable[int] | None = None,
                  require_pk: bool = True) -> RowBatch:
    """Check and coerce rows (a dict or a list of dicts) against the schema.

    Raises ``DataError`` naming the row, field and value at the first problem; nothing is
    half-accepted because the caller writes only a fully validated batch.
    """
    if isinstance(rows, Mapping):
        rows = [rows]
    if not isinstance(rows, (list, tuple)):
        raise DataError(f"data must be a dict or a list of dicts, got {type(rows).__name__}")
    if not rows:
        raise DataError("data is empty; pass at least one row")
    pk = schema.primary_field
    computed = {out for fn in schema.functions for out in fn.output_field_names}
    declared = set(schema.field_names)
    pks: list = []
    scalars: list[dict] = []
    vector_values: dict[str, list] = {f.name: [] for f in schema.vector_fields if f.name not in computed}
    ids = iter(assign_ids) if assign_ids is not None else None
    scalar_fields = [f for f in schema.scalar_fields if f.name not in computed]
    dynamic = schema.enable_dynamic_field
    for i, row in enumerate(rows):
        if not isinstance(row, dict) and not isinstance(row, Mapping):  # dict first: fast path
            raise DataError(f"row {i} must be a dict of field -> value, got {type(row).__name__}")
        if pk.auto_id and ids is not None:
            if pk.name in row:
                raise DataError(
                    f"row {i}: primary key {pk.name!r} is auto_id, so it must not be given; "
                    "drop it from the row or create the collection with auto_id=False")
            pks.append(next(ids))
        elif pk.name in row:
            pks.append(_coerce_pk(pk, row[pk.name], i))
        elif require_pk:
            raise DataError(f"row {i}: missing primary key field {pk.name!r}")
        scalar: dict[str, Any] = {}
        for f in scalar_fields:
            value = row.get(f.name)
            if value is None:
                if f.default_value is not None:
                    value = f.default_value
                elif not f.nullable:
                    if f.name in row:
                        raise DataError(f"row {i}: field {f.name!r} is not nullable but got None")
                    raise DataError(f"row {i}: missing field {f.name!r} ({f.dtype.name})")
            try:
                scalar[f.name] = None if value is None else coerce_scalar(f, value)
            except DataError as exc:
                raise DataError(f"row {i}: {exc.message}") from None
        given = computed.intersection(row)
        if given:
            name = next(iter(given))
            raise DataError(
                f"row {i}: field {name!r} is computed by a schema function from another field; "
                "leave it out of the row")
        for name, bucket in vector_values.items():
            if name not in row or row[name] is None:
                raise DataError(f"row {i}: missing vector field {name!r}")
            bucket.append(row[name])
        extra = row.keys() - declared
        if dynamic:
            # Undeclared keys go to the dynamic field; a row without any stores null there.
            meta = dict(row.get(DYNAMIC_FIELD) or {})
            meta.update((k, row[k]) for k in extra if k != DYNAMIC_FIELD)
            scalar[DYNAMIC_FIELD] = _json_value(meta, DYNAMIC_FIELD) if meta else None
        elif extra:
            name = next(iter(extra))
            raise DataError(
                f"row {i}: field {name!r} is not in the schema (fields: {schema.field_names}); "
                "remove it, add it to the schema, or create the collection with enable_dynamic_field=True")
        scalars.append(scalar)
    _check_unique(pks, pk.name)
    encoded = {}
    for name, values in vector_values.items():
        f = schema.field(name)
        encoded[name] = vectors.codec_for(f.dtype).encode(values, f.dim, name)
    return RowBatch(pks, scalars, encoded)


def _check_unique(pks: list, name: str) -> None:
    if len(set(pks)) != len(pks):
        seen: set = set()
        dup = next(p for p in pks if p in seen or seen.add(p))
        raise PrimaryKeyError(
            f"primary key {name!r} value {dup!r} appears more than once in this call; "
            "primary keys must be unique")


def _coerce_pk(pk: FieldSchema, value: Any, i: int) -> Any:
    try:
        return coerce_scalar(pk, value)
    except DataError as exc:
        raise PrimaryKeyError(f"row {i}: {exc.message}") from None


def coerce_scalar(f: FieldSchema, value: Any) -> Any:
    """Return ``value`` as the plain Python value stored for field ``f``, or raise DataError."""
    t = f.dtype
    if t is DataType.BOOL:
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
    elif t.is_integer:
        if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            lo, hi = _INT_RANGES[t]
            if not lo <= int(value) <= hi:
                raise DataError(f"field {f.name!r}: {value!r} is out of range for {t.name} [{lo}, {hi}]")
            return int(value)
    elif t in (DataType.FLOAT, DataType.DOUBLE):
        if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
            value = float(value)
            if not math.isfinite(value):
                raise DataError(f"field {f.name!r}: {value!r} is not a finite number")
            return value
    elif t is DataType.VARCHAR:
        if isinstance(value, str):
            size = len(value.encode("utf-8"))
            if size > (f.max_length or 0):
                raise DataError(
                    f"field {f.name!r}: string of {size} bytes exceeds max_length={f.max_length} "
                    f"(value starts {value[:40]!r}); shorten it or raise max_length")
            return value
    elif t is DataType.JSON:
        return _json_value(value, f.name)
    elif t is DataType.ARRAY:
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if isinstance(value, (list, tuple)):
            if len(value) > (f.max_capacity or 0):
                raise DataError(
                    f"field {f.name!r}: array of {len(value)} elements exceeds max_capacity={f.max_capacity}")
            element = FieldSchema(f.name, f.element_type, max_length=f.max_length or None)
            return [coerce_scalar(element, v) for v in value]
    expected = {DataType.ARRAY: "a list", DataType.VARCHAR: "a str", DataType.BOOL: "a bool"}
    raise DataError(
        f"field {f.name!r} ({t.name}) expects {expected.get(t, 'a number')}, "
        f"got {type(value).__name__}: {value!r:.60}")


def _json_value(value: Any, name: str) -> Any:
    """Round-trip through JSON so what is stored is exactly what will be read back."""
    try:
        return json.loads(json.dumps(value, allow_nan=False, default=_numpy_to_json))
    except (TypeError, ValueError) as exc:
        raise DataError(f"field {name!r}: value {value!r:.60} is not JSON-serialisable ({exc})") from None


def _numpy_to_json(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name or not (name[0].isalpha() or name[0] == "_") or not all(
        c.isalnum() or c == "_" for c in name
    ) or len(name) > 255:
        raise SchemaError(
            f"invalid {what} name {name!r}: use letters, digits and underscores, starting with a letter or _")
    return name


def check_collection_name(name: Any) -> str:
    """Validate a collection or partition name (Milvus's rules)."""
    return _check_name(name, "collection")


def _opt_int(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SchemaError(f"expected an integer type parameter, got {value!r}") from None
