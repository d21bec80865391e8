"""Figures (PNG and PDF) from finished sweeps.

    python analysis/plots.py INPUT... --out DIR [--kinds curves,weights,gradients,cca,go_pairs,features]
                             [--metric acc,macro_f1] [--duplicates error|newest|oldest]
                             [--scale auto|percent|fraction] [--pairs al:goal,ogm:ogm_go]
                             [--methods goal,none] [--seed N] [--split test] [--embedding tsne|umap]
                             [--data-root DIR] [--device cpu]

INPUT: a Ray Tune experiment folder (or a folder of them) or a tidy CSV with
one row per trial (CSV inputs have no per-epoch rows, so only the temperature,
diagnostics and GO-pair figures). By default the sweep's figures (KINDS); the
paper's are drawn when named in --kinds: cca (Figure 2b), go_pairs (2c) and
features (3 and 6: the fused features of trained models in two dimensions,
read from each chosen trial's checkpoint).
Input errors: one line "error: ..." and exit status 2. Prints the written
files, one per line; see goal_plugin.analysis.plots, .go_pairs and
.feature_maps for what each figure shows and how the files are named.
"""

from __future__ import annotations

import argparse
import sys

from goal_plugin.analysis import AnalysisError, load_results
from goal_plugin.analysis.errors import replaced_files
from goal_plugin.analysis.loading import add_input_options
from goal_plugin.analysis.metrics import task_metric_names
from goal_plugin.analysis.plots import KINDS, PAPER_KINDS, make_plots

NOTHING = "nothing to plot: no per-epoch rows, temperatures or diagnostics"
FEATURES = "features"  # goal_plugin.analysis.feature_maps.KIND (imported on use: it needs torch)
FEATURE_OPTIONS = ("methods", "seed", "split", "embedding", "data_root", "device")


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="experiment folder or tidy CSV")
    parser.add_argument("--out", required=True, help="folder for the figures")
    parser.add_argument(
        "--kinds",
        type=_names,
        help=f"comma-separated figure kinds to draw (default: {', '.join(KINDS)}); the paper's "
        f"figures when named: {', '.join([*PAPER_KINDS, FEATURES])}",
    )
    parser.add_argument(
        "--metric",
        help="comma-separated CSV columns that are metrics, as in tables.py (acc: acc or test_acc; "
        "default: the metrics of every task)",
    )
    add_input_options(parser)
    parser.add_argument(
        "--pairs",
        help="go_pairs: comma-separated WITHOUT:WITH strategy pairs, each required in the trials "
        "(default: those of al:goal, ogm:ogm_go, arl:arl_go, none_uniloss:go that ran)",
    )
    features = parser.add_argument_group(f"{FEATURES} (only with --kinds {FEATURES})")
    features.add_argument(
        "--methods",
        type=_names,
        help="comma-separated methods as the tables name them (default: all)",
    )
    features.add_argument(
        "--seed", type=int, help="the seed of the trial drawn per method (default: its lowest)"
    )
    features.add_argument(
        "--split", default="test", choices=("train", "val", "test"), help="default: test"
    )
    features.add_argument(
        "--embedding",
        default="tsne",
        choices=("tsne", "umap"),
        help="default: tsne (UMAP needs umap-learn)",
    )
    features.add_argument(
        "--data-root", help="read the data from here, not the trials' data_root (data moved)"
    )
    features.add_argument("--device", default="cpu", help="where the encoders run (default: cpu)")
    args = parser.parse_args(argv)
    kinds = args.kinds if args.kinds is not None else list(KINDS)
    unknown = sorted(set(kinds) - {*KINDS, *PAPER_KINDS, FEATURES})
    if unknown:
        print(f"error: unknown figure kind(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    if args.pairs is not None and "go_pairs" not in kinds:
        print("error: --pairs chooses the go_pairs figure: add go_pairs to --kinds", file=sys.stderr)
        return 2
    given = [
        f"--{o.replace('_', '-')}"
        for o in FEATURE_OPTIONS
        if getattr(args, o) != parser.get_default(o)
    ]
    if given and FEATURES not in kinds:
        print(
            f"error: {', '.join(given)} choose(s) the {FEATURES} figure: add {FEATURES} to --kinds",
            file=sys.stderr,
        )
        return 2
    try:
        metrics = task_metric_names() if args.metric is None else _names(args.metric)
        results = load_results(
            args.inputs, metrics=metrics, scale=args.scale, duplicates=args.duplicates
        )
        pairs = None if args.pairs is None else _parse_pairs(args.pairs)

        def write():
            paths = make_plots(results, args.out, [k for k in kinds if k != FEATURES], pairs=pairs)
            if FEATURES in kinds:
                from goal_plugin.analysis.feature_maps import draw_feature_maps

                options = {o: getattr(args, o) for o in FEATURE_OPTIONS if o != "methods"}
                paths += draw_feature_maps(results, args.out, args.methods, **options)[0]
            return paths

        paths, replaced = replaced_files(args.out, write)
    except AnalysisError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if replaced:
        print(replaced, file=sys.stderr)  # an earlier run's files in the same folder
    print("\n".join(map(str, paths)) if paths else NOTHING)
    return 0


def _parse_pairs(text: str):
    from goal_plugin.analysis.go_pairs import parse_pairs

    return parse_pairs(text)


if __name__ == "__main__":
    sys.exit(main())
