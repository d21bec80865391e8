"""Tasks: classification, multi-label and regression heads, losses and metrics.

The metrics equal scikit-learn's and a transcription of the MMSA / MulT sentiment
evaluation; beta-NLL reduces to torch's Gaussian NLL at beta = 0 and gives the
mean the MSE gradient at beta = 1; a three-modality GOAL run, a regression GOAL
run (AL for regression) and a multi-label run each train one epoch on fixtures
through runners/train.py; strategies that cannot read a task's heads are refused
in one line.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from goal_plugin.engine.tasks import Task, multilabel_f1, sentiment_scores
from tests._sequence_fixtures import write_iemocap_features, write_mmsa, write_mult

ROOT = Path(__file__).resolve().parents[1]
SEQUENCE = ["--set", "backbone=transformer_seq", "--set", "backbone_options={d_model: 8, heads: 2, layers: 1, feature_dim: 8}"]


def train_cli(args: list[str]) -> int:
    spec = importlib.util.spec_from_file_location("train_cli_tasks", ROOT / "runners" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(args)


@pytest.mark.parametrize("seed", range(4))
def test_multilabel_f1_equals_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    truth = (rng.random((20, 6)) < 0.3).astype(np.int64)
    predicted = (rng.random((20, 6)) < 0.3).astype(np.int64)
    truth[0] = 0  # a sample without labels
    truth[:, 5] = predicted[:, 5] = 0  # a label nobody has or predicts
    ours = multilabel_f1(torch.from_numpy(predicted), torch.from_numpy(truth))
    for average in ("micro", "macro", "weighted", "samples"):
        expected = f1_score(truth, predicted, average=average, zero_division=0)
        assert ours[f"{average}_f1"] == pytest.approx(expected, abs=1e-12), average


def test_sentiment_metrics_equal_the_mmsa_evaluation():
    rng = np.random.default_rng(0)
    truth = np.round(rng.uniform(-3, 3, 50) * 3) / 3
    truth[:5] = 0.0
    preds = rng.normal(0, 2, 50)
    # MMSA's __eval_mosi_regression, transcribed.
    test_preds_a7, test_truth_a7 = np.clip(preds, -3.0, 3.0), np.clip(truth, -3.0, 3.0)
    non_zeros = np.array([i for i, e in enumerate(truth) if e != 0])
    expected = {
        "acc7": np.sum(np.round(test_preds_a7) == np.round(test_truth_a7)) / len(truth),
        "acc2_non_zero": np.mean((preds[non_zeros] > 0) == (truth[non_zeros] > 0)),
        "f1_non_zero": f1_score(truth[non_zeros] > 0, preds[non_zeros] > 0, average="weighted"),
        "acc2_has_zero": np.mean((preds >= 0) == (truth >= 0)),
        "f1_has_zero": f1_score(truth >= 0, preds >= 0, average="weighted"),
    }
    ours = sentiment_scores(torch.from_numpy(preds), torch.from_numpy(truth), (-3.0, 3.0))
    for name, value in expected.items():
        assert ours[name] == pytest.approx(value, abs=1e-12), name


def test_beta_nll_reduces_to_the_gaussian_nll_and_to_the_mse_gradient():
    torch.manual_seed(0)
    outputs = torch.randn(16, 2, dtype=torch.float64, requires_grad=True)
    target = torch.randn(16, dtype=torch.float64)
    plain = Task("regression", 1, beta_nll=0.0).loss(outputs, target)
    reference = torch.nn.GaussianNLLLoss(eps=0.0)(outputs[:, 0], target, outputs[:, 1].exp())
    assert torch.allclose(plain, reference)
    Task("regression", 1, beta_nll=1.0).loss(outputs, target).backward()
    mean = outputs.detach()[:, 0].clone().requires_grad_(True)
    (0.5 * ((mean - target) ** 2).mean()).backward()
    assert torch.allclose(outputs.grad[:, 0], mean.grad)


def _run(tmp_path: Path, dataset: str, root: Path, extra: list[str]) -> dict:
    code = train_cli(
        ["--set", f"dataset={dataset}", "--set", f"data_root={root}", *SEQUENCE,
         "--set", "batch_size=4", "--set", "epochs=1", "--set", "diagnostics=false", "--set", "lr=0.01",
         *extra, "--quiet", "--output", str(tmp_path / "run")]
    )  # fmt: skip
    assert code == 0
    return json.loads((tmp_path / "run" / "metrics.json").read_text())


def test_a_three_modality_goal_run_trains_one_epoch(tmp_path):
    write_iemocap_features(tmp_path / "iemocap")
    metrics = _run(tmp_path, "iemocap", tmp_path / "iemocap", ["--set", "strategy=goal"])
    final = metrics["final"]
    assert metrics["modalities"] == ["audio", "visual", "text"] and final["task"] == "classification"
    assert {f"weight_{m}" for m in metrics["modalities"]} <= set(final)
    assert 0 <= final["test_acc"] <= 1 and "test_acc_text" in final and np.isfinite(final["train_loss"])


def test_a_regression_goal_run_reads_the_heads_variances(tmp_path, capsys):
    write_mmsa(tmp_path / "mosi", aligned=False)
    metrics = _run(tmp_path, "mosi", tmp_path / "mosi", ["--set", "strategy=goal", "--set", "uncertainty=variance"])
    code = train_cli(["--set", "dataset=mosi", "--set", f"data_root={tmp_path / 'mosi'}", *SEQUENCE, "--set", "epochs=1", "--set", "strategy=none",
                      "--set", "diagnostics=false", "--output", str(tmp_path / "logged")])  # fmt: skip
    assert code == 0 and "val mae " in capsys.readouterr().out  # the epoch line names the task's score
    final = metrics["final"]
    assert final["task"] == "regression" and "train_acc" not in final
    for name in ("mae", "corr", "acc2_has_zero", "acc2_non_zero", "f1_has_zero", "f1_non_zero", "acc7"):
        assert f"test_{name}" in final and f"test_{name}_at_best_val" in final, name
    assert final["test_mae"] >= 0 and "best_val_mae" in final and "test_mae_audio" in final
    weights = [final[f"weight_{m}"] for m in ("audio", "visual", "text")]
    assert sum(weights) == pytest.approx(1.0, abs=1e-6)  # AL's weights from the variances


def test_a_multilabel_run_trains_with_binary_cross_entropy(tmp_path):
    write_mult(tmp_path / "mult", "iemocap_data.pkl", labels="iemocap")
    metrics = _run(
        tmp_path, "iemocap", tmp_path / "mult", ["--set", "strategy=go", "--set", "dataset_options={task: multilabel}"]
    )
    final = metrics["final"]
    assert final["task"] == "multilabel"
    assert {"test_micro_f1", "test_macro_f1", "test_weighted_f1", "test_samples_f1", "best_val_micro_f1"} <= set(final)


@pytest.mark.parametrize(
    ("dataset_options", "settings", "message"),
    [
        ("{}", ["strategy=goal"], "uncertainty: variance"),
        ("{}", ["strategy=ogm"], "uncertainty: variance"),
        ("{}", ["strategy=goal", "uncertainty=variance", "regression_head=mse"], "regression_head: gaussian"),
        ("{task: multilabel}", ["strategy=al"], "none, none_uniloss, go"),
    ],
)
def test_strategies_that_cannot_read_the_task_are_refused_in_one_line(tmp_path, capsys, dataset_options, settings, message):
    if "multilabel" in dataset_options:
        write_mult(tmp_path / "data", "iemocap_data.pkl", labels="iemocap")
        dataset = "iemocap"
    else:
        write_mmsa(tmp_path / "data", aligned=False)
        dataset = "mosi"
    args = ["--set", f"dataset={dataset}", "--set", f"data_root={tmp_path / 'data'}", "--set", f"dataset_options={dataset_options}", *SEQUENCE]
    for setting in settings:
        args += ["--set", setting]
    assert train_cli([*args, "--quiet", "--output", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_a_classification_run_with_variance_al_is_refused(tmp_path, capsys):
    args = ["--set", "strategy=goal", "--set", "uncertainty=variance", "--set", "epochs=1", "--quiet", "--output", str(tmp_path / "run")]
    assert train_cli(args) == 2
    assert "uncertainty: entropy" in capsys.readouterr().err


def test_each_modality_may_have_its_own_backbone(tmp_path, capsys):
    write_iemocap_features(tmp_path / "iemocap")
    common = ["--set", "dataset=iemocap", "--set", f"data_root={tmp_path / 'iemocap'}", "--set", "epochs=1",
              "--set", "diagnostics=false", "--set", "strategy=none_uniloss", "--quiet"]  # fmt: skip
    per_modality = "{audio: lstm, visual: transformer_seq, text: mlp}"
    options = "{feature_dim: 8, visual: {d_model: 8, heads: 2, layers: 1}, audio: {hidden_dim: 4}}"
    assert train_cli([*common, "--set", f"backbone={per_modality}", "--set", f"backbone_options={options}",
                      "--output", str(tmp_path / "run")]) == 0  # fmt: skip
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["backbone"] == {"audio": "lstm", "visual": "transformer_seq", "text": "mlp"}
    assert train_cli([*common, "--set", "backbone={audio: lstm, visual: lstm}", "--output", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "missing ['text']" in err


def test_memes_train_an_image_backbone_beside_bert_from_one_local_folder(tmp_path):
    """Hateful Memes with backbone {image: small_cnn, text: bert_base}: the tokenizer and
    the checkpoint come from one folder inside the data root (never the hub); bert_base
    reads it without a path of its own."""
    transformers = pytest.importorskip("transformers")
    from tests._image_text_fixtures import write_hateful_memes, write_tokenizer

    write_hateful_memes(tmp_path / "memes")
    bert = write_tokenizer(tmp_path / "memes" / "bert")  # inside the data root: named relatively
    vocab = len((bert / "vocab.txt").read_text().split())
    config = transformers.BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    transformers.BertModel(config).save_pretrained(str(bert))
    options = json.dumps({"tokenizer": "bert", "max_length": 16, "image_size": 16})
    backbone_options = json.dumps({"feature_dim": 16, "image": {"channels": [4]}})  # bert_base reads the tokenizer's folder
    code = train_cli(
        ["--set", "dataset=hateful_memes", "--set", f"data_root={tmp_path / 'memes'}",
         "--set", f"dataset_options={options}", "--set", "backbone={image: small_cnn, text: bert_base}",
         "--set", f"backbone_options={backbone_options}", "--set", "strategy=goal", "--set", "batch_size=4",
         "--set", "epochs=1", "--set", "diagnostics=false", "--quiet", "--output", str(tmp_path / "run")]
    )  # fmt: skip
    assert code == 0
    final = json.loads((tmp_path / "run" / "metrics.json").read_text())["final"]
    assert final["task"] == "classification" and {"test_acc_image", "test_acc_text"} <= set(final)
