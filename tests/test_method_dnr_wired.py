"""The ``dnr`` recipe (D&R) trained through the engine's TrainingMethod hook.

A re-initialisation epoch moves each encoder's parameters to ``a_m * initial +
(1 - a_m) * trained`` with ``a_m`` from BalanceBenchmark's transcribed
``reinit_score`` on features collected here, and leaves the buffers, heads and
fusion as trained; until then D&R trains and reports exactly as ``none``; runs with
two and three modalities resume bit-exactly across a re-initialisation; bad
hyperparameters, regression and a missing scikit-learn are refused in one line; the
modulation window does not change what D&R does.
"""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from goal_plugin.data.base import collate_batch
from goal_plugin.engine import ConfigError, fit
from goal_plugin.engine import checkpoint as ckpt
from goal_plugin.engine.config import resolve_config
from goal_plugin.engine.trainer import prepare
from tests import _method_references as ref
from tests._fit_runs import Killed, deterministic, kill_after

MODALITIES = {2: ["audio", "visual"], 3: ["audio", "visual", "text"]}



def mfeat(views, strategy="dnr", **overrides):
    dnr = {"reinit_epoch": 1, "reinit_num": 1, "kmeans_n_init": 1} if strategy == "dnr" else {}
    return {
        "strategy": strategy, **dnr, "epochs": 3, "batch_size": 256, "diagnostics": False,
        "dataset_options": {"views": views}, "backbone_options": {"hidden_dim": 16, "out_dim": 8}, **overrides,
    }  # fmt: skip


@pytest.mark.parametrize("views", [["fou", "kar"], ["fou", "kar", "pix"]])
def test_dnr_trains_as_none_until_it_relearns_and_resumes_bit_exactly(tmp_path, views):
    config = mfeat(views)  # re-initialises after epoch 1 (0-based) only
    uninterrupted = fit(config)
    with pytest.raises(Killed):  # the resumed run needs the initial parameters from the state
        fit(config, output_dir=tmp_path / "run", on_epoch_end=kill_after(0))
    with pytest.raises(Killed):  # the checkpoint holds the re-initialised encoders
        fit(config, output_dir=tmp_path / "run", resume_from=tmp_path / "run", on_epoch_end=kill_after(1))
    state = ckpt.load_checkpoint(tmp_path / "run" / "checkpoint")["strategy"]["training_method"]
    assert state["reinits_done"] == 1 and len(state["initial"]) == len(views)
    resumed = fit(config, output_dir=tmp_path / "run", resume_from=tmp_path / "run")  # must not re-init again
    assert deterministic(resumed) == deterministic(uninterrupted)
    assert resumed["final"]["test_acc"] == uninterrupted["final"]["test_acc"]

    plain = deterministic(fit(mfeat(views, "none")))[0]
    dnr = deterministic(uninterrupted)[0]
    # The plain step with the fused loss alone; epoch 1's metrics are evaluated before its
    # re-initialisation, as in the official loop; then the re-learnt encoders train on.
    assert dnr[:2] == plain[:2]
    assert dnr[2]["train_loss"] != plain[2]["train_loss"]


def synthetic(strategy, modalities, **overrides):
    n = len(modalities)
    options = {
        "modalities": modalities, "kinds": ["spectrogram"] * n, "informativeness": [2.0, 0.7, 0.4][:n],
        "spectrogram_size": [8, 8], "sizes": [96, 64, 16], "num_classes": 4,
    }  # fmt: skip
    return {
        "strategy": strategy, "dataset": "synthetic", "dataset_options": options, "backbone": "small_cnn",
        "backbone_options": {"channels": [4], "out_dim": 8}, "epochs": 2, "batch_size": 32, "lr": 0.05,
        "diagnostics": False, **overrides,
    }  # fmt: skip


def split_features(run, split, modalities):
    """Each encoder's eval-mode features of the whole split (float32 numpy) and the labels."""
    loader = DataLoader(run.splits[split], batch_size=run.config.batch_size, collate_fn=collate_batch)
    run.model.eval()
    parts = {m: [] for m in modalities} | {"label": []}
    with torch.no_grad():
        for batch in loader:
            out = run.model(batch)
            for m in modalities:
                parts[m].append(out.features[m].numpy())
            parts["label"].append(batch["label"].numpy())
    return {key: np.concatenate(values) for key, values in parts.items()}


@pytest.mark.parametrize("num_modalities", [2, 3])
def test_a_relearning_epoch_moves_each_encoder_to_its_initialisation_by_the_official_strength(
    tmp_path, num_modalities
):
    modalities = MODALITIES[num_modalities]
    plain_config = synthetic("none", modalities)
    dnr_config = synthetic("dnr", modalities, reinit_epoch=1, reinit_num=1)
    fit(plain_config, output_dir=tmp_path / "none")
    fit(dnr_config, output_dir=tmp_path / "dnr")
    trained = ckpt.load_checkpoint(tmp_path / "none" / "checkpoint")["model"]
    relearnt = ckpt.load_checkpoint(tmp_path / "dnr" / "checkpoint")
    run = prepare(resolve_config(plain_config))  # the seeded initialisation, before any step
    initial = {name: p.detach().clone() for name, p in run.model.encoders.named_parameters()}
    remembered = relearnt["strategy"]["training_method"]["initial"]
    for m, encoder in zip(modalities, remembered):
        assert all(torch.equal(tensor, initial[f"{m}.{name}"]) for name, tensor in encoder.items())

    run.model.load_state_dict(trained)  # D&R's step is the plain one: its model before re-learning
    train, val = split_features(run, "train", modalities), split_features(run, "val", modalities)
    weights = ref.dnr_reinit_score(modalities, 4, 3.0, train, val)
    assert all(0 < float(w) < 1 for w in weights.values()), weights  # a real pull towards the start
    expected = copy.deepcopy(run.model.encoders)
    ref.dnr_reinit(expected, initial, weights, modalities)

    actual = relearnt["model"]
    for name, tensor in expected.named_parameters():
        torch.testing.assert_close(actual[f"encoders.{name}"], tensor, rtol=1e-6, atol=1e-7, msg=name)
    parameters = {f"encoders.{name}" for name, _ in expected.named_parameters()}
    buffers = [name for name, _ in run.model.encoders.named_buffers()]
    assert any(name.endswith("running_mean") for name in buffers)  # the BatchNorm statistics
    for name in actual.keys() - parameters:  # buffers, unimodal heads and fusion as trained
        assert torch.equal(actual[name], trained[name]), name


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("move_lambda", -1.0, "move_lambda must be >= 0, got -1.0"),
        ("reinit_epoch", 0, "reinit_epoch must be >= 1, got 0"),
        ("reinit_num", 1.5, "reinit_num must be an integer, got 1.5"),
        ("kmeans_seed", -1, "kmeans_seed must be >= 0, got -1"),
        ("kmeans_n_init", 0, "kmeans_n_init must be >= 1, got 0"),
    ],
)
def test_dnr_refuses_a_bad_hyperparameter_in_one_line(key, value, message):
    with pytest.raises(ConfigError, match=message) as error:
        resolve_config({"strategy": "dnr", key: value})
    assert "\n" not in str(error.value)


def test_dnr_refuses_a_regression_task(tmp_path):
    from tests._sequence_fixtures import write_mmsa

    write_mmsa(tmp_path, aligned=False)
    with pytest.raises(ConfigError, match="strategy 'dnr' trains classification tasks only, not regression"):
        fit({"strategy": "dnr", "dataset": "mosi", "data_root": str(tmp_path), "backbone": "transformer_seq",
             "backbone_options": {"d_model": 8, "heads": 2, "layers": 1}, "epochs": 1})  # fmt: skip


def test_the_modulation_window_does_not_change_what_dnr_does():
    # D&R's step is the plain one and before epoch 0 it remembers the initialisation, so a
    # window that opens later changes nothing: the re-initialisations follow reinit_epoch.
    later = fit(mfeat(["fou", "kar"], modulation_starts=1))
    default = fit(mfeat(["fou", "kar"]))
    numbers = lambda results: [(m["train_loss"], m["val_acc"], m["test_acc"]) for m in results["history"]]
    assert numbers(later) == numbers(default)
    assert numbers(default)[2] != numbers(fit(mfeat(["fou", "kar"], strategy="none")))[2]  # epoch 1 re-initialised


def test_the_package_imports_without_scikit_learn_and_dnr_names_what_to_install():
    code = (
        "import sys; sys.modules['sklearn'] = None\n"  # as if scikit-learn were not installed
        "from goal_plugin.engine import ConfigError\n"
        "from goal_plugin.engine.config import resolve_config\n"
        "resolve_config({'strategy': 'none'})\n"
        "try:\n"
        "    resolve_config({'strategy': 'dnr'})\n"
        "except ConfigError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and "scikit-learn" in lines[0] and "'harness' extra" in lines[0], result.stdout
