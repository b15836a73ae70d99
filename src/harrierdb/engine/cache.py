"""The in-memory copy of a collection that searches and filters run on.

Columns are NumPy arrays that grow by doubling, so appending a batch costs O(batch). Deleted
rows stay in place, masked by ``alive``, until compaction rebuilds the cache; row positions are
therefore stable between compactions. The cache records the sequence number and deletes-log
position it covers, so it can be brought up to date with what other processes committed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

import numpy as np

from harrierdb import vectors
from harrierdb.engine.columns import Growable
from harrierdb.engine.storage import VectorChunk, decode_json, scalar_columns
from harrierdb.index.exact import normalize_rows
from harrierdb.schema import DYNAMIC_FIELD, NUMPY_DTYPES, CollectionSchema, DataType, FieldSchema

# Filter results kept per cache (each holds a row mask and what searches derived from it).
MEMO_ENTRIES = 8


def _gather_chunks(chunks: list[VectorChunk], seqs: np.ndarray, codec: Any, dim: int) -> Any:
    """The vectors of rows ``seqs`` (sorted) out of the chunks that hold them."""
    batch = codec.concat([codec.from_bytes(ch.data, len(ch.seqs), dim) for ch in chunks], dim)
    chunk_seqs = np.concatenate([ch.seqs for ch in chunks]) if chunks else np.empty(0, np.int64)
    if len(chunk_seqs) == len(seqs) and np.array_equal(chunk_seqs, seqs):
        return batch  # nothing deleted in between: no gather needed
    return codec.take(batch, np.searchsorted(chunk_seqs, seqs))


def _column_dtype(f: FieldSchema | None) -> Any:
    """Numeric columns stay numeric unless nullable; everything else is an object column."""
    if f is not None and not f.nullable and f.dtype in NUMPY_DTYPES:
        return NUMPY_DTYPES[f.dtype]
    return object


class CollectionCache:
    """Rows of one collection, column by column, with their sequence numbers."""

    def __init__(self, schema: CollectionSchema, epoch: int):
        self.schema = schema
        self.epoch = epoch
        self.last_seq = 0
        self.last_delete = 0
        pk = schema.primary_field
        self.seqs = Growable(np.int64)
        self.alive = Growable(np.bool_)
        self.pks = Growable(np.int64 if pk.dtype is DataType.INT64 else object)
        self.parts = Growable(np.int32)
        self.partition_names: list[str] = []
        self._scalar_fields = scalar_columns(schema)
        self.columns = {
            (DYNAMIC_FIELD if f is None else f.name): Growable(_column_dtype(f))
            for f in self._scalar_fields
        }
        self.vectors = {f.name: vectors.codec_for(f.dtype).new_column(f.dim) for f in schema.vector_fields}
        self.pos_of_pk: dict[Any, int] = {}
        self.n_alive = 0
        # Seqs usually run without gaps (gaps come from rows deleted before this process read
        # them); then a row's position is its seq minus the first one, with no search. Both are
        # set on append, so a search does not re-read the seq column to know.
        self._gapless = True
        self._first_seq = 0
        self.version = 0  # bumps on every change; derived data (normalised copies) keys on it
        self._derived: dict[tuple, Growable] = {}
        self._memo: OrderedDict[Hashable, Any] = OrderedDict()
        self._memo_version = 0
        self._memo_lock = threading.RLock()  # searches may run in several threads

    def __len__(self) -> int:
        return self.seqs.n

    # -- appending -------------------------------------------------------------------------
    def append(self, seqs: Sequence[int], pks: Sequence[Any], partition: str | Sequence[str],
               columns: dict[str, Sequence[Any]], vector_arrays: dict[str, np.ndarray]) -> None:
        """Append rows given column by column (scalar values already decoded)."""
        n = len(seqs)
        if n == 0:
            return
        start = len(self)
        if start == 0:
            self._first_seq = int(seqs[0])
        self.seqs.extend(seqs)
        self._gapless = int(seqs[-1]) - self._first_seq == len(self) - 1  # seqs only grow
        self.alive.extend(np.ones(n, dtype=bool))
        self.pks.extend(pks)
        if isinstance(partition, str):
            self.parts.extend(np.full(n, self._partition_code(partition), dtype=np.int32))
        else:
            # A dict over the names, not np.unique: sorting 100k Python strings took a sixth
            # of a 100k-row reopen, where rows mostly share one or a few partitions.
            codes = {name: self._partition_code(name) for name in dict.fromkeys(partition)}
            self.parts.extend(np.fromiter(map(codes.__getitem__, partition), dtype=np.int32, count=n))
        for name, col in self.columns.items():
            col.extend(columns[name])
        for name, arr in vector_arrays.items():
            self.vectors[name].extend(arr)
        self.pos_of_pk.update(zip(self.pks.view[start:].tolist(), range(start, start + n)))
        self.n_alive += n
        self.last_seq = max(self.last_seq, int(seqs[-1]))
        self.version += 1

    def append_stored(self, rows: list[tuple], chunks: list[list[VectorChunk]]) -> None:
        """Append rows as read from the store: (seq, pk, part, *scalar columns), with the
        chunks of each vector field that hold their vectors (and maybe deleted ones)."""
        if not rows:
            return
        cols = list(zip(*rows))
        columns = {}
        for f, values in zip(self._scalar_fields, cols[3:]):
            if f is None or f.dtype in (DataType.JSON, DataType.ARRAY):
                values = [decode_json(v) for v in values]
            elif f.dtype is DataType.BOOL:
                values = [None if v is None else bool(v) for v in values]
            columns[DYNAMIC_FIELD if f is None else f.name] = values
        seqs = np.asarray(cols[0], dtype=np.int64)
        vector_arrays = {
            f.name: _gather_chunks(field_chunks, seqs, vectors.codec_for(f.dtype), f.dim)
            for f, field_chunks in zip(self.schema.vector_fields, chunks)
        }
        self.append(seqs, cols[1], cols[2], columns, vector_arrays)

    def _partition_code(self, name: str) -> int:
        try:
            return self.partition_names.index(name)
        except ValueError:
            self.partition_names.append(name)
            return len(self.partition_names) - 1

    # -- deleting --------------------------------------------------------------------------
    def delete_positions(self, positions: Iterable[int]) -> None:
        alive = self.alive.view
        pks = self.pks.view
        for pos in positions:
            if alive[pos]:
                alive[pos] = False
                self.n_alive -= 1
                pk = pks[pos]
                if self.pos_of_pk.get(pk) == pos:
                    del self.pos_of_pk[pk]
        self.version += 1

    def delete_seqs(self, seqs: Sequence[int]) -> None:
        """Mark rows deleted by sequence number (unknown numbers are rows never seen: ignored)."""
        if not len(seqs):
            return
        positions = self.positions_of_seqs(np.asarray(seqs, dtype=np.int64))
        self.delete_positions(positions[positions >= 0].tolist())

    def positions_of_seqs(self, seqs: np.ndarray) -> np.ndarray:
        """Row positions of sequence numbers (any shape); -1 where absent (FAISS's -1 pads too)."""
        all_seqs = self.seqs.view
        n = len(all_seqs)
        if n and self._gapless:  # arithmetic
            pos = seqs - self._first_seq
            absent = pos.view(np.uint64) >= n  # negatives wrap to huge: one comparison
            if absent.any():
                pos[absent] = -1
            return pos
        pos = np.searchsorted(all_seqs, seqs)
        pos = np.minimum(pos, max(len(all_seqs) - 1, 0))
        found = (all_seqs[pos] == seqs) if len(all_seqs) else np.zeros(len(seqs), bool)
        return np.where(found, pos, -1)

    # -- reading ---------------------------------------------------------------------------
    def memoised(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()``, remembered until the rows change; the ``MEMO_ENTRIES`` most
        recently used keys are kept (filters repeat: a search reuses their evaluation)."""
        with self._memo_lock:
            if self._memo_version != self.version:
                self._memo.clear()
                self._memo_version = self.version
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
            value = self._memo[key] = compute()
            if len(self._memo) > MEMO_ENTRIES:
                self._memo.popitem(last=False)
            return value

    def partition_mask(self, names: Sequence[str]) -> np.ndarray:
        codes = [self.partition_names.index(p) for p in names if p in self.partition_names]
        return np.isin(self.parts.view, codes)

    def column(self, name: str) -> np.ndarray:
        if name == self.schema.primary_field.name:
            return self.pks.view
        return self.columns[name].view

    def float_matrix(self, field: str, normalized: bool = False) -> np.ndarray:
        """The field's vectors as float32 (unit length when ``normalized``), kept up to date."""
        stored = self.vectors[field].view
        codec = vectors.codec_for(self.schema.field(field).dtype)
        if not normalized and codec.storage_dtype == np.float32:
            return stored
        key = (field, normalized)
        derived = self._derived.setdefault(key, Growable(np.float32, stored.shape[1]))
        if derived.n < len(stored):
            new = codec.as_float32(stored[derived.n:])
            if normalized:
                new = normalize_rows(new)
            derived.extend(new)
        return derived.view

    def sq_norms(self, field: str) -> np.ndarray:
        """Squared norms of the field's float32 vectors (for L2), kept up to date."""
        matrix = self.float_matrix(field)
        derived = self._derived.setdefault((field, "sq_norms"), Growable(np.float32))
        if derived.n < len(matrix):
            new = matrix[derived.n:]
            derived.extend(np.einsum("ij,ij->i", new, new))
        return derived.view

