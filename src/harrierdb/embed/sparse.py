"""Sparse lexical embeddings fitted on a corpus: ``TfidfEmbedding`` and ``BM25Embedding``.

Both turn texts into ``scipy.sparse.csr_array`` rows of shape ``(n, vocab)`` (float32),
with tokens from a :class:`harrierdb.analyzer.Analyzer`, and save as JSON (parameters,
analyzer, vocabulary) plus ``.npz`` (arrays): never a pickle.

BM25 puts the document side (term frequency, length normalisation) in the document
vector and the IDF in the query vector, so ``query_vec @ doc_vec`` is the BM25 score::

    doc[t]   = tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))
    query[t] = idf(t) * count of t in the query,  idf(t) = log(1 + (N - df + 0.5) / (df + 0.5))

This is Lucene's IDF with the classic ``(k1 + 1)`` numerator, which Milvus's BM25 also
uses (Lucene >= 8 drops it; scores differ only by that constant, rankings are equal).
Documents can be stored once: only queries need the corpus statistics' IDF.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy import sparse

from harrierdb.analyzer import Analyzer
from harrierdb.embed.base import EmbeddingFunction, ModelIdentity, check_texts
from harrierdb.errors import ParamError

CONFIG_FILE = "config.json"
ARRAYS_FILE = "arrays.npz"
FORMAT_VERSION = 1


def to_sparse_dicts(matrix: Any) -> list[dict[int, float]]:
    """Rows of a sparse (or dense 2-D) matrix as ``[{index: value}]``, zeros left out."""
    csr = sparse.csr_array(matrix)
    csr.sum_duplicates()
    out = []
    for i in range(csr.shape[0]):
        lo, hi = csr.indptr[i], csr.indptr[i + 1]
        out.append({int(j): float(v) for j, v in zip(csr.indices[lo:hi], csr.data[lo:hi]) if v != 0})
    return out


def make_analyzer(analyzer: Analyzer | dict[str, Any] | None) -> Analyzer:
    """An :class:`Analyzer` from an analyzer, Milvus ``analyzer_params`` or ``None`` (standard)."""
    if isinstance(analyzer, Analyzer):
        return analyzer
    if analyzer is None or isinstance(analyzer, dict):
        return Analyzer.from_params(analyzer)
    raise ParamError(f"analyzer must be an Analyzer, analyzer_params dict or None, got {analyzer!r}")


class SparseEmbedding(EmbeddingFunction):
    """A corpus-fitted sparse model: fit, encode to CSR, save/load, identity from its state."""

    kind: ClassVar[str]

    def __init__(self, analyzer: Analyzer | dict[str, Any] | None = None):
        self.analyzer = make_analyzer(analyzer)
        self.vocabulary: list[str] = []
        self._identity: ModelIdentity | None = None

    # -- what subclasses provide -------------------------------------------------------
    def _params(self) -> dict[str, Any]:
        """JSON-ready hyper-parameters and scalar state."""
        raise NotImplementedError

    def _arrays(self) -> dict[str, np.ndarray]:
        """Per-term arrays saved to the ``.npz`` file."""
        raise NotImplementedError

    def _restore(self, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    # -- shared machinery ----------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return bool(self.vocabulary)

    @property
    def identity(self) -> ModelIdentity:
        self._check_fitted()
        if self._identity is None:
            self._identity = ModelIdentity(
                name=self.kind, version=f"harrierdb-{self.kind}-{FORMAT_VERSION}",
                dim=len(self.vocabulary), normalized=self._normalized(),
                weights_sha256=self._state_sha256(), metric="IP")
        return self._identity

    def _normalized(self) -> bool:
        return False

    to_sparse_dicts = staticmethod(to_sparse_dicts)

    def token_ids(self, text: str) -> list[int]:
        """Vocabulary ids of the analyzed tokens of ``text`` (unknown tokens left out)."""
        self._check_fitted()
        index = self._index
        return [i for i in map(index.get, self.analyzer.analyze(text)) if i is not None]

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``config.json`` and ``arrays.npz`` into the directory ``path``."""
        self._check_fitted()
        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        config = self._config()
        config["weights_sha256"] = self.identity.weights_sha256
        (root / CONFIG_FILE).write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
        np.savez(root / ARRAYS_FILE, **self._arrays())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SparseEmbedding:
        """Read a model written by :meth:`save` (no pickles: ``allow_pickle=False``)."""
        root = Path(path)
        if not (root / CONFIG_FILE).is_file() or not (root / ARRAYS_FILE).is_file():
            raise ParamError(f"{str(root)!r} is not a saved {cls.__name__}: it needs "
                             f"{CONFIG_FILE} and {ARRAYS_FILE}")
        try:
            config = json.loads((root / CONFIG_FILE).read_text(encoding="utf-8"))
            with np.load(root / ARRAYS_FILE, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError) as exc:
            raise ParamError(f"cannot read saved model {str(root)!r}: {exc}") from exc
        if config.get("kind") != cls.kind or config.get("format") != FORMAT_VERSION:
            raise ParamError(f"{str(root)!r} holds a {config.get('kind')!r} model "
                             f"(format {config.get('format')!r}), not {cls.kind!r} format {FORMAT_VERSION}")
        self = cls.__new__(cls)
        SparseEmbedding.__init__(self, Analyzer.from_params(config["analyzer"]))
        self._set_vocabulary(config["vocabulary"])
        self._restore(config["params"], arrays)
        if self.identity.weights_sha256 != config.get("weights_sha256"):
            raise ParamError(f"saved model {str(root)!r} does not match its recorded SHA-256: "
                             "the files are corrupt or were edited")
        return self

    def _config(self) -> dict[str, Any]:
        return {"kind": self.kind, "format": FORMAT_VERSION, "analyzer": self.analyzer.params,
                "params": self._params(), "vocabulary": self.vocabulary}

    def _state_sha256(self) -> str:
        h = hashlib.sha256(json.dumps(self._config(), sort_keys=True, ensure_ascii=False).encode())
        for name, array in sorted(self._arrays().items()):
            h.update(name.encode())
            h.update(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes())
        return h.hexdigest()

    def _set_vocabulary(self, vocabulary: list[str]) -> None:
        self.vocabulary = list(vocabulary)
        self._index = {t: i for i, t in enumerate(self.vocabulary)}
        self._identity = None

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise ParamError(f"{type(self).__name__} is not fitted: call fit(corpus) or "
                             f"{type(self).__name__}.load(path) first")

    def _counts(self, texts: list[str]) -> tuple[sparse.csr_array, np.ndarray]:
        """Term counts ``(n, vocab)`` over the vocabulary, and each text's token count."""
        index = self._index
        rows: list[int] = []
        cols: list[int] = []
        lengths = np.zeros(len(texts), dtype=np.float64)
        for r, text in enumerate(texts):
            tokens = self.analyzer.analyze(text)
            lengths[r] = len(tokens)
            ids = [i for i in map(index.get, tokens) if i is not None]
            cols.extend(ids)
            rows.extend([r] * len(ids))
        counts = sparse.csr_array((np.ones(len(cols), dtype=np.float64), (rows, cols)),
                                  shape=(len(texts), len(self.vocabulary)))
        counts.sum_duplicates()
        return counts, lengths


class TfidfEmbedding(SparseEmbedding):
    """TF-IDF vectors from scikit-learn's ``TfidfVectorizer``, tokens from the analyzer.

    The keyword arguments are ``TfidfVectorizer``'s; rows are L2-normalised by default,
    so ``query @ doc`` is the cosine similarity. Queries are encoded like documents.
    """

    kind = "tfidf"

    def __init__(self, analyzer: Analyzer | dict[str, Any] | None = None, *, norm: str | None = "l2",
                 sublinear_tf: bool = False, smooth_idf: bool = True, min_df: int | float = 1,
                 max_df: int | float = 1.0, max_features: int | None = None):
        super().__init__(analyzer)
        if norm not in ("l1", "l2", None):
            raise ParamError(f"norm must be 'l1', 'l2' or None, got {norm!r}")
        for label, flag in (("sublinear_tf", sublinear_tf), ("smooth_idf", smooth_idf)):
            if not isinstance(flag, bool):
                raise ParamError(f"{label} must be a bool, got {flag!r}")
        self.norm = norm
        self.sublinear_tf = sublinear_tf
        self.smooth_idf = smooth_idf
        self.min_df = min_df
        self.max_df = max_df
        self.max_features = max_features
        self._vectorizer: Any = None

    def fit(self, corpus: Sequence[str]) -> TfidfEmbedding:
        """Learn the vocabulary and IDF from ``corpus``; returns ``self``."""
        texts = check_texts(corpus)
        vectorizer = self._new_vectorizer(min_df=self.min_df, max_df=self.max_df,
                                          max_features=self.max_features)
        try:
            vectorizer.fit(texts)
        except ValueError as exc:  # empty vocabulary, bad min_df/max_df, ...
            raise ParamError(f"cannot fit TF-IDF on this corpus: {exc}") from exc
        self._vectorizer = vectorizer
        self._set_vocabulary(list(vectorizer.get_feature_names_out()))
        return self

    def encode_documents(self, items: Sequence[str]) -> sparse.csr_array:
        texts = check_texts(items)
        self._check_fitted()
        if not texts:
            return sparse.csr_array((0, len(self.vocabulary)), dtype=np.float32)
        return sparse.csr_array(self._vectorizer.transform(texts), dtype=np.float32)

    def encode_queries(self, items: Sequence[str]) -> sparse.csr_array:
        return self.encode_documents(items)

    @property
    def idf(self) -> np.ndarray:
        self._check_fitted()
        return np.asarray(self._vectorizer.idf_, dtype=np.float64)

    def _normalized(self) -> bool:
        return self.norm == "l2"

    def _params(self) -> dict[str, Any]:
        return {"norm": self.norm, "sublinear_tf": self.sublinear_tf, "smooth_idf": self.smooth_idf,
                "min_df": self.min_df, "max_df": self.max_df, "max_features": self.max_features}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"idf": self.idf}

    def _restore(self, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        for key, value in params.items():
            setattr(self, key, value)
        vectorizer = self._new_vectorizer(vocabulary={t: i for i, t in enumerate(self.vocabulary)})
        vectorizer.idf_ = np.asarray(arrays["idf"], dtype=np.float64)
        self._vectorizer = vectorizer

    def _new_vectorizer(self, **kwargs: Any) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(analyzer=self.analyzer.analyze, norm=self.norm, use_idf=True,
                               smooth_idf=self.smooth_idf, sublinear_tf=self.sublinear_tf,
                               dtype=np.float32, **kwargs)

    def __repr__(self) -> str:
        return f"TfidfEmbedding(vocab={len(self.vocabulary)}, norm={self.norm!r}, analyzer={self.analyzer!r})"


class BM25Embedding(SparseEmbedding):
    """BM25 as sparse vectors: document vectors carry the TF part, query vectors the IDF.

    ``encode_queries(q) @ encode_documents(d).T`` equals the BM25 score of ``d`` for ``q``
    against the fitted corpus statistics (``N``, ``df``, ``avgdl``).
    """

    kind = "bm25"

    def __init__(self, k1: float = 1.2, b: float = 0.75, analyzer: Analyzer | dict[str, Any] | None = None):
        super().__init__(analyzer)
        if isinstance(k1, bool) or not isinstance(k1, (int, float)) or not k1 >= 0:
            raise ParamError(f"k1 must be a number >= 0, got {k1!r}")
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not 0 <= b <= 1:
            raise ParamError(f"b must be a number in [0, 1], got {b!r}")
        self.k1 = float(k1)
        self.b = float(b)
        self.n_docs = 0
        self.avgdl = 0.0
        self.df = np.zeros(0, dtype=np.int64)

    def fit(self, corpus: Sequence[str]) -> BM25Embedding:
        """Learn the vocabulary, document frequencies and average length; returns ``self``."""
        texts = check_texts(corpus)
        token_lists = [self.analyzer.analyze(t) for t in texts]
        vocabulary = sorted({t for tokens in token_lists for t in tokens})
        if not vocabulary:
            raise ParamError(f"cannot fit BM25: the corpus of {len(texts)} texts has no tokens")
        self._set_vocabulary(vocabulary)
        index = self._index
        cols = np.fromiter((index[t] for tokens in token_lists for t in set(tokens)), dtype=np.int64)
        self.df = np.bincount(cols, minlength=len(vocabulary)).astype(np.int64)
        self.n_docs = len(texts)
        self.avgdl = float(sum(map(len, token_lists)) / len(texts))
        return self

    @property
    def idf(self) -> np.ndarray:
        """``log(1 + (N - df + 0.5) / (df + 0.5))`` per vocabulary term."""
        self._check_fitted()
        df = self.df.astype(np.float64)
        return np.log1p((self.n_docs - df + 0.5) / (df + 0.5))

    def encode_documents(self, items: Sequence[str]) -> sparse.csr_array:
        """TF weights ``tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))`` per term."""
        texts = check_texts(items)
        self._check_fitted()
        counts, lengths = self._counts(texts)
        norm = self.k1 * (1.0 - self.b + self.b * lengths / max(self.avgdl, 1e-12))
        tf = counts.data
        row_norm = np.repeat(norm, np.diff(counts.indptr))
        counts.data = tf * (self.k1 + 1.0) / (tf + row_norm)
        return sparse.csr_array(counts, dtype=np.float32)

    def encode_queries(self, items: Sequence[str]) -> sparse.csr_array:
        """IDF weights times the term's count in the query (repeated terms count again)."""
        texts = check_texts(items)
        self._check_fitted()
        counts, _ = self._counts(texts)
        counts.data = counts.data * self.idf[counts.indices]
        return sparse.csr_array(counts, dtype=np.float32)

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        """BM25 scores of ``documents`` for one ``query`` (float64, via the sparse vectors)."""
        if not isinstance(query, str):
            raise ParamError(f"query must be a string, got {type(query).__name__}")
        q = self.encode_queries([query]).astype(np.float64)
        d = self.encode_documents(documents).astype(np.float64)
        return np.asarray((d @ q.T).toarray()).ravel()

    def _params(self) -> dict[str, Any]:
        return {"k1": self.k1, "b": self.b, "n_docs": self.n_docs, "avgdl": self.avgdl}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"df": self.df}

    def _restore(self, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.k1, self.b = float(params["k1"]), float(params["b"])
        self.n_docs, self.avgdl = int(params["n_docs"]), float(params["avgdl"])
        self.df = np.asarray(arrays["df"], dtype=np.int64)
        if self.df.shape != (len(self.vocabulary),):
            raise ParamError(f"saved BM25 has {self.df.shape} document frequencies for "
                             f"{len(self.vocabulary)} terms")

    def __repr__(self) -> str:
        return (f"BM25Embedding(k1={self.k1}, b={self.b}, vocab={len(self.vocabulary)}, "
                f"n_docs={self.n_docs}, analyzer={self.analyzer!r})")
