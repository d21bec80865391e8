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
        results = load_results([experiment_path])
        reference = reference_method(results, reference)
        summary = summarise(results, reference=reference, metrics=TABLE_METRICS)
    except AnalysisError as error:
        return f"no table: {error}"
    out_dir = Path(experiment_path) / "analysis"
    summary.write(out_dir)
    return f"{summary.to_terminal()}\n(tables written to {out_dir})"


def reference_method(results, strategy: str) -> str:
    """The reference's method label: when the sweep varied the reference strategy's
    hyperparameters (a temperature study), the setting with the recipe's defaults."""
    from goal_plugin.analysis.methods import label_columns, method_labels
    from goal_plugin.registry import STRATEGIES

    trials = results.trials
    varied = label_columns(trials, results.config_columns).get(strategy, [])
    if not varied or strategy not in STRATEGIES.names():
        return strategy
    defaults = STRATEGIES.options(strategy)
    chosen = trials["strategy"] == strategy
    for column in varied:
        if column in defaults:
            chosen &= trials[column] == defaults[column]
    if not chosen.any():
        return strategy
    return method_labels(trials[chosen].head(1), {strategy: varied}).iloc[0]
