"""Sweep folders made by real training runs, for the analysis tests of the tasks and
of three modalities.

Each trial is one ``goal_plugin.engine.fit`` on a tiny dataset; its folder holds
what the sweep's trainable (``goal_plugin.tune.trainable.train_trial``) reports
through Ray: ``params.json`` (the config) and ``result.json`` (one row per
epoch, then the final report with ``final: true`` and ``trial_time_s``), Ray's
own keys included (``tests._analysis_fixtures.write_trial``).
"""

from __future__ import annotations

from pathlib import Path

from goal_plugin.engine import fit
from goal_plugin.engine.trainer import NONDETERMINISTIC_METRICS
from goal_plugin.tune.trainable import TRIAL_TIMINGS
from tests._analysis_fixtures import write_trial
from tests._sequence_fixtures import write_mmsa, write_mult

SEQUENCE_BACKBONE = {
    "backbone": "transformer_seq",
    "backbone_options": {"d_model": 8, "heads": 2, "layers": 1, "feature_dim": 8},
}
COMMON = {"epochs": 2, "lr": 0.01, "device": "cpu", "num_workers": 0}


def fit_trial(experiment: Path, config: dict) -> Path:
    """Train ``config`` and write its trial folder into ``experiment``."""
    history = []
    results = fit(config, on_epoch_end=lambda metrics, _: history.append(dict(metrics)))
    final = results["final"]
    final = {**final, "final": True, "trial_time_s": final["train_time_s"] + final["diagnostics_time_s"]}
    return write_trial(experiment, results["config"], [*history, final])


def sweep(experiment: Path, base: dict, strategies: dict[str, dict], seeds=(0, 1)) -> Path:
    """Every strategy (with its settings) x seed of ``base``, trained into ``experiment``."""
    for strategy, settings in strategies.items():
        for seed in seeds:
            fit_trial(experiment, {**COMMON, **base, **settings, "strategy": strategy, "seed": seed})
    return experiment


def regression_sweep(root: Path) -> Path:
    """MOSI sentiment-score regression (MMSA pickle): none and GOAL reading the variances."""
    write_mmsa(root / "data" / "mosi", aligned=False)
    base = {"dataset": "mosi", "data_root": str(root / "data" / "mosi"), "batch_size": 4, **SEQUENCE_BACKBONE}
    return sweep(root / "regression", base, {"none": {}, "goal": {"uncertainty": "variance"}})


def multilabel_sweep(root: Path) -> Path:
    """IEMOCAP's four emotions as one multi-label task (MulT pickle): none and GO."""
    write_mult(root / "data" / "iemocap", "iemocap_data.pkl", labels="iemocap")
    base = {
        "dataset": "iemocap",
        "data_root": str(root / "data" / "iemocap"),
        "dataset_options": {"task": "multilabel"},
        "batch_size": 4,
        **SEQUENCE_BACKBONE,
    }
    return sweep(root / "multilabel", base, {"none": {}, "go": {}})


def three_view_sweep(root: Path) -> Path:
    """mfeat with three views as three modalities: none and GOAL."""
    base = {
        "dataset": "mfeat",
        "dataset_options": {"views": ["pix", "fou", "kar"]},
        "backbone": "mlp",
        "backbone_options": {"hidden_dim": 16, "out_dim": 8},
        "batch_size": 128,
        "lr": 0.05,
    }
    return sweep(root / "three_views", base, {"none": {}, "goal": {}})


# --------------------------------------------------------------- kill and resume
TIMINGS = frozenset(NONDETERMINISTIC_METRICS) | TRIAL_TIMINGS
RAY_KEYS = frozenset({  # what Ray adds to every report
    "timestamp", "date", "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "time_since_restore",
    "iterations_since_restore", "training_iteration", "checkpoint_dir_name", "trial_id", "should_checkpoint",
    "done", "config",
})


def deterministic_report(row: dict) -> dict:
    """A trial's report in its ``result.json`` without Ray's keys and the timings."""
    return {k: v for k, v in row.items() if k not in RAY_KEYS and k not in TIMINGS}


def deterministic(results: dict) -> tuple[list[dict], dict]:
    """A run's history and final metrics without the timings (which differ run to run)."""
    strip = lambda metrics: {k: v for k, v in metrics.items() if k not in TIMINGS}
    return [strip(m) for m in results["history"]], strip(results.get("final", {}))


class Killed(Exception):
    """Raised from ``on_epoch_end``: the run stops right after that epoch's checkpoint,
    as a kill would."""


def kill_after(epoch: int = 0):
    def callback(metrics: dict, checkpoint_dir) -> None:
        if metrics["epoch"] == epoch:
            raise Killed

    return callback


def killed_and_resumed(config: dict, folder: Path, epoch: int = 0) -> dict:
    """``config`` trained into ``folder``, killed after ``epoch`` and resumed to the end."""
    try:
        fit(config, output_dir=folder, on_epoch_end=kill_after(epoch))
    except Killed:
        return fit(config, output_dir=folder, resume_from=folder)
    raise AssertionError(f"the run ended before epoch {epoch} was killed")
