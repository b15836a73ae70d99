"""What every embedding function is: an identity and two ``encode_*`` methods."""

from __future__ import annotations

import abc
import dataclasses
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from harrierdb.errors import ModelMismatchError, ParamError

#: Metrics an embedding model may declare its vectors are meant for.
METRICS = ("COSINE", "IP", "L2")

#: Show a progress bar only when an input spans more than this many batches.
PROGRESS_MIN_BATCHES = 4


@dataclasses.dataclass(frozen=True)
class ModelIdentity:
    """Who made a vector: enough to tell two embedding models apart for good.

    ``weights_sha256`` is the hash of the weights file, so two models with the same
    name but different weights never pass as one.
    """

    name: str
    version: str
    dim: int
    normalized: bool
    weights_sha256: str
    metric: str = "COSINE"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ParamError(f"ModelIdentity.name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.version, str):
            raise ParamError(f"ModelIdentity.version must be a string, got {self.version!r}")
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim <= 0:
            raise ParamError(f"ModelIdentity.dim must be a positive int, got {self.dim!r}")
        if not isinstance(self.normalized, bool):
            raise ParamError(f"ModelIdentity.normalized must be a bool, got {self.normalized!r}")
        if not isinstance(self.weights_sha256, str):
            raise ParamError(
                f"ModelIdentity.weights_sha256 must be a hex string, got {self.weights_sha256!r}")
        if self.metric not in METRICS:
            raise ParamError(f"ModelIdentity.metric must be one of {METRICS}, got {self.metric!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` reads it back."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelIdentity:
        """Rebuild an identity from :meth:`to_dict`'s output; unknown keys are an error."""
        if not isinstance(data, dict):
            raise ParamError(f"ModelIdentity.from_dict expects a dict, got {type(data).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ParamError(f"ModelIdentity.from_dict: unknown keys {unknown}; expected {sorted(fields)}")
        required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}
        missing = sorted(required - set(data))
        if missing:
            raise ParamError(f"ModelIdentity.from_dict: missing keys {missing}")
        return cls(**data)

    def check_matches(self, other: ModelIdentity) -> None:
        """Raise :class:`ModelMismatchError` naming every field where ``other`` differs."""
        diffs = [
            f"{f.name}: {getattr(self, f.name)!r} != {getattr(other, f.name)!r}"
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]
        if diffs:
            raise ModelMismatchError(
                f"embedding model {other.name!r} is not the recorded model {self.name!r} "
                f"({'; '.join(diffs)}); re-embed with the recorded model or use a new collection")


class Embeddings(np.ndarray):
    """Vectors that remember which model made them (``.identity``).

    A plain ``np.ndarray`` in every other respect; rows sliced from it keep the identity, so
    a collection can refuse vectors from another model even when they arrive row by row.
    """

    identity: ModelIdentity | None

    def __new__(cls, array: np.ndarray, identity: ModelIdentity) -> Embeddings:
        obj = np.asarray(array).view(cls)
        obj.identity = identity
        return obj

    def __array_finalize__(self, obj: Any) -> None:
        self.identity = getattr(obj, "identity", None)


def identity_of(value: Any) -> ModelIdentity | None:
    """The model identity a vector or batch carries, if it came from an embedding function."""
    return getattr(value, "identity", None) if isinstance(value, np.ndarray) else None


class EmbeddingFunction(abc.ABC):
    """Turns texts into float32 vectors of shape ``(n, dim)``.

    Queries and documents may be encoded differently (e.g. with different prefixes);
    calling the function itself encodes documents.
    """

    @property
    @abc.abstractmethod
    def identity(self) -> ModelIdentity:
        """The model's identity, recorded next to every vector it makes."""

    @property
    def dim(self) -> int:
        """The vector dimension."""
        return self.identity.dim

    @abc.abstractmethod
    def encode_documents(self, items: Sequence[str]) -> np.ndarray:
        """Vectors for texts to be stored: ``(len(items), dim)`` float32."""

    @abc.abstractmethod
    def encode_queries(self, items: Sequence[str]) -> np.ndarray:
        """Vectors for texts to search with: ``(len(items), dim)`` float32."""

    def __call__(self, items: Sequence[str]) -> np.ndarray:
        return self.encode_documents(items)


def check_texts(items: Any) -> list[str]:
    """``items`` as a list of strings, or a :class:`ParamError` saying what is wrong."""
    if isinstance(items, (str, bytes)):
        raise ParamError(
            f"expected a list of strings, got a single {type(items).__name__} "
            f"({items[:40]!r}); wrap it in a list: [text]")
    if not isinstance(items, Iterable):
        raise ParamError(f"expected a list of strings, got {type(items).__name__}")
    texts = list(items)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ParamError(f"item {i} is a {type(text).__name__} ({text!r:.60}), not a string")
    return texts


def progress(batches: Sequence[Any], desc: str) -> Iterator[Any]:
    """Iterate ``batches``, with a tqdm bar when stderr is a terminal and the input is long."""
    show = len(batches) > PROGRESS_MIN_BATCHES and _stderr_is_tty()
    if show:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            show = False
    if not show:
        return iter(batches)
    return iter(tqdm(batches, desc=desc, unit="batch", leave=False))


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
