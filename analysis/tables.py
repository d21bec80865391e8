"""Significance-tested tables from finished sweeps.

    python analysis/tables.py INPUT... --out DIR [--reference goal] [--metric acc,macro_f1] [--alpha 0.05]

INPUT: a Ray Tune experiment folder (or a folder of them) or a tidy CSV with
one row per trial. Writes DIR/summary.csv, tables.md and tables.tex and prints
the tables. Input errors: one line "error: ..." and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from goal_plugin.analysis import AnalysisError, load_results, summarise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="experiment folder or tidy CSV")
    parser.add_argument(
        "--out", required=True, help="folder for summary.csv, tables.md, tables.tex"
    )
    parser.add_argument(
        "--reference", default="goal", help="strategy or method label (default: goal)"
    )
    parser.add_argument(
        "--metric", default="acc,macro_f1", help="comma-separated; acc means test_acc"
    )
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level after Holm")
    args = parser.parse_args(argv)
    try:
        results = load_results(args.inputs)
        metrics = [m.strip() for m in args.metric.split(",") if m.strip()]
        summary = summarise(results, reference=args.reference, metrics=metrics, alpha=args.alpha)
        paths = summary.write(args.out)
    except AnalysisError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summary.to_terminal())
    print("wrote " + ", ".join(map(str, paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
