"""``BGEM3Embedding``: BGE-M3's dense, sparse and multi-vector outputs, without PyTorch.

One encoder pass gives all three (as FlagEmbedding's ``BGEM3FlagModel`` computes them):

* dense: the ``[CLS]``/``<s>`` hidden state, L2-normalised;
* sparse (lexical weights): ``relu(sparse_linear(h_t))`` per token, the maximum per token
  id, leaving out the ``<s>``, ``</s>``, ``<pad>`` and ``<unk>`` tokens and zero weights;
  a ``{token_id: weight}`` dict per text (a Milvus sparse vector row);
* multi-vector (ColBERT): ``colbert_linear(h_t)`` for every token after the first,
  L2-normalised, ``(n_tokens - 1, dim)`` per text.

A local ``model_dir`` holds ``tokenizer.json``, the encoder as ``model.onnx`` (output: the
last hidden state) or ``model.safetensors`` + ``config.json`` of an XLM-RoBERTa or BERT
model (run by :mod:`.bert_numpy`; XLM-R is BERT with positions offset by
``pad_token_id + 1``), and the heads as ``colbert_linear.safetensors`` and
``sparse_linear.safetensors`` (``weight`` and ``bias`` tensors of each ``nn.Linear``).
BGE-M3 publishes those heads as pickles (``.pt``), which are never loaded here: convert
them once with ``safetensors.torch.save_file(torch.load(p), ...)`` where torch is trusted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from harrierdb.embed.base import EmbeddingFunction, ModelIdentity, check_texts, progress
from harrierdb.embed.bert_numpy import BertConfig, NumpyBert
from harrierdb.embed.dense import l2_normalize
from harrierdb.embed.onnx_encoder import OnnxEncoder
from harrierdb.embed.tokenize import BatchTokenizer
from harrierdb.embed.weights import refuse_pickle, sha256_file
from harrierdb.errors import ParamError

HEADS = ("colbert_linear", "sparse_linear")
#: (XLM-R name, BERT name) of each special token.
SPECIALS = {"cls": ("<s>", "[CLS]"), "eos": ("</s>", "[SEP]"), "pad": ("<pad>", "[PAD]"), "unk": ("<unk>", "[UNK]")}


@dataclasses.dataclass
class M3Output:
    """What :meth:`BGEM3Embedding.encode` returns; outputs not asked for are ``None``."""

    dense: np.ndarray | None                 # (n, hidden) float32, unit rows
    sparse: list[dict[int, float]] | None    # token id -> weight, per text
    colbert: list[np.ndarray] | None         # (n_tokens - 1, dim) float32 per text


class BGEM3Embedding(EmbeddingFunction):
    """BGE-M3 (or any model with its layout) from a local directory.

    As an :class:`EmbeddingFunction` it gives the dense vectors; :meth:`encode` gives all
    three outputs from one pass. ``max_length`` is capped at the model's positions.
    """

    def __init__(self, model_dir: str | os.PathLike[str], max_length: int = 8192, batch_size: int = 16,
                 providers: Sequence[str] = ("CPUExecutionProvider",), num_threads: int | None = None):
        for name, value in (("max_length", max_length), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (2 if name == "max_length" else 1):
                raise ParamError(f"{name} must be a positive int, got {value!r}")
        self.batch_size = batch_size
        self.root = root = Path(model_dir).expanduser()
        refuse_pickle(root)
        if not root.is_dir():
            raise ParamError(f"model_dir {str(root)!r} is not a directory")
        tokenizer = root / "tokenizer.json"
        if not tokenizer.is_file():
            raise ParamError(f"model_dir {str(root)!r} has no tokenizer.json")

        onnx = next((p for p in (root / "model.onnx", root / "onnx" / "model.onnx") if p.is_file()), None)
        if onnx is not None:
            self._encoder: NumpyBert | OnnxEncoder = OnnxEncoder(onnx, providers, num_threads)
            weights, version = onnx, "onnx"
        elif (root / "model.safetensors").is_file() and (root / "config.json").is_file():
            self._encoder = _numpy_encoder(root / "model.safetensors", root / "config.json")
            max_length = min(max_length, self._encoder.config.max_position_embeddings)
            weights, version = root / "model.safetensors", "float32"
        else:
            raise ParamError(f"model_dir {str(root)!r} has neither model.onnx nor model.safetensors + "
                             "config.json. Pickled checkpoints (.bin, .pt) are not loaded: convert them "
                             "to safetensors or ONNX first")
        self.max_length = max_length
        self._heads = {name: _read_linear(root / f"{name}.safetensors") for name in HEADS}
        digests = [sha256_file(weights)] + [sha256_file(root / f"{n}.safetensors") for n in HEADS
                                            if self._heads[n] is not None]
        sha = digests[0] if len(digests) == 1 else hashlib.sha256("".join(digests).encode()).hexdigest()

        vocab = Tokenizer.from_file(str(tokenizer))
        ids = {key: next((i for n in names if (i := vocab.token_to_id(n)) is not None), None)
               for key, names in SPECIALS.items()}
        self._tokenizer = BatchTokenizer(tokenizer, max_length)
        if ids["pad"] is not None:
            self._tokenizer.pad_id = ids["pad"]  # XLM-R pads with 1: its positions count non-pad ids
        self._unused = np.array([i for i in ids.values() if i is not None], dtype=np.int64)
        inputs = self._tokenizer.pad(self._tokenizer.encode(["dim probe"]))
        dim = self._encoder(**inputs).shape[-1]
        self._identity = ModelIdentity(name=root.name, version=version, dim=int(dim), normalized=True,
                                       weights_sha256=sha)

    @property
    def identity(self) -> ModelIdentity:
        return self._identity

    def encode_documents(self, items: Sequence[str]) -> np.ndarray:
        dense = self.encode(items, sparse=False, colbert=False).dense
        assert dense is not None
        return dense

    def encode_queries(self, items: Sequence[str]) -> np.ndarray:
        return self.encode_documents(items)  # BGE-M3 uses no query instruction

    def encode(self, items: Sequence[str], dense: bool = True, sparse: bool = True,
               colbert: bool = True) -> M3Output:
        """The chosen outputs for each text, from one encoder pass per batch."""
        texts = check_texts(items)
        for name, wanted in (("sparse_linear", sparse), ("colbert_linear", colbert)):
            if wanted and self._heads[name] is None:
                pickled = (self.root / f"{name}.pt").is_file()
                hint = (f" ({name}.pt is a pickle, which HarrierDB does not load: convert it to "
                        "safetensors with tensors 'weight' and 'bias')") if pickled else ""
                raise ParamError(f"{name}.safetensors is missing from {str(self.root)!r}{hint}; "
                                 f"pass {name.split('_')[0]}=False to skip that output")
        colbert_dim = self._heads["colbert_linear"][0].shape[1] if colbert and self._heads["colbert_linear"] else 0
        out = M3Output(dense=np.zeros((len(texts), self.dim), np.float32) if dense else None,
                       sparse=[{} for _ in texts] if sparse else None,
                       colbert=[np.zeros((0, colbert_dim), np.float32) for _ in texts] if colbert else None)
        encodings = self._tokenizer.encode(texts) if texts else []
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for rows in progress(batches, "embedding"):
            inputs = self._tokenizer.pad([encodings[r] for r in rows])
            hidden = self._encoder(**inputs)
            ids, mask = inputs["input_ids"], inputs["attention_mask"]
            if out.dense is not None:
                out.dense[rows] = l2_normalize(hidden[:, 0])
            if out.sparse is not None:
                weights = self._apply("sparse_linear", hidden)[..., 0]
                for j, r in enumerate(rows):
                    out.sparse[r] = sparse_weights(ids[j], np.maximum(weights[j], 0), self._unused)
            if out.colbert is not None:
                vectors = self._apply("colbert_linear", hidden[:, 1:])
                for j, r in enumerate(rows):
                    n = int(mask[j].sum()) - 1
                    out.colbert[r] = l2_normalize(vectors[j, :n])
        return out

    def __repr__(self) -> str:
        return f"BGEM3Embedding(model={self._identity.name!r}, dim={self.dim}, max_length={self.max_length})"

    def _apply(self, head: str, hidden: np.ndarray) -> np.ndarray:
        linear = self._heads[head]
        assert linear is not None
        weight, bias = linear
        return hidden @ weight + bias


def sparse_weights(ids: np.ndarray, weights: np.ndarray, unused: np.ndarray) -> dict[int, float]:
    """``{token id: its largest weight}`` over the positive weights of the tokens not in ``unused``."""
    keep = (weights > 0) & ~np.isin(ids, unused)
    result: dict[int, float] = {}
    for token, weight in zip(ids[keep].tolist(), weights[keep].tolist()):
        if weight > result.get(token, 0.0):
            result[token] = weight
    return result


def _numpy_encoder(safetensors: Path, config_path: Path) -> NumpyBert:
    """A BERT, or an XLM-RoBERTa recast as one: drop the position rows before ``pad + 1``."""
    from safetensors.numpy import load_file

    data = json.loads(config_path.read_text(encoding="utf-8"))
    kind = data.get("model_type", "bert")
    if kind not in ("bert", "xlm-roberta", "roberta"):
        raise ParamError(f"{str(config_path)!r} describes a {kind!r} model; NumPy runs BERT and "
                         "XLM-RoBERTa only (export others to model.onnx)")
    try:
        weights = load_file(str(safetensors))
    except Exception as exc:
        raise ParamError(f"cannot read safetensors file {str(safetensors)!r}: {exc}") from exc
    fields = {f.name for f in dataclasses.fields(BertConfig)}
    values = {k: v for k, v in data.items() if k in fields}
    if kind != "bert":
        offset = int(data.get("pad_token_id", 1)) + 1
        weights = {k.removeprefix("roberta."): v for k, v in weights.items()}
        name = "embeddings.position_embeddings.weight"
        if name not in weights:
            raise ParamError(f"{str(safetensors)!r} lacks {name!r}; is this an XLM-RoBERTa checkpoint?")
        weights[name] = weights[name][offset:]
        values["max_position_embeddings"] = int(data.get("max_position_embeddings", 514)) - offset
    config = BertConfig(**values)
    if config.hidden_act != "gelu" or config.hidden_size % config.num_attention_heads:
        raise ParamError(f"{str(config_path)!r}: NumPy needs hidden_act 'gelu' and heads dividing hidden_size")
    return NumpyBert(weights, config)


def _read_linear(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """A head's ``(weight.T, bias)`` as float32, or ``None`` when its file is absent."""
    if not path.is_file():
        return None
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(path))
    except Exception as exc:
        raise ParamError(f"cannot read safetensors file {str(path)!r}: {exc}") from exc
    if "weight" not in tensors or "bias" not in tensors:
        raise ParamError(f"{str(path)!r} must hold tensors 'weight' and 'bias', got {sorted(tensors)}")
    return (np.ascontiguousarray(tensors["weight"].T, dtype=np.float32),
            np.asarray(tensors["bias"], dtype=np.float32))
