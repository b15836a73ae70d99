"""Fetch-free benchmark data sets: prepare and cache them ahead of a benchmark run.

    apt-get install dataset-fashion-mnist wordnet-base     # Debian packages, as root
    python benchmarks/datasets.py fashion-mnist wordnet --limit 20000
    python benchmarks/datasets.py clustered --rows 100000 --dim 384

Each data set is converted to float32 .npy (base and queries) with exact ground truth
(FAISS flat, top 100) under $HARRIER_BENCH_CACHE (default ~/.cache/harrierdb/bench); the
loaders live in ``harrierdb.bench`` so ``harrier bench`` uses the same cache. Embedding the
WordNet glosses with SentenceEmbedding is the slow step (roughly 100 glosses/s on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from harrierdb import bench  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("datasets", nargs="+", choices=[d for d in bench.DATASETS if d != "npy"])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--limit", type=int, default=20_000, help="wordnet: glosses in the base")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    status = 0
    for name in args.datasets:
        started = time.perf_counter()
        try:
            ds = bench.load_dataset(name, rows=args.rows, dim=args.dim, limit=args.limit, seed=args.seed)
        except bench.BenchError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"{ds.label}: ready in {time.perf_counter() - started:.1f} s under {bench.cache_dir()}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
