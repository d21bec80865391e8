"""Figures (PNG and PDF) from finished sweeps.

    python analysis/plots.py INPUT... --out DIR

INPUT: a Ray Tune experiment folder (or a folder of them) or a tidy CSV with
one row per trial (CSV inputs have no per-epoch rows, so only the temperature
and diagnostics figures). Input errors: one line "error: ..." and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from goal_plugin.analysis import AnalysisError, load_results
from goal_plugin.analysis.plots import make_plots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="experiment folder or tidy CSV")
    parser.add_argument("--out", required=True, help="folder for the figures")
    args = parser.parse_args(argv)
    try:
        paths = make_plots(load_results(args.inputs), args.out)
    except AnalysisError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        "\n".join(map(str, paths))
        if paths
        else "nothing to plot: no per-epoch rows, temperatures or diagnostics"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
