"""The shipped spaces of the paper's audio-visual studies hold the paper's settings."""

from __future__ import annotations

import goal_plugin as gp
from goal_plugin.registry import STRATEGIES
from goal_plugin.tune import load_space

PAPER_SETTINGS = {"optimizer": "sgd", "lr": 4e-4, "momentum": 0.9, "weight_decay": 1e-4, "fusion": "concat"}
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
    assert space.total_trials == 3 * len(built_in_strategies()) * 5
    for cell in space.cells:
        assert cell.config["backbone"] == "resnet18"
        assert {k: cell.config[k] for k in EXPECTED} == EXPECTED


def test_backbones_space_is_the_three_backbones_with_none_and_goal():
    space = load_space("backbones")
    assert space.grid["backbone"] == ["resnet18", "convnext_base", "vit_b_32"]
    assert space.grid["strategy"] == ["none", "goal"]
    assert space.total_trials == 3 * 2 * 5
    for cell in space.cells:
        assert {k: cell.config[k] for k in EXPECTED} == EXPECTED
