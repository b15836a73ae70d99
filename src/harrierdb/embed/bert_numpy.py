"""A BERT encoder forward pass in plain NumPy, for float32 safetensors weights.

It computes exactly what ``transformers.BertModel`` does in eval mode (no dropout)
and returns the last hidden state; no PyTorch needed. Each layer is::

    h = LayerNorm(x + SelfAttention(x) @ W_o + b_o)
    y = LayerNorm(h + GELU(h @ W_1 + b_1) @ W_2 + b_2)

Weights use the HuggingFace names (``encoder.layer.{i}.attention.self.query.weight``,
...), with or without a leading ``bert.``. Linear weights are stored ``(out, in)``
and are transposed once at load.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from harrierdb.errors import ParamError


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """The fields of a HuggingFace ``config.json`` that the forward pass needs."""

    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"

    @classmethod
    def from_file(cls, path: Path) -> BertConfig:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("model_type", "bert") != "bert":
            raise ParamError(f"{str(path)!r} describes a {data['model_type']!r} model; "
                             "only BERT runs in NumPy")
        names = {f.name for f in dataclasses.fields(cls)}
        config = cls(**{k: v for k, v in data.items() if k in names})
        if config.hidden_act != "gelu":
            raise ParamError(f"hidden_act {config.hidden_act!r} is not supported; only 'gelu'")
        if config.hidden_size % config.num_attention_heads:
            raise ParamError("hidden_size must be a multiple of num_attention_heads")
        return config


@dataclasses.dataclass
class _Layer:
    w_qkv: np.ndarray   # (hidden, 3 * hidden): query, key, value side by side
    b_qkv: np.ndarray
    w_out: np.ndarray   # (hidden, hidden)
    b_out: np.ndarray
    ln1: tuple[np.ndarray, np.ndarray]
    w_up: np.ndarray    # (hidden, intermediate)
    b_up: np.ndarray
    w_down: np.ndarray  # (intermediate, hidden)
    b_down: np.ndarray
    ln2: tuple[np.ndarray, np.ndarray]


class NumpyBert:
    """``NumpyBert(weights, config)(input_ids, attention_mask)`` -> ``(batch, seq, hidden)``."""

    def __init__(self, weights: dict[str, np.ndarray], config: BertConfig):
        self.config = config
        w = _Weights(weights)
        self.word = w.get("embeddings.word_embeddings.weight")
        self.position = w.get("embeddings.position_embeddings.weight")
        self.token_type = w.get("embeddings.token_type_embeddings.weight")
        self.ln_embed = (w.get("embeddings.LayerNorm.weight"), w.get("embeddings.LayerNorm.bias"))
        self.layers = [self._layer(w, f"encoder.layer.{i}.") for i in range(config.num_hidden_layers)]

    @classmethod
    def from_files(cls, safetensors_path: Path, config_path: Path) -> NumpyBert:
        from safetensors.numpy import load_file

        try:
            weights = load_file(str(safetensors_path))
        except Exception as exc:
            raise ParamError(f"cannot read safetensors file {str(safetensors_path)!r}: {exc}") from exc
        return cls(weights, BertConfig.from_file(config_path))

    @staticmethod
    def _layer(w: _Weights, p: str) -> _Layer:
        att = p + "attention."
        return _Layer(
            w_qkv=np.concatenate([w.linear(att + f"self.{n}.weight") for n in ("query", "key", "value")], axis=1),
            b_qkv=np.concatenate([w.get(att + f"self.{n}.bias") for n in ("query", "key", "value")]),
            w_out=w.linear(att + "output.dense.weight"),
            b_out=w.get(att + "output.dense.bias"),
            ln1=(w.get(att + "output.LayerNorm.weight"), w.get(att + "output.LayerNorm.bias")),
            w_up=w.linear(p + "intermediate.dense.weight"),
            b_up=w.get(p + "intermediate.dense.bias"),
            w_down=w.linear(p + "output.dense.weight"),
            b_down=w.get(p + "output.dense.bias"),
            ln2=(w.get(p + "output.LayerNorm.weight"), w.get(p + "output.LayerNorm.bias")),
        )

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray,
                 token_type_ids: np.ndarray | None = None) -> np.ndarray:
        """The last hidden state, float32 ``(batch, seq, hidden)``."""
        seq = input_ids.shape[1]
        if seq > self.config.max_position_embeddings:
            raise ParamError(f"sequence of {seq} tokens exceeds the model's "
                             f"{self.config.max_position_embeddings} positions")
        if token_type_ids is None:
            token_type_ids = np.zeros_like(input_ids)
        x = self.word[input_ids] + self.position[:seq][None] + self.token_type[token_type_ids]
        x = layer_norm(x, *self.ln_embed, self.config.layer_norm_eps)
        # Additive mask: 0 where a token may be attended to, a large negative number at padding.
        bias = (1.0 - attention_mask[:, None, None, :].astype(np.float32)) * np.finfo(np.float32).min
        for layer in self.layers:
            x = self._encoder_layer(x, bias, layer)
        return x

    def _encoder_layer(self, x: np.ndarray, bias: np.ndarray, layer: _Layer) -> np.ndarray:
        eps = self.config.layer_norm_eps
        h = layer_norm(x + self._attention(x, bias, layer), *layer.ln1, eps)
        ffn = gelu(h @ layer.w_up + layer.b_up) @ layer.w_down + layer.b_down
        return layer_norm(h + ffn, *layer.ln2, eps)

    def _attention(self, x: np.ndarray, bias: np.ndarray, layer: _Layer) -> np.ndarray:
        batch, seq, hidden = x.shape
        heads = self.config.num_attention_heads
        head_dim = hidden // heads
        qkv = (x @ layer.w_qkv + layer.b_qkv).reshape(batch, seq, 3, heads, head_dim)
        q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # (batch, heads, seq, head_dim)
        scores = q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(head_dim)) + bias
        context = softmax(scores) @ v
        context = context.transpose(0, 2, 1, 3).reshape(batch, seq, hidden)
        return context @ layer.w_out + layer.b_out


class _Weights:
    """Float32 tensors by HuggingFace name, accepting an optional ``bert.`` prefix."""

    def __init__(self, tensors: dict[str, np.ndarray]):
        self._t = {k.removeprefix("bert."): v for k, v in tensors.items()}

    def get(self, name: str) -> np.ndarray:
        if name not in self._t:
            raise ParamError(f"BERT weights lack tensor {name!r}; is this a BertModel checkpoint?")
        return np.ascontiguousarray(self._t[name], dtype=np.float32)

    def linear(self, name: str) -> np.ndarray:
        """A ``(out, in)`` Linear weight as ``(in, out)``, so that ``y = x @ w + b``."""
        return np.ascontiguousarray(self.get(name).T)


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + np.float32(eps)) * gamma + beta


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def gelu(x: np.ndarray) -> np.ndarray:
    """The exact (erf) GELU that BERT uses, not the tanh approximation."""
    return np.float32(0.5) * x * (np.float32(1.0) + erf(x * np.float32(1 / math.sqrt(2))))


def erf(x: np.ndarray) -> np.ndarray:
    """Error function, Abramowitz & Stegun 7.1.26: absolute error < 1.5e-7 (plus float32 rounding)."""
    p = np.float32(0.3275911)
    a1, a2, a3, a4, a5 = (np.float32(c) for c in
                          (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429))
    sign = np.sign(x)
    ax = np.abs(x)
    t = np.float32(1.0) / (np.float32(1.0) + p * ax)
    poly = ((((a5 * t + a4) * t + a3) * t + a2) * t + a1) * t
    return sign * (np.float32(1.0) - poly * np.exp(-ax * ax))
