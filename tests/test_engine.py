"""The training harness: determinism, exact resume after a kill, config errors, checkpoints."""

from __future__ import annotations

import json
import math
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from sklearn.metrics import f1_score

from goal_plugin.engine import (
    NONDETERMINISTIC_METRICS,
    CheckpointError,
    ConfigError,
    DivergenceError,
    RunFolderError,
    fit,
    resolve_config,
)
from goal_plugin.engine.checkpoint import load_checkpoint
from goal_plugin.engine.metrics import canonical_correlations, linear_probe_accuracy, macro_f1

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, str(ROOT / "runners" / "train.py")]

# Dropout, OGM-GE noise on every parameter, Adam state and a step schedule: every
# kind of state that a resume has to restore.
STATEFUL = {
    "strategy": "ogm_ge",
    "noise_scope": "all",
    "epochs": 6,
    "optimizer": "adam",
    "lr": 1e-3,
    "scheduler": "step",
    "lr_step_size": 2,
    "backbone_options": {"dropout": 0.2},
    "unimodal_loss_weight": 0.5,
}


def deterministic_part(results):
    def strip(metrics):
        return {k: v for k, v in metrics.items() if k not in NONDETERMINISTIC_METRICS}

    return [strip(m) for m in results["history"]], strip(results["final"])


def run_cli(args, **kwargs):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(TRAIN + args, capture_output=True, text=True, env=env, **kwargs)


def cli_config_args(config):
    return [arg for key, value in config.items() for arg in ("--set", f"{key}={json.dumps(value)}")]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    result = run_cli([*cli_config_args(STATEFUL), "--output", str(out), "--quiet"], timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.parametrize("kill_after_epoch", [1, 3, 5])
def test_killed_run_resumes_bit_for_bit(tmp_path, uninterrupted, kill_after_epoch):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        TRAIN + [*cli_config_args(STATEFUL), "--output", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    for line in process.stdout:
        if line.startswith(f"epoch {kill_after_epoch}/"):
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    partial = json.loads((out / "metrics.json").read_text())
    assert not partial["finished"] and len(partial["history"]) >= kill_after_epoch
    resumed = run_cli(["--resume", str(out), "--quiet"], timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    final = json.loads((out / "metrics.json").read_text())
    assert deterministic_part(final) == deterministic_part(uninterrupted)


def small(**overrides):
    return {"epochs": 3, "diagnostics": False, **overrides}


def test_same_seed_same_numbers_different_seed_different_numbers():
    first = fit(small(seed=1))
    second = fit(small(seed=1))
    other = fit(small(seed=2))
    assert deterministic_part(first) == deterministic_part(second)
    assert deterministic_part(first)[0] != deterministic_part(other)[0]


def test_default_trial_runs_from_the_command_line_into_a_new_run_folder(tmp_path):
    result = run_cli(["--quiet"], timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "test_acc" in result.stdout and "probe_acc_fou" in result.stdout
    (folder,) = (tmp_path / "runs").iterdir()
    assert folder.name.startswith("mfeat-goal-")
    assert f"metrics and checkpoints in runs/{folder.name}" in result.stdout
    assert json.loads((folder / "metrics.json").read_text())["finished"]
    assert load_checkpoint(folder / "checkpoint")["epoch"] == 19


def test_default_mfeat_pair_shows_modality_imbalance():
    """Linear probe of the weaker view (fou): joint concat training without unimodal
    loss stays >= 5 points below the same encoder trained alone (mean of 3 seeds)."""
    gaps = []
    for seed in range(3):
        joint = fit({"strategy": "none", "seed": seed})["final"]["probe_acc_fou"]
        alone = fit({"strategy": "none", "seed": seed, "dataset_options": {"views": ["fou"]}})
        gaps.append(alone["final"]["probe_acc_fou"] - joint)
    assert sum(gaps) / len(gaps) >= 0.05, gaps


def test_epoch_metrics_cover_the_contract():
    results = fit(small(epochs=2, diagnostics=True))
    final = results["final"]
    for key in [
        "train_loss", "val_acc", "val_macro_f1", "test_acc", "test_macro_f1", "val_acc_pix",
        "test_acc_fou", "weight_pix", "weight_fou", "conflict_fraction", "cosine_before",
        "cosine_after", "time_per_sample_ms", "peak_memory_mb", "probe_acc_pix", "probe_acc_fou",
        "cca_pix_fou", "cca_mean",
    ]:
        assert final[key] is not None, key
    assert final["weight_pix"] + final["weight_fou"] == pytest.approx(1.0)
    assert sum(final["cosine_hist_before"]) > 0


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_cpu_peak_memory_is_what_the_epoch_adds_not_the_process_total():
    """A Ray worker runs trial after trial: memory an earlier trial left resident
    must not make a later trial look heavier, and larger batches must show."""
    import numpy as np

    def peak(**overrides):
        return fit(small(epochs=1, **overrides))["final"]["peak_memory_mb"]

    peak(batch_size=16)  # the first fit in a process also pays torch's one-time set-up
    small_batches = peak(batch_size=16)
    leftover = np.ones(300 * 2**20 // 8)  # 300 MiB resident during the next trial
    with_leftover = peak(batch_size=16)
    del leftover
    large_batches = peak(batch_size=1024)
    status = Path("/proc/self/status").read_text()
    process_mb = int(status.split("VmRSS:")[1].split()[0]) / 1024
    assert 0 <= small_batches < 50 < process_mb
    assert abs(with_leftover - small_batches) < 10, (small_batches, with_leftover)
    assert large_batches > small_batches + 2, (small_batches, large_batches)


def test_callback_receives_metrics_and_checkpoint(tmp_path):
    seen = []
    fit(small(epochs=2), output_dir=tmp_path, on_epoch_end=lambda m, d: seen.append((m["epoch"], d)))
    assert [epoch for epoch, _ in seen] == [0, 1]
    assert all((d / "checkpoint.pt").is_file() for _, d in seen)
    assert load_checkpoint(tmp_path / "checkpoint")["epoch"] == 1


def test_modulation_window_and_recipe_defaults():
    results = fit(small(strategy="ogm", epochs=3, modulation_ends=0))
    assert [m["modulating"] for m in results["history"]] == [True, False, False]
    assert results["history"][1]["weight_pix"] is None
    assert [m["unimodal_loss_weight"] for m in results["history"]] == [0.0, 0.0, 0.0]
    arl = fit(small(strategy="arl", epochs=3, modulation_starts=2))
    assert [m["unimodal_loss_weight"] for m in arl["history"]] == [1.0, 1.0, 4.0]


@pytest.mark.parametrize(
    "config, key",
    [
        ({"dataset": "crema"}, "dataset"),
        ({"backbone": "vit"}, "backbone"),
        ({"strategy": "gola"}, "goal"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"lr": -0.1}, "lr"),
        ({"lr": "fast"}, "lr"),
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": 0}, "epochs"),
        ({"temperature": 0}, "temperature"),
        ({"lerning_rate": 0.1}, "lerning_rate"),
        ({"alpha": 0.5}, "alpha"),
        ({"fusion": "film"}, "fusion"),
        ({"logits_source": "heads"}, "logits_source"),
        ({"device": "cuda:7"} if not torch.cuda.is_available() else {"device": "tpu"}, "device"),
        ({"device": [1]}, "device must be a string"),
        ({"lr": 1e39}, "lr must be <="),  # torch's float32 update would overflow with a traceback
        ({"strategy": "OGM_GE"}, "did you mean 'ogm_ge'"),
        ({"dataset": "MFEAT"}, "did you mean 'mfeat'"),
        ({"backbone": "MLP"}, "did you mean 'mlp'"),
        ({"strategy": ["goal"]}, "unknown strategy"),
    ],
)
def test_bad_configs_name_the_key_before_training(config, key):
    with pytest.raises(ConfigError, match=key):
        resolve_config(config)


@pytest.mark.parametrize(
    "config, key",
    [
        ({"dataset_options": {"veiws": ["pix", "fou"]}}, "veiws"),
        ({"backbone_options": {"fou": {"out_dim": 16}}}, "Set the backbone option feature_dim"),
        ({"dataset_options": {"views": ["fou"]}}, "at least 2 modalities"),
        ({"backbone": "resnet18"}, "use backbone 'mlp'"),
    ],
)
def test_config_errors_found_when_building_data_and_model(config, key, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr("goal_plugin.engine.trainer.train_epoch", no_training)
    with pytest.raises(ConfigError, match=key):
        fit(config)


def test_resnet18_audio_visual_trial_on_cpu():
    results = fit(
        {
            "dataset": "synthetic",
            "dataset_options": {"kinds": ["spectrogram", "frames"], "sizes": [24, 8, 8], "num_classes": 4},
            "backbone": "resnet18",
            "epochs": 1,
            "batch_size": 12,
            "lr": 1e-3,
            "diagnostics": False,
        }
    )
    assert results["finished"] and results["final"]["conflict_fraction"] is not None


def test_sum_fusion_three_modalities_small_cnn():
    results = fit(
        {
            "dataset": "synthetic",
            "dataset_options": {
                "modalities": ["a", "v", "t"],
                "kinds": ["spectrogram", "frames", "spectrogram"],
                "informativeness": [2.0, 1.0, 0.5],
                "sizes": [48, 16, 16],
                "num_classes": 3,
            },
            "backbone": "small_cnn",
            "fusion": "sum",
            "strategy": "ogm_go",
            "epochs": 2,
            "batch_size": 16,
        }
    )
    assert {"weight_a", "weight_v", "weight_t", "cca_a_v", "cca_v_t"} <= set(results["final"])


def test_conflict_rate_makes_the_weaker_modality_contradict_the_label():
    def weak_head_accuracy(rate):
        options = {"conflict_rate": rate, "informativeness": [2.0, 1.5]}
        results = fit(small(dataset="synthetic", dataset_options=options, strategy="none", epochs=5, lr=0.05))
        return results["final"]["test_acc_visual"], results["final"]["test_acc_audio"]

    clean_visual, clean_audio = weak_head_accuracy(0.0)
    conflicted_visual, conflicted_audio = weak_head_accuracy(0.6)
    assert conflicted_visual < clean_visual - 0.15
    assert conflicted_audio == pytest.approx(clean_audio, abs=0.05)


# -------------------------------------------------------------- divergence
def test_non_finite_loss_stops_the_run_naming_epoch_and_step(tmp_path):
    """lr=1000 used to end as a "finished" run at chance accuracy (or, with
    diagnostics on, in a linalg.svd traceback)."""
    with pytest.raises(DivergenceError, match=r"loss is (nan|inf|-inf) at epoch 1/3, step \d+/19") as info:
        fit({"lr": 1000, "epochs": 3}, output_dir=tmp_path)
    error = info.value
    assert error.epoch == 0 and 0 <= error.step < 19 and f"step {error.step + 1}/19" in str(error)
    copy = pickle.loads(pickle.dumps(error))  # Ray hands the trial's exception to the driver pickled
    assert (type(copy), str(copy), copy.epoch, copy.step) == (DivergenceError, str(error), error.epoch, error.step)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert not saved["finished"] and saved["history"] == [] and saved["error"] == str(error)
    assert not (tmp_path / "checkpoint").exists()


def test_update_that_breaks_the_model_after_finite_losses_is_divergence():
    """One step per epoch: the only loss is finite, its update overflows the model."""
    with pytest.raises(DivergenceError, match=r"finite through epoch 1/1.*outputs on the val split are not finite"):
        fit({"lr": 1e38, "momentum": 0.0, "batch_size": 5000, "epochs": 1})


def test_diagnostics_give_nan_not_a_traceback_on_non_finite_features():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(60, 4, generator=generator)
    labels = torch.arange(60) % 3
    broken = features.clone()
    broken[5, 2] = float("nan")
    broken[7, 1] = float("inf")
    assert torch.isnan(canonical_correlations(broken, features)).all()
    assert len(canonical_correlations(features[:, :3], broken)) == 3
    assert math.isnan(linear_probe_accuracy(broken, labels, features, labels, 3))
    assert math.isnan(linear_probe_accuracy(features, labels, broken, labels, 3))


# -------------------------------------------------------------- run folders
def test_output_folder_holding_a_run_is_refused_unless_overwritten(tmp_path):
    fit(small(epochs=1), output_dir=tmp_path)
    before = {name: (tmp_path / name).read_bytes() for name in ("config.json", "metrics.json")}
    with pytest.raises(RunFolderError, match=f"{tmp_path}.*already holds a run"):
        fit(small(epochs=1, lr=0.5), output_dir=tmp_path)
    assert before == {name: (tmp_path / name).read_bytes() for name in before}
    fit(small(epochs=1), output_dir=tmp_path, resume_from=tmp_path)  # the run in it may continue
    fit(small(epochs=2, lr=0.5), output_dir=tmp_path, overwrite=True)
    replaced = json.loads((tmp_path / "metrics.json").read_text())
    assert replaced["config"]["lr"] == 0.5 and len(replaced["history"]) == 2
    (tmp_path / "a_file").write_text("")
    with pytest.raises(RunFolderError, match="a_file.*existing file"):
        fit(small(epochs=1), output_dir=tmp_path / "a_file")


# ------------------------------------------------------------- checkpoints
def test_corrupt_and_foreign_checkpoints_are_refused_and_never_executed(tmp_path):
    (tmp_path / "corrupt.pt").write_bytes(b"\x80\x04not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "corrupt.pt")

    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(tmp_path / "evil.pt", "wb") as handle:
        pickle.dump({"format": "goal_plugin.checkpoint", "payload": Payload()}, handle)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()

    torch.save({"model": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a goal_plugin checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_resume_with_another_config_is_refused(tmp_path):
    fit(small(epochs=1), output_dir=tmp_path)
    with pytest.raises(CheckpointError, match="different configuration"):
        fit(small(epochs=1, lr=0.5), resume_from=tmp_path)


def test_cli_resume_refuses_overrides_and_non_run_folders(tmp_path):
    result = run_cli(["--resume", str(tmp_path)], timeout=60)
    assert result.returncode == 2 and "not a run folder" in result.stderr
    result = run_cli(["--resume", str(tmp_path), "--set", "lr=1"], timeout=60)
    assert result.returncode == 2 and "--resume" in result.stderr


# ---------------------------------------------------------------- metrics
def test_macro_f1_matches_sklearn():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (200,), generator=generator)
    predictions = torch.where(torch.rand(200, generator=generator) < 0.6, labels, torch.randint(0, 5, (200,), generator=generator))
    expected = f1_score(labels.numpy(), predictions.numpy(), average="macro")
    assert macro_f1(predictions, labels, 5) == pytest.approx(expected, abs=1e-12)


def test_linear_probe_and_cca_reference_cases():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(300) % 3
    features = torch.nn.functional.one_hot(labels, 3).double() * 5 + 0.1 * torch.randn(300, 3, generator=generator, dtype=torch.float64)
    assert linear_probe_accuracy(features[:200], labels[:200], features[200:], labels[200:], 3) == 1.0
    x = torch.randn(500, 4, generator=generator, dtype=torch.float64)
    mixed = x @ torch.randn(4, 4, generator=generator, dtype=torch.float64)
    exact = canonical_correlations(x, mixed, regularisation=0.0)
    assert torch.allclose(exact, torch.ones(4, dtype=torch.float64), atol=1e-9)
    assert canonical_correlations(x, mixed)[0] > 0.99  # the ridge only shrinks weak directions
    independent = torch.randn(500, 4, generator=generator, dtype=torch.float64)
    assert canonical_correlations(x, independent).max() < 0.25
