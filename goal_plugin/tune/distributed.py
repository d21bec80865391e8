"""Trials of several workers: DDP through Ray Train's ``TorchTrainer`` inside the Tune sweep.

Ray 2.60 runs Ray Train V2, which no longer takes a trainer as a ``tune.Tuner``
trainable (``Tuner(trainer)`` is deprecated). Its documented pattern ("Hyperparameter
Tuning with Ray Tune" in Ray Train's user guide) is a Tune function trainable that
builds a ``TorchTrainer`` and calls ``fit()``, with ``TuneReportCallback`` passing
rank 0's reports on to the Tune trial. ``train_ddp_trial`` is that function:

* The Tune trial itself holds no CPU or GPU (``TRIAL_DRIVER_RESOURCES``); its
  ``TorchTrainer`` asks for ``workers`` workers of ``cpu`` CPUs (and ``gpu`` GPUs)
  each, and Ray schedules them wherever the cluster has room.
* Each worker runs ``engine.fit`` data-parallel (``goal_plugin.engine.distributed``):
  shards of the same global batches, DDP, the strategy's batch quantities
  all-reduced. Rank 0 writes the engine's checkpoint, under the same checkpoint
  policy as a one-worker trial (``trainable.CheckpointPolicy``).
* The Train run lives in the trial's folder (``<trial>/ddp``). When Tune retries
  the trial or a resumed driver restarts it, the new ``TorchTrainer`` has the same
  name and storage, so Ray Train restores its run and every worker resumes the
  engine from the newest checkpoint: the trial ends with the numbers of an
  uninterrupted run. A trial whose Train run had finished only repeats its final
  report (``final.json`` in the last checkpoint).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from goal_plugin.engine import fit
from goal_plugin.tune.result_log import EPOCHS_FILE
from goal_plugin.tune.trainable import CHECKPOINT_EVERY_S, FINAL_FILE, CheckpointPolicy

TRAIN_RUN = "ddp"  # the Train run's folder inside the trial's
# The trial only launches and waits for its TorchTrainer, so it reserves nothing the workers
# need: no CPU, one byte of memory (Ray refuses a trial that requests no resource at all).
# Ray's guide then caps the trials in flight (max_concurrent_trials; see concurrent_trials).
TRIAL_DRIVER_RESOURCES = {"cpu": 0, "memory": 1}


def check_trial_resources(
    workers: int, cpu: float, gpu: float, cluster: dict[str, float], *, workers_option: str, gpu_option: str
) -> None:
    """One-line errors, before any trial starts, for trials the cluster can never run:
    a GPU where it has none, or more workers (times their CPUs / GPUs) than it holds.
    ``cluster`` is ``ray.cluster_resources()``; the options name where the values came from."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"{workers_option} must be a whole number >= 1, got {workers!r}")
    cpus, gpus = cluster.get("CPU", 0.0), cluster.get("GPU", 0.0)
    if gpu > 0 and gpus == 0:
        raise ValueError(
            f"{gpu_option}: {gpu:g} GPU per {'worker' if workers > 1 else 'trial'} requested, but the Ray "
            "cluster has no GPU (--gpus-per-trial 0 trains on CPU)"
        )
    if workers == 1:  # a one-process trial: Ray's own scheduling, as before
        return
    if workers * cpu > cpus:
        raise ValueError(
            f"{workers_option}: {workers} worker(s) of {cpu:g} CPU need {workers * cpu:g} CPUs, "
            f"but the Ray cluster holds {cpus:g}"
        )
    if workers * gpu > gpus:
        raise ValueError(
            f"{workers_option}: {workers} worker(s) of {gpu:g} GPU need {workers * gpu:g} GPUs, "
            f"but the Ray cluster holds {gpus:g}"
        )


def concurrent_trials(workers: int, cpu: float, gpu: float, cluster: dict[str, float]) -> int:
    """How many trials of ``workers`` workers fit on ``cluster`` at once: the cap for a sweep of
    them, since each trial's driver holds no resources and Tune would otherwise start every
    pending trial to wait for its workers."""
    fits = [cluster.get("CPU", 0.0) // (workers * cpu)] if cpu > 0 else []
    if gpu > 0:
        fits.append(cluster.get("GPU", 0.0) // (workers * gpu))
    return max(1, int(min(fits, default=1)))


def sweep_trainable(
    trial: Callable[[dict[str, Any]], None],
    *,
    workers: int,
    cpu: float,
    gpu: float,
    cluster: dict[str, float],
    workers_option: str = "resources.workers",
    gpu_option: str = "resources.gpu",
    checkpoint_every_s: float = CHECKPOINT_EVERY_S,
):
    """What a sweep hands to Tune, checked against ``cluster`` first (``check_trial_resources``):
    the one-process ``trial`` holding ``cpu`` / ``gpu``, or for ``workers`` > 1
    ``train_ddp_trial`` holding nothing itself, its workers ``cpu`` / ``gpu`` each."""
    from ray import tune

    check_trial_resources(workers, cpu, gpu, cluster, workers_option=workers_option, gpu_option=gpu_option)
    if workers == 1:
        return tune.with_resources(trial, {"cpu": cpu, "gpu": gpu})
    ddp = tune.with_parameters(
        train_ddp_trial, workers=workers, cpu=cpu, gpu=gpu, checkpoint_every_s=checkpoint_every_s
    )
    return tune.with_resources(ddp, TRIAL_DRIVER_RESOURCES)


def train_ddp_trial(
    config: dict[str, Any],
    *,
    workers: int,
    cpu: float = 1.0,
    gpu: float = 0.0,
    checkpoint_every_s: float = CHECKPOINT_EVERY_S,
) -> None:
    """One Tune trial trained by ``workers`` DDP workers (gloo on CPU, NCCL on GPU)."""
    import ray.train
    from ray.train._internal.session import (
        get_storage,  # Ray's developer API for the trial's storage
    )
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    storage = get_storage()
    per_worker = {"CPU": cpu, **({"GPU": gpu} if gpu > 0 else {})}
    trainer = TorchTrainer(
        _train_worker,
        train_loop_config={"config": dict(config), "checkpoint_every_s": checkpoint_every_s},
        torch_config=TorchConfig(backend="nccl" if gpu > 0 else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=workers, use_gpu=gpu > 0, resources_per_worker=per_worker
        ),
        run_config=ray.train.RunConfig(
            name=TRAIN_RUN,
            storage_path=storage.trial_fs_path,
            storage_filesystem=storage.storage_filesystem,
            callbacks=[TuneReportCallback()],
            # Tune retries the trial (FailureConfig of the sweep); the restart restores this run.
            failure_config=ray.train.FailureConfig(max_failures=0),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
        ),
    )
    trainer.fit()


def _train_worker(loop_config: dict[str, Any]) -> None:
    """One rank: ``engine.fit`` under the process group Ray Train set up."""
    import ray.train
    import ray.train.torch
    import torch

    started = time.perf_counter()
    in_ray_s = 0.0  # time inside ray.train.report: Ray's, not the trial's own

    def report(metrics: dict[str, Any], checkpoint_dir: Path | None = None) -> None:
        nonlocal in_ray_s
        reported = time.perf_counter()
        checkpoint = None if checkpoint_dir is None else ray.train.Checkpoint.from_directory(str(checkpoint_dir))
        ray.train.report(metrics, checkpoint=checkpoint)
        in_ray_s += time.perf_counter() - reported

    device = ray.train.torch.get_device()
    if device.type == "cuda":  # the engine's "cuda" then means this worker's GPU
        torch.cuda.set_device(device)
    main = ray.train.get_context().get_world_rank() == 0
    policy = CheckpointPolicy(loop_config["checkpoint_every_s"])
    checkpoint = ray.train.get_checkpoint()
    workdir = Path(tempfile.mkdtemp(prefix="goal_plugin_ddp_"))
    try:
        resume_from = None
        if checkpoint is not None:
            resume_from = Path(checkpoint.to_directory(str(workdir / "restored")))
            finished = resume_from / FINAL_FILE
            if finished.is_file():
                report(json.loads(finished.read_text()), resume_from if main else None)
                return

        def on_epoch_end(metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
            due = policy.due() and checkpoint_dir is not None  # rank 0 alone has a checkpoint
            report(metrics, checkpoint_dir if due else None)

        config = loop_config["config"]
        results = fit(config, output_dir=workdir / "run", resume_from=resume_from, on_epoch_end=on_epoch_end)
        final = {**results["final"], "final": True, "trial_time_s": time.perf_counter() - started - in_ray_s}
        if not main:
            report(final)
            return
        checkpoint_dir = workdir / "run" / "checkpoint"
        if not checkpoint_dir.is_dir():  # resumed after its last epoch: nothing new was saved
            checkpoint_dir = resume_from
        (checkpoint_dir / EPOCHS_FILE).write_text(json.dumps(results["history"], default=str))
        (checkpoint_dir / FINAL_FILE).write_text(json.dumps(final, default=str))
        report(final, checkpoint_dir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
