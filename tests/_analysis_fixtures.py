"""Ray Tune experiment folders and tidy CSVs written as real files, for the analysis tests.

The layout copies what the sweep runner writes (see /tmp/example_sweeps when it
exists): per trial a folder with params.json, result.json (JSON lines, Ray's
own keys included, the last row ``"final": true``) and, for an errored trial,
error.txt and error.pkl. The pickles hold a payload that creates a file when
unpickled, so a test can prove that nothing was unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

MODALITIES = ("pix", "fou")
BASE_CONFIG = {
    "dataset": "mfeat",
    "data_root": None,
    "dataset_options": {},
    "backbone": "mlp",
    "backbone_options": {},
    "fusion": "concat",
    "strategy": "goal",
    "seed": 0,
    "epochs": 3,
    "batch_size": 64,
    "optimizer": "sgd",
    "lr": 0.05,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "scheduler": "none",
    "unimodal_loss_weight": None,
    "num_workers": 0,
    "device": "cpu",
    "amp": None,
    "diagnostics": True,
}
HYPERPARAMETERS = {
    "goal": {"temperature": 1.0, "space": "sample", "eps": 1e-8},
    "al": {"temperature": 1.0},
    "go": {"space": "sample", "eps": 1e-8},
    "ogm": {"alpha": 0.1},
}


class UnpickleTripwire:
    """Unpickling this creates ``path``: evidence that a reader unpickled a file."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def trial_config(strategy: str, seed: int, **overrides) -> dict:
    return {
        **BASE_CONFIG,
        **HYPERPARAMETERS.get(strategy, {}),
        "strategy": strategy,
        "seed": seed,
        **overrides,
    }


def epoch_row(epoch: int, accuracy: float, weight: float | None = 0.5) -> dict:
    before = [0] * 20
    before[9 + epoch % 3] = 10 + epoch
    after = [0] * 20
    after[10] = 10 + epoch
    return {
        "epoch": epoch,
        "lr": 0.05,
        "train_loss": 1.0 / (epoch + 1),
        "train_acc": accuracy,
        "modulating": True,
        "unimodal_loss_weight": 1.0,
        "weight_pix": weight,
        "weight_fou": None if weight is None else 1 - weight,
        "conflict_fraction": 0.3,
        "cosine_before": 0.05,
        "cosine_after": 0.07,
        "cosine_hist_before": before,
        "cosine_hist_after": after,
        "epoch_time_s": 0.08,
        "time_per_sample_ms": 0.07,
        "peak_memory_mb": 1200.0,
        "val_acc": accuracy,
        "val_macro_f1": accuracy - 0.01,
        "val_acc_pix": 0.7,
        "val_acc_fou": 0.4,
        "test_acc": accuracy,
        "test_macro_f1": accuracy - 0.01,
        "test_acc_pix": 0.7,
        "test_acc_fou": 0.4,
    }


def final_row(last_epoch: dict, **metrics) -> dict:
    return {
        **last_epoch,
        "probe_acc_pix": 0.95,
        "probe_acc_fou": 0.78,
        "cca_pix_fou": 0.84,
        "cca_mean": 0.84,
        "best_val_epoch": last_epoch["epoch"],
        "best_val_acc": last_epoch["val_acc"],
        "test_acc_at_best_val": last_epoch["test_acc"],
        "train_time_s": 0.2,
        "diagnostics_time_s": 0.5,
        "trial_time_s": 0.7,
        "final": True,
        **metrics,
    }


def ray_keys(config: dict, iteration: int, trial_id: str, timestamp: int = 1795729181) -> dict:
    return {
        "timestamp": timestamp + iteration,
        "checkpoint_dir_name": f"checkpoint_{iteration:06d}",
        "should_checkpoint": True,
        "done": False,
        "training_iteration": iteration + 1,
        "trial_id": trial_id,
        "date": "2026-11-26_21-39-41",
        "time_this_iter_s": 0.1,
        "time_total_s": 0.1 * (iteration + 1),
        "pid": 1,
        "hostname": "vm",
        "node_ip": "192.0.2.2",
        "config": config,
        "time_since_restore": 0.1,
        "iterations_since_restore": iteration + 1,
    }


def write_trial(
    experiment: Path,
    config: dict,
    rows: list[dict],
    *,
    error: bool = False,
    timestamp: int = 1795729181,
) -> Path:
    """One trial folder; ``rows`` are the reports in order (Ray's keys are added, the
    first report at ``timestamp``, one second apart)."""
    trial_id = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
    folder = experiment / f"{config['strategy']}_{config['dataset']}_s{config['seed']}_{trial_id}"
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    lines = [
        json.dumps({**row, **ray_keys(config, i, trial_id, timestamp)})
        for i, row in enumerate(rows)
    ]
    (folder / "result.json").write_text("".join(line + "\n" for line in lines))
    (folder / "params.pkl").write_bytes(pickle.dumps(UnpickleTripwire(experiment / "UNPICKLED")))
    if error:
        (folder / "error.txt").write_text("Failure # 1\nRuntimeError: worker died\n")
        (folder / "error.pkl").write_bytes(pickle.dumps(UnpickleTripwire(experiment / "UNPICKLED")))
    return folder


def finished_trial(
    experiment: Path,
    strategy: str,
    seed: int,
    test_acc: float,
    *,
    epochs: int = 3,
    timestamp: int = 1795729181,
    final: dict | None = None,
    **config_overrides,
) -> Path:
    """A finished trial whose last epoch (and final row) has ``test_acc``; ``final``
    overrides metrics of the final row."""
    config = trial_config(strategy, seed, epochs=epochs, **config_overrides)
    rows = [epoch_row(e, test_acc - 0.01 * (epochs - 1 - e)) for e in range(epochs)]
    return write_trial(
        experiment, config, [*rows, final_row(rows[-1], **(final or {}))], timestamp=timestamp
    )


def search_record(
    experiment: Path, params: dict, metric: str = "val_acc", mode: str = "max"
) -> None:
    """The record of a sweep's ``search`` block that the sweep runner keeps in the experiment."""
    experiment.mkdir(parents=True, exist_ok=True)
    search = {"params": params, "num_samples": 4, "metric": metric, "mode": mode}
    (experiment / "space.json").write_text(json.dumps({"search": search}))


def experiment_files(experiment: Path) -> None:
    """The experiment-level files Ray writes next to the trial folders."""
    experiment.mkdir(parents=True, exist_ok=True)
    (experiment / "experiment_state-2026-11-26_21-39-30.json").write_text("{}")
    (experiment / "search_gen_state-2026-11-26_21-39-30.json").write_text("{}")
    for name in ("tuner.pkl", "searcher-state-2026-11-26_21-39-30.pkl"):
        (experiment / name).write_bytes(pickle.dumps(UnpickleTripwire(experiment / "UNPICKLED")))


def write_csv(path: Path, rows: list[dict]) -> Path:
    import pandas as pd

    pd.DataFrame(rows).to_csv(path, index=False)
    return path
