"""Train one trial without Ray.

    python runners/train.py                                  # mfeat, mlp, goal -> runs/mfeat-goal-<time>
    python runners/train.py --config trial.yaml --set alpha=0.8     # trial.yaml: config keys, e.g. strategy: ogm
    python runners/train.py --set dataset_options.views=[pix,fou,kar] --output runs/a
    python runners/train.py --resume runs/a                  # continue after a crash
    python runners/train.py --config trial.yaml --check-data  # open every data file, train nothing

Every run writes config.json, metrics.json and a checkpoint per epoch to its folder:
--output, or a new runs/<dataset>-<strategy>-<time> in the current directory. A folder
that already holds a run is refused unless --overwrite is given. Config keys and
strategy hyperparameters: --list-keys.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from goal_plugin.engine import (
    CheckpointError,
    ConfigError,
    DivergenceError,
    RunFolderError,
    TrialConfig,
    fit,
    resolve_config,
)
from goal_plugin.engine.checkpoint import checkpoint_file
from goal_plugin.engine.cli import (
    apply_overrides,
    check_trial_data,
    format_config_keys,
    format_summary,
    load_config_file,
    load_run_config,
)
from goal_plugin.engine.run_folder import new_run_folder

DEFAULT_RUNS = Path("runs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", help="YAML file of trial-config keys")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key (repeatable)",
    )
    parser.add_argument(
        "--output",
        help=f"folder for config.json, metrics.json and checkpoints (default: a new {DEFAULT_RUNS}/<dataset>-<strategy>-<time>)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the run already in --output"
    )
    parser.add_argument(
        "--resume", metavar="DIR", help="continue the run saved in DIR (its own config)"
    )
    parser.add_argument(
        "--skip-missing",
        action="store_true",
        help="skip clips whose files are missing or malformed and count them per split "
        "(dataset_options.skip_missing=true; datasets read from files only)",
    )
    parser.add_argument(
        "--check-data",
        action="store_true",
        help="open every file of each split the trial would read, report the missing or malformed "
        "ones (a manifest's bad rows by line and column) and exit without training",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    parser.add_argument(
        "--list-keys",
        action="store_true",
        help="print the config keys and strategy hyperparameters with their defaults",
    )
    args = parser.parse_args(argv)
    if args.list_keys:
        print(format_config_keys())
        return 0
    created = None
    try:
        resume_from, overwrite = None, args.overwrite
        if args.resume:
            if args.config or args.set or args.output or args.overwrite or args.skip_missing or args.check_data:
                raise ConfigError(
                    "--resume uses the run's saved config and folder; do not pass --config, --set, "
                    "--output, --overwrite, --skip-missing or --check-data"
                )
            output = Path(args.resume)
            config = _resolve(load_run_config(output), f"{output / 'config.json'}: ")
            if checkpoint_file(output / "checkpoint").is_file():
                resume_from = output
            else:  # killed before its first checkpoint: nothing to keep but the same config
                overwrite = True
                print(f"{output} has no checkpoint yet: starting from the first epoch", flush=True)
        else:
            config = _resolve(
                apply_overrides(
                    load_config_file(args.config) if args.config else {},
                    [*args.set, *(["dataset_options.skip_missing=true"] if args.skip_missing else [])],
                )
            )
            if args.check_data:
                report, readable = check_trial_data(config)
                print(report)
                return 0 if readable else 1
            if args.output:
                output = Path(args.output)
            else:
                output = created = new_run_folder(
                    DEFAULT_RUNS, f"{config.dataset}-{config.strategy}"
                )
        print(f"run folder: {output}", flush=True)
        log = None if args.quiet else lambda line: print(line, flush=True)
        results = fit(
            config,
            output_dir=output,
            resume_from=resume_from,
            overwrite=overwrite,
            progress=not args.quiet,
            log=log,
        )
    except (ConfigError, CheckpointError, RunFolderError) as error:
        if created is not None and not any(created.iterdir()):
            created.rmdir()  # the default folder of a run that never started
        print(f"error: {error}", file=sys.stderr)
        return 2
    except DivergenceError as error:
        print(f"error: {error} (run folder: {output})", file=sys.stderr)
        return 1
    print(format_summary(results))
    print(f"metrics and checkpoints in {output}")
    return 0


def _resolve(raw: dict, source: str = "") -> TrialConfig:
    """The validated config; ``source`` prefixes the error (the file it came from)."""
    try:
        return resolve_config(raw)
    except ConfigError as error:
        raise ConfigError(f"{source}{error}") from None


if __name__ == "__main__":
    sys.exit(main())
