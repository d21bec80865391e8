"""Run a sweep with Ray Tune: grid x seeds (x Optuna per cell), fault tolerant.

* Each trial is ``engine.fit`` reporting and checkpointing every epoch;
  ``FailureConfig(max_failures)`` retries a trial whose worker died from its
  last checkpoint, which gives the numbers of an uninterrupted run.
* Trials come from ``CellSearch`` (see ``searcher.py``): the grid cells, with an
  Optuna study inside each cell of a space with a ``search`` block. Its counts,
  pending trials and studies are rebuilt from the trial list Ray restores, so a
  resumed sweep runs every cell that Ray does not already hold.
* A driver that was killed is restarted with ``--resume`` (or the same
  ``--name``): finished trials are kept, unfinished and errored ones continue
  from their newest checkpoint (see ``trainable.py``); a driver killed before
  Ray saved any state starts the experiment again from the beginning. Reports
  that a killed driver had not yet copied into a trial's ``result.json`` are
  added back from the trial's last checkpoint (see ``result_log.py``).
* The space is recorded in ``<experiment>/space.json`` before anything runs; a
  ``--name`` that holds another space is refused.
* A trial's reports reach the driver in batches (``RESULT_BUFFERING``), and its
  final report ends it. Each trial folder gets ``result.json`` and
  ``progress.csv``; TensorBoard's event files only with ``tensorboard=True``
  (its logger costs the driver milliseconds per report). The loggers are
  recorded in ``space.json``, and a resumed experiment keeps them.
* Ray's resource scheduling decides how many trials run at once, so nodes that
  join the cluster later get trials; ``--max-concurrent`` caps it.
* ``--address auto`` joins a running Ray cluster (``ray start --head``);
  fractional ``--gpus-per-trial`` packs several trials on one GPU.
* ``--storage`` is a local folder or a URI that pyarrow opens (``s3://bucket/prefix``
  and S3-compatible servers, ``gs://...``; see ``goal_plugin.uris`` for the
  endpoint and credentials), which the whole cluster reaches. It is checked
  before Ray starts: an unreachable endpoint, refused credentials or a missing
  bucket is an error naming ``--storage``. Ray, the trials, the resume and the
  result-log repair all go through one ``pyarrow.fs`` filesystem for it (see
  ``storage.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import posixpath
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from goal_plugin.tune.result_log import complete_result_logs
from goal_plugin.tune.space import SweepSpec
from goal_plugin.tune.storage import Storage, move_folder, open_storage
from goal_plugin.tune.trainable import CHECKPOINT_EVERY_S, train_trial

ENVIRONMENT = {
    "RAY_AUTH_MODE": "disabled",  # no token written into the home folder for local runs
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AIR_NEW_OUTPUT": "0",  # with verbose=0 the legacy reporter prints nothing
}
DEFAULT_MAX_FAILURES = 2
SPACE_RECORD = "space.json"  # read by goal_plugin.analysis.loading too
MAX_PENDING_TRIALS = 200  # Ray's own default for its grid generator
RESULT_FILES = ("csv", "json")  # progress.csv and result.json in every trial folder
# A trial's reports reach the driver in batches of up to 10, or every 10 s, or with a
# checkpoint, or at its end: one round trip instead of one per epoch. Ray 2.60 hands
# the length and the time to Trainable.train_buffered in each other's place, so
# both are the same number; a value set in the environment wins (LENGTH=1: off).
RESULT_BUFFERING = {
    "TUNE_RESULT_BUFFER_LENGTH": "10",
    "TUNE_RESULT_BUFFER_MIN_TIME_S": "10",
    "TUNE_RESULT_BUFFER_MAX_TIME_S": "10",
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
    missing: list[str] = field(default_factory=list)  # cells short of trials: "label (n of m)"
    trial_time_s: float = 0.0  # own time of the trials that finished in this run


def check_options(
    cpus_per_trial: float | None,
    gpus_per_trial: float | None,
    max_concurrent: int | None,
    max_failures: int,
    checkpoint_every_s: float = CHECKPOINT_EVERY_S,
    workers_per_trial: int | None = None,
) -> None:
    """One-line errors for bad resource options, before anything is created."""
    if workers_per_trial is not None and workers_per_trial < 1:
        raise ValueError(f"--workers-per-trial must be >= 1, got {workers_per_trial}")
    if cpus_per_trial is not None and not cpus_per_trial > 0:
        raise ValueError(f"--cpus-per-trial must be > 0, got {cpus_per_trial:g}")
    if gpus_per_trial is not None and not gpus_per_trial >= 0:
        raise ValueError(f"--gpus-per-trial must be >= 0, got {gpus_per_trial:g}")
    if max_concurrent is not None and max_concurrent < 1:
        raise ValueError(f"--max-concurrent must be >= 1, got {max_concurrent}")
    if max_failures < 0:
        raise ValueError(f"--max-failures must be >= 0, got {max_failures}")
    if not checkpoint_every_s >= 0:
        raise ValueError(f"--checkpoint-every-s must be >= 0 seconds, got {checkpoint_every_s}")


def space_record(spec: SweepSpec) -> dict[str, Any]:
    """What identifies a sweep's trials, with the file it came from."""
    search = None
    if spec.search:
        search = {
            "params": {name: vars(param) for name, param in spec.search.params.items()},
            "num_samples": spec.search.num_samples,
            "metric": spec.search.metric,
            "mode": spec.search.mode,
        }
    trials = {"cells": [cell.config for cell in spec.cells], "search": search}
    fingerprint = hashlib.sha256(json.dumps(trials, sort_keys=True, default=str).encode()).hexdigest()
    return {"source": spec.source, "name": spec.name, "fingerprint": fingerprint, "search": search}


def _experiment_exists(filesystem, path: str) -> bool:
    """Whether the experiment folder ``path`` on ``filesystem`` holds anything yet."""
    import pyarrow.fs as pafs

    if filesystem.get_file_info(path).type != pafs.FileType.Directory:
        return False
    return bool(filesystem.get_file_info(pafs.FileSelector(path)))


def _read_text(filesystem, path: str) -> str:
    with filesystem.open_input_stream(path) as stream:
        return stream.read().decode()


def _check_same_space(experiment: str, filesystem, path: str, record: dict[str, Any]) -> dict[str, Any]:
    """The record the experiment was started with; refused when its space differs."""
    try:
        stored = json.loads(_read_text(filesystem, f"{path}/{SPACE_RECORD}"))
        same = stored["fingerprint"] == record["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(
            f"{experiment} exists but holds no readable {SPACE_RECORD} naming the space it ran; "
            "give another --name"
        ) from None
    if not same:
        raise ValueError(
            f"experiment {experiment} was started from {stored.get('source')}, whose space differs from "
            f"{record['source']}; give another --name (or the same space) to continue it"
        )
    return stored


def _write_space_record(experiment: str, filesystem, path: str, record: dict[str, Any]) -> None:
    from goal_plugin.uris import reason

    try:
        filesystem.create_dir(path, recursive=True)
        with filesystem.open_output_stream(f"{path}/{SPACE_RECORD}") as stream:
            stream.write(json.dumps(record, indent=1, sort_keys=True, default=str).encode())
    except OSError as error:  # e.g. credentials that may read but not write
        raise ValueError(f"--storage: cannot write {experiment}/{SPACE_RECORD}: {reason(error)}") from None


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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
    max_failures: int = DEFAULT_MAX_FAILURES,
    checkpoint_every_s: float = CHECKPOINT_EVERY_S,
    echo: Callable[[str], None] = print,
    workers_per_trial: int | None = None,
    tensorboard: bool = False,
) -> SweepOutcome:
    check_options(cpus_per_trial, gpus_per_trial, max_concurrent, max_failures, checkpoint_every_s, workers_per_trial)
    if resume and name is None:
        raise ValueError("--resume needs the --name of the experiment to continue")
    cpus = cpus_per_trial if cpus_per_trial is not None else spec.resources["cpu"]
    gpus = gpus_per_trial if gpus_per_trial is not None else spec.resources["gpu"]
    # workers > 1: DDP through Ray Train (see distributed.py); cpus and gpus are then per worker
    workers = workers_per_trial if workers_per_trial is not None else int(spec.resources.get("workers", 1))
    record = {**space_record(spec), "loggers": [*RESULT_FILES, *(["tensorboard"] if tensorboard else [])]}
    if gpus > 0 and "device" not in spec.base:
        spec = spec.with_overrides(device="cuda")
    name = name or f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    where = open_storage(storage)
    filesystem = where.filesystem
    experiment_path, experiment_fs_path = where.experiment(name)
    existed = _experiment_exists(filesystem, experiment_fs_path)
    started_with = record
    if existed:
        started_with = _check_same_space(experiment_path, filesystem, experiment_fs_path, record)
    elif resume:
        raise ValueError(f"nothing to resume: no experiment at {experiment_path}")
    if not existed:  # recorded before Ray starts: a driver killed at any moment leaves a folder to resume
        _write_space_record(experiment_path, filesystem, experiment_fs_path, record)

    set_ray_environment()
    import ray
    from ray import tune

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    # Failures are reported by the progress line and the final list (with error files).
    for logger_name in ("ray.tune", "ray.train"):
        logging.getLogger(logger_name).setLevel(logging.CRITICAL)

    metric = spec.search.metric if spec.search else "val_acc"
    mode = spec.search.mode if spec.search else "max"
    from goal_plugin.tune.progress import ProgressCallback, trial_dirname, trial_name

    progress = ProgressCallback(spec.total_trials, metric, mode, echo, train_runs=workers > 1)
    from goal_plugin.tune.distributed import concurrent_trials, sweep_trainable

    cluster = ray.cluster_resources()
    trainable = sweep_trainable(  # checked against the cluster before any trial starts
        _trainable(checkpoint_every_s),
        workers=workers,
        cpu=cpus,
        gpu=gpus,
        cluster=cluster,
        workers_option="--workers-per-trial" if workers_per_trial is not None else "resources.workers",
        gpu_option="--gpus-per-trial" if gpus_per_trial is not None else "resources.gpu",
        checkpoint_every_s=checkpoint_every_s,
    )
    if workers > 1 and max_concurrent is None:  # a waiting DDP trial would hold no resources
        max_concurrent = concurrent_trials(workers, cpus, gpus, cluster)
    started, started_at = time.monotonic(), time.time()
    if tune.Tuner.can_restore(experiment_fs_path, storage_filesystem=filesystem):
        # Ray restores the loggers the experiment started with; one started before they
        # were recorded has Ray's default ones, which Ray adds again itself.
        loggers = started_with.get("loggers")
        if tensorboard and loggers is not None and "tensorboard" not in loggers:
            raise ValueError(
                f"--tensorboard: experiment {experiment_path} was started without TensorBoard logs, "
                "and a resumed experiment keeps the loggers it started with"
            )
        echo(f"resuming experiment {experiment_path}: finished trials are kept, the rest continue")
        tuner = tune.Tuner.restore(
            experiment_fs_path,
            trainable,
            resume_unfinished=True,
            resume_errored=True,
            storage_filesystem=filesystem,
        )
    else:
        loggers = record["loggers"]
        if existed:
            _write_space_record(experiment_path, filesystem, experiment_fs_path, record)
            echo(f"no saved state in {experiment_path} yet: starting the experiment from the beginning")
        else:
            echo(
                f"sweep {spec.name}: {spec.total_trials} trials ({len(spec.cells)} grid cells) -> "
                f"{experiment_path}  [{cpus:g} CPU, {gpus:g} GPU per trial]"
            )
        tuner = tune.Tuner(
            trainable,
            tune_config=_tune_config(spec, max_concurrent, trial_name, trial_dirname, joined=address is not None),
            run_config=tune.RunConfig(
                name=name,
                storage_path=where.path,
                storage_filesystem=filesystem,
                failure_config=tune.FailureConfig(max_failures=max_failures),
                # Not just the newest: the experiment state a killed driver left in storage
                # may lag a report or two behind, and must find the checkpoint it names.
                checkpoint_config=tune.CheckpointConfig(num_to_keep=3),
                verbose=0,
                callbacks=[progress, *_logger_callbacks(loggers)],
            ),
        )
    # Ray keeps a single trial pending for a custom searcher, which serialises the
    # sweep; like its own grid generator, keep enough pending for Ray's scheduler to
    # fill every node (at most one round of the grid, so a study sees earlier rounds).
    pending = max_concurrent or min(len(spec.cells), MAX_PENDING_TRIALS)
    settings = {key: value for key, value in RESULT_BUFFERING.items() if key not in os.environ}
    if loggers is not None:  # Ray would add its TensorBoard logger to the ones the experiment has
        settings["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    with _environment(TUNE_MAX_PENDING_TRIALS_PG=str(pending), **settings):
        grid = tuner.fit()
    wall = time.monotonic() - started
    complete_result_logs(grid, echo)
    _drop_forgotten_trials(grid, filesystem, experiment_fs_path, echo)
    return _outcome(grid, spec, where, experiment_path, wall, started_at)


def _logger_callbacks(names: list[str]) -> list:
    """Ray's result loggers by name; TensorBoard's costs the driver milliseconds per report."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback

    classes = {"csv": CSVLoggerCallback, "json": JsonLoggerCallback, "tensorboard": TBXLoggerCallback}
    return [classes[name]() for name in names]


def _tune_config(spec: SweepSpec, max_concurrent: int | None, trial_name, trial_dirname, *, joined: bool):
    from ray import tune

    from goal_plugin.tune.searcher import CellSearch, CellSearcher

    # The searcher says when the grid is done; it enforces --max-concurrent itself.
    return tune.TuneConfig(
        search_alg=CellSearch(CellSearcher(spec, max_concurrent=max_concurrent or 0)),
        num_samples=-1,
        # A reused actor takes the next trial wherever it is, so nodes that join a
        # cluster later would never get one (measured: none did); only the local Ray
        # that the sweep starts itself cannot grow, and there reuse saves each trial
        # a worker start-up.
        reuse_actors=not joined,
        trial_name_creator=trial_name,
        trial_dirname_creator=trial_dirname,
    )


SUPERSEDED = ".superseded"


def _drop_forgotten_trials(grid, filesystem, experiment: str, echo: Callable[[str], None]) -> None:
    """Set aside trial folders that a killed driver created after its last saved state.

    Ray does not know them after a resume, and their grid cell ran again under a
    new trial. One that never reported anything is deleted (it holds no result);
    one that did is moved to ``<experiment>/.superseded/`` (hidden folders are not
    read by the analysis), so that nothing is counted twice or lost silently.
    """
    import pyarrow.fs as pafs

    known = {posixpath.basename(result.path.rstrip("/")) for result in grid}
    folders = filesystem.get_file_info(pafs.FileSelector(experiment))
    for folder in sorted((f for f in folders if f.type == pafs.FileType.Directory), key=lambda f: f.base_name):
        name = folder.base_name
        if name in known or filesystem.get_file_info(f"{folder.path}/params.json").type != pafs.FileType.File:
            continue
        results = filesystem.get_file_info(f"{folder.path}/result.json")
        if results.type == pafs.FileType.File and results.size:
            move_folder(filesystem, folder.path, f"{experiment}/{SUPERSEDED}/{name}")
            echo(f"moved {name} to {SUPERSEDED}/: its cell ran again after the resume")
        else:
            filesystem.delete_dir(folder.path)
            echo(f"removed {name}: created just before the driver stopped, it never ran")


def _trainable(checkpoint_every_s: float = CHECKPOINT_EVERY_S):
    from ray import tune

    return tune.with_parameters(train_trial, checkpoint_every_s=checkpoint_every_s)


def _outcome(grid, spec: SweepSpec, where: Storage, experiment_path: str, wall: float, started_at: float) -> SweepOutcome:
    from goal_plugin.tune.searcher import CellIndex

    cells = CellIndex(spec.cells)
    finished_per_cell = [0] * len(spec.cells)
    finished, failed, trial_time = 0, [], 0.0
    for result in grid:
        if result.error is not None:
            trial = result.path.rstrip("/")
            failed.append((posixpath.basename(trial), where.location_of(f"{trial}/error.txt")))
            continue
        metrics = result.metrics or {}
        if metrics.get("final"):
            finished += 1
            index = cells.find(result.config or {})
            if index is not None:
                finished_per_cell[index] += 1
            # Trained in this run: finished after it started, and not just restored after its
            # last epoch (such a trial only repeats its final report).
            if metrics.get("timestamp", 0) >= int(started_at) and metrics.get("iterations_since_restore", 0) > 1:
                trial_time += float(metrics.get("trial_time_s", 0.0))
    missing = [
        f"{spec.label(cell)} ({done} of {spec.trials_in(cell)} finished)"
        for cell, done in zip(spec.cells, finished_per_cell)
        if done < spec.trials_in(cell)
    ]
    return SweepOutcome(experiment_path, wall, spec.total_trials, finished, failed, missing, trial_time)
