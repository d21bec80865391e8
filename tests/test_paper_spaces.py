"""The shipped spaces of the paper's studies hold the paper's settings: the audio-visual
tables, and Tables 3 and 4 (three modalities, image + text, regression), whose every cell
resolves and passes the engine's strategy / task check on a fixture of its dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
import goal_plugin as gp
from goal_plugin.data import DATASETS
from goal_plugin.engine.config import ConfigError, resolve_config
from goal_plugin.engine.trainer import prepare
from goal_plugin.registry import STRATEGIES
from goal_plugin.tune import load_space
from goal_plugin.tune.space import parse_space

PAPER_SETTINGS = {"optimizer": "sgd", "lr": 4e-4, "momentum": 0.9, "weight_decay": 1e-4}
# Where the paper is silent: OGM-GE's main.py defaults.
OGM_GE_SETTINGS = {"epochs": 100, "batch_size": 64, "scheduler": "step", "lr_step_size": 70, "lr_gamma": 0.1}
EXPECTED = PAPER_SETTINGS | OGM_GE_SETTINGS


def built_in_strategies() -> list[str]:
    """The strategies goal_plugin registers itself, whatever plugins the user has installed."""
    return [name for name in gp.list_strategies() if STRATEGIES.get(name).__module__.startswith("goal_plugin.")]


def test_paper_av_space_is_every_strategy_on_the_three_datasets():
    space = load_space("paper_av")
    assert space.grid["dataset"] == ["crema_d", "kinetics_sounds", "ave"]
    assert sorted(space.grid["strategy"]) == built_in_strategies()
    assert space.grid["seed"] == [0, 1, 2, 3, 4]
    assert space.grid["modality"] == ["audio", "visual"]  # the unimodal baselines
    assert space.total_trials == 3 * (len(built_in_strategies()) - 1 + 2) * 5
    for cell in space.cells:
        assert cell.config["backbone"] == "resnet18"
        assert {k: cell.config[k] for k in EXPECTED} == EXPECTED
        assert trained_fusion(cell.config) == ("shared" if cell.config["strategy"] == "mla" else "concat")


def trained_fusion(config: dict) -> str:
    """The fusion module a cell trains: the config's, else its recipe's (concatenation, the
    GOAL paper's, for every recipe but MLA's shared head)."""
    resolved = resolve_config(config)
    return resolved.harness(resolved.build_strategy()).fusion


def test_backbones_space_is_the_three_backbones_with_none_and_goal():
    space = load_space("backbones")
    assert space.grid["backbone"] == ["resnet18", "convnext_base", "vit_b_32"]
    assert space.grid["strategy"] == ["none", "goal"]
    assert space.total_trials == 3 * 2 * 5
    for cell in space.cells:
        assert {k: cell.config[k] for k in EXPECTED} == EXPECTED


# ----------------------------------------------------------------------------- Tables 3 and 4
# Per shipped space, its datasets and the strategies each one trains (every strategy can
# classify; regression with Gaussian heads: none, none_uniloss, go, and al / goal reading
# the variances). The datasets that need options or encoders of their own get them in the
# space's ``datasets`` block.
EVERY_STRATEGY = "every built-in strategy"
REGRESSION_STRATEGIES = ["none", "none_uniloss", "al", "go", "goal", "arl", "arl_go", "mmpareto", "grad_blending", "unimodal"]
SPACES = {
    "trimodal": {dataset: EVERY_STRATEGY for dataset in ("mosi", "meld", "iemocap", "hateful_memes")},
    "regression": {"mosi": REGRESSION_STRATEGIES, "mmimdb": REGRESSION_STRATEGIES},
}
MODALITIES = {dataset: ["audio", "visual", "text"] for dataset in ("mosi", "meld", "iemocap")} | {
    dataset: ["image", "text"] for dataset in ("hateful_memes", "mmimdb")
}
PAPER_OPTIMISER = {"optimizer": "sgd", "lr": 4e-4, "momentum": 0.9, "weight_decay": 1e-4}


def space(name: str):
    return load_space(name)


def strategies_of(expected) -> list[str]:
    return built_in_strategies() if expected == EVERY_STRATEGY else expected


def test_the_datasets_block_gives_a_datasets_cells_their_own_keys():
    spec = parse_space(
        {
            "base": {"epochs": 1, "backbone": "mlp"},
            "grid": {"dataset": ["mfeat", "synthetic"], "strategy": ["none", "goal"], "seed": [0]},
            "datasets": {"synthetic": {"strategy": ["go"], "backbone_options": {"out_dim": 8}}},
        }
    )
    cells = sorted((c.config["dataset"], c.config["strategy"], c.config["backbone_options"].get("out_dim")) for c in spec.cells)
    assert cells == [("mfeat", "goal", None), ("mfeat", "none", None), ("synthetic", "go", 8)]
    with pytest.raises(ValueError, match=r"datasets.crema_d: is not a dataset of this space"):
        parse_space({"grid": {"dataset": ["mfeat"]}, "datasets": {"crema_d": {"epochs": 2}}})
    with pytest.raises(ValueError, match=r"datasets.mfeat.epoch"):
        parse_space({"grid": {"dataset": ["mfeat"]}, "datasets": {"mfeat": {"epoch": 2}}})


@pytest.mark.parametrize("name", SPACES)
def test_a_table_3_or_4_space_is_each_dataset_x_the_strategies_its_task_trains_x_5_seeds(name):
    spec = space(name)
    cells = {(c.config["dataset"], c.config["strategy"], c.config.get("modality"), c.config["seed"]) for c in spec.cells}
    expected = {
        (dataset, strategy, modality, seed)
        for dataset, strategies in SPACES[name].items()
        for strategy in strategies_of(strategies)
        for modality in (MODALITIES[dataset] if strategy == "unimodal" else [None])  # a baseline per modality
        for seed in range(5)
    }
    assert cells == expected and spec.total_trials == len(expected) == len(spec.cells)
    for cell in spec.cells:
        assert resolve_config(cell.config).as_dict() == cell.config  # resolves, nothing dropped
        assert {k: cell.config[k] for k in PAPER_OPTIMISER} == PAPER_OPTIMISER
        assert trained_fusion(cell.config) == ("shared" if cell.config["strategy"] == "mla" else "concat")
        if cell.config["dataset_options"].get("task", "") == "regression":
            assert cell.config["regression_head"] == "gaussian"
            if cell.config["strategy"] in ("al", "goal", "arl", "arl_go"):
                assert cell.config["uncertainty"] == "variance"


def tiny_bert(folder: Path) -> Path:
    """A randomly initialised 1-layer BERT saved beside the fixture's tokenizer."""
    import transformers

    from tests._image_text_fixtures import WORDS

    config = transformers.BertConfig(
        vocab_size=len(WORDS) + 5, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16
    )
    transformers.BertModel(config, add_pooling_layer=False).save_pretrained(str(folder))
    return folder


def on_fixture(config: dict, base: Path) -> dict:
    """The cell with its paths (data_root, tokenizer, BERT checkpoint) pointed at tiny
    fixtures of its dataset in their release formats; nothing else changes."""
    from tests._image_text_fixtures import image_text_dataset_case, write_mmimdb_hdf5, write_mmimdb_raw
    from tests._sequence_fixtures import sequence_dataset_case

    dataset, options = config["dataset"], dict(config["dataset_options"])
    if dataset == "mmimdb":  # the HDF5 features and, beside them, the JSON with the ratings
        root = base / "mmimdb"
        write_mmimdb_raw(root)
        write_mmimdb_hdf5(root)
        return {**config, "data_root": str(root)}
    if dataset == "hateful_memes":  # bert_base reads the tokenizer's folder: the checkpoint goes there
        root, fixture = image_text_dataset_case(dataset, base)
        options.update(fixture)
        tiny_bert(Path(fixture["tokenizer"]))
        return {**config, "data_root": root, "dataset_options": options}
    root, fixture = sequence_dataset_case(dataset, base)  # val_fraction: the tiny train split
    return {**config, "data_root": root, "dataset_options": {**options, **fixture}}


@pytest.mark.parametrize(
    ("name", "dataset"), [(name, dataset) for name, datasets in SPACES.items() for dataset in datasets]
)
def test_every_cell_passes_the_engines_strategy_and_task_check_on_a_fixture(name, dataset, tmp_path):
    cells = {
        (c.config["strategy"], c.config.get("modality")): c.config
        for c in space(name).cells
        if c.config["dataset"] == dataset and c.config["seed"] == 0
    }
    base = on_fixture(next(iter(cells.values())), tmp_path)  # one fixture per dataset
    for (strategy, _), config in cells.items():
        fixture = {k: base[k] for k in ("data_root", "dataset_options")}
        run = prepare(resolve_config({**config, **fixture}))  # raises ConfigError if the task refuses it
        assert run.config.strategy == strategy
        assert len(run.modalities) == (1 if strategy == "unimodal" else len(MODALITIES[dataset]))
        expected_task = config["dataset_options"].get("task", DATASETS.options(dataset)["task"])
        assert run.task.name == expected_task


def test_the_regression_strategies_are_every_one_the_engine_trains_on_gaussian_heads(tmp_path):
    """Derived from the engine: each built-in strategy (reading the variances where it
    can) prepared for MOSI score regression; those it accepts are the spaces' grid."""
    config = on_fixture(space("regression").cells[0].config, tmp_path)
    accepted = []
    for strategy in built_in_strategies():
        settings = {"uncertainty": "variance"} if "uncertainty" in STRATEGIES.options(strategy) else {}
        try:
            prepare(resolve_config({**config, **settings, "strategy": strategy}))
        except ConfigError:
            continue
        accepted.append(strategy)
    assert sorted(accepted) == sorted(REGRESSION_STRATEGIES)


def test_a_search_must_optimise_a_score_its_cells_task_reports():
    search = {"temperature": {"distribution": "loguniform", "low": 0.1, "high": 10.0}, "num_samples": 2}
    base = {"dataset": "mosi", "strategy": "goal", "uncertainty": "variance"}
    with pytest.raises(ValueError, match=r"search.metric: 'val_acc' is not a validation score of mosi's regression task"):
        parse_space({"base": base, "grid": {"seed": [0]}, "search": search})
    spec = parse_space({"base": base, "grid": {"seed": [0]}, "search": {**search, "metric": "val_mae", "mode": "min"}})
    assert spec.search.metric == "val_mae" and len(spec.cells) == 1
    assert parse_space({"grid": {"seed": [0]}, "search": search}).search.metric == "val_acc"  # mfeat classifies
