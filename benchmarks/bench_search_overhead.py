"""Where a single-query HNSW search spends the time FAISS does not: HarrierDB's
``client.search`` beside its own FAISS index searched directly, then with one part of the
engine's per-query work removed at a time (patched out in this process only).

    python benchmarks/bench_search_overhead.py --rows 100000 --ef 16

Each figure is the median over ``--repeat`` loops of distinct queries (a loop runs every
query once, so caches are as cold as in real use), in µs per query.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))  # run from a checkout without installing

from harrierdb import MilvusClient, bench  # noqa: E402
from harrierdb.engine.collection import Collection  # noqa: E402


def per_query_us(search: Callable[[np.ndarray], object], queries: np.ndarray) -> float:
    start = time.perf_counter()
    for q in queries:
        search(q)
    return (time.perf_counter() - start) / len(queries) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--ef", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    ds = bench.load_dataset("clustered", rows=args.rows, dim=args.dim, n_queries=2000)
    client = MilvusClient(str(Path(tempfile.mkdtemp(prefix="harrier-overhead-")) / "db"))
    schema = client.create_schema()
    schema.add_field("id", "INT64", is_primary=True)
    schema.add_field("vector", "FLOAT_VECTOR", dim=args.dim)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="HNSW", metric_type="COSINE", params={"M": 16, "efConstruction": 200})
    client.create_collection("c", schema=schema, index_params=index)
    for start in range(0, len(ds.base), 10_000):
        client.insert("c", [{"id": i, "vector": v} for i, v in enumerate(ds.base[start:start + 10_000], start)])
    client.load_collection("c")

    collection = client._db.collection("c")
    own_index = collection.indexes.ann["vector"].index
    faiss_params = faiss.SearchParametersHNSW(efSearch=args.ef)
    unit_queries = ds.queries / np.linalg.norm(ds.queries, axis=1, keepdims=True)
    search_params = {"params": {"ef": args.ef}}

    def through_client(q: np.ndarray) -> object:
        return client.search("c", q[None], limit=10, search_params=search_params)

    store = collection.store
    originals = {name: getattr(Collection, name) for name in ("_matrix_hits", "_query_vectors")}
    removals: dict[str, Callable[[], None]] = {
        "everything": lambda: None,
        "without the consistency check": lambda: setattr(store, "data_version", lambda: 0),
        "without building hits": lambda: setattr(Collection, "_matrix_hits", lambda self, cache, *found: found),
        "without query validation": lambda: setattr(Collection, "_query_vectors", lambda self, data, field, **_: data),
    }
    times: dict[str, list[float]] = {"FAISS alone (HarrierDB's index)": []}
    for _ in range(args.repeat):
        times["FAISS alone (HarrierDB's index)"].append(
            per_query_us(lambda q: own_index.search(q[None], 10, params=faiss_params), unit_queries))
        for label, remove in removals.items():
            remove()
            try:
                through_client(ds.queries[0])
                times.setdefault(f"client.search, {label}", []).append(per_query_us(through_client, ds.queries))
            finally:
                store.__dict__.pop("data_version", None)
                for name, fn in originals.items():
                    setattr(Collection, name, fn)
    floor = float(np.median(times["FAISS alone (HarrierDB's index)"]))
    print(f"clustered {args.rows:,} x {args.dim}, HNSW M=16 ef={args.ef}, {len(ds.queries)} queries, "
          f"median of {args.repeat} loops")
    for label, values in times.items():
        median = float(np.median(values))
        print(f"{label:55s} {median:7.1f} µs  (+{median - floor:5.1f})")
    client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
