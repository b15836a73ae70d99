"""Encodings of vector field values: what a user may pass, how it is stored, what comes back.

A codec validates input (dimension, NaN/inf, ranges) and encodes a batch: fixed-width types
(FLOAT, FLOAT16, BFLOAT16, INT8, BINARY) as a 2-D NumPy array, sparse vectors as a SciPy CSR
array, multi-vectors as (row offsets, flat token matrix). It also turns a batch into bytes and
back (storage), concatenates and selects batches (the cache), converts to float32 for search
(``as_float32``) and a row to what results show (``output``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from harrierdb.engine.columns import Growable, MultiVectorColumn, SparseColumn
from harrierdb.errors import DataError, SchemaError

SPARSE_MAX_INDEX = 2**32 - 2  # Milvus: sparse indices are uint32 below 2^32 - 1


class FixedWidthCodec:
    """A vector type stored as ``width(dim)`` elements of ``storage_dtype`` per row."""

    name = "FLOAT_VECTOR"
    storage_dtype: np.dtype = np.dtype("<f4")

    def check_dim(self, field: str, dim: int | None) -> None:
        if not dim or not 1 <= dim <= 32768:
            raise SchemaError(f"field {field!r}: {self.name} needs dim between 1 and 32768, got {dim!r}")

    def width(self, dim: int) -> int:
        return dim

    def encode(self, values: Sequence[Any] | np.ndarray, dim: int, field: str,
               check_finite: bool = True) -> np.ndarray:
        """Validate and convert many vectors to the storage array (n, width). Without
        ``check_finite`` the caller takes on ``check_finite_rows(result, field)``."""
        # already the stored floats, as an application's query matrix often is: kept as it is
        stored_as_is = (type(values) is np.ndarray and values.dtype == self.storage_dtype
                        and values.dtype.kind == "f" and values.flags.c_contiguous)
        array = values if stored_as_is else self._as_array(values, dim, field)
        if array.ndim != 2 or array.shape[1] != dim:
            got = array.shape[-1] if array.ndim >= 1 else "a scalar"
            raise DataError(
                f"field {field!r}: expected vectors of dim {dim}, got {got}; "
                f"every vector in {field!r} must have exactly {dim} numbers")
        if check_finite:
            check_finite_rows(array, field)
        return array if stored_as_is else self._store(array, field)

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
        if self.storage_dtype.kind == "f" and array.dtype != self.storage_dtype:
            # a narrowing cast turns what it cannot hold into inf, silently (inf and NaN given
            # as such are check_finite_rows's to report)
            largest = float(np.finfo(self.storage_dtype).max)
            if largest < np.abs(array).max(initial=0) < np.inf:
                raise DataError(f"field {field!r}: values beyond ±{largest:g} do not fit {self.name}")
        return np.ascontiguousarray(array, dtype=self.storage_dtype)

    # -- batches: storage and cache ---------------------------------------------------------
    def to_bytes(self, batch: np.ndarray) -> bytes:
        return np.ascontiguousarray(batch).tobytes()

    def from_bytes(self, data: bytes, n: int, dim: int) -> np.ndarray:
        return np.frombuffer(data, dtype=self.storage_dtype).reshape(n, self.width(dim))

    def concat(self, batches: list, dim: int) -> np.ndarray:
        if len(batches) == 1:
            return batches[0]
        return np.concatenate(batches) if batches else np.empty((0, self.width(dim)), self.storage_dtype)

    def take(self, batch: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return batch[rows]

    def new_column(self, dim: int) -> Growable:
        return Growable(self.storage_dtype, self.width(dim))

    def output(self, column: Any, pos: int) -> Any:
        return self.to_output(column.view[pos])

    def as_float32(self, stored: np.ndarray) -> np.ndarray:
        return np.asarray(stored, dtype=np.float32)

    def to_output(self, stored_row: np.ndarray) -> Any:
        return self.as_float32(stored_row[None, :])[0].tolist()


def check_finite_rows(array: np.ndarray, field: str) -> None:
    """DataError naming the first row of ``array`` (n, width) that holds NaN or inf."""
    # The sum is NaN or inf if any element is (one C pass, no temporary array). Summed in
    # float64 it cannot overflow on finite float32 values; for float64 input it could, so a
    # non-finite sum has the elements looked at one by one.
    if array.dtype.kind == "f" and not math.isfinite(np.add.reduce(array, axis=None, dtype=np.float64)):
        bad = ~np.isfinite(array).all(axis=1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"field {field!r}: vector {row} contains NaN or inf; clean the input")


class Float16Codec(FixedWidthCodec):
    name = "FLOAT16_VECTOR"
    storage_dtype = np.dtype("<f2")


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

    def encode(self, values: Sequence[Any] | np.ndarray, dim: int, field: str,
               check_finite: bool = True) -> np.ndarray:
        # check_finite: bits and bytes are always finite
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


class SparseCodec:
    """Sparse float vectors: {index: value} dicts, SciPy sparse rows, or (indices, values)."""

    name = "SPARSE_FLOAT_VECTOR"

    def check_dim(self, field: str, dim: int | None) -> None:
        """Sparse vectors have no fixed dimension."""

    def encode(self, values: Any, dim: int | None, field: str) -> sp.csr_array:
        if sp.issparse(values):
            batch = sp.csr_array(values, dtype=np.float32)
        else:
            rows = [self._row(v, i, field) for i, v in enumerate(values)]
            indptr = np.zeros(len(rows) + 1, dtype=np.int64)
            indptr[1:] = np.cumsum([len(r[0]) for r in rows])
            indices = np.concatenate([r[0] for r in rows]) if rows else np.empty(0, np.int64)
            data = np.concatenate([r[1] for r in rows]) if rows else np.empty(0, np.float32)
            batch = sp.csr_array((data, indices, indptr), shape=(len(rows), SPARSE_MAX_INDEX + 1))
        # 64-bit indices before widening to 2^32 columns (SciPy keeps int32 ones otherwise).
        batch = sp.csr_array((batch.data.astype(np.float32), batch.indices.astype(np.int64),
                              batch.indptr.astype(np.int64)), shape=batch.shape)
        if batch.shape[1] > SPARSE_MAX_INDEX + 1:
            raise DataError(f"field {field!r}: sparse indices must be below {SPARSE_MAX_INDEX + 1}")
        batch.resize((batch.shape[0], SPARSE_MAX_INDEX + 1))
        if not np.isfinite(batch.data).all():
            raise DataError(f"field {field!r}: sparse vector contains NaN or inf; clean the input")
        batch.sum_duplicates()
        batch.eliminate_zeros()
        return batch

    @staticmethod
    def _row(value: Any, i: int, field: str) -> tuple[np.ndarray, np.ndarray]:
        try:
            if sp.issparse(value):
                row = sp.coo_array(value)
                if row.ndim == 2 and row.shape[0] != 1:
                    raise DataError(f"field {field!r}: sparse row {i} has {row.shape[0]} rows, expected 1")
                idx, vals = row.coords[-1], row.data
            elif isinstance(value, dict):
                idx = np.fromiter(value.keys(), dtype=np.int64, count=len(value))
                vals = np.fromiter(value.values(), dtype=np.float64, count=len(value))
            elif isinstance(value, (tuple, list)) and len(value) == 2 and not np.isscalar(value[0]):
                idx, vals = np.asarray(value[0], dtype=np.int64), np.asarray(value[1], dtype=np.float64)
            else:
                pairs = np.asarray(value, dtype=np.float64).reshape(-1, 2)
                idx, vals = pairs[:, 0].astype(np.int64), pairs[:, 1]
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"field {field!r}: sparse vector {i} must be a dict {{index: value}}, a SciPy sparse row "
                f"or (indices, values); got {type(value).__name__} ({exc})") from None
        if len(idx) != len(vals):
            raise DataError(f"field {field!r}: sparse vector {i} has {len(idx)} indices but {len(vals)} values")
        if len(idx) and (idx.min() < 0 or idx.max() > SPARSE_MAX_INDEX):
            raise DataError(f"field {field!r}: sparse vector {i} has an index outside [0, {SPARSE_MAX_INDEX}]")
        order = np.argsort(idx, kind="stable")
        return idx[order], vals[order].astype(np.float32)

    def to_bytes(self, batch: sp.csr_array) -> bytes:
        return b"".join([batch.indptr.astype("<i8").tobytes(), batch.indices.astype("<u4").tobytes(),
                         batch.data.astype("<f4").tobytes()])

    def from_bytes(self, data: bytes, n: int, dim: int | None) -> sp.csr_array:
        indptr = np.frombuffer(data, dtype="<i8", count=n + 1)
        nnz = int(indptr[-1])
        start = 8 * (n + 1)
        indices = np.frombuffer(data, dtype="<u4", count=nnz, offset=start).astype(np.int64)
        values = np.frombuffer(data, dtype="<f4", count=nnz, offset=start + 4 * nnz).copy()  # SciPy writes
        return sp.csr_array((values, indices, indptr.astype(np.int64)), shape=(n, SPARSE_MAX_INDEX + 1))

    def concat(self, batches: list, dim: int | None) -> sp.csr_array:
        if len(batches) == 1:
            return batches[0]
        if not batches:
            return sp.csr_array((0, SPARSE_MAX_INDEX + 1), dtype=np.float32)
        return sp.vstack(batches, format="csr")

    def take(self, batch: sp.csr_array, rows: np.ndarray) -> sp.csr_array:
        return batch[rows]

    def new_column(self, dim: int | None) -> SparseColumn:
        return SparseColumn(SPARSE_MAX_INDEX + 1)

    def output(self, column: SparseColumn, pos: int) -> dict[int, float]:
        view = column.view
        lo, hi = view.indptr[pos], view.indptr[pos + 1]
        return dict(zip(view.indices[lo:hi].tolist(), view.data[lo:hi].tolist()))


class MultiVectorCodec:
    """Several float vectors per row (e.g. ColBERT token vectors), each of ``dim`` numbers."""

    name = "ARRAY_OF_VECTOR"

    def check_dim(self, field: str, dim: int | None) -> None:
        FixedWidthCodec().check_dim(field, dim)

    def encode(self, values: Any, dim: int, field: str) -> tuple[np.ndarray, np.ndarray]:
        mats = []
        for i, v in enumerate(values):
            try:
                m = np.asarray(v, dtype=np.float32)
            except (TypeError, ValueError):
                raise DataError(f"field {field!r}: row {i} must be a list of vectors") from None
            if m.ndim != 2 or m.shape[1] != dim or m.shape[0] == 0:
                raise DataError(
                    f"field {field!r}: row {i} must hold one or more vectors of dim {dim}, got shape {m.shape}")
            if not np.isfinite(m).all():
                raise DataError(f"field {field!r}: row {i} contains NaN or inf; clean the input")
            mats.append(m)
        offsets = np.zeros(len(mats) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(m) for m in mats])
        flat = np.concatenate(mats) if mats else np.empty((0, dim), np.float32)
        return offsets, flat

    def to_bytes(self, batch: tuple[np.ndarray, np.ndarray]) -> bytes:
        offsets, flat = batch
        return offsets.astype("<i8").tobytes() + np.ascontiguousarray(flat, dtype="<f4").tobytes()

    def from_bytes(self, data: bytes, n: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
        offsets = np.frombuffer(data, dtype="<i8", count=n + 1)
        flat = np.frombuffer(data, dtype="<f4", offset=8 * (n + 1)).reshape(-1, dim)
        return offsets, flat

    def concat(self, batches: list, dim: int) -> tuple[np.ndarray, np.ndarray]:
        if len(batches) == 1:
            return batches[0]
        offsets, flats, base = [np.zeros(1, np.int64)], [], 0
        for off, flat in batches:
            offsets.append(off[1:] + base)
            flats.append(flat)
            base += len(flat)
        return np.concatenate(offsets), (np.concatenate(flats) if flats else np.empty((0, dim), np.float32))

    def take(self, batch: tuple[np.ndarray, np.ndarray], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        offsets, flat = batch
        return self.concat([(np.array([0, offsets[r + 1] - offsets[r]]), flat[offsets[r]:offsets[r + 1]])
                            for r in rows], flat.shape[1])

    def new_column(self, dim: int) -> MultiVectorColumn:
        return MultiVectorColumn(dim)

    def output(self, column: MultiVectorColumn, pos: int) -> list[list[float]]:
        return column.row(pos).tolist()


_CODECS: dict[str, Any] = {
    c.name: c for c in (FixedWidthCodec(), Float16Codec(), BFloat16Codec(), Int8Codec(), BinaryCodec(),
                        SparseCodec(), MultiVectorCodec())
}


_CODEC_OF_DTYPE: dict[Any, Any] = {}  # codec_for's answers by DataType (every search asks)


def codec_for(dtype: Any) -> Any:
    """The codec of a vector DataType (by name)."""
    codec = _CODEC_OF_DTYPE.get(dtype)
    if codec is not None:
        return codec
    name = getattr(dtype, "name", dtype)
    try:
        codec = _CODEC_OF_DTYPE[dtype] = _CODECS[name]
    except KeyError:
        raise SchemaError(
            f"vector type {name} is not supported yet; use one of {sorted(_CODECS)}") from None
    return codec
