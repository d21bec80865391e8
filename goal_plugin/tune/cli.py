"""The sweep command: validate the space, run it, print the table and the failures."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from goal_plugin import uris
from goal_plugin._validation import unknown_name_message
from goal_plugin.tune.runner import DEFAULT_MAX_FAILURES, SweepOutcome, run_sweep
from goal_plugin.tune.space import SweepSpecError, load_space
from goal_plugin.tune.trainable import CHECKPOINT_EVERY_S

DEFAULT_REFERENCE = "goal"


def main_sweep(args: argparse.Namespace) -> int:
    try:
        spec = load_space(args.space)
        if args.data_root:
            spec = spec.with_data_roots(parse_data_roots(spec, args.data_root))
        check_data_roots_given(spec)
        if args.skip_missing:
            skipping = {c.config["dataset"] for c in spec.cells if _takes_skip_missing(c.config["dataset"])}
            spec = spec.with_dataset_option(skipping, "skip_missing", True)
        if args.check_data:
            return check_space_data(spec)
        reference = check_reference(spec, args.reference)
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
            checkpoint_every_s=args.checkpoint_every_s,
            workers_per_trial=args.workers_per_trial,
            tensorboard=args.tensorboard,
        )
    except (SweepSpecError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"{outcome.finished}/{outcome.total_trials} trials finished; this run took {outcome.wall_time_s:.1f} s "
        f"wall, the trials it trained {outcome.trial_time_s:.1f} s of their own time"
    )
    print(final_table(outcome.experiment_path, reference))
    if outcome.failed:
        print(f"{len(outcome.failed)} trial(s) failed for good:")
        for trial, error_file in outcome.failed:
            print(f"  {trial}: {error_file}")
    if not outcome.missing:
        return 0
    print(f"{len(outcome.missing)} grid cell(s) without all their finished trials:")
    for cell in outcome.missing:
        print(f"  {cell}")
    print(f"incomplete: {outcome.finished}/{outcome.total_trials} trials finished; resume with: {resume_command(args, outcome)}")
    return 1


def _takes_skip_missing(dataset: str) -> bool:
    from goal_plugin.data import DATASETS

    return "skip_missing" in DATASETS.options(dataset)


def _file_backed(dataset: str) -> bool:
    from goal_plugin.data.check import reads_files

    return reads_files(dataset)


def parse_data_roots(spec, values: list[str]) -> dict[str, str]:
    """``--data-root`` values (``DATASET=FOLDER``, or a bare ``FOLDER`` when the space
    reads one dataset from files) as ``{dataset: folder}``, each folder checked."""
    datasets = sorted({cell.config["dataset"] for cell in spec.cells})
    from_files = [name for name in datasets if _file_backed(name)]
    roots: dict[str, str] = {}
    for value in values:
        dataset, separator, folder = value.partition("=")
        if not separator:
            if len(from_files) != 1:
                raise ValueError(
                    f"--data-root {value}: this space reads {len(from_files)} datasets from files "
                    f"({', '.join(from_files) or 'none'}); give one DATASET=FOLDER per dataset"
                )
            dataset, folder = from_files[0], value
        else:
            matches = [name for name in datasets if name.casefold() == dataset.casefold()]
            if not matches:
                raise ValueError(f"--data-root: {unknown_name_message('dataset of this space', dataset, datasets)}")
            dataset = matches[0]
        if dataset in roots:
            raise ValueError(f"--data-root: {dataset} is given twice ({roots[dataset]} and {folder})")
        if not Path(folder).expanduser().is_dir():
            raise ValueError(f"--data-root {value}: {folder} is not a folder")
        roots[dataset] = str(Path(folder).expanduser().resolve())
    return roots


def check_data_roots_given(spec) -> None:
    """Every dataset read from files has a folder, before any trial is started. A manifest
    given by its absolute path (dataset ``files``) names its files itself: the trials run in
    other folders, so a relative one needs the data_root it is relative to."""

    def located(config) -> bool:
        manifest = (config.get("dataset_options") or {}).get("manifest")
        return config.get("data_root") is not None or (
            isinstance(manifest, str) and Path(manifest).expanduser().is_absolute()
        )

    rootless = sorted({c.config["dataset"] for c in spec.cells if not located(c.config) and _file_backed(c.config["dataset"])})
    if rootless:
        given = " ".join(f"--data-root {name}=FOLDER" for name in rootless)
        raise ValueError(f"{', '.join(rootless)}: no data_root in {spec.source}; give {given}")


def check_space_data(spec) -> int:
    """``--check-data``: open every file the space's trials would read; train nothing.
    Exit status 0 when nothing is missing or malformed, 1 otherwise."""
    from goal_plugin.data.check import check_data, format_check

    reads = {}
    for cell in spec.cells:
        config = cell.config
        key = json.dumps([config["dataset"], config.get("data_root"), config.get("dataset_options") or {}], sort_keys=True, default=str)
        reads[key] = (config["dataset"], config.get("data_root"), config.get("dataset_options") or {})
    results = []
    for dataset, root, options in reads.values():
        print(f"checking {dataset} at {root or '(embedded)'} ...", file=sys.stderr)
        results.extend(check_data(dataset, root, options))
    print(format_check(results))
    bad = [r for r in results if not r.ok]
    if bad:
        print(f"data check: {len(bad)} of {len(results)} split(s) have missing or malformed files")
        return 1
    print(f"data check: every file of {len(results)} split(s) opened and had the expected shape")
    return 0


def check_reference(spec, reference: str | None) -> str:
    """The space's spelling of ``reference``, checked before anything runs. Without
    one: ``goal`` if the space has it, else the space's first strategy."""
    in_order = list(dict.fromkeys(cell.config["strategy"] for cell in spec.cells))
    if reference is None:
        return DEFAULT_REFERENCE if DEFAULT_REFERENCE in in_order else in_order[0]
    strategies = sorted(in_order)
    for strategy in strategies:
        if strategy.casefold() == reference.casefold():
            return strategy
    raise ValueError(f"--reference: {unknown_name_message('strategy of this space', reference, strategies)}")


def resume_command(args: argparse.Namespace, outcome: SweepOutcome) -> str:
    if uris.is_uri(outcome.experiment_path):
        base, query = uris.split_query(outcome.experiment_path)
        storage, name = base.rsplit("/", 1)
        storage += query
    else:
        experiment = Path(outcome.experiment_path)
        name, storage = experiment.name, str(experiment.parent)
    words = ["python", "runners/sweep.py", str(args.space), "--name", name, "--storage", storage, "--resume"]
    for option in ("address", "workers_per_trial", "cpus_per_trial", "gpus_per_trial", "max_concurrent"):
        value = getattr(args, option)
        if value is not None:
            words += [f"--{option.replace('_', '-')}", f"{value:g}" if isinstance(value, float) else str(value)]
    if args.max_failures != DEFAULT_MAX_FAILURES:
        words += ["--max-failures", str(args.max_failures)]
    if args.checkpoint_every_s != CHECKPOINT_EVERY_S:
        words += ["--checkpoint-every-s", f"{args.checkpoint_every_s:g}"]
    if args.tensorboard:
        words.append("--tensorboard")
    if args.reference is not None:
        words += ["--reference", args.reference]
    for value in args.data_root or ():
        words += ["--data-root", value]
    if args.skip_missing:
        words.append("--skip-missing")
    return shlex.join(words)


def final_table(experiment_path: str, reference: str) -> str:
    """The analysis layer's table (the metrics of the trials' tasks), also written to
    <experiment>/analysis/ (a folder, or the same place in the URI's store)."""
    from goal_plugin.analysis import AnalysisError, load_results, summarise

    try:
        results = load_results([experiment_path])
        reference = reference_method(results, reference)
        # Each dataset's task's metrics (goal_plugin.analysis.metrics.TASK_METRICS).
        summary = summarise(results, reference=reference)
    except AnalysisError as error:
        return f"no table: {error}"
    if uris.is_uri(experiment_path):
        out_dir = uris.join(experiment_path, "analysis")
        _write_to_uri(summary, out_dir)
        out_dir = uris.split_query(out_dir)[0]
    else:
        out_dir = Path(experiment_path) / "analysis"
        summary.write(out_dir)
    return f"{summary.to_terminal()}\n(tables written to {out_dir})"


def _write_to_uri(summary, uri: str) -> None:
    """``summary.write`` into a local folder, then copied to ``uri``."""
    import tempfile

    import pyarrow.fs as pafs

    filesystem, path = pafs.FileSystem.from_uri(uri)
    with tempfile.TemporaryDirectory() as folder:
        summary.write(folder)
        pafs.copy_files(folder, path, destination_filesystem=filesystem, use_threads=False)


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
    if "search_params" in trials:  # a searched value equal to the default is not the grid setting
        chosen &= trials["search_params"].isna()
    for column in varied:
        if column in defaults:
            chosen &= trials[column] == defaults[column]
    if not chosen.any():
        return strategy
    return method_labels(trials[chosen].head(1), {strategy: varied}).iloc[0]
