"""``harrier`` subcommands for the document apps: index a directory, search it, ask it.

    harrier index PATH DIR [--collection docs] [--chunk-tokens 200] [--overlap 40]
    harrier search PATH "query" [--collection docs] [--k 5] [--mode hybrid]
    harrier ask PATH "question" [--collection docs] [--k 5] [--token-budget 1500] [--extractive]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from harrierdb.apps.documents import ANSI_MARKERS, MODES, PLAIN_MARKERS, index_directory, search_documents
from harrierdb.cli import PATH, _open, arg, command

COLLECTION = arg("--collection", default="docs", help="collection of chunks (default: %(default)s)")
K = arg("--k", type=int, default=5, help="number of chunks (default: %(default)s)")


def _markers() -> tuple[str, str]:
    """ANSI bold on a terminal (unless NO_COLOR is set), «» otherwise."""
    tty = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    return ANSI_MARKERS if tty else PLAIN_MARKERS


def _shown(source: str) -> str:
    """A source path relative to the working directory when it lies below it."""
    try:
        return str(Path(source).relative_to(Path.cwd()))
    except ValueError:
        return source


@command("index", "index a directory of .txt/.md/.html/.pdf files for search (only changes are redone)",
         PATH, arg("directory", metavar="DIR", help="directory to index, recursively"), COLLECTION,
         arg("--chunk-tokens", type=int, default=200, help="tokens per chunk (default: %(default)s)"),
         arg("--overlap", type=int, default=40, help="tokens shared by neighbouring chunks "
                                                      "(default: %(default)s)"))
def cmd_index(args: argparse.Namespace) -> int:
    """Index DIR into the collection, then print what changed."""
    with _open(args.path, create=True) as client:
        report = index_directory(client, args.collection, args.directory, args.chunk_tokens, args.overlap)
    for label, paths in (("added", report.added), ("changed", report.changed), ("deleted", report.deleted)):
        for source in paths:
            print(f"{label:8} {_shown(source)}")
    for source, why in report.skipped.items():
        print(f"skipped  {_shown(source)}: {why}", file=sys.stderr)
    print(report.summary())
    return 0


@command("search", "search indexed documents: rank, score, source:offset, heading and snippet",
         PATH, arg("query", metavar="QUERY"), COLLECTION, K,
         arg("--mode", choices=MODES, default="hybrid", help="default: %(default)s"))
def cmd_search(args: argparse.Namespace) -> int:
    """Print the best chunks for QUERY."""
    with _open(args.path) as client:
        hits = search_documents(client, args.collection, args.query, k=args.k, mode=args.mode,
                                markers=_markers())
    if not hits:
        print("no results")
    for h in hits:
        heading = f"  [{h.heading}]" if h.heading else ""
        print(f"{h.rank:>2}. {h.score:.4f}  {_shown(h.source)}:{h.start}{heading}")
        print(f"    {h.snippet}")
    return 0


@command("ask", "answer a question from indexed documents, with numbered citations",
         PATH, arg("question", metavar="QUESTION"), COLLECTION, K,
         arg("--token-budget", type=int, default=1500, help="prompt size in MiniLM tokens "
                                                            "(default: %(default)s)"),
         arg("--llm-url", help="OpenAI-compatible server (default: $HARRIER_LLM_URL; none: extractive)"),
         arg("--llm-model", help="model name (default: $HARRIER_LLM_MODEL)"),
         arg("--extractive", action="store_true", help="quote the best sentences even if a server is set"),
         arg("--show-prompt", action="store_true", help="print the prompt first"))
def cmd_ask(args: argparse.Namespace) -> int:
    """Print the answer to QUESTION, then its sources by number."""
    from harrierdb.apps.rag import EXTRACTIVE, answer

    with _open(args.path) as client:
        result = answer(client, args.collection, args.question, k=args.k, token_budget=args.token_budget,
                        llm=EXTRACTIVE if args.extractive else None, url=args.llm_url, model=args.llm_model)
    if args.show_prompt:
        print(result.prompt, end="\n\n")
    print(result.text)
    print()
    for number, c in result.citations.items():
        heading = f"  [{c.heading}]" if c.heading else ""
        print(f"[{number}] {_shown(c.source)}:{c.start}-{c.end}{heading}")
    return 0
