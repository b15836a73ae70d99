"""``harrier`` subcommands of the apps: ``finetune`` and ``recommend``.

    harrier finetune --pairs pairs.jsonl --output DIR [--epochs N] [--batch-size N] [--lr X]
    harrier recommend PATH NAME [--fit RATINGS [--items ITEMS]] [--user U | --item I] [--k 10]

Importing this module registers the commands (see ``harrierdb.cli.COMMAND_MODULES``).
"""

from __future__ import annotations

import argparse
import json

from harrierdb.cli import PATH, CliError, _open, arg, command


@command("finetune", "adapt the dense embedding model to (query, text) pairs (needs torch)",
         arg("--pairs", required=True, metavar="FILE",
             help='JSONL file of {"query": ..., "text": ...} objects'),
         arg("--output", required=True, metavar="DIR", help="directory for the tuned model"),
         arg("--base", default="all-MiniLM-L6-v2", metavar="MODEL",
             help="packaged model name or a model directory (default: %(default)s)"),
         arg("--eval-pairs", metavar="FILE", help="held-out pairs (default: --eval-fraction of --pairs)"),
         arg("--eval-fraction", type=float, default=0.2, metavar="F",
             help="share of distinct texts held out for before/after metrics (default: %(default)s)"),
         arg("--epochs", type=int, default=1, metavar="N", help="default: %(default)s"),
         arg("--batch-size", type=int, default=32, metavar="N", help="default: %(default)s"),
         arg("--lr", type=float, default=2e-5, metavar="X", help="learning rate (default: %(default)s)"),
         arg("--seed", type=int, default=0, metavar="N", help="default: %(default)s"),
         arg("--no-onnx", action="store_true", help="write only model.safetensors (no model.onnx)"),
         arg("--overwrite", action="store_true", help="write into a non-empty --output directory, replacing its model files"))
def cmd_finetune(args: argparse.Namespace) -> int:
    """Fine-tune, print nDCG@10/recall@10 before and after, and how to re-embed with the result."""
    from harrierdb.apps.finetune import finetune, read_pairs

    pairs = read_pairs(args.pairs)
    eval_pairs = read_pairs(args.eval_pairs) if args.eval_pairs else None
    result = finetune(pairs, base=args.base, output_dir=args.output, epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, seed=args.seed, eval_pairs=eval_pairs,
                      eval_fraction=args.eval_fraction, export_onnx=not args.no_onnx,
                      overwrite=args.overwrite, log=lambda line: print(line, flush=True))
    print(result.summary())
    print("\nto move a collection to the tuned model (the source collection is kept):\n"
          "  harrier reembed PATH COLLECTION --text-field TEXT --vector-field VECTOR "
          f"--to NEW_COLLECTION --model-dir {result.output_dir}")
    return 0


@command("recommend", "fit a recommender from ratings, or recommend items for a user",
         PATH, arg("name", metavar="NAME", help="recommender name (collections NAME_users, NAME_items)"),
         arg("--fit", metavar="RATINGS", help="CSV/Parquet of user, item, rating[, timestamp] to fit on"),
         arg("--items", metavar="ITEMS", help="with --fit: CSV/Parquet of item metadata (item, title, ...)"),
         arg("--model", default="implicit", choices=["implicit", "explicit"], help="default: %(default)s"),
         arg("--user", metavar="U", help="recommend for this user (popular items if unknown)"),
         arg("--item", metavar="I", help="items similar to this item"),
         arg("--k", type=int, default=10, metavar="N", help="how many items (default: %(default)s)"),
         arg("--include-seen", action="store_true", help="keep items the user already rated"),
         arg("--json", action="store_true", help="one JSON object per line"))
def cmd_recommend(args: argparse.Namespace) -> int:
    """Fit (--fit) and/or answer (--user, --item) with the recommender NAME in PATH."""
    from harrierdb.apps.recommend import Recommender

    if not (args.fit or args.user is not None or args.item is not None):
        raise CliError("nothing to do: pass --fit RATINGS, --user U or --item I")
    if args.user is not None and args.item is not None:
        raise CliError("pass --user or --item, not both")
    if args.items and not args.fit:
        raise CliError("--items goes with --fit")
    with _open(args.path, create=bool(args.fit)) as client:
        rec = Recommender(client, args.name)
        if args.fit:
            rec.fit(args.fit, items=args.items, model=args.model)
            n_users = client.get_collection_stats(rec.users)["row_count"]
            n_items = client.get_collection_stats(rec.items)["row_count"]
            print(f"fitted {args.name}: {n_users} users, {n_items} items ({args.model} ALS)")
        if args.user is not None:
            known = bool(rec.seen(args.user))
            hits = rec.recommend(args.user, args.k, exclude_seen=not args.include_seen)
            heading = f"top {args.k} for user {args.user}" if known else \
                f"user {args.user} is unknown: the {args.k} most popular items"
        elif args.item is not None:
            hits = rec.similar_items(args.item, args.k)
            heading = f"{args.k} items similar to {args.item}"
        else:
            return 0
    _print_hits(hits, heading, args.json)
    return 0


def _print_hits(hits: list[dict], heading: str, as_json: bool) -> None:
    if as_json:
        for hit in hits:
            print(json.dumps(hit, ensure_ascii=False))
        return
    print(heading)
    for rank, hit in enumerate(hits, 1):
        label = hit.get("title", "")
        print(f"{rank:>3}. {hit['id']!s:<12} {hit['score']:>10.4f}  {label}")
