"""Creating embeddings: every kind the article names, offline.

``ModelIdentity``, ``EmbeddingFunction`` and ``Embeddings`` need only NumPy; each model class
is imported on first use, since its dependencies (the ``embed`` extra) are optional:

- dense text: ``SentenceEmbedding`` (all-MiniLM-L6-v2, ONNX int8 or NumPy float32)
- word vectors: ``WordVectors`` (GloVe / word2vec files, Word2Vec training)
- sparse: ``TfidfEmbedding``, ``BM25Embedding``, ``SpladeEmbedding``
- binary: ``BinaryQuantizer``
- multi-vector and multi-output: ``ColbertEmbedding``, ``BGEM3Embedding``; images: ``ClipEmbedding``
- matrix factorization (users and items): ``ExplicitALS``, ``ImplicitALS``
"""

from __future__ import annotations

import importlib
from typing import Any

from harrierdb.embed.base import EmbeddingFunction, Embeddings, ModelIdentity

_LAZY = {
    "SentenceEmbedding": "dense", "WordVectors": "words", "TfidfEmbedding": "sparse",
    "BM25Embedding": "sparse", "SpladeEmbedding": "splade", "BinaryQuantizer": "binary",
    "ColbertEmbedding": "colbert", "BGEM3Embedding": "bge_m3", "ClipEmbedding": "clip",
    "ExplicitALS": "mf", "ImplicitALS": "mf",
}

__all__ = ["EmbeddingFunction", "Embeddings", "ModelIdentity", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        return getattr(importlib.import_module(f"harrierdb.embed.{module}"), name)
    except ImportError as exc:
        raise ImportError(
            f"{name} needs {exc.name or 'its dependencies'}: pip install 'harrierdb[embed]'") from exc
