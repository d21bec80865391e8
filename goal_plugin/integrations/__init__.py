"""Adapters for training code that is not ours.

- ``attach(fusion_module, strategy, logits_fn)``: the gate through a forward
  pre-hook, for any PyTorch model with a fusion module (one backward pass);
  ``attached(module)`` finds its handle, ``detach(module)`` removes it.
- ``feature_space_backward`` / ``parameter_space_backward``: replace
  ``loss.backward()`` where the gate cannot be inserted (``post_backward``).
- ``goal_plugin.integrations.balancemm``: ``GOALTrainer`` for BalanceMM; imported
  on its own so that nothing here needs BalanceMM.

Recipes: docs/README.md.
"""

from goal_plugin.integrations.attach import AttachedStrategy, attach, attached, detach
from goal_plugin.integrations.post_backward import feature_space_backward, parameter_space_backward

__all__ = [
    "AttachedStrategy",
    "attach",
    "attached",
    "detach",
    "feature_space_backward",
    "parameter_space_backward",
]
