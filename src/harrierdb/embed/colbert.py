"""``ColbertEmbedding``: one vector per token (late interaction), without PyTorch.

With a ColBERT checkpoint (``model_dir``), texts are encoded as ColBERT(v2) does:

* ``". " + text`` is tokenized and the ``"."`` (position 1, after ``[CLS]``) becomes the
  marker ``[Q]`` = ``[unused0]`` for queries or ``[D]`` = ``[unused1]`` for documents;
* queries are padded to ``query_max_length`` with ``[MASK]`` tokens ("query
  augmentation"), which are not attended to but are kept as query vectors;
* the BERT encoder's last hidden state goes through ``linear.weight`` (no bias), and
  each token vector is L2-normalised;
* documents drop padding and punctuation tokens (queries keep everything).

The BERT runs in NumPy from ``model.safetensors`` (+ ``config.json``), or with ONNX
Runtime from ``model.onnx`` (which must output the last hidden state); ``linear.weight``
is always read from ``model.safetensors``.

Without ``model_dir`` it falls back to the packaged all-MiniLM-L6-v2 (int8 ONNX): its
last hidden state per token, normalised, no markers, augmentation or projection (dim
384), with padding and punctuation dropped. That is a usable offline multi-vector
model, not ColBERT.

Outputs are lists of ``(n_tokens, dim)`` float32 arrays, one per text; score them with
:mod:`harrierdb.embed.maxsim`.
"""

from __future__ import annotations

import hashlib
import os
import string
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from harrierdb.embed.base import ModelIdentity, check_texts, progress
from harrierdb.embed.bert_numpy import NumpyBert
from harrierdb.embed.dense import l2_normalize
from harrierdb.embed.onnx_encoder import OnnxEncoder
from harrierdb.embed.tokenize import BatchTokenizer
from harrierdb.embed.weights import (
    DEFAULT_MODEL,
    check_pinned,
    packaged_files,
    refuse_pickle,
    sha256_file,
)
from harrierdb.errors import ParamError

QUERY_MARKER = "[unused0]"
DOC_MARKER = "[unused1]"
FALLBACK_NAME = f"{DEFAULT_MODEL}-tokens"


class ColbertEmbedding:
    """Token-level embeddings from a local ColBERT checkpoint (or MiniLM tokens).

    It has :class:`~harrierdb.embed.base.EmbeddingFunction`'s interface (``identity``,
    ``dim``, ``encode_documents``, ``encode_queries``), but each text gives a
    ``(n_tokens, dim)`` array rather than one vector.
    """

    def __init__(self, model_dir: str | os.PathLike[str] | None = None, query_max_length: int = 32,
                 doc_max_length: int = 180, batch_size: int = 32, attend_to_mask_tokens: bool = False,
                 providers: Sequence[str] = ("CPUExecutionProvider",), num_threads: int | None = None):
        for name, value, low in (("query_max_length", query_max_length, 3),
                                 ("doc_max_length", doc_max_length, 3), ("batch_size", batch_size, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ParamError(f"{name} must be an int >= {low}, got {value!r}")
        if query_max_length > 512 or doc_max_length > 512:
            raise ParamError("query_max_length and doc_max_length must be <= 512 (BERT's positions)")
        self.query_max_length = query_max_length
        self.doc_max_length = doc_max_length
        self.batch_size = batch_size
        self.attend_to_mask_tokens = bool(attend_to_mask_tokens)
        self.colbert = model_dir is not None

        if model_dir is None:
            files = packaged_files(DEFAULT_MODEL, "int8")
            assert files.onnx is not None
            sha = check_pinned(files.onnx, "int8")
            tokenizer_path = files.tokenizer
            self._encoder: NumpyBert | OnnxEncoder = OnnxEncoder(files.onnx, providers, num_threads)
            self._projection: np.ndarray | None = None
            name, version = FALLBACK_NAME, "int8"
        else:
            root, tokenizer_path, onnx, safetensors, config = _checkpoint_files(model_dir)
            self._projection = _read_projection(safetensors)
            if onnx is not None:
                self._encoder = OnnxEncoder(onnx, providers, num_threads)
                sha = hashlib.sha256((sha256_file(onnx) + sha256_file(safetensors)).encode()).hexdigest()
            else:
                self._encoder = NumpyBert.from_files(safetensors, config)
                sha = sha256_file(safetensors)
            name, version = root.name, "onnx" if onnx is not None else "float32"

        vocab = Tokenizer.from_file(str(tokenizer_path))
        self._query_tok = BatchTokenizer(tokenizer_path, query_max_length)
        self._doc_tok = BatchTokenizer(tokenizer_path, doc_max_length)
        self._punctuation = np.array(sorted({i for c in string.punctuation
                                             if (i := vocab.token_to_id(c)) is not None}), dtype=np.int64)
        if self.colbert:
            ids = {t: vocab.token_to_id(t) for t in (QUERY_MARKER, DOC_MARKER, "[MASK]")}
            missing = [t for t, i in ids.items() if i is None]
            if missing:
                raise ParamError(f"the tokenizer of {str(model_dir)!r} lacks {missing}; "
                                 "ColBERT needs BERT's [unused0], [unused1] and [MASK] tokens")
            self._query_marker, self._doc_marker, self._mask_id = (
                ids[QUERY_MARKER], ids[DOC_MARKER], ids["[MASK]"])
        dim = self._projection.shape[1] if self._projection is not None else self._probe_dim()
        self._identity = ModelIdentity(name=name, version=version, dim=int(dim), normalized=True,
                                       weights_sha256=sha, metric="IP")

    @property
    def identity(self) -> ModelIdentity:
        return self._identity

    @property
    def dim(self) -> int:
        return self._identity.dim

    def encode_documents(self, items: Sequence[str]) -> list[np.ndarray]:
        """One ``(n_tokens, dim)`` float32 array per text: its non-punctuation tokens."""
        return self._encode(check_texts(items), query=False)

    def encode_queries(self, items: Sequence[str]) -> list[np.ndarray]:
        """One ``(query_max_length, dim)`` array per query with a ColBERT checkpoint
        (``[MASK]``-augmented); with the MiniLM fallback, one row per non-punctuation token."""
        return self._encode(check_texts(items), query=True)

    def __call__(self, items: Sequence[str]) -> list[np.ndarray]:
        return self.encode_documents(items)

    def __repr__(self) -> str:
        return (f"ColbertEmbedding(model={self._identity.name!r}, dim={self.dim}, "
                f"query_max_length={self.query_max_length}, doc_max_length={self.doc_max_length})")

    def _probe_dim(self) -> int:
        inputs = self._doc_tok.pad(self._doc_tok.encode(["dim probe"]))
        return int(self._encoder(**inputs).shape[-1])

    def _encode(self, texts: list[str], query: bool) -> list[np.ndarray]:
        tok = self._query_tok if query else self._doc_tok
        encodings = tok.encode([". " + t for t in texts] if self.colbert else texts)
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        out: list[np.ndarray] = [np.zeros((0, self.dim), np.float32)] * len(texts)
        for rows in progress(batches, "embedding queries" if query else "embedding documents"):
            inputs = tok.pad([encodings[r] for r in rows])
            keep = self._prepare(inputs, query)
            hidden = self._encoder(**inputs)
            vectors = hidden @ self._projection if self._projection is not None else hidden
            flat = l2_normalize(vectors.reshape(-1, vectors.shape[-1])).reshape(vectors.shape)
            for j, r in enumerate(rows):
                out[r] = np.ascontiguousarray(flat[j][keep[j]], dtype=np.float32)
        return out

    def _prepare(self, inputs: dict[str, np.ndarray], query: bool) -> np.ndarray:
        """Put in ColBERT's markers and ``[MASK]`` padding; the token positions to keep."""
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        if self.colbert:
            ids[:, 1] = self._query_marker if query else self._doc_marker
        if self.colbert and query:
            width = self.query_max_length
            pad = width - ids.shape[1]
            for key in ("input_ids", "attention_mask", "token_type_ids"):
                inputs[key] = np.pad(inputs[key], ((0, 0), (0, pad)))
            ids, mask = inputs["input_ids"], inputs["attention_mask"]
            padding = mask == 0
            ids[padding] = self._mask_id
            if self.attend_to_mask_tokens:
                mask[padding] = 1
            return np.ones(ids.shape, dtype=bool)
        return (mask == 1) & ~np.isin(ids, self._punctuation)


def _checkpoint_files(model_dir: str | os.PathLike[str]) -> tuple[Path, Path, Path | None, Path, Path]:
    """``(root, tokenizer.json, model.onnx or None, model.safetensors, config.json)``."""
    root = Path(model_dir).expanduser()
    refuse_pickle(root)
    if not root.is_dir():
        raise ParamError(f"model_dir {str(root)!r} is not a directory")
    onnx = next((p for p in (root / "model.onnx", root / "onnx" / "model.onnx") if p.is_file()), None)
    safetensors, tokenizer, config = root / "model.safetensors", root / "tokenizer.json", root / "config.json"
    if not safetensors.is_file():
        raise ParamError(f"model_dir {str(root)!r} has no model.safetensors (the ColBERT checkpoint with "
                         "linear.weight). Pickled checkpoints (.bin, .pt) are not loaded: convert them "
                         "to safetensors first")
    if not tokenizer.is_file():
        raise ParamError(f"model_dir {str(root)!r} has no tokenizer.json")
    if onnx is None and not config.is_file():
        raise ParamError(f"model_dir {str(root)!r} has model.safetensors but no config.json")
    return root, tokenizer, onnx, safetensors, config


def _read_projection(path: Path) -> np.ndarray:
    """ColBERT's ``linear.weight`` ``(dim, hidden)`` as ``(hidden, dim)`` float32."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="np") as f:
            if "linear.weight" not in f.keys():
                raise ParamError(f"{str(path)!r} has no linear.weight tensor: it is not a ColBERT checkpoint")
            weight = f.get_tensor("linear.weight")
    except ParamError:
        raise
    except Exception as exc:
        raise ParamError(f"cannot read safetensors file {str(path)!r}: {exc}") from exc
    return np.ascontiguousarray(weight.T, dtype=np.float32)
