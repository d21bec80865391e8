"""The paper's figures from a sweep of real training runs: fused features in two
dimensions (Figures 3 and 6), the CCA per epoch (Figure 2b) and each magnitude method
beside itself with GO (Figure 2c).

The sweep: ``none_uniloss`` and ``go`` (GO against its control), two seeds each, two
epochs of ``engine.fit`` on the embedded mfeat data. Each trial folder holds what a
Ray sweep stores: ``params.json``, ``result.json`` (``tests._analysis_fixtures.write_trial``)
and the engine's checkpoint in ``checkpoint_<n>/`` (older folders emptied, as the
sweep's storage leaves them).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits

from goal_plugin.analysis import AnalysisError, load_results
from goal_plugin.analysis.feature_maps import draw_feature_maps, feature_maps
from goal_plugin.analysis.plots import cca_bands, go_pair_summary, make_plots
from goal_plugin.data import build_dataset, collate_batch
from goal_plugin.engine import CheckpointError, ConfigError, fit
from goal_plugin.engine.checkpoint import load_checkpoint, save_checkpoint
from goal_plugin.engine.features import split_features
from goal_plugin.engine.metrics import canonical_correlations
from goal_plugin.models import build_network
from tests._analysis_fixtures import write_trial
from tests._fit_runs import SEQUENCE_BACKBONE
from tests._sequence_fixtures import write_mmsa

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 2
BASE = {
    "dataset": "mfeat",
    # A small test split: quick t-SNE; a large validation split costs only forward passes.
    "dataset_options": {"fractions": [0.45, 0.5, 0.05]},
    "backbone": "mlp",
    "backbone_options": {"hidden_dim": 16, "out_dim": 8},
    "epochs": EPOCHS,
    "batch_size": 200,
    "lr": 0.05,
    "diagnostics": False,
}
STRATEGIES, SEEDS = ("none_uniloss", "go"), (0, 1)


def ray_trial(experiment: Path, work: Path, config: dict) -> Path:
    """Train ``config`` and store it as the sweep's trainable does: the reports in
    result.json, the last checkpoint in ``checkpoint_<epochs>/``, older ones emptied."""
    history = []
    run = work / f"{config['strategy']}_{config['seed']}"
    results = fit(
        config, output_dir=run, on_epoch_end=lambda metrics, _: history.append(dict(metrics))
    )
    final = {**results["final"], "final": True}
    folder = write_trial(experiment, results["config"], [*history, final])
    for index in range(EPOCHS):
        (folder / f"checkpoint_{index:06d}").mkdir()
    last = folder / f"checkpoint_{EPOCHS:06d}"
    last.mkdir()
    shutil.copy(run / "checkpoint" / "checkpoint.pt", last / "checkpoint.pt")
    return folder


@pytest.fixture(autouse=True)
def one_openmp_thread():
    """t-SNE's OpenMP threads spin while they wait: on a busy shared machine, many
    threads take some 30 times longer than one."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("paper")
    experiment = root / "storage" / "paper"
    for strategy in STRATEGIES:
        for seed in SEEDS:
            ray_trial(experiment, root / "runs", {**BASE, "strategy": strategy, "seed": seed})
    return experiment


def trial_folders(experiment: Path) -> dict[tuple[str, int], Path]:
    folders = {}
    for folder in experiment.iterdir():
        config = json.loads((folder / "params.json").read_text())
        folders[(config["strategy"], config["seed"])] = folder
    return folders


def reports(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "result.json").read_text().splitlines()]


def features_by_hand(folder: Path) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The test split through the checkpoint's model, built here from params.json."""
    config = json.loads((folder / "params.json").read_text())
    test = build_dataset("mfeat", None, "test", **config["dataset_options"])
    model = build_network(
        "mlp", test.sample_shapes, test.num_classes, backbone_options=config["backbone_options"]
    )
    state = torch.load(folder / f"checkpoint_{EPOCHS:06d}" / "checkpoint.pt", weights_only=True)
    model.load_state_dict(state["model"])
    model.eval()
    batch = collate_batch([test[i] for i in range(len(test))])
    with torch.no_grad():
        out = model(batch)
    return out.features, batch["label"]


# ----------------------------------------------------------------------------- fused features


def test_split_features_are_the_checkpointed_models_features_in_modality_order(sweep):
    folder = trial_folders(sweep)[("go", 0)]
    read = split_features(folder)
    by_hand, labels = features_by_hand(folder)
    assert list(read.features) == ["pix", "fou"]
    for modality, values in by_hand.items():
        assert torch.allclose(read.features[modality], values, atol=1e-6)
    assert torch.equal(read.labels, labels)
    assert torch.allclose(
        read.fused(), torch.cat([by_hand["pix"], by_hand["fou"]], dim=1), atol=1e-6
    )
    # The engine's last-epoch CCA was computed from these very features.
    last = reports(folder)[EPOCHS - 1]
    correlations = canonical_correlations(read.features["pix"], read.features["fou"])
    assert float(correlations[:10].mean()) == pytest.approx(last["test_cca_mean"], abs=1e-6)
    # The checkpoint folder itself, or the file, name the same run.
    checkpoint = folder / f"checkpoint_{EPOCHS:06d}"
    assert torch.equal(split_features(checkpoint / "checkpoint.pt").fused(), read.fused())


def test_feature_map_embeds_the_concatenated_features_of_the_chosen_trials(sweep, tmp_path):
    results = load_results([sweep])
    paths, maps = draw_feature_maps(results, tmp_path / "plots", ["go", "none_uniloss"], seed=1)
    assert [p.name for p in paths] == ["features.png", "features.pdf"]
    assert [(m.method, m.seed) for m in maps] == [("go", 1), ("none_uniloss", 1)]
    folders = trial_folders(sweep)
    for found in maps:
        assert found.trial_folder == folders[(found.method, 1)]
        by_hand, labels = features_by_hand(found.trial_folder)
        expected = torch.cat([by_hand["pix"], by_hand["fou"]], dim=1).numpy()
        assert np.allclose(found.features, expected, atol=1e-6) and np.array_equal(
            found.labels, labels.numpy()
        )
        assert found.points.shape == (len(expected), 2)
    independent = TSNE(2, perplexity=30.0, init="pca", random_state=0).fit_transform(
        maps[0].features
    )
    assert np.allclose(maps[0].points, independent)
    # Default: every method, the lowest seed of each.
    lowest = feature_maps(results, ["none_uniloss"], embedding="tsne")
    assert [(m.method, m.seed, m.trial_folder) for m in lowest] == [
        ("none_uniloss", 0, folders[("none_uniloss", 0)])
    ]


def test_feature_map_errors_are_one_line_and_name_the_trial(sweep, tmp_path, monkeypatch):
    results = load_results([sweep])
    with pytest.raises(
        AnalysisError, match=r"no method 'goal' in the trials; their methods: go, none_uniloss"
    ):
        feature_maps(results, ["goal"])
    with pytest.raises(AnalysisError, match=r"mfeat/mlp: go ran no seed 7; its seeds: 0, 1"):
        feature_maps(results, ["go"], seed=7)
    monkeypatch.setitem(sys.modules, "umap", None)  # umap-learn not installed
    with pytest.raises(AnalysisError, match=r"embedding 'umap' needs the package umap-learn"):
        feature_maps(results, ["go"], embedding="umap")
    # A trial whose checkpoints are gone, and one whose newest checkpoint is not its last epoch.
    copy = tmp_path / "copy" / "paper"
    shutil.copytree(sweep, copy)
    folders = trial_folders(copy)
    shutil.rmtree(folders[("go", 0)] / f"checkpoint_{EPOCHS:06d}")
    partial = folders[("none_uniloss", 0)] / f"checkpoint_{EPOCHS:06d}"
    state = load_checkpoint(partial)
    save_checkpoint(
        partial, {**{k: v for k, v in state.items() if k not in ("format", "version")}, "epoch": 0}
    )
    copied = load_results([copy])
    for method, message in (
        ("go", rf"features of paper/{folders[('go', 0)].name} \(go, seed 0\): no checkpoint in "),
        ("none_uniloss", r"holds epoch 1 of 2: the run did not finish"),
    ):
        with pytest.raises(AnalysisError, match=message) as error:
            feature_maps(copied, [method])
        assert "\n" not in str(error.value)


def test_moved_data_are_read_from_the_given_data_root(tmp_path):
    write_mmsa(tmp_path / "data" / "mosi", aligned=False)
    config = {
        "dataset": "mosi", "data_root": str(tmp_path / "data" / "mosi"), "batch_size": 8, "epochs": 1,
        "strategy": "none", "diagnostics": False, **SEQUENCE_BACKBONE,
    }  # fmt: skip
    fit(config, output_dir=tmp_path / "run")
    before = split_features(tmp_path / "run", "val")
    (tmp_path / "data" / "mosi").rename(tmp_path / "moved")
    with pytest.raises(ConfigError, match="data_root"):
        split_features(tmp_path / "run", "val")
    after = split_features(tmp_path / "run", "val", data_root=tmp_path / "moved")
    assert all(torch.equal(before.features[m], after.features[m]) for m in before.features)
    (tmp_path / "run" / "config.json").unlink()
    with pytest.raises(
        CheckpointError, match=r"no config.json \(a training run's folder\) or params.json"
    ):
        split_features(tmp_path / "run" / "checkpoint", "val")


# ----------------------------------------------------------------------------- CCA per epoch


def test_cca_figure_draws_the_mean_over_seeds_per_epoch_with_its_interval(sweep, tmp_path, drawn):
    results = load_results([sweep])
    frame = cca_bands(results)
    rows = [
        {"strategy": json.loads((f / "params.json").read_text())["strategy"], **row}
        for f in sweep.iterdir()
        for row in reports(f)
        if not row.get("final")
    ]
    by_hand = pd.DataFrame(rows)
    for (strategy, epoch), values in by_hand.groupby(["strategy", "epoch"]):
        (line,) = frame[(frame["method"] == strategy) & (frame["epoch"] == epoch)].itertuples()
        cca = values["test_cca_mean"].to_numpy()
        assert line.mean == pytest.approx(cca.mean(), rel=1e-12) and line.count == len(SEEDS)
        low, high = stats.t.interval(0.95, len(cca) - 1, loc=cca.mean(), scale=stats.sem(cca))
        assert (line.low, line.high) == (pytest.approx(low), pytest.approx(high))
    assert set(frame["column"]) == {"test_cca_mean"}  # two modalities: the one pair is the mean
    assert make_plots(results, tmp_path / "plots", ["cca"])[0].name == "cca.png"
    (ax,) = drawn["cca"].axes
    assert ax.get_title() == "mfeat/mlp · mean over pairs"
    for line in ax.get_lines():
        expected = frame[frame["method"] == line.get_label()].sort_values("epoch")["mean"]
        assert np.allclose(line.get_ydata(), expected.to_numpy())
    assert sorted(line.get_label() for line in ax.get_lines()) == sorted(STRATEGIES)


# ----------------------------------------------------------------------------- GO pairs


def test_go_pairs_bars_are_the_means_and_the_paired_difference_as_in_the_tables(
    sweep, tmp_path, drawn
):
    results = load_results([sweep])
    summary = go_pair_summary(results)
    assert len(summary) == 1
    pair = summary.iloc[0]
    finals = {
        (strategy, seed): reports(folder)[-1]
        for (strategy, seed), folder in trial_folders(sweep).items()
    }
    without = np.array([100 * finals[("none_uniloss", s)]["test_acc"] for s in SEEDS])
    with_go = np.array([100 * finals[("go", s)]["test_acc"] for s in SEEDS])
    assert (pair["without"], pair["with"], pair["metric"]) == ("none_uniloss", "go", "test_acc")
    assert pair["mean_without"] == pytest.approx(without.mean()) and pair[
        "mean_with"
    ] == pytest.approx(with_go.mean())
    assert pair["n_without"] == pair["n_with"] == len(SEEDS)
    differences = with_go - without
    assert pair["diff"] == pytest.approx(differences.mean())
    if np.std(differences) > 0:
        test = stats.ttest_rel(with_go, without)
        low, high = test.confidence_interval(0.95)
        assert (pair["diff_low"], pair["diff_high"], pair["p_value"]) == (
            pytest.approx(low),
            pytest.approx(high),
            pytest.approx(test.pvalue),
        )
    assert pair["test"] == "paired t-test"
    make_plots(results, tmp_path / "plots", ["go_pairs"])
    figure = drawn["go_pairs"]
    (ax,) = figure.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["none_uniloss · go"]
    assert [t.get_text() for t in ax.texts] == [f"{pair['diff']:+.2f}"]
    (legend,) = figure.legends
    assert [t.get_text() for t in legend.get_texts()] == ["without GO: none_uniloss", "with GO: go"]
    # Only the pairs that ran: a named pair that did not is a one-line error.
    with pytest.raises(
        AnalysisError,
        match=r"^pair ogm:ogm_go: no finished trials of ogm, ogm_go; the strategies found: go, none_uniloss$",
    ):
        go_pair_summary(results, [("ogm", "ogm_go")])


# ----------------------------------------------------------------------------- the command line


def load_cli():
    spec = importlib.util.spec_from_file_location("paper_plots_cli", ROOT / "analysis" / "plots.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_draws_the_paper_figures_and_refuses_bad_options_in_one_line(sweep, tmp_path, capsys):
    cli = load_cli()
    out = tmp_path / "figures"
    argv = [
        str(sweep),
        "--out",
        str(out),
        "--kinds",
        "cca,go_pairs,features",
        "--methods",
        "go",
        "--seed",
        "1",
    ]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.splitlines() == [
        str(out / f"{kind}{suffix}")
        for kind in ("cca", "go_pairs", "features")
        for suffix in (".png", ".pdf")
    ]
    for argv, message in (
        (["--embedding", "umap"], "error: --embedding choose(s) the features figure: add features to --kinds\n"),
        (["--pairs", "al:goal"], "error: --pairs chooses the go_pairs figure: add go_pairs to --kinds\n"),
        (["--kinds", "go_pairs", "--pairs", "ogm:ogm_go"], "error: pair ogm:ogm_go: no finished trials of ogm, ogm_go; the strategies found: go, none_uniloss\n"),
        (["--kinds", "features", "--methods", "goal"], "error: no method 'goal' in the trials; their methods: go, none_uniloss\n"),
        (["--kinds", "go_pairs", "--pairs", "ogm"], "error: --pairs: 'ogm' is not WITHOUT:WITH (e.g. ogm:ogm_go)\n"),
    ):  # fmt: skip
        assert cli.main([str(sweep), "--out", str(tmp_path / "other"), *argv]) == 2
        assert capsys.readouterr().err == message
