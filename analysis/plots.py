"""Figures (PNG and PDF) from finished sweeps.

    python analysis/plots.py INPUT... --out DIR [--kinds curves,weights,gradients] [--metric acc,macro_f1]
                             [--duplicates error|newest|oldest] [--scale auto|percent|fraction]

INPUT: a Ray Tune experiment folder (or a folder of them) or a tidy CSV with
one row per trial (CSV inputs have no per-epoch rows, so only the temperature
and diagnostics figures). Input errors: one line "error: ..." and exit status 2.
Prints the written files, one per line; see goal_plugin.analysis.plots for
what each figure shows and how the files are named.
"""

from __future__ import annotations

import argparse
import sys

from goal_plugin.analysis import AnalysisError, load_results
from goal_plugin.analysis.errors import replaced_files
from goal_plugin.analysis.loading import add_input_options
from goal_plugin.analysis.metrics import task_metric_names
from goal_plugin.analysis.plots import KINDS, make_plots

NOTHING = "nothing to plot: no per-epoch rows, temperatures or diagnostics"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="experiment folder or tidy CSV")
    parser.add_argument("--out", required=True, help="folder for the figures")
    parser.add_argument(
        "--kinds",
        type=lambda text: [k.strip() for k in text.split(",") if k.strip()],
        help=f"comma-separated figure kinds to draw (default: all): {', '.join(KINDS)}",
    )
    parser.add_argument(
        "--metric",
        help="comma-separated CSV columns that are metrics, as in tables.py (acc: acc or test_acc; "
        "default: the metrics of every task)",
    )
    add_input_options(parser)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.kinds or ()) - set(KINDS))
    if unknown:
        print(f"error: unknown figure kind(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    try:
        metrics = task_metric_names() if args.metric is None else [m.strip() for m in args.metric.split(",") if m.strip()]
        results = load_results(
            args.inputs, metrics=metrics, scale=args.scale, duplicates=args.duplicates
        )
        paths, replaced = replaced_files(
            args.out, lambda: make_plots(results, args.out, args.kinds)
        )
    except AnalysisError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if replaced:
        print(replaced, file=sys.stderr)  # an earlier run's files in the same folder
    print("\n".join(map(str, paths)) if paths else NOTHING)
    return 0


if __name__ == "__main__":
    sys.exit(main())
