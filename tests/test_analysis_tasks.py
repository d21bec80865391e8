"""Tables and figures of regression, multi-label and three-modality sweeps, from the
folders of real training runs: each task's metrics by default (per dataset when a
table pools tasks), the direction of every error metric, the ``task`` key read as the
task, and three modalities in the weights, conflict and pairwise-cosine figures."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from goal_plugin.analysis import load_results, metrics, plots, summarise
from goal_plugin.analysis.metrics import display_name, higher_is_better
from goal_plugin.analysis.plots import make_plots
from goal_plugin.tune.cli import final_table
from tests._analysis_fixtures import write_csv
from tests._fit_runs import multilabel_sweep, regression_sweep, three_view_sweep

ROOT = Path(__file__).resolve().parents[1]
SENTIMENT = ["test_acc2_has_zero", "test_acc2_non_zero", "test_acc7", "test_f1_has_zero", "test_f1_non_zero"]
REGRESSION = ["test_mae", "test_corr", *SENTIMENT]
VIEWS = ["pix", "fou", "kar"]


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    root = tmp_path_factory.mktemp("fit_sweeps")
    return {
        "regression": regression_sweep(root),
        "multilabel": multilabel_sweep(root),
        "three_views": three_view_sweep(root),
    }


def dataset_metrics(summary) -> dict[str, list[str]]:
    rows = summary.table[summary.table["scope"] == "dataset"]
    return {d: list(dict.fromkeys(group["metric"])) for d, group in rows.groupby("dataset")}


def markdown_header(text: str, title: str) -> list[str]:
    """The column headers of the Markdown tables whose title starts with ``title``."""
    headers = []
    for section in text.split("\n## ")[1:]:
        if section.startswith(title):
            headers += [c.strip() for c in section.splitlines()[2].strip("|").split(" | ")]
    return headers


# ----------------------------------------------------------------------------- tables


def test_a_regression_table_shows_mae_corr_and_each_acc2_convention_named(sweeps, tmp_path):
    results = load_results([sweeps["regression"]])
    summary = summarise(results)
    assert summary.metrics == [*REGRESSION, "time_per_sample_ms", "peak_memory_mb"]
    assert not [n for n in summary.notes if "lack" in n]
    rows = summary.table[summary.table["scope"] == "dataset"].set_index(["method", "metric"])
    assert not rows.loc[(slice(None), "test_mae"), "higher_is_better"].any()
    assert rows.loc[(slice(None), "test_acc7"), "higher_is_better"].all()
    means = results.trials.groupby("strategy")["test_mae"].mean()
    assert rows.loc[("goal", "test_mae"), "mean"] == pytest.approx(means["goal"])
    markdown = summary.write(tmp_path / "out")[1].read_text()
    header = markdown_header(markdown, "Main comparison")
    assert header == [
        "Method",
        "mosi: MAE",
        "mosi: Corr",
        "mosi: Acc-2 (has-zero) (%)",
        "mosi: Acc-2 (non-zero) (%)",
        "mosi: Acc-7 (%)",
        "mosi: F1 (has-zero) (%)",
        "mosi: F1 (non-zero) (%)",
    ]  # no linear-probe column: the probe runs for classification only
    # The best MAE is the lowest one.
    best = means.idxmin()
    line = next(line for line in markdown.split("## Main comparison")[1].splitlines() if line.startswith(f"| {best} "))
    assert line.split(" | ")[1].startswith("**")


def test_the_sweep_table_of_a_regression_sweep_uses_the_regression_metrics(sweeps):
    table = final_table(str(sweeps["regression"]), "goal")
    assert not table.startswith("no table"), table
    assert "mosi/transformer_seq · test_mae (lower is better)" in table
    assert "mosi/transformer_seq · test_acc2_non_zero (higher is better)" in table
    assert "test_acc " not in table


def test_a_multilabel_table_shows_micro_and_macro_f1_and_others_on_request(sweeps):
    results = load_results([sweeps["multilabel"]])
    assert summarise(results, reference="go").metrics[:2] == ["test_micro_f1", "test_macro_f1"]
    assert "test_weighted_f1" not in summarise(results, reference="go").metrics
    chosen = summarise(results, reference="go", metrics=["weighted_f1", "samples_f1"])
    assert chosen.metrics[:2] == ["test_weighted_f1", "test_samples_f1"]
    assert display_name("test_micro_f1") == "Micro-F1 (%)"


def test_a_table_pooling_tasks_shows_each_dataset_its_tasks_metrics(sweeps, tmp_path):
    results = load_results(list(sweeps.values()))
    summary = summarise(results, reference="none")
    by_dataset = dataset_metrics(summary)
    overhead = ["time_per_sample_ms", "peak_memory_mb"]
    assert by_dataset["mosi"] == [*REGRESSION, *overhead]
    assert by_dataset["iemocap"] == ["test_micro_f1", "test_macro_f1", *overhead]
    # mfeat: classification, with the weakest of its three modalities' probes.
    probes = results.trials[[f"probe_acc_{v}" for v in VIEWS]].mean()
    assert by_dataset["mfeat"] == ["test_acc", "test_macro_f1", probes.idxmin(), *overhead]
    assert not [n for n in summary.notes if "lack" in n]
    header = markdown_header(summary.write(tmp_path / "out")[1].read_text(), "Main comparison")
    assert {"mfeat: Acc (%)", "mosi: MAE", "iemocap: Micro-F1 (%)", "mosi: Acc-2 (non-zero) (%)"} <= set(header)
    assert "mosi: Acc (%)" not in header and "mfeat: MAE" not in header


def test_the_task_key_is_the_task_never_a_metric_or_a_setting(sweeps, tmp_path):
    results = load_results(list(sweeps.values()))
    assert "task" not in results.config_columns
    assert set(results.trials["task"]) == {"regression", "multilabel", "classification"}
    summary = summarise(results, reference="none")
    assert "task" not in summary.metrics and "task" not in summary.table.columns
    assert set(summary.method_order) == {"none", "goal", "go"}
    # A tidy CSV's task column too, and its short-named regression scores are metrics.
    rows = [
        {"dataset": "mosi", "strategy": s, "seed": seed, "task": "regression", "mae": 0.9 + 0.1 * (s == "none") + 0.01 * seed, "corr": 0.5}
        for s, seed in itertools.product(("none", "goal"), range(3))
    ]  # fmt: skip
    csv = load_results([write_csv(tmp_path / "t.csv", rows)], metrics=["mae", "corr"])
    assert "task" not in csv.config_columns and {"mae", "corr"} <= set(csv.trials.columns)
    table = summarise(csv).table
    assert list(dict.fromkeys(table["metric"])) == ["mae", "corr"]
    assert not table.loc[table["metric"] == "mae", "higher_is_better"].any()


def test_the_tables_cli_defaults_to_the_tasks_metrics(sweeps, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("tables_cli_tasks", ROOT / "analysis" / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([str(sweeps["regression"]), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "test_mae (lower is better)" in out and "test_acc2_has_zero" in out
    assert module.main([str(sweeps["regression"]), "--out", str(tmp_path / "p"), "--metric", "mae_at_best_val"]) == 0
    out = capsys.readouterr().out
    assert "test_mae_at_best_val (lower is better)" in out and "test_corr" not in out


# ----------------------------------------------------------------------------- directions


@pytest.mark.parametrize(
    "metric",
    ["test_mae", "val_mae", "best_val_mae", "test_mae_at_best_val", "test_mae_audio", "val_mae_text", "train_loss"],
)
def test_errors_are_better_lower_wherever_the_name_puts_them(metric):
    assert not higher_is_better(metric)


@pytest.mark.parametrize(
    "metric",
    ["test_corr", "test_acc7", "test_acc2_has_zero", "test_f1_non_zero", "test_micro_f1_at_best_val", "best_val_acc"],
)
def test_scores_are_better_higher(metric):
    assert higher_is_better(metric)


def test_the_best_val_mae_ranks_the_lowest_first(sweeps):
    summary = summarise(load_results([sweeps["regression"]]), metrics=["best_val_mae", "mae_at_best_val"])
    rows = summary.table[summary.table["scope"] == "dataset"]
    assert not rows["higher_is_better"].any()
    for metric, group in rows.groupby("metric"):
        reference = group[group["is_reference"]]
        other = group[~group["is_reference"]].iloc[0]
        assert other["diff_vs_reference"] == pytest.approx(other["mean"] - reference["mean"].iloc[0])
        # The reference wins a seed where its error is lower.
        better = other["significance_sign"] == 1
        assert not better or other["diff_vs_reference"] > 0, metric


@pytest.mark.parametrize(
    ("metric", "name"),
    [
        ("test_mae", "MAE"),
        ("test_corr", "Corr"),
        ("test_acc2_has_zero", "Acc-2 (has-zero) (%)"),
        ("test_acc2_non_zero", "Acc-2 (non-zero) (%)"),
        ("test_acc7", "Acc-7 (%)"),
        ("test_f1_has_zero", "F1 (has-zero) (%)"),
        ("test_f1_non_zero", "F1 (non-zero) (%)"),
        ("test_micro_f1", "Micro-F1 (%)"),
        ("test_weighted_f1", "Weighted-F1 (%)"),
        ("test_samples_f1", "Samples-F1 (%)"),
        ("test_mae_at_best_val", "MAE @ best val"),
        ("best_val_mae", "best val MAE"),
        ("test_acc_text", "Acc text (%)"),
    ],
)
def test_display_names_of_the_new_metrics(metric, name):
    assert display_name(metric) == name


def test_default_metrics_follow_each_trials_task():
    trials = pd.DataFrame(
        {
            "task": ["regression", "classification", None],
            "test_mae": [0.8, None, None],
            "test_corr": [0.5, None, None],
            "test_acc": [None, 0.9, 0.8],
            "test_macro_f1": [None, 0.85, 0.8],
        }
    )
    assert metrics.default_metrics(trials) == ["test_acc", "test_mae", "test_macro_f1", "test_corr"]


# ----------------------------------------------------------------------------- three modalities


def test_the_engine_reports_every_pairs_cosines_per_epoch(sweeps):
    epochs = load_results([sweeps["three_views"]]).epochs
    goal = epochs[epochs["strategy"] == "goal"]
    pairs = ["pix_fou", "pix_kar", "fou_kar"]
    for when in ("before", "after"):
        columns = [f"cosine_{when}_{pair}" for pair in pairs]
        assert goal[columns].notna().all().all()
        # Every pair holds the same number of inner products per step: their mean is the mean.
        assert np.allclose(goal[columns].mean(axis=1), goal[f"cosine_{when}"], atol=1e-9)
    assert plots.modality_pairs(list(epochs.columns)) == [("pix", "fou"), ("pix", "kar"), ("fou", "kar")]
    none = epochs[epochs["strategy"] == "none"]  # leaves the gradients as they are
    for pair in pairs:
        assert np.allclose(none[f"cosine_before_{pair}"], none[f"cosine_after_{pair}"], atol=1e-6)


def test_three_modality_figures_show_every_weight_conflicts_and_pairwise_cosines(sweeps, tmp_path, drawn):
    results = load_results([sweeps["three_views"]])
    paths = make_plots(results, tmp_path / "plots")
    assert {p.name for p in paths} >= {"weights.png", "gradients.png", "diagnostics.png", "curves.png"}
    weights = drawn["weights"]
    assert [ax.get_title() for ax in weights.axes] == [f"mfeat/mlp · {v}" for v in VIEWS]
    for ax, view in zip(weights.axes, VIEWS):
        (goal,) = [line for line in ax.get_lines() if line.get_label() == "goal"]
        expected = results.epochs[results.epochs["strategy"] == "goal"].groupby("epoch")[f"weight_{view}"].mean()
        assert np.allclose(goal.get_ydata(), expected.to_numpy())
    gradients = drawn["gradients"]
    assert [ax.get_title() for ax in gradients.axes] == [
        "mfeat/mlp · conflicting pairs",
        *(f"mfeat/mlp · cos {a}·{b} {when}" for a, b in [("pix", "fou"), ("pix", "kar"), ("fou", "kar")] for when in ("before", "after")),
    ]  # fmt: skip
    conflict = results.epochs[results.epochs["strategy"] == "goal"].groupby("epoch")["conflict_fraction"].mean()
    (line,) = [line for line in gradients.axes[0].get_lines() if line.get_label() == "goal"]
    assert np.allclose(line.get_ydata(), conflict.to_numpy())
    assert all({"none", "goal"} == {line.get_label() for line in ax.get_lines()} for ax in gradients.axes)
    diagnostics = drawn["diagnostics"]
    (legend,) = diagnostics.legends
    assert [t.get_text() for t in legend.get_texts()] == VIEWS


def test_regression_and_multilabel_curves_follow_the_tasks_validation_score(sweeps, tmp_path, drawn):
    results = load_results([sweeps["regression"], sweeps["multilabel"]])
    make_plots(results, tmp_path / "plots", ["curves", "temperature"])
    labels = {ax.get_title(): ax.get_ylabel() for ax in drawn["curves"].axes}
    assert labels == {
        "iemocap/transformer_seq": "validation Micro-F1 (%), higher is better",
        "mosi/transformer_seq": "validation MAE, lower is better",
    }
