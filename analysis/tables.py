"""Significance-tested tables from finished sweeps.

    python analysis/tables.py INPUT... --out DIR [--reference goal] [--metric mae,corr] [--alpha 0.05]
                              [--duplicates error|newest|oldest] [--scale auto|percent|fraction]

INPUT: a Ray Tune experiment folder (or a folder of them) or a tidy CSV with
one row per trial. Writes DIR/summary.csv, tables.md and tables.tex and prints
the tables. Without --metric, each dataset's task's metrics: Acc and Macro-F1
(classification), Micro-F1 and Macro-F1 (multi-label), MAE, Corr and, where
reported, Acc-2 (has-zero / non-zero), Acc-7 and F1 (regression). Input errors:
one line "error: ..." and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from goal_plugin.analysis import AnalysisError, load_results, summarise
from goal_plugin.analysis.errors import replaced_files
from goal_plugin.analysis.loading import add_input_options
from goal_plugin.analysis.metrics import task_metric_names


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
        "--metric",
        help="comma-separated; acc means test_acc; CSV columns named here are metrics "
        "(default: the metrics of each dataset's task)",
    )
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level after Holm")
    add_input_options(parser)
    args = parser.parse_args(argv)
    metrics = None if args.metric is None else [m.strip() for m in args.metric.split(",") if m.strip()]
    try:
        if metrics == []:
            raise AnalysisError(f"--metric {args.metric!r} names no metric, e.g. acc,macro_f1")
        results = load_results(
            args.inputs,
            metrics=metrics or task_metric_names(),
            scale=args.scale,
            duplicates=args.duplicates,
        )
        summary = summarise(results, reference=args.reference, metrics=metrics, alpha=args.alpha)
        paths, replaced = replaced_files(args.out, lambda: summary.write(args.out))
    except AnalysisError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if replaced:
        print(replaced, file=sys.stderr)  # an earlier run's files in the same folder
    print(summary.to_terminal())
    print("wrote " + ", ".join(map(str, paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
