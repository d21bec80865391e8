"""A training method of your own through the engine's TrainingMethod hook.

The recipe ``annealed_uniloss`` trains with ``L_mm + w_t * sum_m L_m`` where the
unimodal-loss weight decays per step, ``w_t = initial * decay ** t``. The step
count is the method's state: it is saved in every checkpoint and restored on
resume, so a killed and resumed run continues with the right weight.

    python docs/examples/custom_training_method.py
"""

from __future__ import annotations

from collections.abc import Mapping

import goal_plugin as gp
from goal_plugin.engine import fit
from goal_plugin.methods.hook import StepLosses, TrainingMethod
from goal_plugin.strategies.base import HarnessDefaults, Strategy


class AnnealedUnimodalLoss(TrainingMethod):
    """``L_mm + initial * decay**t * sum_m L_m`` at step t (counted over the whole run)."""

    needs_unimodal_loss = True  # the unimodal heads must be attached to the encoders

    def __init__(self, initial: float, decay: float) -> None:
        self.initial, self.decay, self.steps = initial, decay, 0

    def weight(self) -> float:
        return self.initial * self.decay**self.steps

    def backward(self, step: StepLosses) -> None:
        loss = step.fused + self.weight() * sum(step.unimodal.values())
        step.scale(loss).backward()
        self.steps += 1

    def state_dict(self) -> dict[str, int]:
        return {"steps": self.steps}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        self.steps = int(state.get("steps", 0))


@gp.register_strategy("annealed_uniloss")
def annealed_uniloss(*, initial_weight: float = 1.0, decay: float = 0.9) -> Strategy:
    """Unimodal losses whose weight decays by ``decay`` per step from ``initial_weight``."""
    if initial_weight < 0:
        raise ValueError(f"initial_weight must be >= 0, got {initial_weight}")
    if not 0 < decay <= 1:
        raise ValueError(f"decay must be in (0, 1], got {decay}")
    return Strategy(
        defaults=HarnessDefaults(unimodal_loss_weight=1.0),
        training_method=AnnealedUnimodalLoss(initial_weight, decay),
    )


if __name__ == "__main__":
    config = {"strategy": "annealed_uniloss", "decay": 0.5, "epochs": 2, "batch_size": 256, "diagnostics": False}
    results = fit(config)
    for metrics in results["history"]:
        print(f"epoch {metrics['epoch'] + 1}: train loss {metrics['train_loss']:.4f}, val acc {metrics['val_acc']:.3f}")
