"""The analysis never turns wrong input into a valid-looking table: one trial per seed
(duplicates, searches), metric columns and scales of tidy CSVs, the unimodal-loss
control in the ablation, and one-line CLI errors."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

import goal_plugin as gp
from goal_plugin.analysis import AnalysisError, load_results, plots, summarise
from goal_plugin.analysis.plots import make_plots
from goal_plugin.analysis.stats import compare_over_seeds
from goal_plugin.tune.space import load_space
from tests._analysis_fixtures import (
    epoch_row,
    final_row,
    finished_trial,
    search_record,
    trial_config,
    write_csv,
    write_trial,
)

ROOT = Path(__file__).resolve().parents[1]
SEEDS = [0, 1, 2, 3, 4]
NONE = [0.850, 0.871, 0.859, 0.880, 0.899]
GOAL = [0.900, 0.920, 0.910, 0.930, 0.950]


def cli(name: str):
    spec = importlib.util.spec_from_file_location(f"cli_{name}", ROOT / "analysis" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def run_cli(name: str, capsys, *args) -> tuple[int, str]:
    """Exit status and stderr of a CLI run in this process (a traceback fails the test)."""
    status = cli(name)([str(a) for a in args])
    return status, capsys.readouterr().err


def sweep(root: Path, timestamp: int = 1795729181, shift: float = 0.0) -> Path:
    for seed, (none, goal) in enumerate(zip(NONE, GOAL)):
        finished_trial(root, "none", seed, none + shift, timestamp=timestamp)
        finished_trial(root, "goal", seed, goal + shift, timestamp=timestamp)
    return root


def acc_rows(summary) -> pd.DataFrame:
    table = summary.table
    return table[(table["metric"] == "test_acc") & (table["scope"] == "dataset")].set_index(
        "method"
    )


# ----------------------------------------------------------------------------- duplicates


def test_the_same_seed_from_two_experiments_is_an_error_naming_both(tmp_path):
    first, second = sweep(tmp_path / "default-1"), sweep(tmp_path / "abl")
    with pytest.raises(AnalysisError) as info:
        load_results([first, second])
    message = str(info.value)
    assert "seed 0 of goal on mfeat/mlp comes from 2 trials" in message
    assert "default-1/goal_mfeat_s0_" in message and "abl/goal_mfeat_s0_" in message
    assert "10 replicate(s) repeated" in message


def test_the_cli_refuses_pooled_duplicates_and_keeps_the_chosen_copy(tmp_path, capsys):
    old = sweep(tmp_path / "old", timestamp=1_000)
    new = sweep(tmp_path / "new", timestamp=2_000, shift=0.01)
    status, err = run_cli("tables", capsys, old, new, "--out", tmp_path / "t", "--metric", "acc")
    assert status == 2 and err.count("\n") == 1
    assert err.startswith("error: seed 0 of goal on mfeat/mlp comes from 2 trials")
    for rule, shift in (("newest", 0.01), ("oldest", 0.0)):
        results = load_results([old, new], duplicates=rule)
        table = acc_rows(summarise(results, metrics=["acc"]))
        assert table.loc["goal", "n"] == 5
        assert table.loc["goal", "mean"] == pytest.approx(sum(GOAL) / 5 + shift)
        expected = stats.ttest_rel([n + shift for n in NONE], [g + shift for g in GOAL]).pvalue
        assert table.loc["none", "p_value"] == pytest.approx(expected)
        assert any(f"kept the {rule} copy, left out 10" in note for note in results.notes)
        assert set(results.epochs["experiment"]) == {"new" if rule == "newest" else "old"}


def test_a_csv_given_twice_counts_once_and_a_csv_beside_its_sweep_is_a_duplicate(tmp_path):
    rows = [
        {"dataset": "mfeat", "backbone": "mlp", "strategy": s, "seed": seed, "test_acc": acc}
        for s, accs in (("none", NONE), ("goal", GOAL))
        for seed, acc in zip(SEEDS, accs)
    ]
    csv = write_csv(tmp_path / "trials.csv", rows)
    assert len(load_results([csv, csv]).trials) == 10
    experiment = tmp_path / "exp"
    finished_trial(experiment, "none", 0, 0.85)
    exported = load_results([experiment]).trials.drop(columns=["experiment", "trial"])
    export = write_csv(tmp_path / "export.csv", exported.to_dict("records"))
    with pytest.raises(AnalysisError, match=r"exp/none_mfeat_s0_\w+ and export.csv:2"):
        load_results([experiment, export])


# ----------------------------------------------------------------------------- tidy CSVs


@pytest.mark.parametrize("factor", [100, 1])
def test_a_csv_metric_column_named_in_metric_is_a_metric_in_either_scale(tmp_path, factor):
    rows = [
        {"strategy": s, "seed": seed, "acc": round(acc * factor, 4)}
        for s, accs in (("none", NONE), ("goal", GOAL))
        for seed, acc in zip(SEEDS, accs)
    ]
    csv = write_csv(tmp_path / "other_codebase.csv", rows)
    summary = summarise(load_results([csv], metrics=["acc"]), metrics=["acc"])
    table = summary.table[summary.table["scope"] == "dataset"].set_index("method")
    assert set(table.index) == {"none", "goal"} and (table["n"] == 5).all()
    assert table.loc["goal", "mean"] == pytest.approx(sum(GOAL) / 5)
    assert table.loc["none", "p_value"] == pytest.approx(stats.ttest_rel(NONE, GOAL).pvalue)
    out = tmp_path / "t"
    assert cli("tables")([str(csv), "--out", str(out), "--metric", "acc"]) == 0
    markdown = (out / "tables.md").read_text()
    assert "92.20 ± 1.92" in markdown and "8520" not in markdown and "9220" not in markdown


@pytest.mark.parametrize(
    ("values", "options", "message"),
    [
        (
            [0.85, 85.2],
            {},
            r"bad.csv, column test_acc mixes fractions .*line\(s\) 2\).* line\(s\) 3\)",
        ),
        ([85.0, 120.0], {}, r"bad.csv, column test_acc: value\(s\) above 100 on line\(s\) 3"),
        (
            [85.0, 90.0],
            {"scale": "fraction"},
            r"column test_acc: value\(s\) above 1 on line\(s\) 2, 3",
        ),
        ([0.9, -0.1], {}, r"column test_acc: negative value\(s\) on line\(s\) 3"),
        ([0.9, "abc"], {}, r"bad.csv, column test_acc, line 3: 'abc' is not a number"),
    ],
)
def test_bad_metric_cells_name_file_column_and_line(tmp_path, values, options, message):
    rows = [{"strategy": "goal", "seed": seed, "test_acc": v} for seed, v in enumerate(values)]
    with pytest.raises(AnalysisError, match=message):
        load_results([write_csv(tmp_path / "bad.csv", rows)], **options)


def test_a_csv_row_without_its_seed_names_the_line(tmp_path):
    rows = [{"strategy": "goal", "seed": 0, "test_acc": 0.9}, {"strategy": "goal", "test_acc": 0.8}]
    with pytest.raises(AnalysisError, match=r"t.csv, column seed: empty on line\(s\) 3"):
        load_results([write_csv(tmp_path / "t.csv", rows)])


def test_a_csv_marks_the_trials_of_a_search_with_search_columns(tmp_path):
    marks = {"search_params": "temperature", "search_metric": "val_acc", "search_mode": "max"}
    rows = [
        {
            "strategy": "goal",
            "seed": seed,
            "temperature": t,
            "val_acc": val,
            "test_acc": test,
            **marks,
        }
        for seed in SEEDS
        for t, val, test in ((0.2 + seed, 0.7, 0.80), (3.0 - seed / 10, 0.9, 0.85 + seed / 100))
    ]
    rows += [{"strategy": "none", "seed": seed, "test_acc": acc} for seed, acc in zip(SEEDS, NONE)]
    summary = summarise(load_results([write_csv(tmp_path / "t.csv", rows)]), metrics=["acc"])
    table = acc_rows(summary)
    assert set(table.index) == {"goal", "none"} and table.loc["goal", "mean"] == pytest.approx(0.87)
    assert any("chosen T = 2.8 ± 0.158 (over 5 seed(s))" in note for note in summary.notes)


def test_the_tables_cli_reports_a_non_number_in_one_line(tmp_path, capsys):
    rows = [
        {"strategy": "goal", "seed": 0, "test_acc": 0.9},
        {"strategy": "goal", "seed": 1, "test_acc": "abc"},
    ]
    csv = write_csv(tmp_path / "t.csv", rows)
    status, err = run_cli("tables", capsys, csv, "--out", tmp_path / "o", "--metric", "acc")
    assert status == 2
    assert err.splitlines() == [
        f"error: {tmp_path / 't.csv'}, column test_acc, line 3: 'abc' is not a number"
    ]


def test_an_accuracy_above_one_in_a_sweep_is_never_printed(tmp_path):
    experiment = sweep(tmp_path / "exp")
    finished_trial(experiment, "goal", 7, 0.9, final={"test_acc": 91.0})
    with pytest.raises(
        AnalysisError, match=r"test_acc = 91.0 in exp/goal_mfeat_s7_\w+ is not a fraction"
    ):
        load_results([experiment])


def test_a_column_that_differs_in_every_trial_is_refused_not_split_into_methods(tmp_path):
    rows = [
        {"strategy": s, "seed": seed, "test_acc": acc, "accuracy_pct": 100 * acc}
        for s, accs in (("none", NONE), ("goal", GOAL))
        for seed, acc in zip(SEEDS, accs)
    ]
    results = load_results([write_csv(tmp_path / "t.csv", rows)])
    with pytest.raises(
        AnalysisError,
        match="every trial of none on unspecified/unspecified is its own method: accuracy_pct",
    ):
        summarise(results, metrics=["acc"])


# ----------------------------------------------------------------------------- searches


def search_sweep(root: Path, seeds=(0, 1, 2)) -> dict[int, tuple[float, float]]:
    """goal: 4 sampled temperatures per seed; none: one grid trial per seed.
    Returns per seed the (temperature, test_acc) of the trial with the best val_acc."""
    search_record(root, {"temperature": {"distribution": "loguniform", "low": 0.1, "high": 10}})
    best = {}
    for seed in seeds:
        finished_trial(root, "none", seed, NONE[seed])
        samples = [(0.1 + seed, 0.80), (0.5 + seed, 0.95), (2.0 + seed, 0.90), (7.0 - seed, 0.70)]
        for k, (temperature, val) in enumerate(samples):
            test = 0.88 + 0.01 * k + 0.001 * seed
            finished_trial(
                root,
                "goal",
                seed,
                test,
                temperature=temperature,
                final={"val_acc": val, "test_acc": test},
            )
            if val == 0.95:
                best[seed] = (temperature, test)
    return best


def test_a_search_is_one_tuned_method_represented_by_its_best_validation_trial(tmp_path):
    best = search_sweep(tmp_path / "temperature_search")
    results = load_results([tmp_path / "temperature_search"])
    summary = summarise(results, reference="goal", metrics=["acc"])
    table = acc_rows(summary)
    assert set(table.index) == {"goal", "none"} and table.loc["goal", "n"] == 3
    chosen = [test for _, test in best.values()]
    assert table.loc["goal", "mean"] == pytest.approx(sum(chosen) / 3)
    assert table.loc["none", "p_value"] == pytest.approx(stats.ttest_rel(NONE[:3], chosen).pvalue)
    temperatures = pd.Series([t for t, _ in best.values()])
    note = next(n for n in summary.notes if n.startswith("goal on mfeat/mlp: temperature tuned"))
    assert "highest val_acc" in note
    assert f"T = {temperatures.mean():.3g} ± {temperatures.std():.3g} (over 3 seed(s))" in note
    assert not any("ambiguous" in n for n in summary.notes)
    assert len(results.searched) == 12 and results.searched["chosen"].sum() == 3
    assert set(results.epochs["trial"]) == set(results.trials["trial"])  # curves: chosen only


def test_the_same_search_in_two_experiments_is_a_duplicate(tmp_path):
    search_sweep(tmp_path / "a")
    search_sweep(tmp_path / "b")
    with pytest.raises(AnalysisError, match="comes from 2 trials"):
        load_results([tmp_path / "a", tmp_path / "b"])
    results = load_results([tmp_path / "a", tmp_path / "b"], duplicates="oldest")
    assert len(results.trials) == 6 and set(results.searched["experiment"]) == {"a"}
    assert any("chosen T = " in n and "(over 3 seed(s))" in n for n in results.notes)


def test_a_search_that_samples_a_value_twice_is_no_duplicate(tmp_path):
    root = tmp_path / "exp"
    search_record(root, {"temperature": {"distribution": "categorical", "choices": [0.5, 1.0]}})
    for seed in (0, 1):
        first = finished_trial(root, "goal", seed, 0.9, temperature=0.5, final={"val_acc": 0.9})
        again = first.with_name(first.name + "_again")
        shutil.copytree(first, again)
        lines = (again / "result.json").read_text().splitlines()
        last = {**json.loads(lines[-1]), "val_acc": 0.95, "test_acc": 0.8}
        (again / "result.json").write_text("\n".join([*lines[:-1], json.dumps(last)]) + "\n")
    trials = load_results([root]).trials
    assert sorted(trials["trial"].str.endswith("_again")) == [True, True]
    assert trials["test_acc"].tolist() == [0.8, 0.8]


def test_the_reader_looks_for_the_search_record_the_sweep_runner_writes():
    from goal_plugin.analysis import loading
    from goal_plugin.tune import runner

    assert loading.SPACE_RECORD == runner.SPACE_RECORD


def test_searched_temperatures_are_points_per_seed_never_a_mean_line(tmp_path, monkeypatch):
    search_sweep(tmp_path / "s")
    grid = tmp_path / "g"
    for seed in (0, 1):
        for temperature in (0.5, 1.0):
            finished_trial(grid, "al", seed, 0.9, temperature=temperature, dataset="other")
    figures = {}
    save = plots._save
    monkeypatch.setattr(
        plots, "_save", lambda f, stem: figures.setdefault(stem.name, f) and save(f, stem)
    )
    make_plots(load_results([tmp_path / "s", grid]), tmp_path / "p", ["temperature"])
    figure = figures["temperature"]
    title = figure._suptitle.get_text()
    assert "points: searched trials" in title
    searched_panel = next(ax for ax in figure.axes if ax.get_title() == "mfeat/mlp")
    assert not searched_panel.collections  # no confidence band
    lines = searched_panel.get_lines()
    assert lines and all(line.get_linestyle() == "None" for line in lines)
    assert sum(len(line.get_xdata()) for line in lines) == 12
    filled = [line for line in lines if line.get_markerfacecolor() != "none"]
    assert sum(len(line.get_xdata()) for line in filled) == 3
    assert len({line.get_marker() for line in lines}) == 3  # a marker per seed
    grid_panel = next(ax for ax in figure.axes if ax.get_title() == "other/mlp")
    assert grid_panel.collections and grid_panel.get_lines()[0].get_linestyle() != "None"
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert labels == [
        "al",
        "goal, searched",
        "seed 0",
        "seed 1",
        "seed 2",
        "filled: chosen for its seed",
    ]


def grid_and_search(root: Path) -> tuple[Path, Path]:
    """``temperature``: none and goal at T 0.5 and 1 (a grid study); ``tsearch``: a search
    of goal's temperature, 3 samples per seed; seeds 0-2 in both."""
    grid, search = root / "temperature", root / "tsearch"
    for seed in (0, 1, 2):
        finished_trial(grid, "none", seed, NONE[seed])
        for temperature in (0.5, 1.0):
            finished_trial(
                grid, "goal", seed, GOAL[seed] + temperature / 100, temperature=temperature
            )
    search_record(search, {"temperature": {"distribution": "loguniform", "low": 0.1, "high": 10}})
    for seed in (0, 1, 2):
        for k, temperature in enumerate((0.3, 2.0, 5.0)):
            test = 0.88 + 0.01 * k + 0.001 * seed
            final = {"val_acc": 0.8 + 0.05 * k, "test_acc": test}
            finished_trial(search, "goal", seed, test, temperature=temperature, final=final)
    return grid, search


def test_a_grid_study_and_a_search_of_one_strategy_are_never_pooled(tmp_path, monkeypatch):
    grid, search = grid_and_search(tmp_path)
    results = load_results([grid, search])
    summary = summarise(results, reference="none", metrics=["acc"])
    table = acc_rows(summary)
    assert summary.method_order == ["goal (T=0.5)", "goal (T=1)", "goal (T=tuned)", "none"]
    assert table["n"].tolist() == [3, 3, 3, 3] and set(table["seeds"]) == {"0,1,2"}
    assert set(table.drop("none")["test"]) == {"paired t-test"}
    tuned = table.loc["goal (T=tuned)"]
    assert tuned["mean"] == pytest.approx(0.88 + 0.02 + 0.001)  # the best val_acc per seed
    assert tuned["temperature"] == "tuned" and table.loc["goal (T=0.5)", "temperature"] == 0.5
    # The grid study is still a line in temperature.png, beside the searched points.
    figures = {}
    save = plots._save
    monkeypatch.setattr(
        plots, "_save", lambda f, stem: figures.setdefault(stem.name, f) and save(f, stem)
    )
    make_plots(results, tmp_path / "p", ["temperature"])
    panel = figures["temperature"].axes[0]
    assert panel.collections  # the grid's confidence band
    lines = [line.get_xdata().tolist() for line in panel.get_lines()]
    assert [0.5, 1.0] in lines and sum(len(x) for x in lines) == 2 + 9


def test_a_csv_with_a_grid_study_and_a_search_of_one_strategy_keeps_them_apart(tmp_path):
    marks = {"search_params": "temperature", "search_metric": "val_acc", "search_mode": "max"}
    rows = [
        {"strategy": "goal", "seed": seed, "temperature": t, "val_acc": 0.9, "test_acc": acc}
        for seed, acc in zip(SEEDS, GOAL)
        for t in (0.5, 1.0)
    ]
    rows += [
        {
            "strategy": "goal",
            "seed": seed,
            "temperature": t,
            "val_acc": val,
            "test_acc": 0.8,
            **marks,
        }
        for seed in SEEDS
        for t, val in ((0.3 + seed, 0.7), (4.0 - seed / 10, 0.9))
    ]
    summary = summarise(load_results([write_csv(tmp_path / "t.csv", rows)]), metrics=["acc"])
    table = acc_rows(summary)
    assert sorted(table.index) == ["goal (T=0.5)", "goal (T=1)", "goal (T=tuned)"]
    assert table["n"].tolist() == [5, 5, 5]


def test_a_seed_repeated_within_a_method_is_an_error_not_a_welch_test():
    reference = pd.Series([0.8, 0.81, 0.82], index=[0, 1, 2], name="none")
    method = pd.Series([0.9, 0.91, 0.92, 0.93], index=[0, 0, 1, 2], name="goal")
    with pytest.raises(AnalysisError, match="seed 0 occurs more than once in 'goal'"):
        compare_over_seeds(reference, method, higher_is_better=True, confidence=0.95)
    # Seed sets that differ, each seed once, are still compared by Welch's test.
    other = pd.Series([0.9, 0.91, 0.92], index=[3, 4, 5])
    result = compare_over_seeds(reference, other, higher_is_better=True, confidence=0.95)
    assert result.test == "Welch t-test" and result.note == "Welch test: seeds do not match"


def test_each_dataset_shows_only_its_weakest_modality_probe(tmp_path):
    weak_audio, weak_visual = {"audio": 0.40, "visual": 0.80}, {"audio": 0.85, "visual": 0.30}
    rows = [
        {
            "dataset": dataset,
            "backbone": "resnet18",
            "strategy": strategy,
            "seed": seed,
            "test_acc": 0.6 + 0.01 * seed + 0.05 * k,
            **{f"probe_acc_{m}": probe + 0.01 * seed + 0.02 * k for m, probe in probes.items()},
        }
        for dataset, probes in (("crema_d", weak_audio), ("ave", weak_visual))
        for k, strategy in enumerate(("none", "goal"))
        for seed in (0, 1, 2)
    ]
    summary = summarise(load_results([write_csv(tmp_path / "t.csv", rows)]), metrics=["acc"])
    probes = summary.table[summary.table["metric"].str.startswith("probe_acc_")]
    shown = probes.groupby("metric")["dataset"].agg(lambda d: sorted(set(d)))
    assert shown.to_dict() == {
        "probe_acc_audio": ["all", "crema_d"],
        "probe_acc_visual": ["all", "ave"],
    }
    across = probes[probes["scope"] == "across datasets"].set_index(["metric", "method"])
    assert across.loc[("probe_acc_audio", "goal"), "n"] == 1  # never pooled with ave's strong one
    assert across.loc[("probe_acc_audio", "goal"), "mean"] == pytest.approx(0.43)
    assert any("crema_d/resnet18: probe_acc_audio" in note for note in summary.notes)
    main = markdown_table(summary.write(tmp_path / "o")[1].read_text(), "Main comparison")
    assert main[0] == [
        "Method",
        "ave: Acc (%)",
        "ave: visual probe (%)",
        "crema_d: Acc (%)",
        "crema_d: audio probe (%)",
    ]


# ----------------------------------------------------------------------------- unimodal loss


def ablation_sweep(root: Path) -> Path:
    weights = {"none": 0.0, "none_uniloss": 1.0, "al": 1.0, "go": 1.0, "goal": 1.0}
    for k, (strategy, weight) in enumerate(weights.items()):
        for seed in SEEDS:
            rows = [
                {**epoch_row(e, 0.9 + 0.01 * seed), "unimodal_loss_weight": weight}
                for e in range(2)
            ]
            probe = 0.76 if weight == 0 else 0.82 + 0.001 * k
            last = final_row(rows[-1], probe_acc_fou=probe + 0.001 * seed + 0.002 * (seed * k % 3))
            write_trial(root, trial_config(strategy, seed, epochs=2), [*rows, last])
    return root


def markdown_table(text: str, title: str) -> list[list[str]]:
    section = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    return [
        [c.strip() for c in line.strip("|").split(" | ")]
        for line in section.splitlines()
        if line.startswith("| ")
    ]


def test_the_ablation_marks_the_unimodal_loss_and_the_main_table_shows_the_weak_probe(tmp_path):
    results = load_results([ablation_sweep(tmp_path / "abl")])
    summary = summarise(results, metrics=["acc"])
    text = (summary.write(tmp_path / "t")[1]).read_text()
    ablation = markdown_table(text, "Ablation")
    assert ablation[0] == [
        "Method",
        "Uni. loss",
        "AL",
        "GO",
        "mfeat: Acc (%)",
        "mfeat: fou probe (%)",
    ]
    assert [row[:4] for row in ablation[2:]] == [
        ["none", "", "", ""],
        ["none_uniloss", "✓", "", ""],
        ["al", "✓", "✓", ""],
        ["go", "✓", "", "✓"],
        ["goal", "✓", "✓", "✓"],
    ]
    main = markdown_table(text, "Main comparison")
    assert main[0] == ["Method", "mfeat: Acc (%)", "mfeat: fou probe (%)"]
    assert {row[0]: row[2] for row in main[2:]}["none"] == "76.20 ± 0.16†"
    table = summary.table
    probe = table[(table["metric"] == "probe_acc_fou") & (table["scope"] == "dataset")]
    probe = probe.set_index("method")
    goal = [0.824 + 0.001 * s + 0.002 * (s * 4 % 3) for s in SEEDS]
    expected = stats.ttest_rel(goal, [0.76 + 0.001 * s for s in SEEDS])
    assert probe.loc["none", "p_value"] == pytest.approx(expected.pvalue)


def test_a_csv_without_the_weight_marks_the_unimodal_loss_unknown(tmp_path):
    rows = [
        {"strategy": s, "seed": seed, "test_acc": 0.9 + 0.01 * seed + 0.001 * k}
        for k, s in enumerate(("none", "al", "go", "goal"))
        for seed in SEEDS
    ]
    summary = summarise(load_results([write_csv(tmp_path / "t.csv", rows)]), metrics=["acc"])
    text = summary.write(tmp_path / "o")[1].read_text()
    assert [row[1] for row in markdown_table(text, "Ablation")[2:]] == ["?"] * 4


def test_the_unimodal_loss_control_is_a_recipe_in_the_default_and_ablation_spaces():
    control = gp.create_strategy("none_uniloss")
    goal = gp.create_strategy("goal")
    assert control.defaults == goal.defaults and control.defaults.unimodal_loss_weight == 1.0
    assert control.magnitude is None and control.direction is None
    for space in ("default", "ablation"):
        assert "none_uniloss" in load_space(space).grid["strategy"]


# ----------------------------------------------------------------------------- CLI errors


@pytest.mark.parametrize("script", ["tables", "plots"])
def test_an_output_folder_that_is_a_file_is_a_one_line_error(tmp_path, capsys, script):
    experiment = sweep(tmp_path / "exp")
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    status, err = run_cli(script, capsys, experiment, "--out", taken)
    assert status == 2
    assert err.splitlines() == [f"error: output folder {taken} is an existing file; name a folder"]
    assert taken.read_text() == "keep me"


@pytest.mark.parametrize(
    "script, files",
    [
        ("tables", "summary.csv, tables.md, tables.tex"),
        ("plots", "diagnostics.png, diagnostics.pdf"),
    ],
)
def test_an_earlier_runs_files_in_the_output_folder_are_named_when_replaced(
    tmp_path, capsys, script, files
):
    experiment = sweep(tmp_path / "exp")
    out = tmp_path / "out"
    args = [experiment, "--out", out, *(["--kinds", "diagnostics"] if script == "plots" else [])]
    assert run_cli(script, capsys, *args) == (0, "")
    assert run_cli(script, capsys, *args) == (0, f"replaced {files} in {out}\n")


def test_metric_naming_nothing_is_refused(tmp_path, capsys):
    experiment = sweep(tmp_path / "exp")
    assert cli("tables")([str(experiment), "--out", str(tmp_path / "t"), "--metric", ","]) == 2
    assert capsys.readouterr().err == "error: --metric ',' names no metric, e.g. acc,macro_f1\n"
    assert not (tmp_path / "t").exists()
    with pytest.raises(AnalysisError, match="no metric named"):
        summarise(load_results([experiment]), metrics=[])


def test_the_reference_is_matched_up_to_case_with_a_suggestion_otherwise(tmp_path, capsys):
    results = load_results([sweep(tmp_path / "exp")])
    assert summarise(results, reference="GOAL").reference == "goal"
    with pytest.raises(
        AnalysisError, match=r"reference 'gaol' matches no method; did you mean 'goal'\?"
    ):
        summarise(results, reference="gaol")
    assert (
        cli("tables")([str(tmp_path / "exp"), "--out", str(tmp_path / "t"), "--reference", "NONE"])
        == 0
    )
    assert "reference: none;" in capsys.readouterr().out


def test_errors_from_another_codebase_are_lower_is_better(tmp_path):
    mae = {"none": [0.50, 0.52, 0.51], "goal": [0.41, 0.40, 0.42]}
    rows = [
        {"strategy": s, "seed": seed, "test_mae": value}
        for s, values in mae.items()
        for seed, value in zip((0, 1, 2), values)
    ]
    summary = summarise(load_results([write_csv(tmp_path / "t.csv", rows)]), metrics=["mae"])
    table = summary.table[summary.table["scope"] == "dataset"].set_index("method")
    assert not table["higher_is_better"].any()
    assert table.loc["none", "significant"]  # the reference's lower error is the better one
    text = summary.write(tmp_path / "o")[1].read_text()
    main = {row[0]: row[1] for row in markdown_table(text, "Main comparison")[2:]}
    assert main["goal"].startswith("**") and main["none"].startswith("<u>")


def test_the_plots_cli_reads_named_csv_metrics_as_metrics(tmp_path, capsys, monkeypatch):
    rows = [
        {"strategy": s, "seed": seed, "acc": 100 * acc, "probe_acc_fou": 0.8}
        for s, accs in (("none", NONE), ("goal", GOAL))
        for seed, acc in zip(SEEDS, accs)
    ]
    figures = {}
    save = plots._save
    monkeypatch.setattr(
        plots, "_save", lambda f, stem: figures.setdefault(stem.name, f) and save(f, stem)
    )
    csv = write_csv(tmp_path / "t.csv", rows)
    status, err = run_cli("plots", capsys, csv, "--out", tmp_path / "p", "--metric", "acc")
    assert status == 0, err
    ticks = [t.get_text() for t in figures["diagnostics"].axes[0].get_xticklabels()]
    assert ticks == ["none", "goal"]
