"""Binary quantization with float re-ranking on the WordNet MiniLM set: recall vs memory.

    python benchmarks/bench_binary.py [--limit 20000]

The glosses are embedded once with the offline MiniLM model (cached by harrierdb.bench). Each
row stores its float vector and its sign code (BINARY_VECTOR, 1 bit per dimension); searches
use search_params={"first_stage": {"field": "code", "oversample": n}}: Hamming distance over the
codes for n*k candidates, exact cosine on the float vectors for those. Recall@10 is against
exact float search.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from harrierdb import DataType, MilvusClient
from harrierdb.bench import load_wordnet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=20_000, help="glosses to embed (cached)")
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()
    ds = load_wordnet(limit=args.limit)
    base, queries = ds.base.astype(np.float32), ds.queries[: args.queries].astype(np.float32)
    n, dim = base.shape
    work = Path(tempfile.mkdtemp(prefix="bench-binary-"))
    try:
        client = MilvusClient(str(work / "b.db"))
        schema = client.create_schema()
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("code", DataType.BINARY_VECTOR, dim=dim)
        client.create_collection("wn", schema=schema)
        codes = np.packbits(base > 0, axis=1)
        for i in range(0, n, 2000):
            client.insert("wn", [{"id": j, "vec": base[j], "code": codes[j].tobytes()}
                                 for j in range(i, min(i + 2000, n))])
        exact = client.search("wn", queries, anns_field="vec", limit=10, search_params={"metric_type": "COSINE"})
        truth = [{h["id"] for h in hits} for hits in exact]
        print(f"WordNet glosses: {n} x {dim} (MiniLM int8), {len(queries)} queries, k=10")
        print(f"first-stage memory: codes {n * dim // 8 / 2**20:.2f} MiB vs float {n * dim * 4 / 2**20:.2f} MiB "
              f"(1/32); re-ranking reads oversample*k float rows per query")
        print(f"{'oversample':>10} {'recall@10':>10} {'QPS':>8}")
        for oversample in (1, 2, 4, 8, 16, 32):
            params = {"metric_type": "COSINE", "first_stage": {"field": "code", "oversample": oversample}}
            start = time.perf_counter()
            got = [client.search("wn", [q], anns_field="vec", limit=10, search_params=params)[0] for q in queries]
            qps = len(queries) / (time.perf_counter() - start)
            recall = np.mean([len({h["id"] for h in g} & t) / 10 for g, t in zip(got, truth)])
            print(f"{oversample:>10} {recall:>10.3f} {qps:>8.0f}")
        client.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
