"""The unimodal baseline: one encoder and head on one chosen modality through the same
harness, named "<modality> only" in the tables."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import torch

from goal_plugin.analysis import load_results, summarise
from goal_plugin.engine import fit
from tests._fit_runs import deterministic, killed_and_resumed

ROOT = Path(__file__).resolve().parents[1]


def train_cli(args: list[str]) -> int:
    spec = importlib.util.spec_from_file_location("train_cli_unimodal", ROOT / "runners" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(args)


def test_a_unimodal_baseline_trains_only_its_modality(tmp_path):
    results = fit({"strategy": "unimodal", "modality": "kar", "dataset_options": {"views": ["fou", "kar", "pix"]}, "epochs": 2},
                  output_dir=tmp_path / "run")  # fmt: skip
    assert results["modalities"] == ["kar"]
    state = torch.load(tmp_path / "run" / "checkpoint" / "checkpoint.pt", weights_only=True)["model"]
    assert {key.split(".")[1] for key in state if key.startswith("encoders.")} == {"kar"}
    final = results["final"]
    assert 0 <= final["test_acc"] <= 1 and "probe_acc_kar" in final and final.get("weight_kar") is None  # nothing gated
    other = fit({"strategy": "unimodal", "modality": "fou", "dataset_options": {"views": ["fou", "kar", "pix"]}, "epochs": 2})
    assert other["modalities"] == ["fou"] and other["final"]["test_acc"] != final["test_acc"]


def test_a_killed_unimodal_run_resumes_bit_exactly(tmp_path):
    config = {"strategy": "unimodal", "modality": "pix", "dataset_options": {"views": ["fou", "kar", "pix"]},
              "epochs": 3, "batch_size": 256, "diagnostics": False}  # fmt: skip
    uninterrupted = fit(config)
    resumed = killed_and_resumed(config, tmp_path / "run")
    assert deterministic(resumed) == deterministic(uninterrupted)


def test_a_modality_the_dataset_lacks_is_a_one_line_error(tmp_path, capsys):
    assert train_cli(["--set", "strategy=unimodal", "--set", "modality=audio", "--set", "epochs=1", "--quiet",
                      "--output", str(tmp_path / "run")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "modality 'audio' of strategy 'unimodal' is not one of the dataset's ['pix', 'fou']" in err


def test_tables_name_a_unimodal_baseline_by_its_modality(tmp_path):
    rows = [
        {"dataset": "crema_d", "backbone": "resnet18", "strategy": strategy, "modality": modality, "seed": seed,
         "test_acc": 0.5 + 0.01 * seed + offset}
        for strategy, modality, offset in (("goal", None, 0.2), ("unimodal", "audio", 0.1), ("unimodal", "visual", 0.0))
        for seed in range(3)
    ]  # fmt: skip
    csv = tmp_path / "runs.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    summary = summarise(load_results([csv], metrics=["acc"]), reference="goal", metrics=["acc"])
    assert {"goal", "audio only", "visual only"} <= set(summary.table["method"])
    assert json.dumps(sorted(set(summary.table["method"])))  # plain strings
