"""The sweep command: validate the space, run it, print the table and the failures."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from goal_plugin.tune.runner import SweepOutcome, run_sweep
from goal_plugin.tune.space import SweepSpecError, load_space

TABLE_METRICS = ("test_acc", "test_macro_f1")


def main_sweep(args: argparse.Namespace) -> int:
    try:
        spec = load_space(args.space)
        outcome = run_sweep(
            spec,
            name=args.name,
            storage=args.storage,
            resume=args.resume,
            address=args.address,
            cpus_per_trial=args.cpus_per_trial,
            gpus_per_trial=args.gpus_per_trial,
            max_concurrent=args.max_concurrent,
            max_failures=args.max_failures,
        )
    except (SweepSpecError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(overhead_line(outcome))
    print(final_table(outcome.experiment_path, args.reference))
    if outcome.failed:
        print(f"{len(outcome.failed)} trial(s) failed for good:")
        for trial, error_file in outcome.failed:
            print(f"  {trial}: {error_file}")
    return 1 if outcome.failed else 0


def overhead_line(outcome: SweepOutcome) -> str:
    ideal = outcome.trial_time_s / outcome.concurrency
    return (
        f"{outcome.finished}/{outcome.total_trials} trials finished in {outcome.wall_time_s:.1f} s wall; "
        f"trials' own time {outcome.trial_time_s:.1f} s / concurrency {outcome.concurrency} = {ideal:.1f} s; "
        f"Ray overhead {outcome.wall_time_s - ideal:.1f} s"
    )


def final_table(experiment_path: str, reference: str) -> str:
    """The analysis layer's table, also written to <experiment>/analysis/."""
    if "://" in experiment_path:
        return (
            f"results are in {experiment_path}; copy the experiment folder locally and run "
            "analysis/tables.py on it for the table"
        )
    from goal_plugin.analysis import AnalysisError, load_results, summarise

    try:
        summary = summarise(load_results([experiment_path]), reference=reference, metrics=TABLE_METRICS)
    except AnalysisError as error:
        return f"no table: {error}"
    out_dir = Path(experiment_path) / "analysis"
    summary.write(out_dir)
    return f"{summary.to_terminal()}\n(tables written to {out_dir})"
