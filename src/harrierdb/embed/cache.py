"""A bounded cache of computed embeddings, so nothing is embedded twice.

Keys are (model identity, the exact text given to the model): a model with other weights or
another prefix never reads a vector it did not make. Entries are evicted least recently used.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np

from harrierdb.embed.base import ModelIdentity


class EmbeddingCache:
    """Up to ``max_items`` vectors, keyed by model identity and a 128-bit hash of the text."""

    def __init__(self, max_items: int = 100_000):
        self.max_items = max_items
        self._items: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(identity: ModelIdentity, text: str) -> tuple:
        digest = hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
        return (identity.weights_sha256, identity.version, identity.normalized, digest)

    def lookup(self, identity: ModelIdentity, texts: list[str]) -> tuple[list[np.ndarray | None], list[int]]:
        """The cached vector of each text (None where missing) and the indices missing."""
        found: list[np.ndarray | None] = []
        missing = []
        with self._lock:
            for i, text in enumerate(texts):
                vector = self._items.get(self.key(identity, text))
                if vector is None:
                    missing.append(i)
                else:
                    self._items.move_to_end(self.key(identity, text))
                found.append(vector)
            self.hits += len(texts) - len(missing)
            self.misses += len(missing)
        return found, missing

    def store(self, identity: ModelIdentity, texts: list[str], vectors: np.ndarray) -> None:
        if self.max_items <= 0:
            return
        with self._lock:
            for text, vector in zip(texts, vectors):
                self._items[self.key(identity, text)] = vector.copy()
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)
