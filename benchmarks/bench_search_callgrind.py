"""What HarrierDB's single-query search costs above its own FAISS call, counted rather than
timed: instructions and simulated cache misses per query, from valgrind's callgrind.

    python benchmarks/bench_search_callgrind.py --rows 20000 --ef 16

On a shared 2-core machine a change worth 2 µs per query drowns in run-to-run noise of
+-10%; callgrind's counts repeat to within 0.1%. The script builds a collection (HNSW, COSINE)
once, then runs the same query loop twice under callgrind, once through ``client.search``
and once calling the collection's FAISS index directly, with collection switched on only
inside the loop (``functools.reduce`` drives it) and a simulated 1 MiB last-level cache
like this machine's L2 per core. The difference per query is the engine's share. Misses
matter more than instructions here: a graph walk evicts the CPU caches, so the Python code
that runs after it misses them. "cycles~" weighs them as instructions + 10 per L1 miss +
100 per last-level miss (a rough guide to time, not a measurement).
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))  # run from a checkout without installing

from harrierdb import MilvusClient, bench  # noqa: E402

CACHES = ["--I1=32768,8,64", "--D1=32768,8,64", "--LL=1048576,16,64"]


def build(path: Path, rows: int, dim: int, n_queries: int) -> None:
    ds = bench.load_dataset("clustered", rows=max(rows, 100_000), dim=dim, n_queries=1000)
    client = MilvusClient(str(path / "db"))
    schema = client.create_schema()
    schema.add_field("id", "INT64", is_primary=True)
    schema.add_field("vector", "FLOAT_VECTOR", dim=dim)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="HNSW", metric_type="COSINE", params={"M": 16, "efConstruction": 100})
    client.create_collection("c", schema=schema, index_params=index)
    client.insert("c", [{"id": i, "vector": v} for i, v in enumerate(ds.base[:rows])])
    client.load_collection("c")
    client.close()
    np.save(path / "queries.npy", np.ascontiguousarray(ds.queries[:n_queries], dtype=np.float32))


def loop(path: Path, mode: str, ef: int, n: int) -> None:
    """The measured process: warm up, then ``n`` queries inside ``functools.reduce``."""
    import faiss

    queries = np.load(path / "queries.npy")
    client = MilvusClient(str(path / "db"))
    client.load_collection("c")
    search_params = {"params": {"ef": ef}}
    index = client._db.collection("c").indexes.ann["vector"].index
    faiss_params = faiss.SearchParametersHNSW(efSearch=ef)

    def full(q: np.ndarray) -> list:
        return [hit["id"] for hit in client.search("c", data=q[None], limit=10, search_params=search_params)[0]]

    def bare(q: np.ndarray) -> np.ndarray:
        return index.search(q[None], 10, params=faiss_params)[1][0]

    for q in queries[:20]:
        full(q)
        bare(q)
    search = full if mode == "full" else bare
    functools.reduce(lambda _, q: search(q), queries[20:20 + n], None)


def totals(path: Path) -> dict[str, int]:
    events: list[str] = []
    for line in path.read_text().splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith(("summary:", "totals:")):
            return dict(zip(events, map(int, line.split()[1:])))
    raise RuntimeError(f"no totals in {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--ef", type=int, default=16)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--loop", nargs=2, metavar=("DIR", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loop:
        loop(Path(args.loop[0]), args.loop[1], args.ef, args.queries)
        return 0
    if shutil.which("valgrind") is None:
        sys.exit("needs valgrind (apt-get install valgrind)")
    work = Path(tempfile.mkdtemp(prefix="harrier-callgrind-"))
    try:
        build(work, args.rows, args.dim, args.queries + 20)
        counts = {}
        for mode in ("full", "bare"):
            out = work / f"{mode}.callgrind"
            cmd = ["valgrind", "--tool=callgrind", "--cache-sim=yes", *CACHES, "--collect-atstart=no",
                   "--toggle-collect=functools_reduce", f"--callgrind-out-file={out}", sys.executable,
                   __file__, "--loop", str(work), mode, "--ef", str(args.ef), "--queries", str(args.queries)]
            subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONHASHSEED": "0"})
            counts[mode] = totals(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n = args.queries
    extra = {e: (counts["full"][e] - counts["bare"][e]) / n for e in counts["full"]}
    bare = {e: counts["bare"][e] / n for e in counts["bare"]}
    l1 = ("I1mr", "D1mr", "D1mw")
    ll = ("ILmr", "DLmr", "DLmw")

    def line(label: str, c: dict[str, float]) -> str:
        cycles = c["Ir"] + 10 * sum(c[e] for e in l1) + 100 * sum(c[e] for e in ll)
        return (f"{label:34s} instructions {c['Ir']:9,.0f}  L1 misses {sum(c[e] for e in l1):7,.0f}  "
                f"last-level misses {sum(c[e] for e in ll):5,.0f}  cycles~ {cycles:9,.0f}")

    print(f"clustered {args.rows:,} x {args.dim}, HNSW M=16 ef={args.ef}, {n} queries, per query:")
    print(line("FAISS call alone (bare)", bare))
    print(line("client.search above it (engine)", extra))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
