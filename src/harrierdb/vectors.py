"""Encodings of vector field values: what a user may pass, how it is stored, what comes back.

Every fixed-width vector type is held as a 2-D NumPy array (one row per entity) whose rows are
stored as raw little-endian blobs. A codec validates input (dimension, NaN/inf, ranges), encodes
to that array, and converts back for search (``as_float32``) and for results (``to_output``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from harrierdb.errors import DataError, SchemaError


class FixedWidthCodec:
    """A vector type stored as ``width(dim)`` elements of ``storage_dtype`` per row."""

    name = "FLOAT_VECTOR"
    storage_dtype: np.dtype = np.dtype("<f4")

    def check_dim(self, field: str, dim: int | None) -> None:
        if not dim or not 1 <= dim <= 32768:
            raise SchemaError(f"field {field!r}: {self.name} needs dim between 1 and 32768, got {dim!r}")

    def width(self, dim: int) -> int:
        return dim

    def encode(self, values: Sequence[Any] | np.ndarray, dim: int, field: str) -> np.ndarray:
        """Validate and convert many vectors to the storage array (n, width)."""
        array = self._as_array(values, dim, field)
        if array.ndim != 2 or array.shape[1] != dim:
            got = array.shape[-1] if array.ndim >= 1 else "a scalar"
            raise DataError(
                f"field {field!r}: expected vectors of dim {dim}, got {got}; "
                f"every vector in {field!r} must have exactly {dim} numbers")
        if not np.isfinite(array).all():
            row = int(np.flatnonzero(~np.isfinite(array).all(axis=1))[0])
            raise DataError(f"field {field!r}: vector {row} contains NaN or inf; clean the input")
        return self._store(array, field)

    def _as_array(self, values: Any, dim: int, field: str) -> np.ndarray:
        try:
            if isinstance(values, np.ndarray):
                return values.astype(np.float64, copy=False) if values.dtype.kind not in "fiu" else values
            rows = [np.asarray(v) for v in values]
            if any(r.ndim != 1 for r in rows):
                bad = next(i for i, r in enumerate(rows) if r.ndim != 1)
                raise DataError(f"field {field!r}: vector {bad} is not a flat list of numbers")
            lengths = {len(r) for r in rows}
            if len(lengths) > 1:
                bad = next(i for i, r in enumerate(rows) if len(r) != dim)
                raise DataError(
                    f"field {field!r}: vector {bad} has dim {len(rows[bad])}, expected {dim}")
            return np.stack(rows) if rows else np.empty((0, dim))
        except (TypeError, ValueError) as exc:
            raise DataError(f"field {field!r}: vectors must be lists or arrays of numbers ({exc})") from None

    def _store(self, array: np.ndarray, field: str) -> np.ndarray:
        if array.dtype.kind not in "fiub":
            raise DataError(f"field {field!r}: vectors must hold numbers, got dtype {array.dtype}")
        return np.ascontiguousarray(array, dtype=self.storage_dtype)

    def from_blobs(self, blobs: Sequence[bytes], dim: int) -> np.ndarray:
        width = self.width(dim)
        return np.frombuffer(b"".join(blobs), dtype=self.storage_dtype).reshape(len(blobs), width)

    def as_float32(self, stored: np.ndarray) -> np.ndarray:
        return np.asarray(stored, dtype=np.float32)

    def to_output(self, stored_row: np.ndarray) -> Any:
        return self.as_float32(stored_row[None, :])[0].tolist()


class Float16Codec(FixedWidthCodec):
    name = "FLOAT16_VECTOR"
    storage_dtype = np.dtype("<f2")

    def _store(self, array: np.ndarray, field: str) -> np.ndarray:
        if np.abs(array).max(initial=0) > 65504:
            raise DataError(f"field {field!r}: values beyond ±65504 do not fit FLOAT16_VECTOR")
        return super()._store(array, field)


class BFloat16Codec(FixedWidthCodec):
    """bfloat16 kept as the upper 16 bits of float32, rounded to nearest even."""

    name = "BFLOAT16_VECTOR"
    storage_dtype = np.dtype("<u2")

    def _store(self, array: np.ndarray, field: str) -> np.ndarray:
        bits = np.ascontiguousarray(array, dtype=np.float32).view(np.uint32)
        rounded = bits + 0x7FFF + ((bits >> 16) & 1)
        return (rounded >> 16).astype(self.storage_dtype)

    def as_float32(self, stored: np.ndarray) -> np.ndarray:
        return (stored.astype(np.uint32) << 16).view(np.float32)


class Int8Codec(FixedWidthCodec):
    name = "INT8_VECTOR"
    storage_dtype = np.dtype("i1")

    def _store(self, array: np.ndarray, field: str) -> np.ndarray:
        if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
            raise DataError(f"field {field!r}: INT8_VECTOR takes integers in [-128, 127]")
        if array.min(initial=0) < -128 or array.max(initial=0) > 127:
            raise DataError(f"field {field!r}: INT8_VECTOR values must lie in [-128, 127]")
        return array.astype(self.storage_dtype)

    def to_output(self, stored_row: np.ndarray) -> Any:
        return stored_row.astype(int).tolist()


class BinaryCodec(FixedWidthCodec):
    """dim bits packed into dim/8 bytes; input as bytes, packed uint8 arrays, or 0/1 bit lists."""

    name = "BINARY_VECTOR"
    storage_dtype = np.dtype("u1")

    def check_dim(self, field: str, dim: int | None) -> None:
        super().check_dim(field, dim)
        if dim % 8:
            raise SchemaError(f"field {field!r}: BINARY_VECTOR dim must be a multiple of 8, got {dim}")

    def width(self, dim: int) -> int:
        return dim // 8

    def encode(self, values: Sequence[Any] | np.ndarray, dim: int, field: str) -> np.ndarray:
        width = dim // 8
        rows = []
        for i, v in enumerate(values):
            if isinstance(v, (bytes, bytearray, memoryview)):
                row = np.frombuffer(bytes(v), dtype=np.uint8)
            else:
                arr = np.asarray(v)
                if arr.dtype == np.uint8 and arr.shape == (width,):
                    row = arr
                elif arr.shape == (dim,) and np.isin(arr, (0, 1)).all():
                    row = np.packbits(arr.astype(np.uint8))
                else:
                    raise DataError(
                        f"field {field!r}: binary vector {i} must be {width} bytes or {dim} bits of 0/1")
            if row.shape != (width,):
                raise DataError(
                    f"field {field!r}: binary vector {i} has {row.size} bytes, expected {width} (dim {dim})")
            rows.append(row)
        return np.stack(rows).astype(np.uint8) if rows else np.empty((0, width), np.uint8)

    def as_float32(self, stored: np.ndarray) -> np.ndarray:
        return np.unpackbits(stored, axis=1).astype(np.float32)

    def to_output(self, stored_row: np.ndarray) -> Any:
        return stored_row.tobytes()


_CODECS: dict[str, FixedWidthCodec] = {
    c.name: c for c in (FixedWidthCodec(), Float16Codec(), BFloat16Codec(), Int8Codec(), BinaryCodec())
}


def codec_for(dtype: Any) -> FixedWidthCodec:
    """The codec of a vector DataType (by name)."""
    name = getattr(dtype, "name", dtype)
    try:
        return _CODECS[name]
    except KeyError:
        raise SchemaError(
            f"vector type {name} is not supported yet; use one of {sorted(_CODECS)}") from None
