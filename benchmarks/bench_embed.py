"""Encode throughput of SentenceEmbedding on 2,000 short sentences (not a test).

    .venv/bin/python benchmarks/bench_embed.py [int8] [float32]
"""

from __future__ import annotations

import random
import sys
import time

from harrierdb.embed import SentenceEmbedding
from harrierdb.embed.onnx_encoder import default_threads


def sentences(n: int = 2000, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    subj = ["the cat", "a dog", "my neighbour", "the committee", "an engineer", "the river", "our team"]
    verb = ["watches", "builds", "crosses", "ignores", "describes", "repairs", "follows", "paints"]
    obj = ["the old bridge", "a red car", "the morning news", "a quiet garden", "the database index",
           "a long letter", "the mountain path", "the new schedule"]
    tail = ["", " before lunch", " in the rain", " every single day", " with great care", " near the station"]
    return [f"{rng.choice(subj).capitalize()} {rng.choice(verb)} {rng.choice(obj)}{rng.choice(tail)}."
            for _ in range(n)]


def main(precisions: list[str]) -> None:
    texts = sentences()
    for precision in precisions:
        model = SentenceEmbedding(precision=precision, batch_size=32)
        model.encode_documents(texts[:64])  # warm up
        best = min(_timed(model, texts) for _ in range(3))
        print(f"{precision}: {len(texts) / best:.0f} texts/s ({best:.2f} s for {len(texts)}, "
              f"batch 32, {default_threads()} threads)")


def _timed(model: SentenceEmbedding, texts: list[str]) -> float:
    start = time.perf_counter()
    model.encode_documents(texts)
    return time.perf_counter() - start


if __name__ == "__main__":
    main(sys.argv[1:] or ["int8", "float32"])
