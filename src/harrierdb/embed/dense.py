"""``SentenceEmbedding``: dense sentence vectors from a BERT-style encoder, without PyTorch.

Texts are tokenized with HuggingFace ``tokenizers``, run through the encoder (ONNX
Runtime, or :mod:`.bert_numpy` for float32 safetensors weights), mean-pooled over the
attention mask and L2-normalised, as sentence-transformers does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from harrierdb.embed.base import EmbeddingFunction, Embeddings, ModelIdentity, check_texts, progress
from harrierdb.embed.bert_numpy import NumpyBert
from harrierdb.embed.cache import EmbeddingCache
from harrierdb.embed.onnx_encoder import OnnxEncoder
from harrierdb.embed.tokenize import BatchTokenizer
from harrierdb.embed.weights import (
    DEFAULT_MODEL,
    MODEL_ALIASES,
    ModelFiles,
    check_pinned,
    directory_files,
    hub_model_dir,
    packaged_files,
    sha256_file,
)
from harrierdb.errors import ParamError

PRECISIONS = ("int8", "float32")


class _Encoder(Protocol):
    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray,
                 token_type_ids: np.ndarray | None = None) -> np.ndarray: ...


class SentenceEmbedding(EmbeddingFunction):
    """A sentence-transformers-style embedding model (all-MiniLM-L6-v2 by default).

    * ``precision="int8"`` runs the packaged int8 ONNX model with ONNX Runtime (fast);
      ``"float32"`` runs the original safetensors weights in NumPy (exact).
    * ``model_dir`` loads another model instead: a directory with ``model.onnx`` (or
      ``onnx/model.onnx``), or ``model.safetensors`` + ``config.json``, and
      ``tokenizer.json``. There the files, not ``precision``, decide how it runs.
    * ``query_prefix``/``document_prefix`` are prepended before tokenizing (e.g. for
      E5-style "query: " models).
    * ``cache_size`` vectors are kept, keyed by (model identity, text), so a text already
      embedded is not embedded again (0 turns the cache off).
    """

    def __init__(self, model: str = DEFAULT_MODEL, precision: str = "int8", batch_size: int = 32,
                 normalize: bool = True, max_length: int = 256, query_prefix: str = "",
                 document_prefix: str = "", model_dir: str | os.PathLike[str] | None = None,
                 providers: Sequence[str] = ("CPUExecutionProvider",), num_threads: int | None = None,
                 cache_size: int = 10_000):
        _check_args(model, precision, batch_size, normalize, max_length, query_prefix,
                    document_prefix, providers, num_threads)
        self.batch_size = batch_size
        self.normalize = normalize
        self.max_length = max_length
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix

        if model_dir is None and model not in MODEL_ALIASES and "/" in model:
            model_dir = hub_model_dir(model)  # a hub name: only when the machine is online
        if model_dir is None:
            files = packaged_files(model, precision)
            sha = check_pinned(files.weights, precision)
            name, version = DEFAULT_MODEL, precision  # aliases record one name
        else:
            files = directory_files(model_dir)
            sha = sha256_file(files.weights)
            name = Path(model_dir).name if model == DEFAULT_MODEL else model
            version = "onnx" if files.onnx else "float32"
        self.files: ModelFiles = files
        self.cache = EmbeddingCache(cache_size)
        self._tokenizer = BatchTokenizer(files.tokenizer, max_length)
        self._encoder, dim = _load_encoder(files, providers, num_threads)
        if dim is None:
            dim = self._embed(["dim probe"], "").shape[1]
        self._identity = ModelIdentity(name=name, version=version, dim=int(dim),
                                       normalized=normalize, weights_sha256=sha)

    @property
    def identity(self) -> ModelIdentity:
        return self._identity

    def encode_documents(self, items: Sequence[str]) -> np.ndarray:
        return Embeddings(self._embed(check_texts(items), self.document_prefix, "embedding documents"),
                          self._identity)

    def encode_queries(self, items: Sequence[str]) -> np.ndarray:
        return Embeddings(self._embed(check_texts(items), self.query_prefix, "embedding queries"),
                          self._identity)

    def __repr__(self) -> str:
        i = self._identity
        return (f"SentenceEmbedding(model={i.name!r}, precision={i.version!r}, dim={i.dim}, "
                f"normalize={self.normalize}, max_length={self.max_length})")

    def _embed(self, texts: list[str], prefix: str, desc: str = "embedding") -> np.ndarray:
        """Vectors for ``texts``: cached ones looked up, the others computed and cached."""
        identity = getattr(self, "_identity", None)
        if identity is None or self.cache.max_items <= 0:  # (no identity yet: the dim probe)
            return self._compute(texts, prefix, desc)
        given = [prefix + t for t in texts]
        found, missing = self.cache.lookup(identity, given)
        if missing:
            computed = self._compute([texts[i] for i in missing], prefix, desc)
            self.cache.store(identity, [given[i] for i in missing], computed)
            for i, vector in zip(missing, computed):
                found[i] = vector
        if not texts:
            return np.zeros((0, identity.dim), dtype=np.float32)
        return np.stack(found).astype(np.float32, copy=False)

    def _compute(self, texts: list[str], prefix: str, desc: str = "embedding") -> np.ndarray:
        """Encode in batches of similar length (longest first) to keep padding small."""
        if not texts:
            return np.zeros((0, self._identity.dim), dtype=np.float32)
        encodings = self._tokenizer.encode([prefix + t for t in texts] if prefix else texts)
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        out: np.ndarray | None = None
        for rows in progress(batches, desc):
            inputs = self._tokenizer.pad([encodings[r] for r in rows])
            hidden = self._encoder(**inputs)
            vectors = hidden if hidden.ndim == 2 else mean_pool(hidden, inputs["attention_mask"])
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        assert out is not None
        return l2_normalize(out) if self.normalize else out


def mean_pool(hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Average of the token vectors where ``attention_mask`` is 1: ``(batch, hidden)``."""
    mask = attention_mask[:, :, None].astype(np.float32)
    summed = (hidden * mask).sum(axis=1)
    return summed / np.clip(mask.sum(axis=1), 1e-9, None)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; all-zero rows stay zero."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def _load_encoder(files: ModelFiles, providers: Sequence[str],
                  num_threads: int | None) -> tuple[_Encoder, int | None]:
    if files.onnx is not None:
        onnx = OnnxEncoder(files.onnx, providers, num_threads)
        return onnx, onnx.dim
    assert files.safetensors is not None and files.config is not None
    bert = NumpyBert.from_files(files.safetensors, files.config)
    return bert, bert.config.hidden_size


def _check_args(model: object, precision: object, batch_size: object, normalize: object,
                max_length: object, query_prefix: object, document_prefix: object,
                providers: object, num_threads: object) -> None:
    if not isinstance(model, str) or not model:
        raise ParamError(f"model must be a non-empty string, got {model!r}")
    if precision not in PRECISIONS:
        raise ParamError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ParamError(f"batch_size must be a positive int, got {batch_size!r}")
    if not isinstance(normalize, bool):
        raise ParamError(f"normalize must be a bool, got {normalize!r}")
    if isinstance(max_length, bool) or not isinstance(max_length, int) or not 2 <= max_length <= 512:
        raise ParamError(f"max_length must be an int in [2, 512] (BERT's positions), got {max_length!r}")
    for label, prefix in (("query_prefix", query_prefix), ("document_prefix", document_prefix)):
        if not isinstance(prefix, str):
            raise ParamError(f"{label} must be a string, got {prefix!r}")
    if isinstance(providers, str) or not isinstance(providers, Sequence) \
            or not all(isinstance(p, str) for p in providers):
        raise ParamError(f"providers must be a sequence of provider names, got {providers!r}")
    if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int)
                                    or num_threads < 1):
        raise ParamError(f"num_threads must be a positive int or None, got {num_threads!r}")
