"""``harrier`` subcommands for measuring embeddings: ``eval``, ``drift`` and ``map``.

    harrier eval [--dataset wordnet] [--limit N] [--corpus-size M] [--settings a,b] [--json F]
    harrier eval --qrels F --corpus F --queries F [--limit N]
    harrier drift PATH COLLECTION --field F [--reference-filter EXPR --current-filter EXPR |
                  --split-by-insert-order 0.5] [--png out.png] [--json F] [--fail-on-drift]
    harrier map PATH COLLECTION --field F [--color FIELD] [--filter EXPR] --png out.png
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

from harrierdb.cli import COLLECTION, PATH, CliError, _open, arg, command
from harrierdb.schema import DataType

DENSE_TYPES = (DataType.FLOAT_VECTOR, DataType.FLOAT16_VECTOR, DataType.BFLOAT16_VECTOR,
               DataType.INT8_VECTOR)
FIELD = arg("--field", required=True, metavar="F", help="the vector field to read")


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _write_json(path: str | None, data: Any) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
        print(f"wrote {path}")


# -- eval ---------------------------------------------------------------------------------------

@command("eval", "compare embedding models and index settings on relevance judgements",
         arg("--dataset", choices=["wordnet"], default=None,
             help="built-in test set (default: wordnet unless --qrels is given)"),
         arg("--limit", type=int, default=1000, metavar="N", help="number of queries (default: %(default)s)"),
         arg("--corpus-size", type=int, default=5000, metavar="M",
             help="wordnet: glosses in the corpus, queries' own included (default: %(default)s, "
                  "at least --limit; 0: all 117,659)"),
         arg("--query-from", choices=["auto", "example", "lemmas"], default="auto",
             help="wordnet: query text (default: %(default)s: example sentence, else lemmas)"),
         arg("--qrels", metavar="FILE", help="judgements: TREC 'qid 0 docid rel' or BEIR TSV"),
         arg("--corpus", metavar="FILE", help="documents: BEIR corpus.jsonl or 'id<TAB>text'"),
         arg("--queries", metavar="FILE", help="queries: BEIR queries.jsonl or 'id<TAB>text'"),
         arg("--settings", type=_csv, default=None, metavar="A,B",
             help="settings to compare (default: all built-in; see --list-settings)"),
         arg("--list-settings", action="store_true", help="print the built-in settings and exit"),
         arg("--seed", type=int, default=0, help="sampling and bootstrap seed (default: %(default)s)"),
         arg("--json", metavar="FILE", help="also write the report as JSON"))
def cmd_eval(args: argparse.Namespace) -> int:
    """Rank the settings by nDCG@10 on one retrieval set, with 95% bootstrap intervals."""
    from harrierdb.quality.evaluate import BUILTIN_SETTINGS, RetrievalSet, evaluate, load_retrieval_files

    if args.list_settings:
        for name in BUILTIN_SETTINGS:
            print(name)
        return 0
    if args.limit < 1:
        raise CliError(f"--limit must be >= 1, got {args.limit}")
    files = [args.qrels, args.corpus, args.queries]
    if any(files):
        if not all(files):
            raise CliError("--qrels, --corpus and --queries go together")
        if args.dataset:
            raise CliError("pass either --dataset or --qrels/--corpus/--queries")
        data = load_retrieval_files(args.qrels, args.corpus, args.queries)
        queries = dict(list(data.queries.items())[:args.limit])
        data = RetrievalSet(data.name, data.corpus, queries, {q: data.qrels[q] for q in queries})
    else:
        from harrierdb.quality.wordnet import wordnet_retrieval

        corpus_size = max(args.corpus_size, args.limit) if args.corpus_size else None
        data = wordnet_retrieval(args.limit, corpus_size, query_from=args.query_from, seed=args.seed)
    print(f"{data.name}: {len(data.queries)} queries, {len(data.corpus)} documents", file=sys.stderr)
    report = evaluate(data, args.settings, seed=args.seed, log=lambda m: print(m, file=sys.stderr))
    print(report.table())
    _write_json(args.json, report.to_dict())
    return 0


# -- reading vectors ----------------------------------------------------------------------------

def read_rows(path: str, collection: str, field: str, filter: str = "",
              extra: list[str] | None = None) -> tuple[np.ndarray, list[dict]]:
    """The vectors of ``field`` in rows matching ``filter``, in the order they were written,
    and the rows' ``extra`` fields."""
    with _open(path) as client:
        types = {f["name"]: f["type"] for f in client.describe_collection(collection)["fields"]}
        if field not in types:
            raise CliError(f"--field {field!r} is not a field of {collection!r}; fields: {sorted(types)}")
        if types[field] not in DENSE_TYPES:
            raise CliError(f"--field {field!r} is of type {types[field].name}; "
                           "drift and map read dense vector fields")
        rows = client.query(collection, filter=filter, output_fields=[field, *(extra or [])])
    if not rows:
        raise CliError(f"no rows of {collection!r} match {filter!r}" if filter else f"{collection!r} is empty")
    return np.asarray([r[field] for r in rows], dtype=np.float32), rows


# -- drift --------------------------------------------------------------------------------------

@command("drift", "test whether a collection's vectors have drifted (MMD, centroid shift, PSI)",
         PATH, COLLECTION, FIELD,
         arg("--reference-filter", metavar="EXPR", help="rows of the reference sample"),
         arg("--current-filter", metavar="EXPR", help="rows of the current sample"),
         arg("--split-by-insert-order", type=float, metavar="FRACTION",
             help="reference: the first FRACTION of rows written; current: the rest"),
         arg("--permutations", type=int, default=500, help="MMD permutations (default: %(default)s)"),
         arg("--max-samples", type=int, default=1000, help="rows a side for the MMD (default: %(default)s)"),
         arg("--p-value", type=float, default=0.01, help="MMD alarm threshold (default: %(default)s)"),
         arg("--seed", type=int, default=0, help="default: %(default)s"),
         arg("--png", metavar="FILE", help="write the report as a PNG"),
         arg("--json", metavar="FILE", help="write the report as JSON"),
         arg("--fail-on-drift", action="store_true", help="exit with status 1 when drift is found"))
def cmd_drift(args: argparse.Namespace) -> int:
    """Compare a reference sample of COLLECTION's vectors with a current one."""
    from harrierdb.quality.drift import Thresholds, compare, plot

    by_filter = args.reference_filter is not None or args.current_filter is not None
    if by_filter == (args.split_by_insert_order is not None):
        raise CliError("pass either --reference-filter and --current-filter, or --split-by-insert-order")
    if by_filter:
        if args.reference_filter is None or args.current_filter is None:
            raise CliError("--reference-filter and --current-filter go together")
        reference, _ = read_rows(args.path, args.collection, args.field, args.reference_filter)
        current, _ = read_rows(args.path, args.collection, args.field, args.current_filter)
    else:
        fraction = args.split_by_insert_order
        if not 0 < fraction < 1:
            raise CliError(f"--split-by-insert-order must be in (0, 1), got {fraction}")
        vectors, _ = read_rows(args.path, args.collection, args.field)
        cut = int(round(len(vectors) * fraction))
        if cut < 2 or len(vectors) - cut < 2:
            raise CliError(f"splitting {len(vectors)} rows at {fraction} leaves fewer than 2 a side")
        reference, current = vectors[:cut], vectors[cut:]
    report = compare(reference, current, permutations=args.permutations, seed=args.seed,
                     max_samples=args.max_samples, thresholds=Thresholds(p_value=args.p_value))
    print(report.summary())
    if args.png:
        plot(report, args.png, title=f"{args.collection}.{args.field}: "
                                     f"{'DRIFT' if report.is_drift else 'no drift'} "
                                     f"(MMD p = {report.mmd_p_value:.3g}, "
                                     f"centroid shift = {report.centroid_shift:.3g})")
        print(f"wrote {args.png}")
    _write_json(args.json, report.to_dict())
    return 1 if report.is_drift and args.fail_on_drift else 0


# -- map ----------------------------------------------------------------------------------------

@command("map", "draw a 2-D map (PCA, or UMAP if installed) of a collection's vectors as a PNG",
         PATH, COLLECTION, FIELD,
         arg("--color", metavar="FIELD", help="scalar field to colour the points by"),
         arg("--filter", default="", metavar="EXPR", help="only rows matching EXPR"),
         arg("--png", required=True, metavar="FILE", help="output PNG"),
         arg("--method", choices=["auto", "pca", "umap"], default="auto",
             help="default: %(default)s (UMAP when umap-learn is installed, else PCA)"),
         arg("--limit", type=int, default=5000, metavar="N",
             help="at most N points, a random sample (default: %(default)s)"),
         arg("--seed", type=int, default=0, help="default: %(default)s"))
def cmd_map(args: argparse.Namespace) -> int:
    """Project COLLECTION's vectors to 2-D and draw them coloured by --color."""
    from harrierdb.quality.projection import plot_map, project

    if args.limit < 1:
        raise CliError(f"--limit must be >= 1, got {args.limit}")
    extra = [args.color] if args.color else []
    vectors, rows = read_rows(args.path, args.collection, args.field, args.filter, extra)
    if len(vectors) > args.limit:
        keep = np.sort(np.random.default_rng(args.seed).choice(len(vectors), args.limit, replace=False))
        vectors, rows = vectors[keep], [rows[i] for i in keep.tolist()]
    values = None
    if args.color:
        values = [r.get(args.color) for r in rows]
        if any(isinstance(v, (list, dict)) for v in values):
            raise CliError(f"--color {args.color!r} must be a scalar field (number, string or bool)")
    projection = project(vectors, args.method, args.seed)
    title = f"{args.collection}.{args.field}: {len(vectors)} vectors, {projection.method.upper()}"
    plot_map(projection, values, args.png, title=title + (f", coloured by {args.color}" if args.color else ""),
             color_label=args.color or "value")
    print(f"wrote {args.png} ({len(vectors)} points, {projection.method})")
    return 0
