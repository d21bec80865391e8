"""The engine's hook for methods that change how a model is trained.

A recipe whose method needs more than a gate on the fusion gradients carries a
``TrainingMethod`` (``Strategy(..., training_method=...)``). Its hook points, in
the order the engine calls them:

- ``on_epoch_start(start)``: before every training epoch (the first included),
  whether or not the recipe acts in that epoch. ``start.features(k)`` yields the
  encoders' features and the labels of the epoch's first ``k`` training batches,
  in eval mode and without gradients (PMR's prototypes); ``start.probe(objective,
  epochs)`` trains a copy of the model with a fresh optimiser on
  ``objective(outputs, labels)`` alone and returns, per probe epoch, the mean
  training loss of that epoch and the mean validation loss after it; the model
  itself is untouched (Gradient-Blending's held-out estimate).
- ``backward(step)``: in every step in which the recipe acts, the engine computes
  the outputs and the losses as usual (the fused loss and one unimodal loss per
  modality, of the run's task) and then, instead of
  ``(L_mm + lambda * sum_m L_m).backward()``, calls ``backward(step)``, which
  must leave every trainable parameter's ``.grad`` set (None for a parameter the
  step does not move). ``step.forward(batch, train=...)`` runs extra forward
  passes as the engine runs its own (autocast included), e.g. on zero-padded
  inputs (AGM); ``step.loss(logits)`` is the task's loss against the step's
  labels; ``step.update()`` makes an optimiser step at once and zeroes the
  gradients, for methods that update several times per batch (MLA).
  Clipping, the final optimiser step, AMP scaling, divergence checks and the
  epoch's statistics stay the engine's.
- ``on_epoch_end(end)``: after each epoch's evaluation, before its checkpoint;
  ``end.features(split)`` yields the features and labels of a whole split in eval
  mode (D&R's diagnosis); changes to ``end.model`` are saved in the checkpoint.
- ``predict(outputs)``: the fused logits the model's predictions and scores come
  from, in training statistics and evaluation (MLA's entropy-weighted fusion);
  by default the fusion module's output.

Whatever the method keeps across steps goes in ``state_dict()``: the engine saves
it in every checkpoint and restores it on resume, so a resumed run continues
exactly. ``supported_tasks`` (None: every task), ``needs_unimodal_loss``,
``heads_as_probes`` and ``fusion`` are checked before training.

Third-party methods subclass it and register a recipe with
``goal_plugin.register_strategy`` like the built-in ``mmpareto``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

if TYPE_CHECKING:
    from goal_plugin.models.network import MultimodalOutput

Features = Iterator[tuple[list[Tensor], Tensor]]  # (features in modality order, labels) per batch
Objective = Callable[["MultimodalOutput", Tensor], Tensor]  # (outputs, labels) -> loss


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
    batch: Mapping[str, Tensor] | None = None  # the step's inputs on the device, "label" included
    outputs: MultimodalOutput | None = None  # the engine's forward pass of this step
    loss: Callable[[Tensor], Tensor] | None = None  # the task's loss of logits against ``labels``
    forward: Callable[..., MultimodalOutput] | None = None  # forward(batch, train=True): another pass
    update: Callable[[], None] | None = None  # an optimiser step now, then zeroed gradients
    index: int = 0  # the step's batch index in its epoch
    num_batches: int = 1

    @property
    def total(self) -> Tensor:
        return self.fused + self.unimodal_weight * sum(self.unimodal.values())


@dataclass
class EpochStart:
    """What ``on_epoch_start`` may read: the epoch (0-based), the task's class count, the
    number of training batches, ``features(k)``: (features in modality order, labels)
    of the epoch's first ``k`` training batches, eval mode, no gradients, and
    ``probe(objective, epochs)``: [(mean training loss, mean validation loss)] per
    epoch of a copy of the model trained on ``objective`` alone; ``loss`` is the
    task's loss of (logits, labels); ``model`` the model itself (read it, do not
    train it here)."""

    epoch: int
    num_classes: int
    num_batches: int
    features: Callable[[int], Features]
    probe: Callable[[Objective, int], list[tuple[float, float]]] | None = None
    loss: Callable[[Tensor, Tensor], Tensor] | None = None  # the task's loss of (logits, labels)
    model: nn.Module | None = None  # before epoch 0: the model as initialised


@dataclass
class EpochEnd:
    """What ``on_epoch_end`` may read and change: the epoch (0-based), the task's class
    count, the model, and ``features(split)``: (features in modality order, labels)
    of every batch of ``split`` ("train", "val" or "test"), eval mode, no gradients."""

    epoch: int
    num_classes: int
    model: nn.Module
    features: Callable[[str], Features]


class TrainingMethod:
    """How a recipe trains beyond a gate (see the module docstring); the base class
    is the plain step. ``needs_unimodal_loss``: the method reads the unimodal
    losses' own gradients, so the trainer refuses unimodal_loss_weight 0.
    ``heads_as_probes``: the method's own losses train the encoders and the unimodal
    heads may only learn as probes on detached features, so the trainer refuses a
    unimodal_loss_weight (or warm-up weight) above 0. ``fusion``: the fusion module
    the method needs (None: any); the trainer refuses another."""

    needs_unimodal_loss = False
    heads_as_probes = False
    fusion: str | None = None
    supported_tasks: tuple[str, ...] | None = None

    def on_epoch_start(self, start: EpochStart) -> None:
        """Before each training epoch; nothing by default."""

    def backward(self, step: StepLosses) -> None:
        step.scale(step.total).backward()

    def on_epoch_end(self, end: EpochEnd) -> None:
        """After each epoch's evaluation, before its checkpoint; nothing by default."""

    def predict(self, outputs: MultimodalOutput) -> Tensor:
        """The fused logits that predictions and scores come from."""
        return outputs.fused_logits

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, got {sorted(state)}")
