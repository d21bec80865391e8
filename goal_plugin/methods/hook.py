"""The engine's hook for methods that change how a training step computes gradients.

A recipe whose method needs more than a gate on the fusion gradients carries a
``TrainingMethod`` (``Strategy(..., training_method=...)``). Two hook points:

- ``on_epoch_start(start)``: before every training epoch (the first included),
  whether or not the recipe acts in that epoch; ``start.features(k)`` yields the
  encoders' features and the labels of the epoch's first ``k`` training batches,
  in eval mode and without gradients (PMR's prototypes).
- ``backward(step)``: in every step in which the recipe acts, the engine computes
  the outputs and the losses as usual (the fused loss and one unimodal loss per
  modality, of the run's task) and then, instead of
  ``(L_mm + lambda * sum_m L_m).backward()``, calls ``backward(step)``, which
  must leave every trainable parameter's ``.grad`` set; clipping, the optimiser
  step, AMP scaling, divergence checks and the epoch's statistics stay the
  engine's.

Whatever the method keeps across steps goes in ``state_dict()``: the engine saves
it in every checkpoint and restores it on resume, so a resumed run continues
exactly. ``supported_tasks`` (None: every task) and ``needs_unimodal_loss`` are
checked before training.

Third-party methods subclass it and register a recipe with
``goal_plugin.register_strategy`` like the built-in ``mmpareto``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn


@dataclass
class StepLosses:
    """One training step's losses and what the method needs to differentiate them."""

    model: nn.Module  # a MultimodalNetwork: ``encoders[m]`` for each modality
    fused: Tensor
    unimodal: Mapping[str, Tensor]  # modality -> its head's loss (unweighted)
    unimodal_weight: float  # lambda_s of this epoch
    scale: Callable[[Tensor], Tensor]  # the AMP loss scaler's scale (identity without AMP)
    features: Mapping[str, Tensor] | None = None  # each encoder's output (the fusion's input)
    labels: Tensor | None = None

    @property
    def total(self) -> Tensor:
        return self.fused + self.unimodal_weight * sum(self.unimodal.values())


@dataclass
class EpochStart:
    """What ``on_epoch_start`` may read: the epoch (0-based), the task's class count, the
    number of training batches, and ``features(k)``: (features in modality order,
    labels) of the epoch's first ``k`` training batches, eval mode, no gradients."""

    epoch: int
    num_classes: int
    num_batches: int
    features: Callable[[int], Iterator[tuple[list[Tensor], Tensor]]]


class TrainingMethod:
    """Computes a step's gradients from its losses (see the module docstring); the
    base class is the plain step. ``needs_unimodal_loss``: the method reads the
    unimodal losses' own gradients, so the trainer refuses unimodal_loss_weight 0."""

    needs_unimodal_loss = False
    supported_tasks: tuple[str, ...] | None = None

    def on_epoch_start(self, start: EpochStart) -> None:
        """Before each training epoch; nothing by default."""

    def backward(self, step: StepLosses) -> None:
        step.scale(step.total).backward()

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, got {sorted(state)}")
