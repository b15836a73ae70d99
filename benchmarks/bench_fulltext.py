"""BM25 full-text search on the WordNet glosses: HarrierDB vs Milvus Lite, side by side.

    python benchmarks/bench_fulltext.py [--docs 117659] [--queries 300]

Both get the same documents (every WordNet synset's gloss, Debian package wordnet-base) through
a BM25 schema function, and the same queries (lemma names of random synsets). Reported: insert
time, single-query QPS (median of 3 rounds), and how often both put the same document first.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import harrierdb
from harrierdb import MilvusClient
from harrierdb.quality.wordnet import load_synsets


def build(client, docs: list[str], api, name: str = "glosses") -> float:
    """Create the BM25 collection with ``api``'s own DataType/Function classes and fill it."""
    DataType, Function, FunctionType = api.DataType, api.Function, api.FunctionType  # noqa: N806
    schema = client.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("text", DataType.VARCHAR, max_length=4096, enable_analyzer=True)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                 input_field_names=["text"], output_field_names=["sparse"]))
    ip = client.prepare_index_params()
    ip.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    client.create_collection(name, schema=schema, index_params=ip)
    start = time.perf_counter()
    for i in range(0, len(docs), 2000):
        client.insert(name, [{"id": j, "text": docs[j][:4000]} for j in range(i, min(i + 2000, len(docs)))])
    return time.perf_counter() - start


def qps(client, queries: list[str], name: str = "glosses") -> tuple[float, list[int]]:
    rounds, tops = [], []
    client.search(name, [queries[0]], anns_field="sparse", limit=10, search_params={"metric_type": "BM25"})
    for _ in range(3):
        tops = []
        start = time.perf_counter()
        for q in queries:
            hits = client.search(name, [q], anns_field="sparse", limit=10, search_params={"metric_type": "BM25"})[0]
            tops.append(hits[0]["id"] if hits else -1)
        rounds.append(len(queries) / (time.perf_counter() - start))
    return statistics.median(rounds), tops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=None, help="number of glosses (default: all)")
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    synsets = load_synsets()
    docs = [s.gloss for s in synsets][: args.docs]
    rng = np.random.default_rng(0)
    picks = rng.choice(len(docs), args.queries, replace=False)
    queries = [" ".join(synsets[i].lemmas).replace("_", " ") for i in picks]
    work = Path(tempfile.mkdtemp(prefix="bench-fulltext-"))
    rows = []
    try:
        ours = MilvusClient(str(work / "harrier.db"))
        t_ours = build(ours, docs, harrierdb)
        q_ours, top_ours = qps(ours, queries)
        rows.append(("HarrierDB", t_ours, q_ours))
        try:
            import pymilvus

            lite = pymilvus.MilvusClient(str(work / "lite.db"))
            t_lite = build(lite, docs, pymilvus)
            q_lite, top_lite = qps(lite, queries)
            rows.append(("Milvus Lite", t_lite, q_lite))
            agree = np.mean([a == b for a, b in zip(top_ours, top_lite)])
        except Exception as exc:  # noqa: BLE001 - report the peer as unavailable, keep our figures
            print(f"Milvus Lite unavailable: {exc}")
            agree = float("nan")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{len(docs)} glosses, {len(queries)} queries (lemma names), k=10")
    print(f"{'system':<12} {'insert s':>9} {'QPS':>8}")
    for name, t, q in rows:
        print(f"{name:<12} {t:9.1f} {q:8.2f}")
    if len(rows) == 2:
        print(f"QPS ratio HarrierDB / Milvus Lite: {rows[0][2] / rows[1][2]:.1f}x; same top hit: {agree:.0%}")


if __name__ == "__main__":
    main()
