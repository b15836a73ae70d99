"""Recall vs QPS: HarrierDB beside bare FAISS and the embedded peers (a thin wrapper on
``harrierdb.bench``, which ``harrier bench`` also runs).

    python benchmarks/bench_ann.py --dataset clustered --rows 100000
    python benchmarks/bench_ann.py --dataset clustered,fashion-mnist --profile /tmp/harrier.prof.txt

Unlike ``harrier bench``, this script writes the plot to benchmarks/ann_recall_qps.png and
updates the "ANN: recall vs QPS" section of benchmarks/RESULTS.md by default.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))  # run from a checkout without installing

from harrierdb import bench  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bench.add_arguments(parser, plot_default=str(HERE / "ann_recall_qps.png"),
                        results_default=str(HERE / "RESULTS.md"))
    args = parser.parse_args(argv)
    command = "python benchmarks/bench_ann.py " + " ".join(shlex.quote(a) for a in argv)
    return bench.run(args, command=command.strip())


if __name__ == "__main__":
    raise SystemExit(main())
