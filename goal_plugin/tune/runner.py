"""Run a sweep with Ray Tune: grid x seeds (x Optuna per cell), fault tolerant.

* Each trial is ``engine.fit`` reporting and checkpointing every epoch;
  ``FailureConfig(max_failures)`` retries a trial whose worker died from its
  last checkpoint, which gives the numbers of an uninterrupted run.
* The experiment state and the searcher are saved at Ray's own pace (every
  ten seconds or more, and whenever a trial has written ``num_to_keep`` = 3
  checkpoints since the last save): saving after every report rewrites a state
  that grows with the number of trials, and on two cores took a whole core
  from the trials. A driver that was killed is restarted with ``--resume`` (or
  simply with the same ``--name``): finished trials are kept, unfinished and
  errored ones continue from their newest checkpoint (see ``trainable.py``).
* ``--address auto`` joins a running Ray cluster (``ray start --head``);
  fractional ``--gpus-per-trial`` packs several trials on one GPU; storage may
  be a local folder or a URI the whole cluster can reach.
* Quiet by default: one line per finished or failed trial with counts, the
  best trial so far and a time estimate; at the end, the significance-tested
  table (written into the experiment folder) and the trials that failed for
  good with their error files.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from goal_plugin.tune.space import SweepSpec
from goal_plugin.tune.storage import atomic_local_filesystem

ENVIRONMENT = {
    "RAY_AUTH_MODE": "disabled",  # no token written into the home folder for local runs
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AIR_NEW_OUTPUT": "0",  # with verbose=0 the legacy reporter prints nothing
}


def set_ray_environment() -> None:
    """Defaults for Ray's environment variables; values already set win."""
    for key, value in ENVIRONMENT.items():
        os.environ.setdefault(key, value)


@dataclass
class SweepOutcome:
    experiment_path: str
    wall_time_s: float
    total_trials: int
    finished: int
    failed: list[tuple[str, str]] = field(default_factory=list)  # (trial, error file)
    trial_time_s: float = 0.0
    concurrency: int = 1
    table: str | None = None


def _storage(storage: str) -> str:
    if "://" in storage:
        return storage
    path = Path(storage).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def run_sweep(
    spec: SweepSpec,
    *,
    name: str | None = None,
    storage: str = "results",
    resume: bool = False,
    address: str | None = None,
    cpus_per_trial: float | None = None,
    gpus_per_trial: float | None = None,
    max_concurrent: int | None = None,
    max_failures: int = 2,
    echo: Callable[[str], None] = print,
) -> SweepOutcome:
    set_ray_environment()
    import ray
    from ray import tune

    cpus = cpus_per_trial if cpus_per_trial is not None else spec.resources["cpu"]
    gpus = gpus_per_trial if gpus_per_trial is not None else spec.resources["gpu"]
    if gpus > 0 and "device" not in spec.base:
        spec = spec.with_overrides(device="cuda")
    if resume and name is None:
        raise ValueError("--resume needs the --name of the experiment to continue")
    name = name or f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    storage_path = _storage(storage)
    experiment_path = f"{storage_path.rstrip('/')}/{name}"

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    # Ray keeps one trial pending for a custom searcher unless a concurrency limit is
    # set, which serialises the sweep: limit it to what the cluster can run now.
    slots = _trial_slots(cpus, gpus, max_concurrent)
    # Failures are reported by the progress line and the final list (with error files).
    for logger_name in ("ray.tune", "ray.train"):
        logging.getLogger(logger_name).setLevel(logging.CRITICAL)

    metric = spec.search.metric if spec.search else "val_acc"
    mode = spec.search.mode if spec.search else "max"
    from goal_plugin.tune.progress import ProgressCallback, trial_dirname, trial_name

    progress = ProgressCallback(spec.total_trials, metric, mode, echo)
    trainable = tune.with_resources(_trainable(), {"cpu": cpus, "gpu": gpus})
    started = time.monotonic()
    filesystem = None if "://" in storage_path else atomic_local_filesystem()
    if tune.Tuner.can_restore(experiment_path, storage_filesystem=filesystem):
        echo(f"resuming experiment {experiment_path}: finished trials are kept, the rest continue")
        tuner = tune.Tuner.restore(
            experiment_path,
            trainable,
            resume_unfinished=True,
            resume_errored=True,
            storage_filesystem=filesystem,
        )
    else:
        if resume:
            raise ValueError(f"nothing to resume: no experiment state at {experiment_path}")
        from goal_plugin.tune.searcher import GridOptunaSearcher

        echo(
            f"sweep {spec.name}: {spec.total_trials} trials ({len(spec.cells)} grid cells) -> "
            f"{experiment_path}  [{cpus:g} CPU, {gpus:g} GPU per trial]"
        )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=GridOptunaSearcher(spec),
                # The searcher says when the grid is done; Ray's own trial counter is saved
                # apart from the trials and could stop a resumed sweep early.
                num_samples=-1,
                max_concurrent_trials=slots,
                reuse_actors=True,
                trial_name_creator=trial_name,
                trial_dirname_creator=trial_dirname,
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=storage_path,
                storage_filesystem=filesystem,
                failure_config=tune.FailureConfig(max_failures=max_failures),
                # Not just the newest: the experiment state a killed driver left in storage
                # may lag a report or two behind, and must find the checkpoint it names.
                checkpoint_config=tune.CheckpointConfig(num_to_keep=3),
                verbose=0,
                callbacks=[progress],
            ),
        )
    grid = tuner.fit()
    wall = time.monotonic() - started
    if "://" not in experiment_path:
        _drop_forgotten_trials(grid, Path(experiment_path), echo)
    return _outcome(grid, spec, experiment_path, wall, slots)


SUPERSEDED = ".superseded"


def _drop_forgotten_trials(grid, experiment: Path, echo: Callable[[str], None]) -> None:
    """Set aside trial folders that a killed driver created after its last saved state.

    Ray does not know them after a resume, and their grid cell ran again under a
    new trial. One that never reported anything is deleted (it holds no result);
    one that did is moved to ``<experiment>/.superseded/`` (hidden folders are not
    read by the analysis), so that nothing is counted twice or lost silently.
    """
    known = {Path(result.path).name for result in grid}
    for folder in sorted(experiment.iterdir()):
        if folder.name in known or not (folder / "params.json").is_file():
            continue
        results = folder / "result.json"
        if results.is_file() and results.stat().st_size > 0:
            (experiment / SUPERSEDED).mkdir(exist_ok=True)
            shutil.move(str(folder), str(experiment / SUPERSEDED / folder.name))
            echo(f"moved {folder.name} to {SUPERSEDED}/: its cell ran again after the resume")
        else:
            shutil.rmtree(folder)
            echo(f"removed {folder.name}: created just before the driver stopped, it never ran")


def _trainable():
    from goal_plugin.tune.trainable import train_trial

    return train_trial


def _trial_slots(cpus: float, gpus: float, max_concurrent: int | None) -> int:
    """How many trials the cluster can run at once."""
    import ray

    resources = ray.cluster_resources()
    slots = [resources.get("CPU", 1) / cpus]
    if gpus > 0:
        slots.append(resources.get("GPU", 0) / gpus)
    if max_concurrent:
        slots.append(max_concurrent)
    return max(1, int(min(slots)))


def _outcome(grid, spec, experiment_path, wall, slots) -> SweepOutcome:
    finished, failed, trial_time = 0, [], 0.0
    for result in grid:
        if result.error is not None:
            error_file = Path(result.path) / "error.txt"
            failed.append((Path(result.path).name, str(error_file)))
            continue
        metrics = result.metrics or {}
        if metrics.get("final"):
            finished += 1
            trial_time += float(metrics.get("trial_time_s", 0.0))
    return SweepOutcome(experiment_path, wall, spec.total_trials, finished, failed, trial_time, slots)
