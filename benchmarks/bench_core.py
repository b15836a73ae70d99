"""Core benchmark: durable insert, exact top-k search, reopen, memory and size on disk.

Side by side, in one run, on the same seeded float32 rows (clustered, unit length)::

    python benchmarks/bench_core.py [--rows 100000] [--dim 384]

(a) insert in batches of 1,000 (each call committed; a flush at the end) into HarrierDB,
    Milvus Lite and Chroma; (b) exact top-10 of 100 queries in one call, HarrierDB against a
    bare NumPy scan and FAISS IndexFlat on the same matrix (median of 5 after a warm-up), and
    single-query latency; (c) a fresh process opening the database and answering its first
    search; (d) peak RSS of a process doing the HarrierDB insert + search, and size on disk.

Prints a table and writes the section "## Core: insert, exact search, reopen" of
``benchmarks/RESULTS.md``. Scratch data lives under ``benchmarks/.cache/`` and is removed.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
RESULTS = HERE / "RESULTS.md"
SECTION = "## Core: insert, exact search, reopen"
K = 10
COLL = "core"


# -- data ---------------------------------------------------------------------------------------
def make_data(n: int, dim: int, n_queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Clustered unit vectors (a crude stand-in for sentence embeddings) and queries near them."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((256, dim), dtype=np.float32)
    x = centers[rng.integers(0, len(centers), n)]
    x += 0.6 * rng.standard_normal((n, dim), dtype=np.float32)
    q = centers[rng.integers(0, len(centers), n_queries)]
    q += 0.6 * rng.standard_normal((n_queries, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return np.ascontiguousarray(x, np.float32), np.ascontiguousarray(q, np.float32)


def row_batches(x: np.ndarray, batch: int) -> list[list[dict]]:
    return [[{"id": i, "tag": i % 100, "vector": x[i]} for i in range(s, min(s + batch, len(x)))]
            for s in range(0, len(x), batch)]


def interleaved(fns: dict, reps: int) -> dict[str, float]:
    """Median seconds per call of each function, after one warm-up each; the calls are
    interleaved round by round."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {key: [] for key in fns}
    for _ in range(reps):
        for key, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t)
    return {key: statistics.median(v) for key, v in times.items()}


def latencies(fns: dict, queries: np.ndarray) -> dict[str, list[float]]:
    """Per-query latencies of each function, interleaved query by query, after a warm-up."""
    for fn in fns.values():
        fn(queries[0])
    out: dict[str, list[float]] = {key: [] for key in fns}
    for v in queries:
        for key, fn in fns.items():
            t = time.perf_counter()
            fn(v)
            out[key].append(time.perf_counter() - t)
    return out


def du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def recall(ids: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a.tolist()) & set(b.tolist())) / truth.shape[1] for a, b in zip(ids, truth)]))


# -- the systems --------------------------------------------------------------------------------
def harrier_open(path: Path, dim: int):
    from harrierdb import DataType, MilvusClient

    client = MilvusClient(str(path))
    schema = MilvusClient.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("tag", DataType.INT64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    client.create_collection(COLL, schema=schema)   # no index: every search is exact
    return client


def milvus_open(path: Path, dim: int):
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(str(path))
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("tag", DataType.INT64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="COSINE")  # exact, like ours
    client.create_collection(COLL, schema=schema, index_params=index)
    return client


def release_milvus_lite(path: Path) -> None:
    """Stop the in-process Milvus Lite server, which holds a lock on the path until exit."""
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:
        return
    server_manager_instance.release_server(str(path))


def chroma_open(path: Path):
    try:
        import chromadb
    except ImportError as exc:
        return None, f"not installed ({exc})"
    client = chromadb.PersistentClient(path=str(path))
    return client.create_collection("core_bench", metadata={"hnsw:space": "cosine"}), \
        f"chromadb {chromadb.__version__}"


def interleaved_inserts(x: np.ndarray, batch: int, writers: dict) -> dict[str, float]:
    """Seconds each system spends inserting all of ``x`` in batches of ``batch``, plus its final
    flush. Batch i goes to every system before batch i+1 goes to any, so that a change in
    machine load during the run is shared alike."""
    spent = {key: 0.0 for key in writers}
    for start in range(0, len(x), batch):
        stop = min(start + batch, len(x))
        ids = range(start, stop)
        rows = [{"id": i, "tag": i % 100, "vector": x[i]} for i in ids]   # pymilvus row format
        for key, (insert, _) in writers.items():
            t = time.perf_counter()
            insert(ids, rows, x[start:stop])
            spent[key] += time.perf_counter() - t
    for key, (_, flush) in writers.items():
        t = time.perf_counter()
        flush()
        spent[key] += time.perf_counter() - t
    return spent


def hits_to_ids(result) -> np.ndarray:
    return np.array([[h["id"] for h in hits] for hits in result])


# -- subprocess measurements ----------------------------------------------------------------------
PEAK_KB = '''
def peak_kb():
    # VmHWM: this process's own peak RSS. (ru_maxrss would also count the parent's RSS at the
    # vfork/exec that started us.)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
'''

REOPEN_HARRIER = PEAK_KB + """
import json, resource, sys, time
t0 = time.perf_counter()
import numpy as np
from harrierdb import MilvusClient
t1 = time.perf_counter()
client = MilvusClient(sys.argv[1])
res = client.search("core", np.load(sys.argv[2])[:1], limit=10, search_params={"metric_type": "COSINE"})
t2 = time.perf_counter()
assert len(res[0]) == 10
print(json.dumps({"import": t1 - t0, "open_search": t2 - t1,
                  "maxrss_kb": peak_kb()}))
"""

REOPEN_MILVUS = PEAK_KB + """
import json, resource, sys, time
t0 = time.perf_counter()
import numpy as np
from pymilvus import MilvusClient
t1 = time.perf_counter()
client = MilvusClient(sys.argv[1])
client.load_collection("core")
res = client.search("core", np.load(sys.argv[2])[:1], limit=10, search_params={"metric_type": "COSINE"})
t2 = time.perf_counter()
assert len(res[0]) == 10
client.close()
print(json.dumps({"import": t1 - t0, "open_search": t2 - t1,
                  "maxrss_kb": peak_kb()}))
"""

MEMORY_HARRIER = PEAK_KB + """
import json, resource, sys
import numpy as np
sys.path.insert(0, sys.argv[4])
from bench_core import harrier_open, row_batches
x, q = np.load(sys.argv[2]), np.load(sys.argv[3])
base = peak_kb()
client = harrier_open(sys.argv[1], x.shape[1])
for b in row_batches(x, int(sys.argv[5])):
    client.insert("core", b)
client.flush()
after_insert = peak_kb()
client.search("core", q, limit=10, search_params={"metric_type": "COSINE"})
client.search("core", q[:1], limit=10, search_params={"metric_type": "COSINE"})
print(json.dumps({"base_kb": base, "after_insert_kb": after_insert,
                  "peak_kb": peak_kb()}))
"""


def run_json(script: str, *args: str) -> tuple[dict, float]:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=HERE)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"subprocess failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def reopen(script: str, path: Path, qfile: Path, reps: int = 3) -> dict:
    runs = [run_json(script, str(path), str(qfile)) for _ in range(reps)]
    return {"open_search": statistics.median(r["open_search"] for r, _ in runs),
            "import": statistics.median(r["import"] for r, _ in runs),
            "wall": statistics.median(w for _, w in runs),
            "maxrss_mb": statistics.median(r["maxrss_kb"] for r, _ in runs) / 1024}


# -- report ---------------------------------------------------------------------------------------
def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")) / 1024 ** 2
        mem_s = f", {mem:.0f} GiB RAM"
    except (OSError, StopIteration):
        mem_s = ""
    return f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {model}{mem_s}"


def versions() -> str:
    out = []
    for mod in ("harrierdb", "pymilvus", "milvus_lite", "chromadb", "faiss", "numpy"):
        try:
            m = __import__(mod)
            out.append(f"{mod} {getattr(m, '__version__', '?')}")
        except Exception:
            pass
    return ", ".join(out) + f", Python {sys.version.split()[0]}"


def write_section(text: str) -> None:
    body = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    lines = body.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == SECTION), None)
    if start is None:
        body = body.rstrip("\n") + "\n\n" + text
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        body = "".join(lines[:start]) + text + ("\n" + "".join(lines[end:]) if end < len(lines) else "")
    RESULTS.write_text(body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=100, help="queries in the one batched call")
    ap.add_argument("--single", type=int, default=200, help="single queries for the latency p50")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-chroma", action="store_true")
    ap.add_argument("--skip-milvus", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = ap.parse_args()
    command = "python benchmarks/bench_core.py " + shlex.join(sys.argv[1:])

    import faiss

    CACHE.mkdir(exist_ok=True)
    work = CACHE / f"core-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        report = run(args, work, faiss)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = report.replace("{command}", command.strip())
    print("\n" + report)
    if not args.no_write:
        write_section(report)
        print(f"wrote {RESULTS}")


def run(args, work: Path, faiss) -> str:
    n, dim = args.rows, args.dim
    x, q_all = make_data(n, dim, args.queries + args.single, args.seed)
    q, q1 = q_all[: args.queries], q_all[args.queries:]
    xfile, qfile = work / "x.npy", work / "q.npy"
    np.save(xfile, x)
    np.save(qfile, q)
    say = lambda *a: print(*a, flush=True)  # noqa: E731
    say(f"data: {n} x {dim} float32 ({x.nbytes / 2**20:.0f} MiB), batches of {args.batch}")

    # (a) insert ---------------------------------------------------------------------------------
    res: dict = {"load_start": os.getloadavg()}
    h_path, m_path, c_path = work / "harrier.db", work / "milvus.db", work / "chroma"
    harrier = harrier_open(h_path, dim)
    writers = {"h": (lambda ids, rows, arr: harrier.insert(COLL, rows), lambda: harrier.flush(COLL))}
    milvus = None
    if not args.skip_milvus:
        milvus = milvus_open(m_path, dim)
        writers["m"] = (lambda ids, rows, arr: milvus.insert(COLL, rows), lambda: milvus.flush(COLL))
    chroma_note = "skipped (--skip-chroma)"
    chroma = None
    if not args.skip_chroma:
        chroma, chroma_note = chroma_open(c_path)
        if chroma is not None:
            writers["c"] = (lambda ids, rows, arr: chroma.add(
                ids=[str(i) for i in ids], embeddings=arr, metadatas=[{"tag": i % 100} for i in ids]),
                lambda: None)
        else:
            say(f"Chroma: {chroma_note}")
    spent = interleaved_inserts(x, args.batch, writers)
    for key, secs in spent.items():
        res[f"{key}_insert"] = secs
    say("insert rows/s: " + ", ".join(f"{key} {n / secs:,.0f}" for key, secs in spent.items()))
    if chroma is not None:
        assert chroma.count() == n
        del chroma

    # (b) exact search -----------------------------------------------------------------------------
    # Timings are interleaved (one call of each contender per round, median over the rounds), so
    # that a change in machine load during the run hits all of them alike.
    sp, spl2 = {"metric_type": "COSINE"}, {"metric_type": "L2"}
    t = time.perf_counter()
    h_ids = hits_to_ids(harrier.search(COLL, q, limit=K, search_params=sp))
    res["h_first_search"] = time.perf_counter() - t   # includes loading the cache from SQLite

    def np_scan(qs):
        scores = qs @ x.T
        part = np.argpartition(-scores, K - 1, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1)
        return np.take_along_axis(part, order, axis=1)

    sq = np.einsum("ij,ij->i", x, x)

    def np_scan_l2(qs):
        d = sq[None, :] - 2 * (qs @ x.T)
        part = np.argpartition(d, K - 1, axis=1)[:, :K]
        return np.take_along_axis(part, np.argsort(np.take_along_axis(d, part, axis=1), axis=1), axis=1)

    flat, flat_l2 = faiss.IndexFlatIP(dim), faiss.IndexFlatL2(dim)
    flat.add(x)
    flat_l2.add(x)
    blas_default = faiss.cvar.distance_compute_blas_threshold

    def faiss_blas(index, qs):
        # FAISS scans query by query below distance_compute_blas_threshold queries (128,000 in
        # this build); 20 was the old default and sends a batch of 100 to one BLAS product.
        faiss.cvar.distance_compute_blas_threshold = 20
        try:
            return index.search(qs, K)
        finally:
            faiss.cvar.distance_compute_blas_threshold = blas_default

    truth = np_scan(q)
    res["h_recall"] = recall(h_ids, truth)
    res["f_recall"] = recall(flat.search(q, K)[1], truth)
    res["fb_recall"] = recall(faiss_blas(flat, q)[1], truth)
    res["faiss_blas_default"] = blas_default
    contenders = {
        "h_batch": lambda: harrier.search(COLL, q, limit=K, search_params=sp),
        "np_batch": lambda: np_scan(q),
        "f_batch": lambda: flat.search(q, K),
        "fb_batch": lambda: faiss_blas(flat, q),
        "h_batch_l2": lambda: harrier.search(COLL, q, limit=K, search_params=spl2),
        "np_batch_l2": lambda: np_scan_l2(q),
        "f_batch_l2": lambda: flat_l2.search(q, K),
        "fb_batch_l2": lambda: faiss_blas(flat_l2, q),
    }
    if milvus is not None:
        res["m_recall"] = recall(hits_to_ids(milvus.search(COLL, q, limit=K, search_params=sp)), truth)
        contenders["m_batch"] = lambda: milvus.search(COLL, q, limit=K, search_params=sp)
    res.update(interleaved(contenders, args.reps))
    say(f"batch of {len(q)}: " + ", ".join(f"{k} {res[k] * 1e3:.1f} ms" for k in contenders))

    single = {"h": lambda v: harrier.search(COLL, [v], limit=K, search_params=sp),
              "np": lambda v: np_scan(v[None, :]),
              "f": lambda v: flat.search(v[None, :], K)}
    if milvus is not None:
        single["m"] = lambda v: milvus.search(COLL, [v], limit=K, search_params=sp)
    p50 = {key: statistics.median(v) for key, v in latencies(single, q1).items()}
    say("single-query p50 (ms): " + ", ".join(f"{key} {v * 1e3:.2f}" for key, v in p50.items()))

    harrier.close()
    if milvus is not None:
        milvus.close()
        release_milvus_lite(m_path)

    # (c) reopen -----------------------------------------------------------------------------------
    h_re = reopen(REOPEN_HARRIER, h_path, qfile)
    say(f"HarrierDB reopen + first search: {h_re['open_search']:.3f} s (process wall {h_re['wall']:.2f} s)")
    m_re = reopen(REOPEN_MILVUS, m_path, qfile) if milvus is not None else None
    if m_re:
        say(f"Milvus Lite reopen + first search: {m_re['open_search']:.3f} s (process wall {m_re['wall']:.2f} s)")

    # (d) memory and disk --------------------------------------------------------------------------
    sizes = {"h": du(h_path), "m": du(m_path) if m_path.exists() else None,
             "c": du(c_path) if c_path.exists() else None}
    mem_path = work / "harrier-mem.db"
    mem, _ = run_json(MEMORY_HARRIER, str(mem_path), str(xfile), str(qfile), str(HERE), str(args.batch))
    shutil.rmtree(mem_path, ignore_errors=True)
    say(f"peak RSS (insert + search): {mem['peak_kb'] / 1024:.0f} MiB")

    return render(args, res, p50, h_re, m_re, sizes, mem, chroma_note, x.nbytes)


def render(args, res, p50, h_re, m_re, sizes, mem, chroma_note, raw_bytes) -> str:
    n = args.rows
    nq = args.queries
    mib = 2 ** 20
    rate = {k: n / res[f"{k}_insert"] for k in ("h", "m", "c") if res.get(f"{k}_insert")}
    m_rate = rate.get("m")

    def vs_milvus(r):
        return f"{r / m_rate:.2f}x" if m_rate else "n/a"

    def qps(t):
        return nq / t

    rows = [
        (f"(a) insert, batches of {args.batch} + flush", "HarrierDB", f"{rate['h']:,.0f} rows/s",
         f"{vs_milvus(rate['h'])} Milvus Lite"),
    ]
    if m_rate:
        rows.append(("", "Milvus Lite", f"{m_rate:,.0f} rows/s", "1.00x"))
    if "c" in rate:
        rows.append(("", "Chroma", f"{rate['c']:,.0f} rows/s", f"{vs_milvus(rate['c'])} Milvus Lite"))
    else:
        rows.append(("", "Chroma", chroma_note, ""))
    def batch_row(label, key, note=""):
        t = res[key]
        return ("", label, f"{qps(t):,.0f} QPS ({t * 1e3:.1f} ms)", note)

    def vs(h, base):
        ratio = res[base] / res[h]
        return f"{ratio:.2f}x"

    fb_name = f"FAISS {{}} (BLAS path: distance_compute_blas_threshold=20, default {res['faiss_blas_default']})"
    h_cos = batch_row("HarrierDB", "h_batch",
                      f"{vs('h_batch', 'np_batch')} NumPy, {vs('h_batch', 'f_batch')} FAISS default, "
                      f"{vs('h_batch', 'fb_batch')} FAISS BLAS; recall {res['h_recall']:.3f}")
    rows.append((f"(b) exact top-{K}, {nq} queries in one call, COSINE", *h_cos[1:]))
    rows += [
        ("", "HarrierDB, first search after the inserts", f"{res['h_first_search'] * 1e3:.0f} ms",
         "one-off: loads the in-memory cache from SQLite"),
        batch_row("NumPy scan (q @ X.T + argpartition)", "np_batch", "1.00x"),
        batch_row("FAISS IndexFlatIP (defaults)", "f_batch", f"recall {res['f_recall']:.3f}"),
        batch_row(fb_name.format("IndexFlatIP"), "fb_batch", f"recall {res['fb_recall']:.3f}"),
    ]
    if "m_batch" in res:
        rows.append(batch_row("Milvus Lite (FLAT)", "m_batch",
                              f"HarrierDB is {res['m_batch'] / res['h_batch']:.1f}x faster; recall {res['m_recall']:.3f}"))
    h_l2 = batch_row("HarrierDB", "h_batch_l2",
                     f"{vs('h_batch_l2', 'np_batch_l2')} NumPy, {vs('h_batch_l2', 'f_batch_l2')} FAISS default, "
                     f"{vs('h_batch_l2', 'fb_batch_l2')} FAISS BLAS")
    rows += [
        ("(b') same, L2", *h_l2[1:]),
        batch_row("NumPy scan (row norms precomputed)", "np_batch_l2"),
        batch_row("FAISS IndexFlatL2 (defaults)", "f_batch_l2"),
        batch_row(fb_name.format("IndexFlatL2"), "fb_batch_l2"),
        (f"(b) single query, p50 of {args.single}", "HarrierDB", f"{p50['h'] * 1e3:.2f} ms",
         f"{p50['h'] / p50['np']:.2f}x NumPy's latency"),
        ("", "NumPy scan", f"{p50['np'] * 1e3:.2f} ms", ""),
        ("", "FAISS IndexFlatIP (defaults)", f"{p50['f'] * 1e3:.2f} ms", ""),
    ]
    if "m" in p50:
        rows.append(("", "Milvus Lite (FLAT)", f"{p50['m'] * 1e3:.2f} ms", ""))
    rows += [
        ("(c) reopen: fresh process, open + first search (median of 3)", "HarrierDB",
         f"{h_re['open_search']:.3f} s", f"+{h_re['import']:.2f} s imports; process wall {h_re['wall']:.2f} s; "
         f"RSS {h_re['maxrss_mb']:.0f} MiB"),
    ]
    if m_re:
        rows.append(("", "Milvus Lite", f"{m_re['open_search']:.3f} s",
                     f"+{m_re['import']:.2f} s imports; process wall {m_re['wall']:.2f} s"))
    rows += [
        ("(d) peak RSS, process inserting + searching", "HarrierDB", f"{mem['peak_kb'] / 1024:,.0f} MiB",
         f"{mem['base_kb'] / 1024:,.0f} MiB before the first insert (Python, NumPy, the data); "
         f"{mem['after_insert_kb'] / 1024:,.0f} MiB after inserting"),
        ("(d) size on disk", "HarrierDB", f"{sizes['h'] / mib:,.0f} MiB", f"raw vectors {raw_bytes / mib:,.0f} MiB"),
    ]
    if sizes["m"] is not None:
        rows.append(("", "Milvus Lite", f"{sizes['m'] / mib:,.0f} MiB", ""))
    if sizes["c"] is not None:
        rows.append(("", "Chroma", f"{sizes['c'] / mib:,.0f} MiB", "includes its HNSW index"))

    table = ["| measure | system | result | relative / notes |", "|---|---|---|---|"]
    table += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]

    def verdict(ok):
        return "**met**" if ok else "**not met**"

    ratio_np = res["np_batch"] / res["h_batch"]
    ratio_f = min(res["f_batch"], res["fb_batch"]) / res["h_batch"]   # against FAISS's faster path
    targets = [
        f"- insert >= 50,000 rows/s and >= 2x Milvus Lite: {verdict(rate['h'] >= 50_000 and (not m_rate or rate['h'] >= 2 * m_rate))} "
        f"({rate['h']:,.0f} rows/s, {vs_milvus(rate['h'])})",
        f"- exact top-10 for 100 queries >= 0.8x the bare NumPy / FAISS scan: "
        f"{verdict(ratio_np >= 0.8 and ratio_f >= 0.8)} ({ratio_np:.2f}x NumPy, {ratio_f:.2f}x FAISS's faster "
        "path; COSINE; see the table for L2)",
        f"- reopen <= 1 s: {verdict(h_re['open_search'] <= 1.0)} ({h_re['open_search']:.3f} s open + first "
        f"search; {h_re['wall']:.2f} s for the whole process including Python start-up and imports)",
    ]
    busy = max(res["load_start"][0], os.getloadavg()[0]) > 0.75 * (os.cpu_count() or 1)
    if busy:
        targets.append(
            "- caution: other processes were using the CPUs during this run (see the load averages), so "
            "absolute timings are pessimistic and the search ratios noisy (interleaving shares the load "
            "between the contenders, but many small BLAS calls suffer more from contention than one big one)")
    date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    try:
        load = ("1/5/15-min load average at the start {:.2f} {:.2f} {:.2f}, at the end {:.2f} {:.2f} {:.2f}"
                .format(*res["load_start"], *os.getloadavg()))
    except OSError:
        load = ""
    return "\n".join([
        SECTION, "",
        f"- date: {date}",
        f"- machine: {machine()}; {load}",
        "- command: `{command}`",
        f"- software: {versions()}",
        f"- data: {n:,} x {args.dim} float32, clustered (256 centres), unit length, seed {args.seed}; "
        f"rows are `{{id, tag, vector}}`; HarrierDB collection without an index (exact search), "
        f"Milvus Lite with a FLAT index; Chroma ({chroma_note}) builds its HNSW index while inserting",
        "- inserts are interleaved batch by batch across the systems (each system's time summed), "
        "searches round by round, so that load changes during the run affect all systems alike",
        f"- search timings: median of {args.reps} after one warm-up; recall is against the NumPy scan",
        "", *table, "", "Targets:", *targets, "",
    ])


if __name__ == "__main__":
    main()
