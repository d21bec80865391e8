"""goal_plugin: gradient-modifier strategies for imbalanced multimodal learning.

    import goal_plugin as gp
    s = gp.create_strategy("goal", temperature=1.0)
    f_a, f_v = s.gate(f_a, f_v, logits=(z_a, z_v), labels=y)   # before fusion

The names below are imported on first use, so that ``import goal_plugin.analysis``
(tables and plots from finished sweeps) does not pay for importing torch.
"""

from goal_plugin._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "HarnessDefaults": "goal_plugin.strategies.base",
    "Strategy": "goal_plugin.strategies.base",
    "attach": "goal_plugin.integrations.attach",
    "attached": "goal_plugin.integrations.attach",
    "detach": "goal_plugin.integrations.attach",
    "create_strategy": "goal_plugin.registry",
    "list_strategies": "goal_plugin.registry",
    "register_strategy": "goal_plugin.registry",
    "strategy_hyperparameters": "goal_plugin.registry",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
