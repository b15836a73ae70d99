"""Text embedding: turn texts into vectors inside HarrierDB.

``ModelIdentity`` and ``EmbeddingFunction`` need only NumPy. ``SentenceEmbedding``
needs the ``embed`` extra (onnxruntime, tokenizers, safetensors and the model
packages) and is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harrierdb.embed.base import EmbeddingFunction, ModelIdentity

if TYPE_CHECKING:
    from harrierdb.embed.dense import SentenceEmbedding

__all__ = ["EmbeddingFunction", "ModelIdentity", "SentenceEmbedding"]


def __getattr__(name: str) -> Any:
    if name == "SentenceEmbedding":
        try:
            from harrierdb.embed.dense import SentenceEmbedding
        except ImportError as exc:
            raise ImportError(
                f"SentenceEmbedding needs {exc.name or 'its dependencies'}: "
                "pip install 'harrierdb[embed]'") from exc
        return SentenceEmbedding
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
