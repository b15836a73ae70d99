"""Random BERT weights for the tiny models the embedding tests build (not a test module)."""

import numpy as np


def random_bert_weights(hidden: int, intermediate: int, layers: int, vocab: int, max_positions: int,
                        seed: int = 0, scale: float = 0.3, prefix: str = "") -> dict[str, np.ndarray]:
    """HF-named BERT encoder weights (``prefix`` e.g. "bert."), drawn N(0, scale)."""
    rng = np.random.default_rng(seed)
    h, i = hidden, intermediate

    def r(*shape: int) -> np.ndarray:
        return rng.normal(0, scale, shape).astype(np.float32)

    w = {"embeddings.word_embeddings.weight": r(vocab, h),
         "embeddings.position_embeddings.weight": r(max_positions, h),
         "embeddings.token_type_embeddings.weight": r(2, h),
         "embeddings.LayerNorm.weight": 1 + r(h), "embeddings.LayerNorm.bias": r(h)}
    for n in range(layers):
        p = f"encoder.layer.{n}."
        for name in ("query", "key", "value"):
            w[p + f"attention.self.{name}.weight"], w[p + f"attention.self.{name}.bias"] = r(h, h), r(h)
        w[p + "attention.output.dense.weight"], w[p + "attention.output.dense.bias"] = r(h, h), r(h)
        w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"] = 1 + r(h), r(h)
        w[p + "intermediate.dense.weight"], w[p + "intermediate.dense.bias"] = r(i, h), r(i)
        w[p + "output.dense.weight"], w[p + "output.dense.bias"] = r(h, i), r(h)
        w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"] = 1 + r(h), r(h)
    return {prefix + k: v for k, v in w.items()}
