"""``harrier bench``: recall@k against queries per second, HarrierDB beside FAISS and its peers.

Each system is built and measured in a subprocess of its own (so its peak resident memory,
``ru_maxrss``, is its own), over the same base vectors and queries:

* recall@k against exact ground truth (FAISS flat, computed once and cached), counting a hit
  as correct when its true distance is within that of the k-th true neighbour (ties count);
* single-query throughput: one query per call over ``--nq`` queries, with p50/p99 latency;
  HarrierDB's HNSW worker also builds bare FAISS HNSW and times it in the same passes, taking
  turns, as the steady figure to compare with (workers run one after the other see the
  machine at different speeds);
* batch throughput: all ``--nq`` queries in one call;
* filtered search at 1% selectivity: a scalar ``bucket = id % 100``, filter ``bucket == 7``,
  recall against exact filtered ground truth, one query per call;
* build time, size on disk, peak memory, and the time to reopen a built collection.

Datasets: ``clustered`` (synthetic, normalised, cosine), ``fashion-mnist`` (Debian
``dataset-fashion-mnist``: 60k base / 10k queries, 784-d, L2), ``wordnet`` (glosses from Debian
``wordnet-base`` embedded with ``SentenceEmbedding``, 384-d, cosine) and ``npy`` (any base/query
pair). Data sets and ground truth are cached under ``$HARRIER_BENCH_CACHE`` (default
``~/.cache/harrierdb/bench``).

Library use: ``load_dataset`` then ``run_benchmark``; the CLI glue is ``add_parser``/``run``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import gzip
import hashlib
import io
import json
import os
import platform
import pstats
import random
import resource
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

GT_K = 100                 # ground-truth depth cached per data set
FILTER_MODULUS = 100       # bucket = id % 100
FILTER_BUCKET = 7          # the 1% the filtered search keeps
FILTER_EXPR = f"bucket == {FILTER_BUCKET}"
RECALL_EPS = 1e-3          # relative slack on the k-th true distance (ann-benchmarks' rule)
WARMUP_QUERIES = 10
MIN_LOOP_QUERIES = 50      # a time-budgeted loop still runs at least this many queries
SECTION_TITLE = "## ANN: recall vs QPS"

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
WORDNET_DIR = Path("/usr/share/wordnet")

ALL_SYSTEMS = ("harrierdb", "harrierdb-ivf", "faiss-hnsw", "milvus-lite", "chroma", "lancedb", "qdrant")
DEFAULT_SYSTEMS = ALL_SYSTEMS
DATASETS = ("clustered", "fashion-mnist", "wordnet", "npy")


class BenchError(Exception):
    """A data set or system the benchmark cannot use (missing package, bad file, ...)."""


# ==============================================================================================
# Data sets
# ==============================================================================================

@dataclasses.dataclass
class Dataset:
    """Base vectors, queries and exact ground truth (ids and distances, best first)."""

    name: str
    base: np.ndarray            # (n, d) float32
    queries: np.ndarray         # (nq, d) float32
    metric: str                 # "L2" | "IP" | "COSINE" (COSINE data is stored unit-length)
    gt_ids: np.ndarray          # (nq, >=k) int64
    gt_dist: np.ndarray         # (nq, >=k) float32: squared L2, or similarity for IP/COSINE
    note: str = ""
    base_path: str | None = None      # .npy files a worker process reloads
    queries_path: str | None = None

    @property
    def label(self) -> str:
        n, d = self.base.shape
        return f"{self.name} {n:,} x {d} ({self.metric}), {len(self.queries):,} queries"

    def filtered_truth(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k (ids, distances) among rows with ``id % 100 == 7``."""
        ids = np.arange(FILTER_BUCKET, len(self.base), FILTER_MODULUS)
        d, pos = exact_knn(self.base[ids], self.queries, min(k, len(ids)), self.metric)
        return ids[pos], d


def cache_dir() -> Path:
    path = Path(os.environ.get("HARRIER_BENCH_CACHE") or Path.home() / ".cache" / "harrierdb" / "bench")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _faiss_metric(metric: str) -> int:
    import faiss

    return faiss.METRIC_L2 if metric == "L2" else faiss.METRIC_INNER_PRODUCT


def exact_knn(base: np.ndarray, queries: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Exact (distances, ids) with FAISS flat: squared L2 ascending, or similarity descending."""
    import faiss

    index = faiss.IndexFlat(base.shape[1], _faiss_metric(metric))
    index.add(np.ascontiguousarray(base, dtype=np.float32))
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


def _normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms == 0, 1, norms)).astype(np.float32)


def _cached_truth(key: str, base: np.ndarray, queries: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth at depth GT_K, computed once with FAISS flat and cached as .npz."""
    path = cache_dir() / f"{key}-gt{GT_K}.npz"
    if path.is_file():
        with np.load(path) as z:
            if z["ids"].shape[0] == len(queries):
                return z["ids"], z["dist"]
    _log(f"computing exact ground truth for {key} ({len(queries):,} queries x {len(base):,} rows)")
    dist, ids = exact_knn(base, queries, min(GT_K, len(base)), metric)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, ids=ids, dist=dist)
    os.replace(tmp, path)
    return ids, dist


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def make_clustered(rows: int, dim: int, n_queries: int = 1000, seed: int = 0, n_clusters: int | None = None,
                   intrinsic: int = 16, spread: float = 0.8, noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors in clusters, each spread over a random ``intrinsic``-dimensional subspace plus
    a little isotropic noise (embedding-like: high ambient, low intrinsic dimension).
    Queries come from the same distribution but are not base rows."""
    rng = np.random.default_rng(seed)
    n_clusters = n_clusters or max(1, min(rows // 1000, 1000))
    intrinsic = min(intrinsic, dim)
    centers = _normalize(rng.standard_normal((n_clusters, dim)).astype(np.float32))
    total = rows + n_queries
    assign = rng.integers(n_clusters, size=total)
    out = np.empty((total, dim), np.float32)
    for c in range(n_clusters):
        idx = np.flatnonzero(assign == c)
        if not len(idx):
            continue
        basis = np.linalg.qr(rng.standard_normal((dim, intrinsic)))[0].T.astype(np.float32)
        latent = rng.standard_normal((len(idx), intrinsic)).astype(np.float32) * (spread / np.sqrt(intrinsic))
        jitter = rng.standard_normal((len(idx), dim)).astype(np.float32) * (noise / np.sqrt(dim))
        out[idx] = centers[c] + latent @ basis + jitter
    out = _normalize(out)
    return out[:rows], out[rows:]


def load_clustered(rows: int, dim: int, n_queries: int = 1000, seed: int = 0, cache: bool = True) -> Dataset:
    key = f"clustered-{rows}x{dim}-q{n_queries}-s{seed}"
    base_path, q_path = cache_dir() / f"{key}-base.npy", cache_dir() / f"{key}-queries.npy"
    if cache and base_path.is_file() and q_path.is_file():
        base, queries = np.load(base_path), np.load(q_path)
    else:
        base, queries = make_clustered(rows, dim, n_queries, seed)
        if cache:
            _save_npy(base_path, base)
            _save_npy(q_path, queries)
    if cache:
        ids, dist = _cached_truth(key, base, queries, "COSINE")
    else:
        dist, ids = exact_knn(base, queries, min(GT_K, rows), "COSINE")
    return Dataset("clustered", base, queries, "COSINE", ids, dist,
                   note=f"synthetic: {max(1, min(rows // 1000, 1000))} clusters, intrinsic dim 16, seed {seed}",
                   base_path=str(base_path) if cache else None, queries_path=str(q_path) if cache else None)


def _read_idx_gz(path: Path) -> np.ndarray:
    """An MNIST-style IDX file (gzip): big-endian magic, dims, then uint8 data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise BenchError(f"{path}: not a uint8 IDX file")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(directory: Path = FASHION_DIR) -> Dataset:
    """ann-benchmarks' split: the 60k training images are the base, the 10k test images the
    queries; 784-d raw pixel values as float32, Euclidean."""
    key = "fashion-mnist-784-euclidean"
    base_path, q_path = cache_dir() / f"{key}-base.npy", cache_dir() / f"{key}-queries.npy"
    if not (base_path.is_file() and q_path.is_file()):
        train = directory / "train-images-idx3-ubyte.gz"
        test = directory / "t10k-images-idx3-ubyte.gz"
        if not train.is_file() or not test.is_file():
            raise BenchError(f"fashion-mnist: no IDX files in {directory}; "
                             "apt-get install dataset-fashion-mnist")
        _save_npy(base_path, _read_idx_gz(train).reshape(-1, 784).astype(np.float32))
        _save_npy(q_path, _read_idx_gz(test).reshape(-1, 784).astype(np.float32))
    base, queries = np.load(base_path), np.load(q_path)
    ids, dist = _cached_truth(key, base, queries, "L2")
    return Dataset("fashion-mnist", base, queries, "L2", ids, dist,
                   note="Debian dataset-fashion-mnist, ann-benchmarks split (train = base, t10k = queries)",
                   base_path=str(base_path), queries_path=str(q_path))


def wordnet_glosses(directory: Path = WORDNET_DIR) -> list[str]:
    """Distinct glosses (the text after ``|``) of every synset in data.{noun,verb,adj,adv}."""
    seen: dict[str, None] = {}
    for pos in ("noun", "verb", "adj", "adv"):
        path = directory / f"data.{pos}"
        if not path.is_file():
            raise BenchError(f"wordnet: {path} is missing; apt-get install wordnet-base")
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  ") or "|" not in line:
                    continue  # the licence header
                gloss = line.split("|", 1)[1].strip()
                if gloss:
                    seen.setdefault(gloss, None)
    return list(seen)


def load_wordnet(limit: int = 0, n_queries: int = 1000, seed: int = 0) -> Dataset:
    """``limit`` shuffled glosses (0: every one but the queries, ~116k) as the base and
    ``n_queries`` held-out ones as queries, embedded with ``SentenceEmbedding()`` (MiniLM int8,
    384-d, unit length), cosine. The first run embeds them (minutes); later runs read the cache."""
    glosses = wordnet_glosses()
    random.Random(seed).shuffle(glosses)
    limit = min(limit, len(glosses) - n_queries) if limit else len(glosses) - n_queries
    key = f"wordnet-{limit}-q{n_queries}-s{seed}-minilm-int8"
    base_path, q_path = cache_dir() / f"{key}-base.npy", cache_dir() / f"{key}-queries.npy"
    if not (base_path.is_file() and q_path.is_file()):
        try:
            from harrierdb.embed.dense import SentenceEmbedding

            model = SentenceEmbedding()
        except Exception as exc:  # the embedding stack is optional (and may be mid-change)
            raise BenchError(f"wordnet: SentenceEmbedding is unavailable ({type(exc).__name__}: {exc})") from exc
        texts = glosses[:limit] + glosses[-n_queries:]
        _log(f"embedding {len(texts):,} WordNet glosses (cached afterwards in {cache_dir()})")
        vectors = _normalize(np.asarray(model.encode_documents(texts), dtype=np.float32))
        _save_npy(base_path, vectors[:limit])
        _save_npy(q_path, vectors[limit:])
    base, queries = np.load(base_path), np.load(q_path)
    ids, dist = _cached_truth(key, base, queries, "COSINE")
    return Dataset("wordnet", base, queries, "COSINE", ids, dist,
                   note=f"Debian wordnet-base glosses, {limit:,} base + {n_queries:,} held-out queries, "
                        "SentenceEmbedding (all-MiniLM-L6-v2 int8)",
                   base_path=str(base_path), queries_path=str(q_path))


def load_npy(base: str, queries: str, metric: str = "L2") -> Dataset:
    metric = metric.upper()
    if metric not in ("L2", "IP", "COSINE"):
        raise BenchError(f"--metric must be L2, IP or COSINE, got {metric!r}")
    try:
        b = np.load(base, allow_pickle=False).astype(np.float32, copy=False)
        q = np.load(queries, allow_pickle=False).astype(np.float32, copy=False)
    except (OSError, ValueError) as exc:
        raise BenchError(f"cannot read .npy pair: {exc}") from None
    if b.ndim != 2 or q.ndim != 2 or b.shape[1] != q.shape[1]:
        raise BenchError(f"base {b.shape} and queries {q.shape} must be 2-D with the same width")
    if metric == "COSINE":
        b, q = _normalize(b), _normalize(q)
    ident = hashlib.sha1()
    for p in (base, queries):
        st = os.stat(p)
        ident.update(f"{os.path.abspath(p)}:{st.st_size}:{st.st_mtime_ns}".encode())
    key = f"npy-{Path(base).stem}-{ident.hexdigest()[:12]}-{metric}"
    ids, dist = _cached_truth(key, b, q, metric)
    base_path, q_path = base, queries
    if metric == "COSINE":  # workers need the normalised copies
        base_path, q_path = str(cache_dir() / f"{key}-base.npy"), str(cache_dir() / f"{key}-queries.npy")
        if not Path(base_path).is_file():
            _save_npy(Path(base_path), b)
            _save_npy(Path(q_path), q)
    return Dataset(f"npy:{Path(base).name}", np.ascontiguousarray(b), np.ascontiguousarray(q), metric,
                   ids, dist, note=f"{base} / {queries}", base_path=base_path, queries_path=q_path)


def load_dataset(name: str, *, rows: int = 100_000, dim: int = 384, limit: int = 0, seed: int = 0,
                 base: str | None = None, queries: str | None = None, metric: str = "L2",
                 n_queries: int | None = None) -> Dataset:
    """A data set by name; ``n_queries`` keeps only the first that many queries."""
    if name == "clustered":
        ds = load_clustered(rows, dim, max(n_queries or 1000, 1), seed)
    elif name == "fashion-mnist":
        ds = load_fashion_mnist()
    elif name == "wordnet":
        ds = load_wordnet(limit, seed=seed)
    elif name == "npy":
        if not base or not queries:
            raise BenchError("--dataset npy needs --base X.npy --queries Y.npy")
        ds = load_npy(base, queries, metric)
    else:
        raise BenchError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    if n_queries and n_queries < len(ds.queries):
        ds.queries, ds.gt_ids, ds.gt_dist = ds.queries[:n_queries], ds.gt_ids[:n_queries], ds.gt_dist[:n_queries]
    return ds


# ==============================================================================================
# Recall
# ==============================================================================================

def _true_distances(base: np.ndarray, queries: np.ndarray, ids: np.ndarray, metric: str) -> np.ndarray:
    """Distances (squared L2, or similarity) of ``ids`` (nq, k; -1 = none) to each query."""
    safe = np.where(ids >= 0, ids, 0)
    vecs = base[safe.ravel()].reshape(*ids.shape, base.shape[1])
    if metric == "L2":
        diff = vecs - queries[:, None, :]
        return np.einsum("qkd,qkd->qk", diff, diff)
    return np.einsum("qkd,qd->qk", vecs, queries)


def recall_at_k(ids: np.ndarray, queries: np.ndarray, base: np.ndarray, gt_dist: np.ndarray, k: int,
                metric: str, allowed: Callable[[np.ndarray], np.ndarray] | None = None) -> float:
    """Mean share of the k returned ids whose true distance is within the k-th true neighbour's
    (with a 1e-3 relative slack, so exact ties count); ids that are -1, repeated, or excluded
    by ``allowed`` count as misses."""
    ids = _pad_ids(ids, k)
    kth = gt_dist[:, min(k, gt_dist.shape[1]) - 1]
    d = _true_distances(base, queries, ids, metric)
    slack = RECALL_EPS * np.abs(kth) + 1e-6
    good = d <= (kth + slack)[:, None] if metric == "L2" else d >= (kth - slack)[:, None]
    good &= ids >= 0
    if allowed is not None:
        good &= allowed(ids)
    for row in range(len(ids)):  # a repeated id is one neighbour
        _, first = np.unique(ids[row], return_index=True)
        dup = np.ones(k, bool)
        dup[first] = False
        good[row] &= ~dup
    return float(good.sum() / (len(ids) * min(k, gt_dist.shape[1])))


def _pad_ids(ids: Any, k: int) -> np.ndarray:
    if isinstance(ids, np.ndarray) and ids.ndim == 2 and ids.shape[1] == k:
        return ids.astype(np.int64, copy=False)
    out = np.full((len(ids), k), -1, np.int64)
    for i, row in enumerate(ids):
        row = list(row)[:k]
        out[i, :len(row)] = row
    return out


# ==============================================================================================
# Systems
# ==============================================================================================

@dataclasses.dataclass
class BenchConfig:
    k: int = 10
    efs: tuple[int, ...] = (16, 32, 64, 128, 256)
    nprobes: tuple[int, ...] = (4, 8, 16, 32, 64)
    M: int = 16
    ef_construction: int = 200
    nlist: int = 0                  # 0: about 4 * sqrt(rows), a power of two
    filtered: bool = True
    batch: bool = True
    insert_batch: int = 10_000
    threads: int = 0                # FAISS/OpenMP threads (0: leave the default)
    profile_path: str | None = None # cProfile text of HarrierDB's single-query path
    profile_ef: int = 0             # ef to profile (0: the smallest with recall >= 0.95)
    loop_budget_s: float = 120      # per query loop; slower systems run fewer queries (0: no cap)
    repeat: int = 3                 # timed passes per measurement, the fastest kept (noise)
    beside_faiss: bool = True       # HarrierDB's HNSW rows: time bare FAISS in the same passes

    def resolved_nlist(self, rows: int) -> int:
        if self.nlist:
            return self.nlist
        return int(2 ** round(np.log2(max(4 * np.sqrt(rows), 16))))


class System:
    """A system under test: build once, then search at each knob setting."""

    name = "?"
    index = "?"
    knob_name = "ef"
    supports_filter = True
    supports_batch = True

    def __init__(self, cfg: BenchConfig):
        self.cfg = cfg
        self.workdir: Path | None = None
        self.build_parts: dict[str, float] = {}
        self.notes: list[str] = []

    @classmethod
    def available(cls) -> str | None:
        """None when usable, else why not (a missing package)."""
        return None

    def knobs(self) -> list[int]:
        return list(self.cfg.efs)

    def build(self, ds: Dataset, workdir: Path) -> None:
        raise NotImplementedError

    def set_knob(self, value: int) -> None:
        raise NotImplementedError

    def search(self, q: np.ndarray, k: int) -> list[int]:
        raise NotImplementedError

    def search_batch(self, qs: np.ndarray, k: int) -> list[list[int]]:
        raise NotImplementedError

    def search_filtered(self, q: np.ndarray, k: int) -> list[int]:
        raise NotImplementedError

    def reopen(self, q: np.ndarray, k: int) -> float | None:
        """Seconds to open the persisted collection again and answer one query."""
        return None

    def disk_bytes(self) -> int | None:
        return _du(self.workdir) if self.workdir else None

    def close(self) -> None:
        pass


def _du(path: Path | None) -> int:
    if path is None or not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _missing(module: str, pip_name: str) -> str | None:
    import importlib.util

    return None if importlib.util.find_spec(module) else f"{pip_name} is not installed (pip install {pip_name})"


class HarrierSystem(System):
    """HarrierDB through its MilvusClient API, as an application would use it."""

    name = "harrierdb"
    index = "HNSW"

    def __init__(self, cfg: BenchConfig, index_type: str = "HNSW"):
        super().__init__(cfg)
        self.index = index_type
        self.knob_name = "ef" if index_type == "HNSW" else "nprobe"
        if index_type != "HNSW":
            self.name = "harrierdb-ivf"
        self.client: Any = None
        self.params: dict = {}

    def knobs(self) -> list[int]:
        return list(self.cfg.efs) if self.index == "HNSW" else list(self.cfg.nprobes)

    def _index_params(self, client: Any, metric: str, rows: int) -> Any:
        ip = client.prepare_index_params()
        if self.index == "HNSW":
            params = {"M": self.cfg.M, "efConstruction": self.cfg.ef_construction}
        else:
            params = {"nlist": self.cfg.resolved_nlist(rows)}
            self.notes.append(f"nlist={params['nlist']}")
        ip.add_index("vector", index_type=self.index, metric_type=metric, params=params)
        return ip

    def build(self, ds: Dataset, workdir: Path) -> None:
        from harrierdb import DataType, MilvusClient

        self.workdir = workdir / "harrier.db"
        self.path = str(self.workdir)
        t0 = time.perf_counter()
        client = self.client = MilvusClient(self.path)
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=ds.base.shape[1])
        schema.add_field("bucket", DataType.INT64)
        client.create_collection("bench", schema=schema,
                                 index_params=self._index_params(client, ds.metric, len(ds.base)))
        step = self.cfg.insert_batch
        for start in range(0, len(ds.base), step):
            chunk = ds.base[start:start + step]
            client.insert("bench", [{"id": i, "vector": v, "bucket": i % FILTER_MODULUS}
                                    for i, v in enumerate(chunk, start)])
        t1 = time.perf_counter()
        client.load_collection("bench")  # reads the rows back and builds (and saves) the index
        t2 = time.perf_counter()
        self.build_parts = {"insert_s": t1 - t0, "index_s": t2 - t1}

    def set_knob(self, value: int) -> None:
        self.params = {"params": {self.knob_name: value}}

    def search(self, q: np.ndarray, k: int) -> list[int]:
        res = self.client.search("bench", data=q[None, :], limit=k, search_params=self.params)
        return [h["id"] for h in res[0]]

    def search_batch(self, qs: np.ndarray, k: int) -> list[list[int]]:
        res = self.client.search("bench", data=qs, limit=k, search_params=self.params)
        return [[h["id"] for h in hits] for hits in res]

    def search_filtered(self, q: np.ndarray, k: int) -> list[int]:
        res = self.client.search("bench", data=q[None, :], limit=k, filter=FILTER_EXPR,
                                 search_params=self.params)
        return [h["id"] for h in res[0]]

    def kernel(self) -> Callable[[np.ndarray, int], Any] | None:
        """A search that calls HarrierDB's own FAISS index directly, bypassing the engine (to
        split a query's time into FAISS and HarrierDB's overhead); None if the internals moved."""
        import faiss

        try:
            ann = self.client._db.collection("bench").indexes.ann["vector"]
            index = ann.index
        except (AttributeError, KeyError, TypeError):
            return None
        value = self.params["params"][self.knob_name]
        params = (faiss.SearchParametersHNSW(efSearch=value) if self.knob_name == "ef"
                  else faiss.SearchParametersIVF(nprobe=value))

        def search(q: np.ndarray, k: int) -> Any:
            # one query runs serially in FAISS, so the engine calls it as is, and so does this
            return index.search(q[None, :], k, params=params)[1][0]
        return search

    def reopen(self, q: np.ndarray, k: int) -> float | None:
        from harrierdb import MilvusClient

        self.client.close()
        t0 = time.perf_counter()
        self.client = MilvusClient(self.path)
        self.client.search("bench", data=q[None, :], limit=k, search_params=self.params)
        return time.perf_counter() - t0

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


class FaissHnswSystem(System):
    """Bare ``faiss.IndexHNSWFlat``: the floor HarrierDB's HNSW path is measured against."""

    name = "faiss-hnsw"
    index = "HNSW"

    def build(self, ds: Dataset, workdir: Path) -> None:
        import faiss

        self.workdir = workdir / "faiss.index"
        t0 = time.perf_counter()
        self.faiss = faiss.IndexHNSWFlat(ds.base.shape[1], self.cfg.M, _faiss_metric(ds.metric))
        self.faiss.hnsw.efConstruction = self.cfg.ef_construction
        self.faiss.add(np.ascontiguousarray(ds.base, dtype=np.float32))
        t1 = time.perf_counter()
        faiss.write_index(self.faiss, str(self.workdir))
        self.build_parts = {"index_s": t1 - t0, "save_s": time.perf_counter() - t1}
        bitmap = np.zeros(len(ds.base), dtype=bool)
        bitmap[FILTER_BUCKET::FILTER_MODULUS] = True
        self._packed = np.packbits(bitmap, bitorder="little")  # the selector borrows this buffer
        self.selector = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(self._packed))

    def set_knob(self, value: int) -> None:
        import faiss

        self.faiss.hnsw.efSearch = value
        self.filter_params = faiss.SearchParametersHNSW(efSearch=value, sel=self.selector)

    def search(self, q: np.ndarray, k: int) -> list[int]:
        return self.faiss.search(q[None, :], k)[1][0]

    def search_batch(self, qs: np.ndarray, k: int) -> np.ndarray:
        return self.faiss.search(qs, k)[1]

    def search_filtered(self, q: np.ndarray, k: int) -> list[int]:
        return self.faiss.search(q[None, :], k, params=self.filter_params)[1][0]

    def reopen(self, q: np.ndarray, k: int) -> float | None:
        import faiss

        ef = self.faiss.hnsw.efSearch
        t0 = time.perf_counter()
        index = faiss.read_index(str(self.workdir))
        index.hnsw.efSearch = ef
        index.search(q[None, :], k)
        elapsed = time.perf_counter() - t0
        self.faiss = index
        return elapsed


class MilvusLiteSystem(System):
    """Milvus Lite through pymilvus (local ``.db`` URI), HNSW at the same M/efConstruction/ef."""

    name = "milvus-lite"
    index = "HNSW"

    @classmethod
    def available(cls) -> str | None:
        return _missing("pymilvus", "pymilvus") or _missing("milvus_lite", "milvus-lite")

    def build(self, ds: Dataset, workdir: Path) -> None:
        from pymilvus import DataType, MilvusClient

        self.workdir = workdir / "milvus"
        self.workdir.mkdir()
        self.path = str(self.workdir / "milvus.db")
        t0 = time.perf_counter()
        self.client = client = MilvusClient(self.path)
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=ds.base.shape[1])
        schema.add_field("bucket", DataType.INT64)
        ip = client.prepare_index_params()
        ip.add_index("vector", index_type="HNSW", metric_type=ds.metric,
                     params={"M": self.cfg.M, "efConstruction": self.cfg.ef_construction})
        client.create_collection("bench", schema=schema, index_params=ip)
        step = min(self.cfg.insert_batch, 5000)
        for start in range(0, len(ds.base), step):
            chunk = ds.base[start:start + step]
            client.insert("bench", [{"id": i, "vector": v.tolist(), "bucket": i % FILTER_MODULUS}
                                    for i, v in enumerate(chunk, start)])
        t1 = time.perf_counter()
        client.flush("bench")
        client.load_collection("bench")
        client.search("bench", data=[ds.queries[0].tolist()], limit=1)  # index ready
        self.build_parts = {"insert_s": t1 - t0, "index_s": time.perf_counter() - t1}
        self.params: dict = {}

    def set_knob(self, value: int) -> None:
        self.params = {"params": {"ef": value}}

    def search(self, q: np.ndarray, k: int) -> list[int]:
        res = self.client.search("bench", data=[q.tolist()], limit=k, search_params=self.params)
        return [h["id"] for h in res[0]]

    def search_batch(self, qs: np.ndarray, k: int) -> list[list[int]]:
        res = self.client.search("bench", data=qs.tolist(), limit=k, search_params=self.params)
        return [[h["id"] for h in hits] for hits in res]

    def search_filtered(self, q: np.ndarray, k: int) -> list[int]:
        res = self.client.search("bench", data=[q.tolist()], limit=k, filter=FILTER_EXPR,
                                 search_params=self.params)
        return [h["id"] for h in res[0]]

    def reopen(self, q: np.ndarray, k: int) -> float | None:
        from pymilvus import MilvusClient

        self.client.close()
        t0 = time.perf_counter()
        self.client = MilvusClient(self.path)
        self.client.load_collection("bench")
        self.client.search("bench", data=[q.tolist()], limit=k, search_params=self.params)
        return time.perf_counter() - t0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()


class ChromaSystem(System):
    """Chroma's persistent local client (hnswlib): max_neighbors=M, ef_construction, ef_search."""

    name = "chroma"
    index = "HNSW"

    @classmethod
    def available(cls) -> str | None:
        return _missing("chromadb", "chromadb")

    def _open(self) -> Any:
        import chromadb
        from chromadb.config import Settings

        return chromadb.PersistentClient(path=str(self.workdir), settings=Settings(anonymized_telemetry=False))

    def build(self, ds: Dataset, workdir: Path) -> None:
        self.workdir = workdir / "chroma"
        space = {"L2": "l2", "IP": "ip", "COSINE": "cosine"}[ds.metric]
        t0 = time.perf_counter()
        self.client = self._open()
        self.coll = self.client.create_collection(
            "bench", embedding_function=None,
            configuration={"hnsw": {"space": space, "max_neighbors": self.cfg.M,
                                    "ef_construction": self.cfg.ef_construction,
                                    "ef_search": self.cfg.efs[0]}})
        step = min(self.client.get_max_batch_size(), self.cfg.insert_batch)
        for start in range(0, len(ds.base), step):
            stop = min(start + step, len(ds.base))
            self.coll.add(ids=[str(i) for i in range(start, stop)], embeddings=ds.base[start:stop],
                          metadatas=[{"bucket": i % FILTER_MODULUS} for i in range(start, stop)])
        self.warm_query = np.ascontiguousarray(ds.queries[:1], dtype=np.float32)
        self.coll.query(query_embeddings=self.warm_query, n_results=1, include=[])  # index ready
        self.build_parts = {"insert_s": time.perf_counter() - t0}

    def set_knob(self, value: int) -> None:
        # A loaded collection keeps the ef_search it was opened with: modify, then drop the
        # client's cached system and reopen so the index is loaded with the new value.
        from chromadb.api.client import SharedSystemClient

        self.coll.modify(configuration={"hnsw": {"ef_search": value}})
        SharedSystemClient.clear_system_cache()
        self.client = self._open()
        self.coll = self.client.get_collection("bench", embedding_function=None)
        self.coll.query(query_embeddings=self.warm_query, n_results=1, include=[])

    def search(self, q: np.ndarray, k: int) -> list[int]:
        return [int(i) for i in self.coll.query(query_embeddings=q[None, :], n_results=k, include=[])["ids"][0]]

    def search_batch(self, qs: np.ndarray, k: int) -> list[list[int]]:
        res = self.coll.query(query_embeddings=qs, n_results=k, include=[])["ids"]
        return [[int(i) for i in row] for row in res]

    def search_filtered(self, q: np.ndarray, k: int) -> list[int]:
        res = self.coll.query(query_embeddings=q[None, :], n_results=k, include=[],
                              where={"bucket": FILTER_BUCKET})
        return [int(i) for i in res["ids"][0]]

    def reopen(self, q: np.ndarray, k: int) -> float | None:
        from chromadb.api.client import SharedSystemClient

        SharedSystemClient.clear_system_cache()
        t0 = time.perf_counter()
        client = self._open()
        coll = client.get_collection("bench", embedding_function=None)
        coll.query(query_embeddings=q[None, :], n_results=k, include=[])
        return time.perf_counter() - t0


class LanceSystem(System):
    """LanceDB (embedded): IVF_HNSW_FLAT with one partition (a plain HNSW graph), m=M,
    ef_construction, searched with ``.ef(...)``; a bitmap scalar index on ``bucket``."""

    name = "lancedb"
    index = "IVF_HNSW_FLAT"

    @classmethod
    def available(cls) -> str | None:
        return _missing("lancedb", "lancedb")

    def build(self, ds: Dataset, workdir: Path) -> None:
        os.environ.setdefault("RUST_LOG", "error")
        import lancedb
        import pyarrow as pa
        from lancedb.index import IvfHnswFlat

        self.workdir = workdir / "lance"
        self.metric = {"L2": "l2", "IP": "dot", "COSINE": "cosine"}[ds.metric]
        t0 = time.perf_counter()
        self.db = lancedb.connect(str(self.workdir))
        n, d = ds.base.shape
        ids = np.arange(n, dtype=np.int64)
        table = pa.table({"id": ids, "bucket": ids % FILTER_MODULUS,
                          "vector": pa.FixedSizeListArray.from_arrays(
                              pa.array(np.ascontiguousarray(ds.base, np.float32).ravel()), d)})
        self.table = self.db.create_table("bench", data=table)
        t1 = time.perf_counter()
        self.table.create_index("vector", config=IvfHnswFlat(
            distance_type=self.metric, num_partitions=1, m=self.cfg.M, ef_construction=self.cfg.ef_construction))
        self.table.create_scalar_index("bucket", index_type="BITMAP")
        self.build_parts = {"insert_s": t1 - t0, "index_s": time.perf_counter() - t1}
        self.ef = self.cfg.efs[0]

    def set_knob(self, value: int) -> None:
        self.ef = value

    def _query(self, table: Any, q: Any, k: int) -> Any:
        return table.search(q).distance_type(self.metric).limit(k).ef(self.ef).select(["id", "_distance"])

    def search(self, q: np.ndarray, k: int) -> list[int]:
        return self._query(self.table, q, k).to_arrow()["id"].to_pylist()

    def search_batch(self, qs: np.ndarray, k: int) -> list[list[int]]:
        res = self._query(self.table, list(qs), k).to_arrow()
        out: list[list[int]] = [[] for _ in range(len(qs))]
        for qi, i in zip(res["query_index"].to_pylist(), res["id"].to_pylist()):
            out[qi].append(i)
        return out

    def search_filtered(self, q: np.ndarray, k: int) -> list[int]:
        query = self._query(self.table, q, k).where(f"bucket = {FILTER_BUCKET}", prefilter=True)
        return query.to_arrow()["id"].to_pylist()

    def reopen(self, q: np.ndarray, k: int) -> float | None:
        import lancedb

        t0 = time.perf_counter()
        table = lancedb.connect(str(self.workdir)).open_table("bench")
        self._query(table, q, k).to_arrow()
        return time.perf_counter() - t0


class QdrantSystem(System):
    """Qdrant's local mode (``QdrantClient(path=...)``): an exact NumPy scan, it has no HNSW,
    so it has one setting."""

    name = "qdrant"
    index = "local (exact)"
    knob_name = "-"

    @classmethod
    def available(cls) -> str | None:
        return _missing("qdrant_client", "qdrant-client")

    def knobs(self) -> list[int]:
        return [0]

    def build(self, ds: Dataset, workdir: Path) -> None:
        from qdrant_client import QdrantClient, models

        self.models = models
        self.workdir = workdir / "qdrant"
        distance = {"L2": models.Distance.EUCLID, "IP": models.Distance.DOT,
                    "COSINE": models.Distance.COSINE}[ds.metric]
        t0 = time.perf_counter()
        self.client = QdrantClient(path=str(self.workdir))
        self.client.create_collection("bench", vectors_config=models.VectorParams(size=ds.base.shape[1],
                                                                                   distance=distance))
        step = 2000
        for start in range(0, len(ds.base), step):
            stop = min(start + step, len(ds.base))
            self.client.upsert("bench", points=models.Batch(
                ids=list(range(start, stop)), vectors=ds.base[start:stop].tolist(),
                payloads=[{"bucket": i % FILTER_MODULUS} for i in range(start, stop)]), wait=True)
        self.build_parts = {"insert_s": time.perf_counter() - t0}
        self.filter = models.Filter(must=[models.FieldCondition(
            key="bucket", match=models.MatchValue(value=FILTER_BUCKET))])

    def set_knob(self, value: int) -> None:
        pass

    def search(self, q: np.ndarray, k: int) -> list[int]:
        return [p.id for p in self.client.query_points("bench", query=q.tolist(), limit=k).points]

    def search_batch(self, qs: np.ndarray, k: int) -> list[list[int]]:
        requests = [self.models.QueryRequest(query=q.tolist(), limit=k) for q in qs]
        return [[p.id for p in r.points] for r in self.client.query_batch_points("bench", requests=requests)]

    def search_filtered(self, q: np.ndarray, k: int) -> list[int]:
        res = self.client.query_points("bench", query=q.tolist(), limit=k, query_filter=self.filter)
        return [p.id for p in res.points]

    def reopen(self, q: np.ndarray, k: int) -> float | None:
        from qdrant_client import QdrantClient

        self.client.close()
        t0 = time.perf_counter()
        self.client = QdrantClient(path=str(self.workdir))
        self.client.query_points("bench", query=q.tolist(), limit=k)
        return time.perf_counter() - t0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()


SYSTEMS: dict[str, Callable[[BenchConfig], System]] = {
    "harrierdb": lambda cfg: HarrierSystem(cfg, "HNSW"),
    "harrierdb-ivf": lambda cfg: HarrierSystem(cfg, "IVF_FLAT"),
    "faiss-hnsw": FaissHnswSystem,
    "milvus-lite": MilvusLiteSystem,
    "chroma": ChromaSystem,
    "lancedb": LanceSystem,
    "qdrant": QdrantSystem,
}
_CLASSES: dict[str, type[System]] = {
    "harrierdb": HarrierSystem, "harrierdb-ivf": HarrierSystem, "faiss-hnsw": FaissHnswSystem,
    "milvus-lite": MilvusLiteSystem, "chroma": ChromaSystem, "lancedb": LanceSystem, "qdrant": QdrantSystem,
}
PEERS = ("milvus-lite", "chroma", "lancedb", "qdrant")


def system_unavailable(name: str) -> str | None:
    if name not in _CLASSES:
        return f"unknown system {name!r}; choose from {', '.join(ALL_SYSTEMS)}"
    return _CLASSES[name].available()


# ==============================================================================================
# Measuring one system
# ==============================================================================================

def _peak_rss_mb() -> float:
    """Peak resident memory of this process and of its waited-for children (MiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    scale = 1 / 1024 / 1024 if sys.platform == "darwin" else 1 / 1024  # bytes on macOS, KiB on Linux
    return max(own, kids) * scale


def _current_rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _timed_loop(fn: Callable[[np.ndarray, int], Any], queries: np.ndarray, k: int,
                budget_s: float = 0) -> tuple[list, np.ndarray]:
    """Results and latencies of one call per query; with ``budget_s``, stops early (after at
    least MIN_LOOP_QUERIES) once that much time was spent, for the slowest systems."""
    for q in queries[:WARMUP_QUERIES]:
        fn(q, k)
    out, lat = [], np.empty(len(queries))
    clock = time.perf_counter
    spent = 0.0
    for i, q in enumerate(queries):
        t0 = clock()
        out.append(fn(q, k))
        lat[i] = clock() - t0
        spent += lat[i]
        if budget_s and spent > budget_s and i + 1 >= MIN_LOOP_QUERIES:
            break
    return out, lat[:len(out)]


def _in_filter(ids: np.ndarray) -> np.ndarray:
    return ids % FILTER_MODULUS == FILTER_BUCKET


def _best_of(passes: int, budget_s: float, run: Callable[[], tuple[Any, float]]) -> tuple[Any, float]:
    """Run a timed measurement up to ``passes`` times and keep the fastest (result, seconds);
    another pass is skipped when it would not fit in ``budget_s``, or when ``run`` returns
    seconds=None (a truncated pass)."""
    best, best_s = run()
    spent = best_s
    for _ in range(passes - 1):
        if best_s is None or (budget_s and spent + best_s > budget_s):
            break
        result, secs = run()
        spent += secs
        if secs < best_s:
            best, best_s = result, secs
    return best, best_s


def measure_system(name: str, ds: Dataset, cfg: BenchConfig, workdir: Path | None = None,
                   log: Callable[[str], None] | None = None) -> dict:
    """Build ``name`` on ``ds`` and measure it at every knob. Returns a dict with ``rows`` (one per
    knob setting) and the system-wide figures (build, disk, reopen)."""
    log = log or _log
    if cfg.threads:
        import faiss

        faiss.omp_set_num_threads(cfg.threads)
    system = SYSTEMS[name](cfg)
    own_dir = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix=f"harrier-bench-{name}-")) if own_dir else workdir
    k = cfg.k
    queries = np.ascontiguousarray(ds.queries, dtype=np.float32)
    result: dict[str, Any] = {"system": name, "index": system.index, "knob": system.knob_name, "rows": []}
    try:
        t0 = time.perf_counter()
        system.build(ds, workdir)
        result["build_s"] = time.perf_counter() - t0
        result.update(system.build_parts)
        log(f"  {name}: built in {result['build_s']:.1f} s {_fmt_parts(system.build_parts)}")
        result["peak_rss_mb"] = _peak_rss_mb()  # before a bare FAISS index joins this process
        beside = _faiss_beside(system, ds, cfg, workdir, log)
        if beside is not None:
            result["beside_index_s"] = beside.build_parts["index_s"]
        f_ids, f_dist = ds.filtered_truth(k) if cfg.filtered and system.supports_filter else (None, None)
        for value in system.knobs():
            system.set_knob(value)
            row: dict[str, Any] = {"system": name, "index": system.index, "knob": system.knob_name, "value": value}
            # The system's own FAISS index searched bare (``kernel``) and bare FAISS's own build
            # (``beside``) run the same query loop in each pass, the three loops taking turns
            # at going first: whatever a position costs (caches or clocks left by the loop
            # before) is shared out.
            loops: dict[str, Callable] = {"system": system.search}
            kernel = system.kernel() if hasattr(system, "kernel") else None
            if kernel is not None:
                loops["kernel"] = kernel
            if beside is not None:
                beside.set_knob(value)
                loops["beside"] = beside.search
            runs: dict[str, list[tuple[list, np.ndarray]]] = {name: [] for name in loops}

            def single(runs: dict = runs, loops: dict = loops) -> tuple[Any, float]:
                order = list(loops)
                turn = len(runs["system"]) % len(order)
                for what in order[turn:] + order[:turn]:
                    runs[what].append(_timed_loop(loops[what], queries, k, cfg.loop_budget_s))
                out = runs["system"][-1]
                return out, out[1].sum()

            (ids, lat), _ = _best_of(cfg.repeat, cfg.loop_budget_s, single)
            n = row["n_queries"] = len(ids)
            row["recall"] = recall_at_k(_pad_ids(ids, k), queries[:n], ds.base, ds.gt_dist[:n], k, ds.metric)
            row["qps"] = n / lat.sum()
            row["p50_ms"] = float(np.percentile(lat, 50) * 1e3)
            row["p99_ms"] = float(np.percentile(lat, 99) * 1e3)
            fastest = {what: max(r, key=_rate) for what, r in runs.items() if what != "system"}
            if "kernel" in fastest:
                row["kernel_qps"] = _rate(fastest["kernel"])
                row["overhead_us"] = (1 / row["qps"] - 1 / row["kernel_qps"]) * 1e6
            if "beside" in fastest:
                b_ids, b_lat = fastest["beside"]
                row["beside_qps"] = _rate(fastest["beside"])
                row["beside_recall"] = recall_at_k(_pad_ids(b_ids, k), queries[:len(b_ids)], ds.base,
                                                   ds.gt_dist[:len(b_ids)], k, ds.metric)
                # Within a pass the loops ran seconds apart: their ratio sees one machine state,
                # where the two fastest passes may come from different ones.
                row["beside_ratio"] = _median_ratio([_rate(run) for run in runs["system"]],
                                                    [_rate(run) for run in runs["beside"]])
            if cfg.batch and system.supports_batch:
                # as many queries as the loop managed (all of them, but for the slowest systems)
                system.search_batch(queries[:WARMUP_QUERIES], k)

                batch_s: list[float] = []
                beside_batch_s: list[float] = []

                def batch(n: int = n, batch_s: list = batch_s, beside_batch_s: list = beside_batch_s
                          ) -> tuple[Any, float]:
                    t = time.perf_counter()
                    out = system.search_batch(queries[:n], k)
                    batch_s.append(time.perf_counter() - t)
                    if beside is not None:
                        t = time.perf_counter()
                        beside.search_batch(queries[:n], k)
                        beside_batch_s.append(time.perf_counter() - t)
                    return out, batch_s[-1]

                bids, secs = _best_of(cfg.repeat, cfg.loop_budget_s, batch)
                row["batch_qps"] = n / secs
                if beside_batch_s:
                    row["beside_batch_qps"] = n / min(beside_batch_s)
                    row["beside_batch_ratio"] = _median_ratio([n / t for t in batch_s], [n / t for t in beside_batch_s])
                row["batch_recall"] = recall_at_k(_pad_ids(bids, k), queries[:n], ds.base, ds.gt_dist[:n], k,
                                                  ds.metric)
            if f_dist is not None:
                def filtered() -> tuple[Any, float]:
                    out = _timed_loop(system.search_filtered, queries, k, cfg.loop_budget_s)
                    return out, out[1].sum()

                (fids, flat), _ = _best_of(cfg.repeat, cfg.loop_budget_s, filtered)
                fn = row["f_n_queries"] = len(fids)
                row["f_recall"] = recall_at_k(_pad_ids(fids, k), queries[:fn], ds.base, f_dist[:fn], k,
                                              ds.metric, allowed=_in_filter)
                row["f_qps"] = fn / flat.sum()
                row["f_p50_ms"] = float(np.percentile(flat, 50) * 1e3)
            result["rows"].append(row)
            log("  " + _row_line(row))
        if cfg.profile_path and name == "harrierdb":
            result["profile"] = _profile(system, result["rows"], queries, cfg)
        result["reopen_s"] = system.reopen(queries[0], k)
        system.close()
        result["disk_mb"] = (system.disk_bytes() or 0) / 2**20
        result["notes"] = system.notes
    finally:
        with contextlib.suppress(Exception):
            system.close()
        if own_dir:
            shutil.rmtree(workdir, ignore_errors=True)
    return result


def _rate(run: tuple[list, np.ndarray]) -> float:
    """Queries per second of one ``_timed_loop`` run."""
    return len(run[1]) / run[1].sum()


def _median_ratio(ours: list[float], theirs: list[float]) -> float:
    """The median over passes of one rate over the other, pass by pass."""
    return float(np.median(np.array(ours) / np.array(theirs)))


def _faiss_beside(system: System, ds: Dataset, cfg: BenchConfig, workdir: Path,
                  log: Callable[[str], None]) -> System | None:
    """For HarrierDB's HNSW rows: bare FAISS HNSW (same M, efConstruction and data) built in
    the same process, its query loop run in each of HarrierDB's passes. Two worker processes
    run one after the other see the machine at different speeds (+-10% here); loops taken
    turn about within a pass see it alike, so their ratio is the steady figure."""
    if not (cfg.beside_faiss and system.name == "harrierdb" and system.index == "HNSW"):
        return None
    beside = FaissHnswSystem(cfg)
    (workdir / "beside-faiss").mkdir(parents=True, exist_ok=True)
    beside.build(ds, workdir / "beside-faiss")
    log(f"  bare FAISS beside it: built in {beside.build_parts['index_s']:.1f} s")
    return beside


def _profile(system: System, rows: list[dict], queries: np.ndarray, cfg: BenchConfig) -> str:
    """cProfile of HarrierDB's single-query loop, filtered single-query loop and reopen, at one
    knob setting, written as text to ``cfg.profile_path``."""
    value = cfg.profile_ef or next((r["value"] for r in rows if r["recall"] >= 0.95), rows[-1]["value"])
    system.set_knob(value)
    k = cfg.k
    parts: list[tuple[str, Callable[[], Any]]] = [
        (f"{len(queries)} single-query searches", lambda: [system.search(q, k) for q in queries])]
    if cfg.filtered and system.supports_filter:
        parts.append((f"{len(queries)} filtered ({FILTER_EXPR}) single-query searches",
                      lambda: [system.search_filtered(q, k) for q in queries]))
    parts.append(("reopen (open the database, load, first search)", lambda: system.reopen(queries[0], k)))
    buf = io.StringIO()
    for title, fn in parts:
        if "reopen" not in title:
            for q in queries[:WARMUP_QUERIES]:
                system.search(q, k)
                if "filtered" in title:
                    system.search_filtered(q, k)
        prof = cProfile.Profile()
        started = time.perf_counter()
        prof.enable()
        fn()
        prof.disable()
        elapsed = time.perf_counter() - started
        buf.write(f"\n{'=' * 100}\n# cProfile of {title}, {system.knob_name}={value}: {elapsed:.3f} s "
                  "under the profiler\n")
        stats = pstats.Stats(prof, stream=buf)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(35)
    Path(cfg.profile_path).write_text(buf.getvalue())
    return str(cfg.profile_path)


def _fmt_parts(parts: dict[str, float]) -> str:
    return "(" + ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in parts.items()) + ")" if parts else ""


def _row_line(r: dict) -> str:
    s = f"{r['knob']}={r['value']}: recall {r['recall']:.3f}  {r['qps']:,.0f} QPS  p50 {r['p50_ms']:.2f} ms"
    if "kernel_qps" in r:
        s += f" (FAISS call alone {r['kernel_qps']:,.0f} QPS, overhead {r['overhead_us']:.0f} µs)"
    if "beside_qps" in r:
        s += (f" (bare FAISS beside: recall {r['beside_recall']:.3f}, {r['beside_qps']:,.0f} QPS; "
              f"pass by pass {r['beside_ratio']:.2f}x)")
    if "batch_qps" in r:
        s += f"  batch {r['batch_qps']:,.0f} QPS"
    if "f_recall" in r:
        s += f"  filtered recall {r['f_recall']:.3f} {r['f_qps']:,.0f} QPS"
    return s


# ==============================================================================================
# Worker processes
# ==============================================================================================

def _worker_main(argv: Sequence[str]) -> int:
    """``python -m harrierdb.bench --worker SPEC.json OUT.json``: measure one system."""
    import warnings

    warnings.simplefilter("ignore")  # peers' deprecation chatter
    os.environ.setdefault("RUST_LOG", "error")
    spec = json.loads(Path(argv[0]).read_text())
    base = np.load(spec["base_path"])
    queries = np.load(spec["queries_path"])[: spec["n_queries"]]
    gt = np.load(spec["gt_path"])
    ds = Dataset(spec["dataset"], base, queries, spec["metric"], gt["ids"], gt["dist"])
    rss_data = _current_rss_mb()
    cfg = BenchConfig(**{**spec["cfg"], "efs": tuple(spec["cfg"]["efs"]),
                         "nprobes": tuple(spec["cfg"]["nprobes"])})
    result = measure_system(spec["system"], ds, cfg, Path(spec["workdir"]))
    result.setdefault("peak_rss_mb", _peak_rss_mb())
    result["rss_data_mb"] = rss_data
    Path(argv[1]).write_text(json.dumps(result, default=_json_default))
    return 0


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def _run_in_subprocess(name: str, ds: Dataset, cfg: BenchConfig, timeout: float) -> dict:
    """Measure one system in a fresh interpreter (its peak RSS is then its own)."""
    with tempfile.TemporaryDirectory(prefix=f"harrier-bench-{name}-") as tmp:
        tmpd = Path(tmp)
        base_path, q_path = ds.base_path, ds.queries_path
        if base_path is None or q_path is None:
            base_path, q_path = str(tmpd / "base.npy"), str(tmpd / "queries.npy")
            np.save(base_path, ds.base)
            np.save(q_path, ds.queries)
        gt_path = tmpd / "gt.npz"
        np.savez(gt_path, ids=ds.gt_ids, dist=ds.gt_dist)
        (tmpd / "work").mkdir()
        spec = {"system": name, "dataset": ds.name, "metric": ds.metric, "base_path": base_path,
                "queries_path": q_path, "n_queries": len(ds.queries), "gt_path": str(gt_path),
                "workdir": str(tmpd / "work"), "cfg": dataclasses.asdict(cfg)}
        (tmpd / "spec.json").write_text(json.dumps(spec))
        out = tmpd / "out.json"
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "") if env.get("PYTHONPATH") else src
        if cfg.threads:  # BLAS pools read these at import time
            for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
                env[var] = str(cfg.threads)
        cmd = [sys.executable, "-m", "harrierdb.bench", "--worker", str(tmpd / "spec.json"), str(out)]
        try:
            proc = subprocess.run(cmd, env=env, timeout=timeout, stdout=sys.stderr)
        except subprocess.TimeoutExpired:
            return {"system": name, "error": f"timed out after {timeout:.0f} s", "rows": []}
        if proc.returncode != 0 or not out.is_file():
            return {"system": name, "error": f"worker exited with status {proc.returncode}", "rows": []}
        return json.loads(out.read_text())


# ==============================================================================================
# The whole benchmark
# ==============================================================================================

def run_benchmark(ds: Dataset, systems: Iterable[str], cfg: BenchConfig | None = None, *,
                  isolate: bool = True, timeout: float = 3600, log: Callable[[str], None] | None = None) -> dict:
    """Measure each system on ``ds``; ``isolate`` runs each in its own process (peak memory is
    then per system). Unavailable systems are skipped and listed under ``skipped``."""
    cfg = cfg or BenchConfig()
    log = log or _log
    report: dict[str, Any] = {"dataset": ds.name, "label": ds.label, "note": ds.note, "metric": ds.metric,
                              "rows": len(ds.base), "dim": ds.base.shape[1], "n_queries": len(ds.queries),
                              "k": cfg.k, "systems": [], "skipped": {}, "load_before": _loadavg()}
    for name in systems:
        why = system_unavailable(name)
        if why:
            log(f"skipping {name}: {why}")
            report["skipped"][name] = why
            continue
        log(f"{ds.name}: measuring {name}")
        if isolate:
            result = _run_in_subprocess(name, ds, cfg, timeout)
        else:
            try:
                result = measure_system(name, ds, cfg, log=log)
            except Exception as exc:
                result = {"system": name, "error": f"{type(exc).__name__}: {exc}", "rows": []}
        if result.get("error"):
            log(f"  {name} failed: {result['error']}")
            report["skipped"][name] = result["error"]
            continue
        report["systems"].append(result)
    report["load_after"] = _loadavg()
    return report


def merge_reports(reports: list[dict]) -> list[dict]:
    """Fold reports on the same data set into one, in order: a system measured again replaces
    its earlier results (so one system can be re-run and folded into a full run); the commands
    of both runs are kept."""
    merged: dict[str, dict] = {}
    for report in reports:
        key = report["label"]
        if key not in merged:
            merged[key] = {**report, "systems": list(report["systems"]), "skipped": dict(report["skipped"])}
            continue
        into = merged[key]
        names = {s["system"] for s in report["systems"]}
        kept = [s for s in into["systems"] if s["system"] not in names]
        order = [s["system"] for s in into["systems"]]
        into["systems"] = sorted(kept + report["systems"],
                                 key=lambda s: order.index(s["system"]) if s["system"] in order else len(order))
        for name in names:
            into["skipped"].pop(name, None)
        into["skipped"].update({k: v for k, v in report["skipped"].items() if k not in
                                {s["system"] for s in into["systems"]}})
        systems = ", ".join(sorted(names))
        into["command"] = (f"{into.get('command', '?')}`, then {systems} measured again with "
                           f"`{report.get('command', '?')}")
        into["measured_at"] = f"{into.get('measured_at', '?')} and {report.get('measured_at', '?')}"
    return list(merged.values())


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def table_rows(report: dict) -> list[dict]:
    """One flat dict per (system, knob setting), with the system-wide figures repeated."""
    out = []
    for s in report["systems"]:
        for r in s["rows"]:
            out.append({**r, "build_s": s.get("build_s"), "disk_mb": s.get("disk_mb"),
                        "peak_rss_mb": s.get("peak_rss_mb"), "reopen_s": s.get("reopen_s")})
    return out


_COLUMNS = [  # header, key, format
    ("system", "system", "{}"), ("index", "index", "{}"), ("knob", None, "{}"),
    ("recall@k", "recall", "{:.3f}"), ("QPS 1q", "qps", "{:,.0f}"), ("p50 ms", "p50_ms", "{:.2f}"),
    ("p99 ms", "p99_ms", "{:.2f}"), ("own FAISS QPS", "kernel_qps", "{:,.0f}"),
    ("overhead µs", "overhead_us", "{:.0f}"),
    ("bare FAISS beside QPS", "beside_qps", "{:,.0f}"), ("QPS batch", "batch_qps", "{:,.0f}"),
    ("filt recall", "f_recall", "{:.3f}"), ("filt QPS", "f_qps", "{:,.0f}"),
    ("build s", "build_s", "{:.1f}"), ("disk MiB", "disk_mb", "{:.0f}"),
    ("peak RSS MiB", "peak_rss_mb", "{:.0f}"), ("reopen s", "reopen_s", "{:.2f}"),
    ("queries", "n", "{}"),
]


def _cells(row: dict) -> list[str]:
    cells = []
    for _, key, fmt in _COLUMNS:
        if key is None:
            cells.append("-" if row["knob"] == "-" else f"{row['knob']}={row['value']}")
        elif key == "n":  # queries run (fewer for systems too slow for the time budget)
            n, fn = row.get("n_queries"), row.get("f_n_queries")
            cells.append("-" if n is None else str(n) if fn in (None, n) else f"{n} ({fn} filtered)")
        else:
            value = row.get(key)
            cells.append("-" if value is None else fmt.format(value))
    return cells


def format_table(report: dict) -> str:
    rows = [_cells(r) for r in table_rows(report)]
    headers = [c[0] for c in _COLUMNS]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) if i < 3 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths)))]
    for r in rows:
        lines.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def markdown_table(report: dict) -> str:
    headers = [c[0] for c in _COLUMNS]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(":--" if i < 3 else "--:" for i in range(len(headers))) + "|"]
    for r in table_rows(report):
        lines.append("| " + " | ".join(_cells(r)) + " |")
    return "\n".join(lines)


# -- targets ---------------------------------------------------------------------------------

def _best(rows: list[dict], key: str, min_recall: float, recall_key: str = "recall") -> dict | None:
    ok = [r for r in rows if r.get(key) is not None and r.get(recall_key, 0) >= min_recall]
    return max(ok, key=lambda r: r[key]) if ok else None


def _versus_faiss(h: dict, f: dict | None, key: str, recall_key: str,
                  min_recall: float) -> tuple[float, str] | None:
    """HarrierDB's best ``key`` rate at recall >= ``min_recall`` over bare FAISS's, with the
    figures. Judged against bare FAISS timed in HarrierDB's worker pass by pass at the same ef
    (same M, data and machine state); FAISS's own worker process, which runs at another time,
    is quoted beside it, and judges only when that figure is missing."""
    ours = _best(h["rows"], key, min_recall, recall_key)
    theirs = _best(f["rows"], key, min_recall, recall_key) if f else None
    beside_key = f"beside_{key}"
    if ours is None or (theirs is None and not ours.get(beside_key)):
        return None
    parts = []
    if ours.get(beside_key):
        ratio_key = "beside_ratio" if key == "qps" else "beside_batch_ratio"
        ratio = ours.get(ratio_key, ours[key] / ours[beside_key])
        each = ", ".join(f"ef={r['value']} {r.get(ratio_key, r[key] / r[beside_key]):.2f}x" for r in h["rows"]
                         if r.get(beside_key))
        parts.append(f"at ef={ours['value']}: HarrierDB {ours[key]:,.0f} (recall {ours[recall_key]:.3f}) vs "
                     f"bare FAISS {ours[beside_key]:,.0f}, timed in one process, the median of the pass-by-pass "
                     f"ratios: {ratio:.2f}x (at each ef: {each})")
        if ours.get("kernel_qps") and key == "qps":
            parts.append(f"HarrierDB's own FAISS index searched bare: {ours['kernel_qps']:,.0f} QPS (the engine "
                         f"adds {ours['overhead_us']:.0f} µs/query)")
    if theirs is not None:
        separate = ours[key] / theirs[key]
        parts.append(f"FAISS in its own worker process: {theirs[key]:,.0f} at ef={theirs['value']} (recall "
                     f"{theirs[recall_key]:.3f}), {separate:.2f}x")
        if not ours.get(beside_key):
            ratio = separate
    return ratio, "; ".join(parts)


def check_targets(report: dict, min_recall: float = 0.95) -> list[dict]:
    """The issue's targets, each with the figures and whether it is met (None: not measurable)."""
    by = {s["system"]: s for s in report["systems"]}
    h, f = by.get("harrierdb"), by.get("faiss-hnsw")
    out: list[dict] = []

    def add(name: str, met: bool | None, detail: str) -> None:
        out.append({"target": name, "met": met, "detail": detail})

    if not h:
        return out
    h1 = _best(h["rows"], "qps", min_recall)
    for key, recall_key, label in (("qps", "recall", "single-query"), ("batch_qps", "batch_recall", "batch")):
        judged = _versus_faiss(h, f, key, recall_key, min_recall)
        if judged:
            add(f"{label} QPS >= 0.8x FAISS (recall >= 0.95)", judged[0] >= 0.8, judged[1])
    if f:
        h_index, f_index = h.get("index_s", h.get("build_s")), f.get("index_s", f.get("build_s"))
        if h_index and f_index:
            # The index build is load_collection: rows read back from storage, the index built
            # and saved; FAISS's is its add(). The insert before it is storage, not indexing.
            ratio = h_index / f_index
            insert = f" (the insert before it: {h['insert_s']:.1f} s)" if h.get("insert_s") else ""
            beside = (f"; bare FAISS built again in HarrierDB's worker: {h['beside_index_s']:.1f} s, "
                      f"{h_index / h['beside_index_s']:.2f}x") if h.get("beside_index_s") else ""
            add("index build time <= 1.2x FAISS", ratio <= 1.2,
                f"HarrierDB {h_index:.1f} s to read the rows back, build and save the index{insert} "
                f"vs FAISS add() {f_index:.1f} s: {ratio:.2f}x{beside}")
    peers = [(n, _best(by[n]["rows"], "qps", min_recall)) for n in PEERS if n in by]
    peers = [(n, r) for n, r in peers if r]
    if h1 and peers:
        name, best = max(peers, key=lambda p: p[1]["qps"])
        ratio = h1["qps"] / best["qps"]
        add("single-query QPS >= 3x best peer (recall >= 0.95)", ratio >= 3,
            f"HarrierDB {h1['qps']:,.0f} vs {name} {best['qps']:,.0f} "
            f"({best['knob']}={best['value']}, recall {best['recall']:.3f}): {ratio:.1f}x")
    if h1 and h1.get("f_recall") is not None:
        ratio = h1["f_qps"] / h1["qps"]
        detail = (f"at ef={h1['value']}: filtered recall {h1['f_recall']:.3f}, {h1['f_qps']:,.0f} QPS = "
                  f"{ratio:.2f}x unfiltered {h1['qps']:,.0f}")
        met_at = [r for r in h["rows"] if r.get("f_recall") is not None and r["f_recall"] >= 0.95
                  and r["recall"] >= min_recall and r["f_qps"] >= 0.5 * r["qps"]]
        if ratio < 0.5 and met_at:
            r = met_at[0]
            detail += (f"; met from ef={r['value']} on ({r['f_qps']:,.0f} filtered vs {r['qps']:,.0f} "
                       "unfiltered QPS)")
        f_rows = f["rows"] if f else []
        if f_rows:
            detail += (f"; bare FAISS with an IDSelector at the same ef: filtered recall "
                       f"{next((r['f_recall'] for r in f_rows if r['value'] == h1['value']), float('nan')):.3f}")
        add("filtered 1%: recall >= 0.95 and QPS >= 0.5x unfiltered",
            h1["f_recall"] >= 0.95 and ratio >= 0.5, detail)
    if h.get("reopen_s") is not None:
        add(f"reopen of a {report['rows']:,}-row HNSW collection <= 1 s", h["reopen_s"] <= 1.0,
            f"{h['reopen_s']:.2f} s (open + load + first search, warm page cache)")
    return out


def format_targets(targets: list[dict]) -> str:
    marks = {True: "MET", False: "MISSED", None: "n/a"}
    return "\n".join(f"- {marks[t['met']]}: {t['target']} — {t['detail']}" for t in targets)


# -- plot, results file ----------------------------------------------------------------------

def plot(reports: list[dict], path: str | Path) -> Path | None:
    """Recall@k against single-query and batch QPS (log scale), one row of panels per data set."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _log("matplotlib is not installed: no plot (pip install matplotlib)")
        return None
    fig, axes = plt.subplots(len(reports), 2, figsize=(13, 4.8 * len(reports)), squeeze=False)
    for row_axes, report in zip(axes, reports):
        for ax, key, rkey, title in ((row_axes[0], "qps", "recall", "single query per call"),
                                     (row_axes[1], "batch_qps", "batch_recall", "all queries in one call")):
            for s in report["systems"]:
                pts = [(r[rkey], r[key]) for r in s["rows"] if r.get(key) is not None]
                if not pts:
                    continue
                xs, ys = zip(*pts)
                style = "o-" if s["system"].startswith("harrierdb") else "s--" if s["system"] == "faiss-hnsw" else "^:"
                ax.plot(xs, ys, style, label=f"{s['system']} ({s['index']})")
            ax.set_yscale("log")
            ax.set_xlabel(f"recall@{report['k']}")
            ax.set_ylabel("queries per second (log)")
            ax.set_title(f"{report['label']}\n{title}", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def machine_info() -> dict:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    from importlib import metadata

    versions = {}
    for dist in ("numpy", "faiss-cpu", "pymilvus", "milvus-lite", "chromadb", "lancedb", "qdrant-client"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem_gib": round(mem, 1) if mem else None,
            "python": platform.python_version(), "versions": versions}


def results_section(reports: list[dict], plot_path: str | None = None, rendered_with: str | None = None) -> str:
    """The markdown section: machine, method, then per data set its command, table and targets."""
    m = reports[0].get("machine") or machine_info()
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    cfg = reports[0].get("config") or dataclasses.asdict(BenchConfig())
    lines = [SECTION_TITLE, "",
             f"Machine: {m['nproc']} cores ({m['cpu']}), {m['mem_gib']} GiB RAM, Python {m['python']}; "
             f"{versions}.", "",
             f"HNSW everywhere at M={cfg['M']}, efConstruction={cfg['ef_construction']}, ef swept; "
             f"k={cfg['k']}. QPS 1q: one query per call in a loop (p50/p99 are its latencies); QPS batch: "
             "all queries in one call; filtered: `bucket == 7` where bucket = id % 100 (1% of rows), one "
             "query per call, recall against the exact filtered neighbours. Each timing is the fastest of "
             f"{cfg.get('repeat', 1)} passes; a query loop stops early once it has run for the command's "
             "--loop-budget (the queries column says how many ran). HarrierDB rows also give its own "
             "FAISS index searched directly (own FAISS QPS) and the time the engine adds per query: "
             "the same query loop on that index, run in each of HarrierDB's passes; bare FAISS beside: "
             "bare FAISS HNSW built in HarrierDB's worker too and timed in the same passes, the loops "
             "taking turns at going first, so that they see the machine alike (the single-query and "
             "batch targets are judged on the median of the pass-by-pass ratios). Build = insert + "
             "index; peak RSS is the worker process's ru_maxrss, including the harness's own copy of "
             "the data; reopen = open the persisted collection in the same process and answer one "
             "query (warm page cache). Recall counts "
             "ties at the k-th distance as hits.", ""]
    for report in reports:
        load = (f" 1-min load average {report['load_before']} before, {report['load_after']} after "
                "(other work shares this machine)." if report.get("load_before") is not None else "")
        lines += [f"### {report['label']}", "",
                  f"{report['note']}. Measured {report.get('measured_at', '?')}.{load}", ""]
        if report.get("command"):
            lines += [f"Command: `{report['command']}`", ""]
        lines += [markdown_table(report), ""]
        if report["skipped"]:
            lines += ["Skipped: " + "; ".join(f"{k}: {v}" for k, v in report["skipped"].items()), ""]
        targets = check_targets(report)
        if targets:
            lines += ["Targets:", "", format_targets(targets), ""]
    if plot_path:
        lines += [f"![recall vs QPS]({Path(plot_path).name})", ""]
    if rendered_with:
        lines += [f"Table, targets and plot written from the saved results with `{rendered_with}`.", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_section(path: str | Path, section: str, title: str = SECTION_TITLE) -> None:
    """Replace the section that starts with ``title`` (up to the next ``## `` heading) in the
    markdown file, or append it; the rest of the file is kept as it is on disk right now."""
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == title), None)
    if start is None:
        prefix = text if not text or text.endswith("\n") else text + "\n"
        new = prefix + ("\n" if prefix and not prefix.endswith("\n\n") else "") + section
    else:
        end = next((i for i in range(start + 1, len(lines))
                    if lines[i].startswith("## ")), len(lines))
        tail = "".join(lines[end:])
        new = "".join(lines[:start]) + section + ("\n" + tail if tail else "")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, path)


# ==============================================================================================
# Command line
# ==============================================================================================

def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def add_arguments(p: argparse.ArgumentParser, *, plot_default: str | None = None,
                  results_default: str | None = None) -> argparse.ArgumentParser:
    p.add_argument("--dataset", type=_names, default=["clustered"], metavar="NAME[,NAME]",
                   help=f"data sets to run, comma-separated: {', '.join(DATASETS)} (default: clustered)")
    p.add_argument("--rows", type=int, default=100_000, help="clustered: base rows (default 100000)")
    p.add_argument("--dim", type=int, default=384, help="clustered: dimension (default 384)")
    p.add_argument("--seed", type=int, default=0, help="clustered/wordnet: random seed")
    p.add_argument("--limit", type=int, default=0,
                   help="wordnet: base glosses to embed (default 0: all of them, ~116k)")
    p.add_argument("--base", help="npy: base vectors (.npy, 2-D)")
    p.add_argument("--queries", help="npy: query vectors (.npy, 2-D)")
    p.add_argument("--metric", default="L2", help="npy: L2, IP or COSINE (default L2)")
    p.add_argument("--nq", type=int, default=1000, help="queries to run (default 1000)")
    p.add_argument("--k", type=int, default=10, help="neighbours per query (default 10)")
    p.add_argument("--systems", type=_names, default=list(DEFAULT_SYSTEMS), metavar="A,B",
                   help=f"systems, comma-separated (default: all of {', '.join(ALL_SYSTEMS)}; "
                        "uninstalled peers are skipped)")
    p.add_argument("--ef", type=_ints, default=(16, 32, 64, 128, 256), help="HNSW ef sweep")
    p.add_argument("--nprobe", type=_ints, default=(4, 8, 16, 32, 64), help="IVF nprobe sweep")
    p.add_argument("--M", type=int, default=16, help="HNSW M (default 16)")
    p.add_argument("--ef-construction", type=int, default=200, help="HNSW efConstruction (default 200)")
    p.add_argument("--nlist", type=int, default=0, help="IVF nlist (default: ~4*sqrt(rows))")
    p.add_argument("--threads", type=int, default=0,
                   help="FAISS OpenMP and (in worker processes) BLAS threads (default: the libraries' own)")
    p.add_argument("--repeat", type=int, default=3,
                   help="timed passes per measurement; the fastest is kept (default 3)")
    p.add_argument("--loop-budget", type=float, default=120, metavar="S",
                   help="seconds per query loop: slower systems run fewer queries (default 120; 0: no cap)")
    p.add_argument("--no-filtered", action="store_true", help="skip the filtered searches")
    p.add_argument("--no-batch", action="store_true", help="skip the batch searches")
    p.add_argument("--no-beside-faiss", action="store_true",
                   help="do not build bare FAISS HNSW inside HarrierDB's worker to time it pass by pass")
    p.add_argument("--in-process", action="store_true",
                   help="measure every system in this process (faster; no per-system peak memory)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds allowed per system")
    p.add_argument("--plot", default=plot_default, metavar="PNG", help="write a recall-vs-QPS plot here")
    p.add_argument("--results-md", default=results_default, metavar="MD",
                   help=f"update the {SECTION_TITLE[3:]!r} section of this markdown file")
    p.add_argument("--json", metavar="PATH", help="write the raw results as JSON")
    p.add_argument("--from-json", type=_names, metavar="A.json,B.json",
                   help="measure nothing: print, plot and write up the results saved by earlier --json runs")
    p.add_argument("--profile", metavar="TXT", help="cProfile HarrierDB's single-query path into this file")
    p.add_argument("--profile-ef", type=int, default=0, help="ef to profile (default: first with recall >= 0.95)")
    return p


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``bench`` on the ``harrier`` command's subparsers."""
    p = subparsers.add_parser("bench", help="benchmark recall vs QPS against FAISS and peers",
                              description=__doc__.split("\n\n")[0])
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    return BenchConfig(k=args.k, efs=tuple(args.ef), nprobes=tuple(args.nprobe), M=args.M,
                       ef_construction=args.ef_construction, nlist=args.nlist,
                       filtered=not args.no_filtered, batch=not args.no_batch, threads=args.threads,
                       profile_path=args.profile, profile_ef=args.profile_ef, repeat=args.repeat,
                       loop_budget_s=args.loop_budget, beside_faiss=not args.no_beside_faiss)


def run(args: argparse.Namespace, command: str | None = None) -> int:
    """Run the benchmark the parsed ``args`` describe; prints the tables, writes plot/results."""
    cfg = config_from_args(args)
    unknown = [s for s in args.systems if s not in _CLASSES]
    if unknown:
        print(f"error: unknown system(s) {unknown}; choose from {', '.join(ALL_SYSTEMS)}", file=sys.stderr)
        return 2
    command = command or "harrier bench " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    reports = []
    for path in args.from_json or []:  # earlier runs' reports, rendered again
        try:
            reports += json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            print(f"error: cannot read results from {path!r}: {exc}", file=sys.stderr)
            return 2
    reports = merge_reports(reports)
    for name in [] if args.from_json else args.dataset:
        try:
            ds = load_dataset(name, rows=args.rows, dim=args.dim, limit=args.limit, seed=args.seed,
                              base=args.base, queries=args.queries, metric=args.metric, n_queries=args.nq)
        except BenchError as exc:
            print(f"skipping dataset {name}: {exc}", file=sys.stderr)
            continue
        _log(f"dataset {ds.label}")
        report = run_benchmark(ds, args.systems, cfg, isolate=not args.in_process, timeout=args.timeout)
        report.update(command=command, config=dataclasses.asdict(cfg), machine=machine_info(),
                      measured_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
        reports.append(report)
        print(f"\n{ds.label}\n{format_table(report)}")
        targets = check_targets(report)
        if targets:
            print(format_targets(targets))
        if report["skipped"]:
            print("skipped: " + "; ".join(f"{k}: {v}" for k, v in report["skipped"].items()))
        sys.stdout.flush()
    if args.from_json:
        for report in reports:
            print(f"\n{report['label']}\n{format_table(report)}")
    if not reports:
        print("error: no data set could be loaded", file=sys.stderr)
        return 2
    if args.json and not args.from_json:
        Path(args.json).write_text(json.dumps(reports, indent=1, default=_json_default))
    plot_path = plot(reports, args.plot) if args.plot else None
    if plot_path:
        print(f"plot: {plot_path}")
    if args.results_md:
        write_section(args.results_md, results_section(reports, str(plot_path) if plot_path else None,
                                                       rendered_with=command if args.from_json else None))
        print(f"results: {args.results_md} ({SECTION_TITLE[3:]})")
    return 0


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        return _worker_main(argv[1:])
    parser = add_arguments(argparse.ArgumentParser(prog="harrier bench", description=__doc__.split("\n\n")[0]))
    return run(parser.parse_args(argv), command="harrier bench " + " ".join(shlex.quote(a) for a in argv))


if __name__ == "__main__":
    raise SystemExit(main())
