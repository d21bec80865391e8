"""Strategy registry: name -> factory of a :class:`~goal_plugin.strategies.base.Strategy`.

A factory takes keyword-only hyperparameters with defaults from its source paper.
Built-in recipes register themselves on import; third-party packages add theirs
through the entry-point group ``goal_plugin.strategies``::

    [project.entry-points."goal_plugin.strategies"]
    my_method = "my_package.strategies:my_method"
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from goal_plugin._registry import Registry
from goal_plugin.strategies.base import Strategy

ENTRY_POINT_GROUP = "goal_plugin.strategies"
STRATEGIES = Registry(
    "strategy",
    ENTRY_POINT_GROUP,
    option_word="hyperparameter",
    built_ins="goal_plugin.strategies.recipes",
)

F = TypeVar("F", bound=Callable[..., Strategy])


def register_strategy(name: str, *, override: bool = False) -> Callable[[F], F]:
    """Decorator registering a strategy factory; a taken name raises unless ``override``."""
    return STRATEGIES.register(name, override=override)


def list_strategies() -> list[str]:
    """Sorted names of every registered strategy (built-in and plugins)."""
    return STRATEGIES.names()


def strategy_hyperparameters(name: str) -> dict[str, Any]:
    """The hyperparameters a strategy accepts, with their defaults."""
    return STRATEGIES.options(name)


def create_strategy(name: str, **hparams: Any) -> Strategy:
    """Build the strategy registered as ``name``.

    Unknown names and unknown or invalid hyperparameters raise ``ValueError``
    naming the culprit (and the closest valid spelling).
    """
    strategy = STRATEGIES.create(name, **hparams)
    if not isinstance(strategy, Strategy):
        raise TypeError(
            f"factory of strategy {name!r} returned {type(strategy).__name__}, not a Strategy"
        )
    strategy.name = name
    strategy.hparams = {**STRATEGIES.options(name), **hparams}
    return strategy
