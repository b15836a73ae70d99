"""BM25 full-text search, as Milvus's BM25 schema function has it.

A VARCHAR field with ``enable_analyzer=True`` feeds a ``Function(function_type=BM25)`` whose
output is a SPARSE_FLOAT_VECTOR field. At insert, each text is analyzed into tokens and stored
as term frequencies under 32-bit term ids (CRC-32 of the token, as stable across processes as
the text itself). Statistics that change with the collection (document count, document
frequencies, average length) are never stored: they are computed at search time over the
live rows, so IDF stays right as rows are added and deleted.

Score of a document d for query terms t (Lucene's BM25, Milvus's default k1=1.2, b=0.75):
    sum_t  idf(t) * tf(t,d) * (k1 + 1) / (tf(t,d) + k1 * (1 - b + b * |d| / avgdl))
    idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.sparse as sp

from harrierdb.analyzer import Analyzer
from harrierdb.errors import ParamError, SchemaError
from harrierdb.index.exact import top_k
from harrierdb.index.sparse import InvertedIndex
from harrierdb.schema import CollectionSchema, DataType, FieldSchema, FunctionType, RowBatch
from harrierdb.vectors import SPARSE_MAX_INDEX


def bm25_functions(schema: CollectionSchema) -> list[tuple[FieldSchema, FieldSchema]]:
    """(input text field, output sparse field) of each BM25 function, validated."""
    pairs = []
    for fn in schema.functions:
        if fn.function_type is FunctionType.TEXTEMBEDDING:
            continue
        if fn.function_type is not FunctionType.BM25:
            raise SchemaError(
                f"function {fn.name!r}: type {fn.function_type.name} is not supported; "
                "use BM25 or TEXTEMBEDDING")
        if len(fn.input_field_names) != 1 or len(fn.output_field_names) != 1:
            raise SchemaError(f"BM25 function {fn.name!r} takes one input and one output field")
        src, out = schema.field(fn.input_field_names[0]), schema.field(fn.output_field_names[0])
        if src.dtype is not DataType.VARCHAR or not src.enable_analyzer:
            raise SchemaError(
                f"BM25 function {fn.name!r}: input {src.name!r} must be VARCHAR with enable_analyzer=True")
        if out.dtype is not DataType.SPARSE_FLOAT_VECTOR:
            raise SchemaError(f"BM25 function {fn.name!r}: output {out.name!r} must be SPARSE_FLOAT_VECTOR")
        pairs.append((src, out))
    return pairs


@lru_cache(maxsize=64)
def _analyzer(params_key: str | None) -> Analyzer:
    import json

    return Analyzer.from_params(json.loads(params_key) if params_key else None)


def analyzer_for(field: FieldSchema) -> Analyzer:
    import json

    return _analyzer(json.dumps(field.analyzer_params, sort_keys=True) if field.analyzer_params else None)


def term_ids(tokens: Sequence[str]) -> np.ndarray:
    return np.fromiter((zlib.crc32(t.encode("utf-8")) % (SPARSE_MAX_INDEX + 1) for t in tokens),
                       dtype=np.int64, count=len(tokens))


def term_frequencies(texts: Sequence[Any], analyzer: Analyzer, field: str) -> sp.csr_array:
    """One row of {term id: count} per text."""
    indptr = [0]
    indices: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    for i, text in enumerate(texts):
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise ParamError(f"field {field!r}: BM25 needs text, got {type(text).__name__} in row {i}")
        ids, n = np.unique(term_ids(analyzer.analyze(text)), return_counts=True)
        indices.append(ids)
        counts.append(n.astype(np.float32))
        indptr.append(indptr[-1] + len(ids))
    return sp.csr_array(
        (np.concatenate(counts) if counts else np.empty(0, np.float32),
         np.concatenate(indices) if indices else np.empty(0, np.int64), np.asarray(indptr, np.int64)),
        shape=(len(indptr) - 1, SPARSE_MAX_INDEX + 1))


def apply_functions(schema: CollectionSchema, batch: RowBatch) -> None:
    """Compute the BM25 output fields of a validated batch from its text fields."""
    for src, out in bm25_functions(schema):
        texts = [row.get(src.name) for row in batch.scalars]
        batch.vectors[out.name] = term_frequencies(texts, analyzer_for(src), src.name)


def source_field(schema: CollectionSchema, output: FieldSchema) -> FieldSchema:
    return next(src for src, out in bm25_functions(schema) if out.name == output.name)


class BM25Index:
    """Posting lists of term frequencies plus document lengths, over the cached rows."""

    def __init__(self, tf: sp.csr_array):
        self.inverted = InvertedIndex.build(tf)
        self.lengths = np.asarray(tf.sum(axis=1)).ravel().astype(np.float32)

    def search(self, queries: sp.csr_array, k: int, alive: np.ndarray, candidates: np.ndarray | None,
               k1: float, b: float) -> list[tuple[np.ndarray, np.ndarray]]:
        n_docs = int(alive.sum())
        avgdl = float(self.lengths[alive].mean()) if n_docs else 1.0
        allowed = alive if candidates is None else candidates
        out = []
        for qi in range(queries.shape[0]):
            lo, hi = queries.indptr[qi], queries.indptr[qi + 1]
            cols, known = self.inverted.columns_of(queries.indices[lo:hi])
            weights = queries.data[lo:hi][known]
            total = np.zeros(0, np.float64)
            rows_all = np.zeros(0, np.int64)
            for col, qtf in zip(cols.tolist(), weights.tolist()):
                p_lo, p_hi = self.inverted.postings.indptr[col], self.inverted.postings.indptr[col + 1]
                rows = self.inverted.postings.indices[p_lo:p_hi]
                tf = self.inverted.postings.data[p_lo:p_hi].astype(np.float64)
                live = alive[rows]
                df = int(live.sum())  # document frequency over live rows only
                if df == 0:
                    continue
                idf = np.log(1 + (n_docs - df + 0.5) / (df + 0.5))
                part = qtf * idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * self.lengths[rows] / avgdl))
                rows_all = np.concatenate([rows_all, rows])
                total = np.concatenate([total, part])
            if len(rows_all):
                touched, inverse = np.unique(rows_all, return_inverse=True)
                summed = np.bincount(inverse, weights=total)
                ok = allowed[touched]
                touched, summed = touched[ok], summed[ok]
            else:
                touched, summed = np.zeros(0, np.int64), np.zeros(0)
            order, best = top_k(summed[None, :].astype(np.float32), k)
            out.append((best[0], touched[order[0]]))
        return out
