"""goal_plugin.analysis: reading sweeps, the statistics against scipy / statsmodels,
table marks, degenerate input, figures and the two CLIs."""

from __future__ import annotations

import importlib.util
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats
from statsmodels.stats.multitest import multipletests

from goal_plugin.analysis import AnalysisError, load_results, plots, summarise
from goal_plugin.analysis.plots import KINDS, cosine_histograms, make_plots, mean_band
from goal_plugin.analysis.stats import wilcoxon
from tests._analysis_fixtures import (
    epoch_row,
    experiment_files,
    final_row,
    finished_trial,
    trial_config,
    write_csv,
    write_trial,
)

ROOT = Path(__file__).resolve().parents[1]
SEEDS = [0, 1, 2, 3, 4]
# Known per-seed accuracies: al a little above goal, ogm a little below, none far below.
ACC = {
    "none": [0.850, 0.871, 0.859, 0.880, 0.899],
    "ogm": [0.899, 0.905, 0.921, 0.903, 0.935],
    "al": [0.912, 0.935, 0.905, 0.921, 0.962],
    "goal": [0.900, 0.920, 0.910, 0.930, 0.950],
}
TOL = {"rel": 1e-9, "abs": 1e-12}


def tidy_rows(values=ACC, seeds=SEEDS, **columns):
    return [
        {
            "dataset": "mfeat",
            "backbone": "mlp",
            "strategy": strategy,
            "seed": seed,
            "test_acc": acc,
            "test_macro_f1": acc - 0.01 * (seed % 2),
            **columns,
        }
        for strategy, accs in values.items()
        for seed, acc in zip(seeds, accs)
    ]


def summary_of(tmp_path, rows, **kwargs):
    results = load_results([write_csv(tmp_path / "trials.csv", rows)])
    return summarise(results, **kwargs)


def rows_for(summary, metric="test_acc", scope="dataset"):
    table = summary.table
    return table[(table["metric"] == metric) & (table["scope"] == scope)].set_index("method")


def markdown_section(text: str, title: str) -> dict[str, list[str]]:
    """Rows of the Markdown table under ``## title``: first cell -> the other cells."""
    section = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")][2:]
    cells = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]
    return {row[0]: row[1:] for row in cells}


# ----------------------------------------------------------------------------- statistics


def test_paired_tests_ci_holm_and_win_rate_match_scipy_and_statsmodels(tmp_path):
    summary = summary_of(tmp_path, tidy_rows())
    rows = rows_for(summary)
    goal = np.array(ACC["goal"])
    others = ["none", "ogm", "al"]
    p_values = []
    for method in others:
        values = np.array(ACC[method])
        row = rows.loc[method]
        test = stats.ttest_rel(values, goal)
        low, high = test.confidence_interval(0.95)
        assert row["test"] == "paired t-test" and row["n"] == 5 and row["n_pairs"] == 5
        assert row["mean"] == pytest.approx(values.mean(), **TOL)
        assert row["std"] == pytest.approx(np.std(values, ddof=1), **TOL)
        assert row["diff_vs_reference"] == pytest.approx((values - goal).mean(), **TOL)
        assert row["statistic"] == pytest.approx(test.statistic, **TOL)
        assert row["p_value"] == pytest.approx(test.pvalue, **TOL)
        assert (row["ci_low"], row["ci_high"]) == (
            pytest.approx(low, **TOL),
            pytest.approx(high, **TOL),
        )
        assert row["win_rate"] == pytest.approx(
            np.mean(goal > values) + 0.5 * np.mean(goal == values)
        )
        p_values.append(test.pvalue)
    holm = multipletests(p_values, method="holm")[1]
    for method, p_holm in zip(others, holm):
        row = rows.loc[method]
        assert row["p_holm"] == pytest.approx(p_holm, **TOL)
        better = goal.mean() > np.mean(ACC[method])
        assert row["significant"] == (p_holm < 0.05 and better)
    assert rows.loc["none", "significant"] and not rows.loc["al", "significant"]
    assert rows.loc["goal", "is_reference"] and math.isnan(rows.loc["goal", "p_value"])


def test_seed_sets_that_differ_fall_back_to_welch_and_say_so(tmp_path):
    rows = [r for r in tidy_rows() if not (r["strategy"] == "ogm" and r["seed"] == 4)]
    rows.append({**rows[0], "strategy": "ogm", "seed": 7, "test_acc": 0.93})
    summary = summary_of(tmp_path, rows)
    table = rows_for(summary)
    ogm = np.array([*ACC["ogm"][:4], 0.93])
    goal = np.array(ACC["goal"])
    test = stats.ttest_ind(ogm, goal, equal_var=False)
    low, high = test.confidence_interval(0.95)
    row = table.loc["ogm"]
    assert row["test"] == "Welch t-test" and row["note"] == "Welch test: seeds do not match"
    assert row["p_value"] == pytest.approx(test.pvalue, **TOL)
    assert row["df"] == pytest.approx(test.df, **TOL)
    assert (row["ci_low"], row["ci_high"]) == (
        pytest.approx(low, **TOL),
        pytest.approx(high, **TOL),
    )
    assert math.isnan(row["win_rate"])
    paired = [stats.ttest_rel(ACC[m], goal).pvalue for m in ("none", "al")]
    expected = multipletests([paired[0], test.pvalue, paired[1]], method="holm")[1]
    assert table.loc[["none", "ogm", "al"], "p_holm"].tolist() == pytest.approx(expected, **TOL)
    assert "Welch test: seeds do not match" in summary.to_terminal()


@pytest.mark.parametrize("units", [7, 3])
def test_across_datasets_wilcoxon_with_holm_or_too_few_units(tmp_path, units):
    generator = np.random.default_rng(units)
    rows = []
    for unit in range(units):
        for strategy, shift in (("none", -0.03), ("ogm", -0.005), ("goal", 0.0)):
            for seed in (0, 1):
                acc = 0.9 + shift + 0.01 * unit + generator.normal(0, 0.01)
                rows.append(
                    {
                        "dataset": f"d{unit}",
                        "backbone": "mlp",
                        "strategy": strategy,
                        "seed": seed,
                        "test_acc": acc,
                    }
                )
    summary = summary_of(tmp_path, rows, metrics=("acc",))
    across = rows_for(summary, scope="across datasets")
    means = pd.DataFrame(rows).groupby(["strategy", "dataset"])["test_acc"].mean().unstack()
    if units < 6:
        assert (
            across.loc[["none", "ogm"], "note"]
            == f"too few units ({units} < 6) for a Wilcoxon test"
        ).all()
        assert across["p_value"].isna().all()
        assert "too few units (3 < 6)" in summary.to_terminal()
        return
    p_values = []
    for method in ("none", "ogm"):
        test = stats.wilcoxon(means.loc[method], means.loc["goal"])
        row = across.loc[method]
        assert row["p_value"] == pytest.approx(test.pvalue, **TOL)
        assert row["statistic"] == pytest.approx(test.statistic, **TOL)
        wins = int((means.loc["goal"] > means.loc[method]).sum())
        losses = int((means.loc["goal"] < means.loc[method]).sum())
        assert (row["wins"], row["ties"], row["losses"]) == (wins, units - wins - losses, losses)
        assert row["n_pairs"] == units
        p_values.append(test.pvalue)
    expected = multipletests(p_values, method="holm")[1]
    assert across.loc[["none", "ogm"], "p_holm"].tolist() == pytest.approx(expected, **TOL)


# scipy enumerates 2**n sign flips one Python call each: few draws at n = 13.
@pytest.mark.parametrize(("n", "draws"), [(6, 20), (9, 10), (13, 2), (16, 10)])
def test_wilcoxon_with_tied_and_zero_differences_equals_scipy(n, draws):
    generator = np.random.default_rng(n)
    for _ in range(draws):
        y = generator.integers(0, 8, n) / 400  # accuracies on a 400-sample test set tie often
        x = y + generator.integers(-3, 4, n) / 400
        expected = stats.wilcoxon(x, y)
        assert wilcoxon(x, y) == (
            pytest.approx(expected.statistic, **TOL),
            pytest.approx(expected.pvalue, nan_ok=True, **TOL),
        )


def test_lower_is_better_metrics_rank_and_test_the_other_way(tmp_path):
    time_ms = {"none": [0.50, 0.52, 0.51], "ogm": [0.61, 0.60, 0.63], "goal": [0.71, 0.70, 0.72]}
    rows = [
        {"strategy": s, "seed": seed, "test_acc": 0.9, "time_per_sample_ms": t}
        for s, values in time_ms.items()
        for seed, t in zip((0, 1, 2), values)
    ]
    summary = summary_of(tmp_path, rows, metrics=("acc",))
    table = rows_for(summary, metric="time_per_sample_ms")
    assert not table["higher_is_better"].any()
    assert table.loc["none", "significance_sign"] == -1 and not table["significant"].any()
    assert table.loc["none", "win_rate"] == 0.0
    overhead = markdown_section(summary_text(summary, tmp_path), "Overhead")
    assert overhead["none"][0].startswith("**") and overhead["ogm"][0].startswith("<u>")


def summary_text(summary, tmp_path) -> str:
    out = tmp_path / "out"
    summary.write(out)
    return (out / "tables.md").read_text()


# ----------------------------------------------------------------------------- table marks


def test_best_bold_second_underlined_dagger_where_reference_significantly_better(tmp_path):
    summary = summary_of(tmp_path, tidy_rows())
    text = summary_text(summary, tmp_path)
    main = markdown_section(text, "Main comparison")
    assert list(main) == ["none", "ogm", "al", "goal"]  # reference last
    acc = {method: cells[0] for method, cells in main.items()}
    shown = {m: f"{100 * np.mean(v):.2f} ± {100 * np.std(v, ddof=1):.2f}" for m, v in ACC.items()}
    assert acc["al"] == f"**{shown['al']}**"
    assert acc["goal"] == f"<u>{shown['goal']}</u>"
    assert acc["none"].endswith("†") and "**" not in acc["none"] and "<u>" not in acc["none"]
    assert not acc["ogm"].endswith("†")
    latex = (tmp_path / "out" / "tables.tex").read_text()
    main_tex = latex.split("\\caption{Main comparison}")[1].split("\\end{table}")[0]
    tex_rows = {line.split(" & ")[0]: line for line in main_tex.splitlines() if " & " in line}
    tex = {m: text.replace("±", "\\pm") for m, text in shown.items()}
    assert "\\mathbf{" + tex["al"] + "}" in tex_rows["al"]
    assert "\\underline{$" + tex["goal"] + "$}" in tex_rows["goal"]
    assert tex_rows["none"].count("$^\\dagger$") == 2 and "$^\\dagger$" not in tex_rows["ogm"]
    assert "\\toprule" in main_tex and "\\midrule" in main_tex and "\\bottomrule" in main_tex
    written = pd.read_csv(tmp_path / "out" / "summary.csv")
    for column in (
        "n",
        "mean",
        "std",
        "diff_vs_reference",
        "ci_low",
        "ci_high",
        "p_value",
        "p_holm",
        "significant",
    ):
        assert column in written.columns


def test_ablation_table_has_unimodal_loss_al_and_go_check_marks(tmp_path):
    values = {**ACC, "go": [0.905, 0.91, 0.92, 0.925, 0.94]}
    rows = [
        {**row, "unimodal_loss_weight": 0.0 if row["strategy"] in ("none", "ogm") else 1.0}
        for row in tidy_rows(values)
    ]
    text = summary_text(summary_of(tmp_path, rows), tmp_path)
    ablation = markdown_section(text, "Ablation")
    assert {m: cells[:3] for m, cells in ablation.items()} == {
        "none": ["", "", ""],
        "al": ["✓", "✓", ""],
        "go": ["✓", "", "✓"],
        "goal": ["✓", "✓", "✓"],
    }


def test_temperatures_of_one_strategy_are_distinct_methods(tmp_path):
    rows = tidy_rows({"none": ACC["none"]})
    for temperature, accs in ((0.5, ACC["ogm"]), (1.0, ACC["goal"]), (2.0, ACC["none"])):
        rows += tidy_rows({"goal": accs}, temperature=temperature)
    results = load_results([write_csv(tmp_path / "trials.csv", rows)])
    ambiguous = summarise(results)
    assert set(rows_for(ambiguous).index) == {"none", "goal (T=0.5)", "goal (T=1)", "goal (T=2)"}
    assert rows_for(ambiguous)["p_value"].isna().all()
    assert any("reference is ambiguous" in note for note in ambiguous.notes)
    chosen = summarise(results, reference="goal (T=1)")
    table = rows_for(chosen)
    expected = stats.ttest_rel(ACC["ogm"], ACC["goal"]).pvalue
    assert table.loc["goal (T=0.5)", "p_value"] == pytest.approx(expected, **TOL)
    assert table.loc["goal (T=2)", "temperature"] == 2.0 and math.isnan(
        table.loc["none", "temperature"]
    )
    sensitivity = markdown_section(
        summary_text(chosen, tmp_path), "Temperature sensitivity: goal on mfeat/mlp"
    )
    assert list(sensitivity) == ["0.5", "1", "2"] and sensitivity["1"][0].startswith("**")


def test_a_setting_tuned_per_dataset_does_not_split_the_method(tmp_path):
    rows = tidy_rows({"goal": ACC["goal"], "none": ACC["none"]})
    rows = [{**r, "temperature": 0.5 if r["strategy"] == "goal" else None} for r in rows]
    rows += [
        {**r, "dataset": "other", "temperature": 2.0 if r["strategy"] == "goal" else None}
        for r in rows
    ]
    assert set(rows_for(summary_of(tmp_path, rows)).index) == {"goal", "none"}


def test_several_backbones_give_a_backbone_table(tmp_path):
    rows = tidy_rows({"none": ACC["none"], "goal": ACC["goal"]})
    rows += [{**r, "backbone": "resnet18", "test_acc": r["test_acc"] - 0.05} for r in rows]
    text = summary_text(summary_of(tmp_path, rows), tmp_path)
    backbones = text.split("## Backbones on mfeat\n")[1].split("\n\n")[0]
    assert "mlp: Acc (%)" in backbones and "resnet18: Acc (%)" in backbones


# ----------------------------------------------------------------------------- degenerate input


def test_one_seed_only_says_no_test_is_possible(tmp_path):
    summary = summary_of(tmp_path, tidy_rows(seeds=[0]))
    table = rows_for(summary)
    assert (
        table["p_value"].isna().all()
        and table["std"].isna().all()
        and not table["significant"].any()
    )
    assert (table.drop("goal")["note"] == "one seed only: no test possible").all()
    assert "one seed only: no test possible" in summary_text(summary, tmp_path)
    assert "one seed only: no test possible" in summary.to_terminal()


def test_a_method_missing_some_seeds_uses_welch(tmp_path):
    rows = [r for r in tidy_rows() if not (r["strategy"] == "none" and r["seed"] >= 3)]
    table = rows_for(summary_of(tmp_path, rows))
    assert table.loc["none", "n"] == 3 and table.loc["none", "test"] == "Welch t-test"
    expected = stats.ttest_ind(ACC["none"][:3], ACC["goal"], equal_var=False).pvalue
    assert table.loc["none", "p_value"] == pytest.approx(expected, **TOL)


@pytest.mark.parametrize(
    ("make_input", "message"),
    [
        (lambda tmp: tmp / "missing", "input not found"),
        (lambda tmp: tmp, "no trial folders"),
        (
            lambda tmp: write_csv(tmp / "t.csv", [{"seed": 0, "test_acc": 0.9}]),
            "lacks the column(s) strategy;",
        ),
        (lambda tmp: empty_file(tmp / "empty.csv"), "empty.csv is empty"),
    ],
    ids=["missing", "empty-folder", "csv-without-strategy", "empty-csv"],
)
def test_bad_input_raises_a_clear_analysis_error(tmp_path, make_input, message):
    with pytest.raises(AnalysisError, match=re.escape(message)):
        load_results([make_input(tmp_path)])


def empty_file(path: Path) -> Path:
    path.write_text("")
    return path


def test_a_finished_trial_without_the_metric_is_left_out_and_noted(tmp_path):
    rows = tidy_rows()
    rows[0]["test_acc"] = None  # none, seed 0
    summary = summary_of(tmp_path, rows)
    table = rows_for(summary)
    assert table.loc["none", "n"] == 4 and table.loc["none", "test"] == "Welch t-test"
    assert "1 finished trial(s) lack test_acc: left out of its statistics" in summary.notes


def test_requested_metric_missing_names_it(tmp_path):
    results = load_results([write_csv(tmp_path / "t.csv", tidy_rows())])
    with pytest.raises(AnalysisError, match="metric\\(s\\) not in the trials: val_loss"):
        summarise(results, metrics=("acc", "val_loss"))
    with pytest.raises(AnalysisError, match="reference 'gaol' matches no method"):
        summarise(results, reference="gaol")


def test_csv_status_column_and_missing_table_keys(tmp_path):
    rows = [{k: v for k, v in r.items() if k not in ("dataset", "backbone")} for r in tidy_rows()]
    rows = [{**r, "status": "TERMINATED"} for r in rows]
    rows[0]["status"], rows[1]["status"] = "ERROR", "RUNNING"
    results = load_results([write_csv(tmp_path / "t.csv", rows)])
    assert len(results.trials) == len(rows) - 2
    assert results.excluded["status"].tolist() == ["errored", "unfinished"]
    assert results.excluded["trial"].tolist() == ["t.csv:2", "t.csv:3"]
    assert set(results.trials["dataset"]) == {"unspecified"}
    assert any("no 'dataset' column" in note for note in results.notes)


# ----------------------------------------------------------------------------- Ray folders


@pytest.fixture
def experiment(tmp_path):
    root = tmp_path / "storage" / "sweep"
    experiment_files(root)
    for strategy, accs in (("goal", ACC["goal"]), ("none", ACC["none"])):
        for seed in (0, 1, 2):
            finished_trial(root, strategy, seed, accs[seed])
    # Retried after a crash: epoch 1 reported twice, the final row twice.
    rows = [epoch_row(0, 0.80), epoch_row(1, 0.10), epoch_row(1, 0.85), epoch_row(2, 0.87)]
    final = final_row(rows[-1])
    write_trial(root, trial_config("ogm", 0), [*rows, final, final])
    write_trial(root, trial_config("ogm", 1), [epoch_row(0, 0.8)], error=True)
    unfinished = write_trial(root, trial_config("ogm", 2), [epoch_row(0, 0.8), epoch_row(1, 0.8)])
    with (unfinished / "result.json").open("a") as cut_short:
        cut_short.write('{"epoch": 2, "lr"')
    return root


def test_ray_experiment_is_read_from_json_only(experiment):
    results = load_results([experiment])
    trials, excluded = results.trials, results.excluded
    assert sorted(trials["strategy"]) == ["goal"] * 3 + ["none"] * 3 + ["ogm"]
    assert not (experiment / "UNPICKLED").exists()
    assert excluded.set_index("seed")["status"].to_dict() == {1: "errored", 2: "unfinished"}
    errored = excluded[excluded["status"] == "errored"].iloc[0]
    assert Path(errored["error_file"]).read_text().startswith("Failure")
    assert excluded.loc[excluded["status"] == "unfinished", "error_file"].isna().all()
    assert list(excluded.columns[:4]) == ["trial", "experiment", "status", "error_file"]
    assert trials.loc[trials["strategy"] == "goal", "test_acc"].tolist() == ACC["goal"][:3]
    assert trials["dataset_options"].eq("{}").all() and trials["lr"].eq(0.05).all()
    assert not {"training_iteration", "config", "trial_id", "final"} & set(trials.columns)
    assert {"probe_acc_pix", "cca_mean", "best_val_acc"} <= set(trials.columns)
    retried = results.epochs[results.epochs["strategy"] == "ogm"]
    assert retried["epoch"].tolist() == [0, 1, 2] and retried["val_acc"].tolist() == [
        0.80,
        0.85,
        0.87,
    ]
    assert len(results.epochs) == 7 * 3 and results.epochs["unimodal_loss_weight"].eq(1.0).all()
    assert results.notes == [
        f"{experiment / excluded.iloc[-1]['trial'] / 'result.json'}: skipped 1 unreadable line(s)"
    ]


def test_several_inputs_are_concatenated_and_counted_once(experiment, tmp_path):
    second = tmp_path / "storage" / "second"
    for seed in (0, 1, 2):
        finished_trial(second, "al", seed, ACC["al"][seed])
    csv = write_csv(tmp_path / "more.csv", tidy_rows({"go": ACC["al"]}))
    results = load_results([experiment, second, experiment, tmp_path / "storage", csv])
    assert results.trials.groupby("experiment").size().to_dict() == {
        "sweep": 7,
        "second": 3,
        "more": 5,
    }
    assert len(results.excluded) == 2 and set(results.epochs["experiment"]) == {"sweep", "second"}
    table = rows_for(summarise(results))
    assert table.loc["al", "test"] == "paired t-test" and table.loc["go", "test"] == "Welch t-test"


def test_only_errored_trials_is_an_error(tmp_path):
    write_trial(tmp_path / "broken", trial_config("goal", 0), [], error=True)
    with pytest.raises(AnalysisError, match="no finished trials .*1 errored"):
        load_results([tmp_path / "broken"])


# ----------------------------------------------------------------------------- figures


def titles(figure) -> list[str]:
    return [ax.get_title() for ax in figure.axes]


def legend_labels(figure) -> list[str]:
    (legend,) = figure.legends  # one legend per figure, none per panel
    assert not any(ax.get_legend() for ax in figure.axes)
    return [text.get_text() for text in legend.get_texts()]


def test_figures_from_a_temperature_sweep(tmp_path, drawn):
    root = tmp_path / "sweep"
    for seed in (0, 1, 2):
        finished_trial(root, "none", seed, 0.85 + 0.01 * seed)
        for temperature in (0.5, 1.0, 2.0):
            finished_trial(root, "goal", seed, 0.9 + 0.01 * seed, temperature=temperature)
    finished_trial(root, "ogm", 0, 0.8)  # one seed: a line without a band
    results = load_results([root])
    paths = make_plots(results, tmp_path / "plots")
    assert [p.name for p in paths] == [f"{k}{suffix}" for k in KINDS for suffix in (".png", ".pdf")]
    for path in paths:
        assert path.read_bytes()[:4] in (b"\x89PNG", b"%PDF")
    for kind in KINDS:
        with Image.open(tmp_path / "plots" / f"{kind}.png") as image:
            image.verify()
        with Image.open(tmp_path / "plots" / f"{kind}.png") as image:
            image.load()
            inches = drawn[kind].get_size_inches()
            assert image.mode == "RGB" and np.allclose(image.size, inches * 150, atol=1)
            assert round(image.info["dpi"][0]) == 150

    methods = ["goal (T=0.5)", "goal (T=1)", "goal (T=2)", "none", "ogm"]
    temperature = drawn["temperature"]
    assert titles(temperature) == ["mfeat/mlp"] * 2
    assert [ax.get_ylabel() for ax in temperature.axes] == ["Acc (%)", "Macro-F1 (%)"]
    assert legend_labels(temperature) == ["goal"]
    (curves,) = drawn["curves"].axes
    assert curves.get_title() == "mfeat/mlp" and curves.get_xlabel() == "epoch"
    assert [line.get_label() for line in curves.get_lines()] == methods
    (bands,) = curves.collections
    assert len(bands.get_paths()) == 4  # ogm ran one seed: no interval
    assert legend_labels(drawn["curves"]) == methods
    assert titles(drawn["weights"]) == ["mfeat/mlp · pix", "mfeat/mlp · fou"]
    assert legend_labels(drawn["weights"]) == methods
    (cosine,) = drawn["cosine"].axes
    assert [t.get_text() for t in cosine.get_yticklabels()] == methods[::-1]
    assert legend_labels(drawn["cosine"]) == ["before", "after"]
    diagnostics = drawn["diagnostics"]
    assert titles(diagnostics) == ["mfeat/mlp"] * 2
    assert [ax.get_ylabel() for ax in diagnostics.axes] == [
        "linear-probe accuracy (%)",
        "mean CCA",
    ]
    assert [t.get_text() for t in diagnostics.axes[0].get_xticklabels()] == methods
    assert legend_labels(diagnostics) == ["pix", "fou"]

    epochs = results.epochs.assign(method=results.epochs["strategy"])
    before, after = cosine_histograms(epochs)["none"]
    runs = epochs[epochs["strategy"] == "none"]
    assert before.tolist() == np.sum(runs["cosine_hist_before"].tolist(), axis=0).tolist()
    assert after.sum() == sum(map(sum, runs["cosine_hist_after"]))


def test_every_unit_is_a_panel_group_of_one_figure_per_kind_and_page(tmp_path, drawn, monkeypatch):
    monkeypatch.setattr(plots, "ROWS_PER_PAGE", 2)
    root = tmp_path / "sweep"
    units = [(d, b) for d in ("mfeat", "cremad", "ucf101") for b in ("mlp", "resnet18")]
    for dataset, backbone in units:
        for seed in (0, 1):
            unit = {"dataset": dataset, "backbone": backbone}
            finished_trial(root, "none", seed, 0.8, **unit)
            for temperature in (0.5, 2.0):
                finished_trial(root, "goal", seed, 0.9, temperature=temperature, **unit)
    paths = make_plots(load_results([root]), tmp_path / "plots")
    assert len(paths) == 2 * len(drawn) and {p.stem for p in paths} == set(drawn)
    names = sorted(f"{d}/{b}" for d, b in units)
    # Panels per unit: temperature 2 metrics, curves 1, weights 2 modalities, cosine 1,
    # diagnostics probe accuracy and CCA.
    per_unit = {"temperature": 2, "curves": 1, "weights": 2, "cosine": 1, "diagnostics": 2}
    methods = ["goal (T=0.5)", "goal (T=2)", "none"]
    legends = {
        "temperature": ["goal"],
        "curves": methods,
        "weights": methods,
        "cosine": ["before", "after"],
        "diagnostics": ["pix", "fou"],
    }
    for kind, panels in per_unit.items():
        pages = sorted(stem for stem in drawn if stem.split("_p")[0] == kind)
        if len(pages) > 1:
            assert pages == [f"{kind}_p{i}" for i in range(1, len(pages) + 1)]
        else:
            assert pages == [kind]
        shown = [t.split(" · ")[0] for page in pages for t in titles(drawn[page])]
        assert shown == [name for name in names for _ in range(panels)], kind
        for page in pages:
            figure = drawn[page]
            assert figure.axes[0].get_gridspec().nrows <= 2
            first = figure.axes[0]
            assert all(first.get_shared_x_axes().joined(first, ax) for ax in figure.axes)
            assert legend_labels(figure) == legends[kind]
    # Units of several pages split evenly: 6 groups of 2 panels, 2 to a row, 2 rows a page.
    assert [len(drawn[f"temperature_p{i}"].axes) for i in (1, 2)] == [6, 6]
    curves = drawn["curves"]
    bottom = [ax for ax in curves.axes if ax.get_xlabel() == "epoch"]
    assert 0 < len(bottom) < len(curves.axes)
    for ax in curves.axes:  # tick labels under the lowest panel of each column only
        shown = any(tick.label1.get_visible() for tick in ax.xaxis.get_major_ticks())
        assert shown == (ax in bottom)
    weights = drawn["weights_p1"] if "weights_p1" in drawn else drawn["weights"]
    first = weights.axes[0]
    assert all(first.get_shared_y_axes().joined(first, ax) for ax in weights.axes)


def test_degenerate_inputs_give_no_figures_or_a_clear_message(tmp_path, capsys):
    csv = write_csv(tmp_path / "t.csv", tidy_rows())  # no epochs, temperatures, diagnostics
    assert make_plots(load_results([csv]), tmp_path / "plots") == []
    with pytest.raises(ValueError, match="unknown figure kind.*: bogus; known: temperature"):
        make_plots(load_results([csv]), tmp_path / "plots", kinds=["curves", "bogus"])
    cli = load_script("plots")
    assert cli.main([str(csv), "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.startswith("nothing to plot")
    assert cli.main([str(csv), "--out", str(tmp_path / "out"), "--kinds", "bogus"]) == 2
    assert capsys.readouterr().err == "error: unknown figure kind(s): bogus\n"
    # A CSV with temperatures and diagnostics: the trial-level figures only.
    rows = tidy_rows(temperature=0.5, probe_acc_pix=0.9, cca_mean=0.7)
    rows += tidy_rows({"goal": ACC["goal"]}, temperature=2.0, probe_acc_pix=0.9, cca_mean=0.7)
    paths = make_plots(load_results([write_csv(tmp_path / "s.csv", rows)]), tmp_path / "p2")
    assert [p.name for p in paths] == [
        "temperature.png",
        "temperature.pdf",
        "diagnostics.png",
        "diagnostics.pdf",
    ]


def test_mean_band_is_the_t_interval_of_the_mean():
    values = pd.Series([1.0, 2.0, 4.0, 7.0, 5.0])
    band = mean_band(values, pd.Series([0, 0, 0, 1, 1]))
    low, high = stats.ttest_1samp([1.0, 2.0, 4.0], 0).confidence_interval(0.95)
    assert (band.loc[0, "low"], band.loc[0, "high"]) == (pytest.approx(low), pytest.approx(high))


# ----------------------------------------------------------------------------- CLIs


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(
        f"analysis_cli_{name}", ROOT / "analysis" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tables_cli_writes_outputs_and_prints_the_tables(experiment, tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        load_script("tables").main(
            [str(experiment), "--out", str(out), "--metric", "acc,test_macro_f1"]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "mfeat/mlp · test_acc" in printed and "errored" in printed
    assert {p.name for p in out.iterdir()} == {"summary.csv", "tables.md", "tables.tex"}


@pytest.mark.parametrize("script", ["tables", "plots"])
def test_cli_input_errors_are_one_line_and_status_2(tmp_path, capsys, script):
    assert load_script(script).main([str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: input not found") and err.count("\n") == 1


def expected_figures(out: Path, kinds) -> list[str]:
    return [str(out / f"{kind}{suffix}") for kind in kinds for suffix in (".png", ".pdf")]


def test_plots_cli_in_a_real_process(experiment, tmp_path):
    out = tmp_path / "figures"
    run = subprocess.run(
        [sys.executable, str(ROOT / "analysis" / "plots.py"), str(experiment), "--out", str(out)],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    kinds = ["curves", "weights", "gradients", "cosine", "diagnostics"]  # no temperature sweep here
    assert run.stdout.splitlines() == expected_figures(out, kinds)
    assert sorted(p.name for p in out.iterdir()) == sorted(Path(f).name for f in run.stdout.split())


def test_plots_cli_draws_the_chosen_kinds(experiment, tmp_path, capsys):
    cli = load_script("plots")
    out = tmp_path / "figures"
    assert cli.main([str(experiment), "--out", str(out), "--kinds", "diagnostics,curves"]) == 0
    assert capsys.readouterr().out.splitlines() == expected_figures(out, ["curves", "diagnostics"])


def test_cli_exit_status_in_a_real_process(tmp_path):
    csv = write_csv(tmp_path / "t.csv", [{"strategy": "goal", "seed": 0}])
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "analysis" / "tables.py"),
            str(csv),
            "--out",
            str(tmp_path / "o"),
        ],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "error: metric(s) not in the trials: acc, macro_f1; available: none"
    ]
