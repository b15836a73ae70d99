"""``BinaryQuantizer``: float vectors -> packed bits, for Milvus ``BINARY_VECTOR`` fields.

Each dimension becomes one bit: 1 where the value is above its threshold (0 for
``"sign"``, the dimension's median over a fitted sample for ``"median"``). Bits are packed
eight to a byte, most significant bit first (``np.packbits`` big-endian order), as Milvus
stores binary vectors: ``dim`` bits are ``ceil(dim / 8)`` uint8 bytes, zero-padded.
Compare codes by Hamming distance (:func:`hamming`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harrierdb.embed.base import EmbeddingFunction, ModelIdentity, check_texts
from harrierdb.errors import ParamError

THRESHOLDS = ("sign", "median")

#: Set bits per byte value, for Hamming distances without NumPy 2's bitwise_count.
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


class BinaryQuantizer(EmbeddingFunction):
    """Binarises float vectors, on their own or those of a wrapped ``base`` model.

    ``encode_documents``/``encode_queries`` (which need ``base``) return uint8 arrays
    ``(n, ceil(dim / 8))``. ``identity.dim`` is the code length in bits (a multiple of 8).
    ``"median"`` needs :meth:`fit` first.
    """

    def __init__(self, base: EmbeddingFunction | None = None, threshold: str = "sign",
                 dim: int | None = None):
        if base is not None and not isinstance(base, EmbeddingFunction):
            raise ParamError(f"base must be an EmbeddingFunction or None, got {type(base).__name__}")
        if threshold not in THRESHOLDS:
            raise ParamError(f"threshold must be one of {THRESHOLDS}, got {threshold!r}")
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
            raise ParamError(f"dim must be a positive int or None, got {dim!r}")
        if base is not None and dim is not None and dim != base.dim:
            raise ParamError(f"dim={dim} differs from the base model's dim {base.dim}")
        self.base = base
        self.threshold = threshold
        self._float_dim = base.dim if base is not None else dim
        self.thresholds: np.ndarray | None = None  # per-dimension, once fitted ("median")

    def fit(self, vectors: Any) -> BinaryQuantizer:
        """Set per-dimension thresholds to the medians of ``vectors`` ``(n, dim)``; returns self."""
        x = self._check_vectors(vectors)
        if x.shape[0] == 0:
            raise ParamError("fit needs at least one vector")
        self._float_dim = x.shape[1]
        self.thresholds = np.median(x, axis=0).astype(np.float32)
        return self

    def fit_texts(self, items: Sequence[str]) -> BinaryQuantizer:
        """:meth:`fit` on the base model's document vectors of ``items``."""
        return self.fit(self._base().encode_documents(check_texts(items)))

    def quantize(self, vectors: Any) -> np.ndarray:
        """Packed codes, uint8 ``(n, ceil(dim / 8))``: bit = value > threshold, MSB first."""
        x = self._check_vectors(vectors)
        if self.threshold == "median":
            if self.thresholds is None:
                raise ParamError("threshold='median' needs fit(vectors) first")
            bits = x > self.thresholds
        else:
            bits = x > 0
        return np.packbits(bits, axis=1, bitorder="big")

    def encode_documents(self, items: Sequence[str]) -> np.ndarray:
        return self.quantize(self._base().encode_documents(check_texts(items)))

    def encode_queries(self, items: Sequence[str]) -> np.ndarray:
        return self.quantize(self._base().encode_queries(check_texts(items)))

    @property
    def identity(self) -> ModelIdentity:
        if self._float_dim is None:
            raise ParamError("the code length is unknown: pass base= or dim=, or fit(vectors)")
        if self.threshold == "median" and self.thresholds is None:
            raise ParamError("threshold='median' needs fit(vectors) before it has an identity")
        h = hashlib.sha256(f"binary:{self.threshold}".encode())
        if self.base is not None:
            h.update(json.dumps(self.base.identity.to_dict(), sort_keys=True).encode())
        if self.thresholds is not None:
            h.update(np.ascontiguousarray(self.thresholds, dtype="<f4").tobytes())
        base = self.base.identity if self.base is not None else None
        return ModelIdentity(
            name=f"{base.name}+binary" if base else "binary",
            version=f"{base.version}+{self.threshold}" if base else self.threshold,
            dim=8 * ((self._float_dim + 7) // 8), normalized=False,
            weights_sha256=h.hexdigest(), metric="L2")  # Hamming = squared L2 between bit vectors

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the settings and thresholds as JSON (the base model is not saved)."""
        data = {"threshold": self.threshold, "dim": self._float_dim,
                "thresholds": None if self.thresholds is None else self.thresholds.tolist()}
        Path(path).write_text(json.dumps(data), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike[str], base: EmbeddingFunction | None = None) -> BinaryQuantizer:
        """Read :meth:`save`'s JSON; pass the same ``base`` model it was made with."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ParamError(f"cannot read binary quantizer {str(path)!r}: {exc}") from exc
        if base is not None and data["dim"] is not None and base.dim != data["dim"]:
            raise ParamError(f"{str(path)!r} was made for dim {data['dim']}, but base has dim {base.dim}")
        self = cls(base, data["threshold"], None if base is not None else data["dim"])
        if data["thresholds"] is not None:
            self.thresholds = np.asarray(data["thresholds"], dtype=np.float32)
            if self.thresholds.shape != (self._float_dim,):
                raise ParamError(f"{str(path)!r} has {self.thresholds.size} thresholds for dim {self._float_dim}")
        return self

    def _base(self) -> EmbeddingFunction:
        if self.base is None:
            raise ParamError("encoding texts needs a base embedding function: "
                             "BinaryQuantizer(base=...); or call quantize(vectors)")
        return self.base

    def _check_vectors(self, vectors: Any) -> np.ndarray:
        x = np.asarray(vectors, dtype=np.float32)
        if x.ndim != 2:
            raise ParamError(f"expected a 2-D array of vectors (n, dim), got shape {x.shape}")
        if self._float_dim is not None and x.shape[1] != self._float_dim:
            raise ParamError(f"vectors have dim {x.shape[1]}, expected {self._float_dim}")
        if not np.isfinite(x).all():
            raise ParamError("vectors contain NaN or infinity")
        return x

    def __repr__(self) -> str:
        base = self.base.identity.name if self.base is not None else None
        return f"BinaryQuantizer(base={base!r}, threshold={self.threshold!r}, dim={self._float_dim})"


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between packed codes: ``(n, nbytes)`` x ``(m, nbytes)`` -> ``(n, m)``."""
    a = np.asarray(a, dtype=np.uint8)
    b = np.asarray(b, dtype=np.uint8)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ParamError(f"codes must be 2-D with equal byte widths, got {a.shape} and {b.shape}")
    return _POPCOUNT[a[:, None, :] ^ b[None, :, :]].sum(axis=2, dtype=np.int64)
