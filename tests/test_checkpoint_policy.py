"""The trainable's checkpoint policy: every epoch is reported, its checkpoint only
when skipping it would leave more than ``checkpoint_every_s`` seconds of work
unsaved (always at the end); a trial killed between checkpoints resumes to the
numbers of an uninterrupted run, and its log and analysis keep one row per epoch."""

from __future__ import annotations

import json
import os
import signal
import statistics
from pathlib import Path

import pytest
from ray import tune

from goal_plugin.tune.trainable import CheckpointPolicy, train_trial
from tests._fit_runs import deterministic_report

CONFIG = {"dataset": "mfeat", "backbone": "mlp", "strategy": "goal", "epochs": 24, "batch_size": 64, "seed": 1,
          "diagnostics": False}


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def checkpointed_epochs(every_s: float, epoch_s: list[float]) -> list[int]:
    clock = Clock()
    policy = CheckpointPolicy(every_s, clock)
    chosen = []
    for epoch, seconds in enumerate(epoch_s):
        clock.now += seconds
        if policy.due():
            chosen.append(epoch)
    return chosen


def test_unsaved_work_never_exceeds_the_interval():
    # 1 s epochs, 3.5 s: skipping epoch 2 would leave 4 s unsaved at the end of epoch 3.
    assert checkpointed_epochs(3.5, [1.0] * 10) == [2, 5, 8]
    assert checkpointed_epochs(0, [1.0] * 4) == [0, 1, 2, 3]  # 0: every epoch
    assert checkpointed_epochs(float("inf"), [1.0] * 4) == []  # inf: only the final report
    assert checkpointed_epochs(60, [0.1] * 100) == []  # a short trial: only its final checkpoint
    assert checkpointed_epochs(2.0, [5.0, 5.0, 5.0]) == [0, 1, 2]  # epochs longer than the interval: each one
    # Slower epochs later: the estimate follows the epoch just finished.
    assert checkpointed_epochs(10, [1.0] * 5 + [4.0] * 4) == [5, 7]
    for every_s, epochs in ((3.5, [1.0] * 30), (10, [1.0] * 5 + [4.0] * 10), (7, [0.5, 2.0, 1.0] * 8)):
        saved, elapsed = 0.0, 0.0
        for epoch, seconds in enumerate(epochs):
            elapsed += seconds
            if epoch in checkpointed_epochs(every_s, epochs):
                saved = elapsed
            following = epochs[epoch + 1] if epoch + 1 < len(epochs) else 0.0
            # Work lost by a kill just before the next epoch ends: within the interval
            # whenever that epoch is no longer than the one before it.
            if following <= seconds:
                assert elapsed + following - saved <= every_s + 1e-9, (every_s, epoch)


@pytest.mark.parametrize("bad", [-1, float("nan"), "60", True, None])
def test_interval_must_be_seconds(bad):
    with pytest.raises(ValueError, match=r"checkpoint_every_s must be a number of seconds >= 0, got"):
        CheckpointPolicy(bad)


# ------------------------------------------------------------ real Ray runs
def rows(trial_dir: Path) -> list[dict]:
    file = trial_dir / "result.json"
    if not file.is_file():
        return []
    return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]


class KillBetweenCheckpoints(tune.Callback):
    """SIGKILLs the trial's worker at its first report without a checkpoint after one with a checkpoint.

    Ray calls back while the worker waits in that report, so the kill lands
    exactly between two checkpoints."""

    def __init__(self):
        self.killed_at: int | None = None
        self.checkpointed = False

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get("final") or self.killed_at is not None:
            return
        if result["checkpoint_dir_name"]:
            self.checkpointed = True
        elif self.checkpointed and result["epoch"] < CONFIG["epochs"] - 2:
            self.killed_at = result["epoch"]
            os.kill(result["pid"], signal.SIGKILL)


def run_trial(storage: Path, name: str, every_s: float, callbacks=()):
    trainable = tune.with_resources(tune.with_parameters(train_trial, checkpoint_every_s=every_s), {"cpu": 1})
    tuner = tune.Tuner(
        trainable,
        param_space=CONFIG,
        run_config=tune.RunConfig(
            name=name, storage_path=str(storage), verbose=0, callbacks=list(callbacks),
            failure_config=tune.FailureConfig(max_failures=2),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=3),
        ),
    )
    grid = tuner.fit()
    assert grid.errors == [], grid.errors
    (trial_dir,) = [p for p in (storage / name).iterdir() if (p / "params.json").is_file()]
    return trial_dir


def test_trial_killed_between_checkpoints_resumes_to_the_numbers_of_an_uninterrupted_run(ray_address, tmp_path):
    from goal_plugin.analysis import load_results

    reference = run_trial(tmp_path, "reference", float("inf"))
    reference_rows = rows(reference)
    # inf: the epochs are reported without a checkpoint, the final report with one.
    assert [bool(row["checkpoint_dir_name"]) for row in reference_rows] == [False] * CONFIG["epochs"] + [True]
    # An interval of about four epochs on this machine now: checkpoints between the kill and the start.
    epoch_s = statistics.median(row["time_this_iter_s"] for row in reference_rows[1:-1])
    every_s = 4 * epoch_s

    killer = KillBetweenCheckpoints()
    trial = run_trial(tmp_path, "killed", every_s, [killer])
    assert killer.killed_at is not None, "no epoch without a checkpoint came after one with a checkpoint"
    logged = rows(trial)
    assert len({row["pid"] for row in logged}) == 2  # a second worker finished it

    by_epoch: dict[int, list[dict]] = {}
    for row in logged:
        if not row.get("final"):
            by_epoch.setdefault(row["epoch"], []).append(deterministic_report(row))
    # The epochs after the newest checkpoint were trained again: reported twice, with equal numbers.
    assert len(by_epoch[killer.killed_at]) == 2
    assert all(reports.count(reports[0]) == len(reports) for reports in by_epoch.values())
    expected = [deterministic_report(row) for row in reference_rows[:-1]]
    assert [reports[-1] for _, reports in sorted(by_epoch.items())] == expected
    finals = [deterministic_report(row) for row in logged if row.get("final")]
    assert finals == [deterministic_report(reference_rows[-1])]

    # The analysis reads one row per epoch, the same as for the uninterrupted run.
    results = load_results([tmp_path / "killed"])
    expected_results = load_results([tmp_path / "reference"])
    assert len(results.epochs) == CONFIG["epochs"]
    columns = [c for c in expected_results.epochs.columns if c in CONFIG or c.startswith(("val_", "test_", "train_loss"))]
    assert results.epochs[columns].equals(expected_results.epochs[columns])
