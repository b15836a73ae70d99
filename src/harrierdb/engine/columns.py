"""In-memory columns that grow by appending batches in amortised O(batch).

``Growable`` holds fixed-width values (scalars, dense vectors); ``SparseColumn`` holds sparse
vectors as CSR chunks; ``MultiVectorColumn`` holds a variable number of vectors per row as one
flat matrix plus row offsets.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp


class Growable:
    """A 1-D or 2-D NumPy array with amortised O(1) appends along the first axis."""

    def __init__(self, dtype: Any, width: int | None = None, capacity: int = 1024):
        self.dtype = np.dtype(dtype)
        self.width = width
        shape = (capacity,) if width is None else (capacity, width)
        self._data = np.empty(shape, dtype=self.dtype)
        self.n = 0

    def extend(self, values: Any) -> None:
        if self.dtype == object and not isinstance(values, np.ndarray):
            arr = np.empty(len(values), dtype=object)
            arr[:] = list(values)
            values = arr
        values = np.asarray(values, dtype=self.dtype)
        if self.n == 0 and len(values) > len(self._data):
            self._data = values  # adopt a big first batch (reopen): no copy
            self.n = len(values)
            return
        need = self.n + len(values)
        if need > len(self._data):
            grown = np.empty((max(need, 2 * len(self._data)), *self._data.shape[1:]), dtype=self.dtype)
            grown[: self.n] = self._data[: self.n]
            self._data = grown
        self._data[self.n:need] = values
        self.n = need

    @property
    def view(self) -> np.ndarray:
        return self._data[: self.n]


class SparseColumn:
    """Sparse vectors, one CSR row each, concatenated lazily on first read."""

    def __init__(self, n_cols: int):
        self.n_cols = n_cols
        self._chunks: list[sp.csr_array] = []
        self.n = 0

    def extend(self, batch: sp.csr_array) -> None:
        self._chunks.append(batch)
        self.n += batch.shape[0]

    @property
    def view(self) -> sp.csr_array:
        if len(self._chunks) != 1:
            merged = (sp.vstack(self._chunks, format="csr") if self._chunks
                      else sp.csr_array((0, self.n_cols), dtype=np.float32))
            self._chunks = [merged]
        return self._chunks[0]


class MultiVectorColumn:
    """Rows of several vectors each: a flat (tokens, dim) matrix and row offsets into it."""

    def __init__(self, dim: int):
        self.flat = Growable(np.float32, dim)
        self.offsets = Growable(np.int64)
        self.offsets.extend([0])
        self.n = 0

    def extend(self, batch: Any) -> None:
        offsets, flat = batch
        self.offsets.extend(offsets[1:] + self.flat.n)
        self.flat.extend(flat)
        self.n += len(offsets) - 1

    @property
    def view(self) -> MultiVectorColumn:
        return self

    def row(self, pos: int) -> np.ndarray:
        off = self.offsets.view
        return self.flat.view[off[pos]:off[pos + 1]]
