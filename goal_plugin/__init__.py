"""goal_plugin: gradient-modifier strategies for imbalanced multimodal learning.

    import goal_plugin as gp
    s = gp.create_strategy("goal", temperature=1.0)
    f_a, f_v = s.gate(f_a, f_v, logits=(z_a, z_v), labels=y)   # before fusion
"""

from goal_plugin.registry import (
    create_strategy,
    list_strategies,
    register_strategy,
    strategy_hyperparameters,
)
from goal_plugin.strategies import HarnessDefaults, Strategy
from goal_plugin.strategies import recipes as _recipes  # noqa: F401  (registers built-ins)

__version__ = "0.1.0"

__all__ = [
    "HarnessDefaults",
    "Strategy",
    "__version__",
    "create_strategy",
    "list_strategies",
    "register_strategy",
    "strategy_hyperparameters",
]
