"""Time the analysis of a synthetic Ray Tune experiment of 500 to 10,000 trials.

5 datasets x 2 backbones x 10 methods (none, al, go, ogm, ogm_ge, arl and goal
at 4 temperatures) x ``--trials / 100`` seeds (5 for the default 500 trials),
each trial with ``--epochs`` per-epoch rows and a final row, written in the
sweep runner's folder format by the test fixtures. Reports the library stages
(load, summarise, write, plots) in one process with the process's peak memory,
and the wall time of each CLI as a fresh process (imports included).

    python benchmarks/analysis_speed.py [--trials 500] [--epochs 30] [--keep DIR]
    python benchmarks/analysis_speed.py --trials 10000
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the fixtures live in tests/

from goal_plugin.analysis import load_results, summarise
from goal_plugin.analysis.plots import make_plots
from tests._analysis_fixtures import experiment_files, finished_trial

DATASETS = ("mfeat", "cremad", "kinetics_sounds", "ucf101", "food101")
BACKBONES = ("mlp", "resnet18")
METHODS = [("none", {}), ("al", {}), ("go", {}), ("ogm", {}), ("ogm_ge", {}), ("arl", {})] + [
    ("goal", {"temperature": t}) for t in (0.25, 0.5, 1.0, 2.0)
]
CELLS = len(DATASETS) * len(BACKBONES) * len(METHODS)
REFERENCE = "goal (T=1)"  # goal ran at several temperatures: name the one to compare against


def write_experiment(root: Path, epochs: int, seeds: int) -> int:
    experiment_files(root)
    noise = np.random.default_rng(0)
    count = 0
    for d, dataset in enumerate(DATASETS):
        for backbone in BACKBONES:
            for m, (strategy, settings) in enumerate(METHODS):
                for seed in range(seeds):
                    # Accuracies on a 400-sample test set: discrete, so the across-dataset
                    # Wilcoxon tests meet ties (scipy's slowest path).
                    accuracy = (
                        round(400 * (0.7 + 0.02 * d + 0.005 * m + noise.normal(0, 0.01))) / 400
                    )
                    finished_trial(
                        root,
                        strategy,
                        seed,
                        accuracy,
                        epochs=epochs,
                        dataset=dataset,
                        backbone=backbone,
                        **settings,
                    )
                    count += 1
    return count


def timed(label: str, action):
    start = time.perf_counter()
    value = action()
    print(f"{label:<40} {time.perf_counter() - start:6.2f} s")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=500, help=f"a multiple of {CELLS} (default 500)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--keep", help="write the experiment here instead of a temporary folder")
    args = parser.parse_args()
    if args.trials < CELLS or args.trials % CELLS:
        parser.error(f"--trials must be a positive multiple of {CELLS}, got {args.trials}")
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(args.keep or scratch)
        experiment = base / "synthetic"
        trials = timed("write experiment", lambda: write_experiment(experiment, args.epochs, args.trials // CELLS))
        print(f"{trials} trials x {args.epochs} epochs")
        results = timed("load_results", lambda: load_results([experiment]))
        summary = timed("summarise", lambda: summarise(results, reference=REFERENCE))
        timed("Summary.write", lambda: summary.write(base / "tables"))
        timed("make_plots", lambda: make_plots(results, base / "plots"))
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{'peak memory of this process':<40} {peak_mb:6.0f} MB")
        for script, options in (("tables", ["--reference", REFERENCE]), ("plots", [])):
            command = [sys.executable, str(ROOT / "analysis" / f"{script}.py"), str(experiment)]
            command += ["--out", str(base / f"cli_{script}"), *options]
            shown = f"analysis/{script}.py"
            run = timed(
                f"CLI {shown} (process)",
                partial(subprocess.run, command, capture_output=True, check=False),
            )
            if run.returncode:
                sys.exit(run.stderr.decode())


if __name__ == "__main__":
    main()
