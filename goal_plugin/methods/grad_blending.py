"""Gradient-Blending: loss weights from each head's overfitting-to-generalisation ratio.

Paper: Wang, Tran, Feiszli, "What Makes Training Multi-modal Classification
Networks Hard?", CVPR 2020 (Sec. 3.3-3.4, Eq. 5-7, Algorithm 1). The authors'
release (facebookresearch/VMZ, ``c2/lib/models/loss/loss_creator.py``, commit
4cc542d58c1c560571e1e962426e858e00de28d2) only *applies* given weights
(``audio_weight``, ``visual_weight``, ``av_weight``); it does not contain the
estimation. The estimation therefore follows BalanceBenchmark
(GeWu-Lab/BalanceBenchmark, ``balancemm/trainer/GBlending_trainer.py``,
``super_epoch_origin``, commit 4c1482fca5aaa8d4278af8e26020daa039e3ccf3).

Heads: the M modalities' heads, then the fused head (index M). For each head h,
a probe copy of the current model is trained for ``super_epoch`` epochs on that
head's loss alone (BalanceBenchmark: the fused output with every other modality's
input zeroed; for the fused head, all inputs). Let ``T_h^s`` be its training
loss of the first probe epoch (probe epoch 0; BalanceBenchmark accumulates it
while training that epoch) and ``V_h^s`` its held-out loss after that epoch,
and ``T_h^e, V_h^e`` the same for the last probe epoch (``super_epoch - 1``). Then

    G_h = V_h^e - V_h^s                              (change of the held-out loss)
    O_h = (V_h^e - T_h^e) - (V_h^s - T_h^s)          (change of the generalisation gap)
    w_h = |G_h| / O_h^2,   w <- w / sum_h w_h        (Eq. 7: w_h proportional to G_h / O_h^2)

and the main model then trains ``super_epoch`` epochs on ``sum_h w_h L_h``. The
weights are re-estimated every ``super_epoch`` epochs, starting at epoch 0 (the
paper's online Gradient-Blending; offline is ``super_epoch`` = the number of
epochs). The paper writes G as the held-out loss *decrease*; the absolute value
(BalanceBenchmark's) makes the sign irrelevant, so a head whose held-out loss
rises counts as much as one whose held-out loss falls by the same amount.

Hyperparameters: ``super_epoch`` >= 2, default 10 (BalanceBenchmark's
``trainer_config.yaml``; at least 2 because the start and end are different
probe epochs). ``eps`` > 0, default 1e-12: the floor of ``O_h^2``.

Deliberate deviations from BalanceBenchmark:

* ``O_h = 0`` divides by zero there (a Python ``ZeroDivisionError``); here ``O_h^2``
  is floored at ``eps``, so such a head takes (almost) all the weight, the limit
  of the formula. If every ``G_h`` is 0 the weights are uniform instead of 0/0.
* BalanceBenchmark passes *sums* of batch-mean losses over the training epoch
  (running, during training) and over the held-out loader, so ``O_h`` mixes
  sums over different numbers of batches. The rule here takes whatever losses it
  is given and is meant to get per-sample *means* (the paper's L^T and L^V), so
  that the gap is a true generalisation gap.

Three or more modalities (the paper's "*" version): one head per modality plus
the fused head, each probed the same way; the rule above is already per head.

Training through the engine (``GradientBlendingStep``, the ``grad_blending``
recipe): the heads are each modality's own unimodal head ``heads[m]`` on its
encoder's features and the fused head (the fusion module), as in the paper's
architecture and in VMZ, whose ``audio_weight``, ``visual_weight`` and
``av_weight`` weigh the losses of three separate outputs. Before every epoch in
which the rule estimates, each head's probe is a copy of the current model
trained by the engine's ``EpochStart.probe`` for ``super_epoch`` epochs on that
head's loss alone (the task's loss, so any task), with a fresh optimiser of the
run's settings, reading the training batches in the order of the epochs it
stands for; the held-out losses are the dataset's validation split (as
BalanceBenchmark's ``val_loader``), per-sample means after each probe epoch. The
main model then trains on ``sum_m w_m L_m + w_fused L_fused``. A ``super_epoch``
at least the run's number of epochs estimates once, before epoch 0: the offline
Gradient-Blending (BalanceBenchmark's ``method: offline`` sets ``super_epoch`` to
the number of epochs). Each estimate costs ``(M + 1) * super_epoch`` probe
epochs, each about as long as a training epoch plus a validation pass.

Deviations of the wiring from BalanceBenchmark:

* A modality's probe and loss are its own unimodal head's, not the fused
  classifier with the other modalities' inputs zeroed (the probe) or its weight
  slice (the main loss): the paper's and VMZ's separate heads.
* The schedule of estimates counts from epoch 0 whatever the harness's
  modulation window; outside the window the engine trains its plain step.
  BalanceBenchmark's Gradient-Blending loop never reads its window (0-80), so
  the recipe's window is every epoch.
* The harness's ``unimodal_loss_weight`` (1, above 0 so that the unimodal losses
  reach the encoders) does not enter the blended loss; the epoch's ``train_loss``
  statistic stays the engine's ``L_fused + lambda * sum_m L_m``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from goal_plugin import _validation as check
from goal_plugin.methods.hook import EpochStart, Objective, StepLosses, TrainingMethod


def _losses(name: str, values: Sequence[float] | Tensor) -> Tensor:
    if isinstance(values, Tensor):
        values = values.detach().cpu().reshape(-1).tolist()
    values = [check.real(f"{name}[{index}]", value) for index, value in enumerate(values)]
    return torch.tensor(values, dtype=torch.float64)


def blending_weights(
    train_start: Sequence[float] | Tensor,
    heldout_start: Sequence[float] | Tensor,
    train_end: Sequence[float] | Tensor,
    heldout_end: Sequence[float] | Tensor,
    *,
    eps: float = 1e-12,
) -> Tensor:
    """Normalised Gradient-Blending weights, one per head (float64, sums to 1).

    Each argument holds one loss per head (modalities first, the fused head last):
    training and held-out losses at the start and at the end of the probe.
    """
    eps = check.positive("eps", eps)
    t0, v0 = _losses("train_start", train_start), _losses("heldout_start", heldout_start)
    t1, v1 = _losses("train_end", train_end), _losses("heldout_end", heldout_end)
    if not len(t0) == len(v0) == len(t1) == len(v1):
        raise ValueError(
            "train_start, heldout_start, train_end and heldout_end need one loss per head, got "
            f"{len(t0)}, {len(v0)}, {len(t1)} and {len(v1)}"
        )
    if len(t0) < 2:
        raise ValueError(f"Gradient-Blending weighs at least 2 heads, got {len(t0)}")
    generalisation = v1 - v0
    overfitting = (v1 - t1) - (v0 - t0)
    weights = generalisation.abs() / overfitting.square().clamp_min(eps)
    total = weights.sum()
    if total == 0:
        return torch.full_like(weights, 1.0 / len(weights))
    return weights / total


class GradientBlending:
    """Online Gradient-Blending state: the probe losses of the estimation under way
    and the weights of the last one.

    Per estimation (at every epoch where ``estimates_at(epoch)``), for each head
    h in ``range(num_heads)``: ``record(h, probe_epoch, train_loss, heldout_loss)``
    for ``probe_epoch`` in ``probe_epochs``; then ``finish()`` computes and keeps
    the weights. ``loss(head_losses)`` is the blended training loss.
    """

    def __init__(self, num_modalities: int, *, super_epoch: int = 10, eps: float = 1e-12) -> None:
        self.num_modalities = check.integer("num_modalities", num_modalities, minimum=1)
        self.super_epoch = check.integer("super_epoch", super_epoch, minimum=2)
        self.eps = check.positive("eps", eps)
        self._weights: Tensor | None = None
        self._records = self._empty_records()

    @property
    def num_heads(self) -> int:
        """The modalities' heads and the fused head."""
        return self.num_modalities + 1

    @property
    def probe_epochs(self) -> tuple[int, int]:
        """The probe epochs whose losses are recorded: the first and the last."""
        return 0, self.super_epoch - 1

    def estimates_at(self, epoch: int) -> bool:
        """Whether the weights are (re-)estimated before training epoch ``epoch``."""
        return check.integer("epoch", epoch, minimum=0) % self.super_epoch == 0

    def _empty_records(self) -> dict[int, list[tuple[float, float] | None]]:
        return {probe_epoch: [None] * self.num_heads for probe_epoch in self.probe_epochs}

    def record(self, head: int, probe_epoch: int, train_loss: float, heldout_loss: float) -> None:
        """Keep head ``head``'s training and held-out losses of probe epoch ``probe_epoch``."""
        check.integer("head", head, minimum=0)
        if head >= self.num_heads:
            raise ValueError(f"head must be < {self.num_heads} (modalities, then the fused head), got {head}")
        if probe_epoch not in self._records:
            raise ValueError(f"probe_epoch must be one of {self.probe_epochs}, got {probe_epoch!r}")
        self._records[probe_epoch][head] = (
            check.real("train_loss", train_loss),
            check.real("heldout_loss", heldout_loss),
        )

    def finish(self) -> Tensor:
        """Compute the weights from the recorded losses, keep them, clear the records."""
        missing = [
            f"head {head} at probe epoch {probe_epoch}"
            for probe_epoch, heads in self._records.items()
            for head, losses in enumerate(heads)
            if losses is None
        ]
        if missing:
            raise RuntimeError(f"Gradient-Blending estimation is missing losses: {', '.join(missing)}")
        start, end = (self._records[probe_epoch] for probe_epoch in self.probe_epochs)
        self._weights = blending_weights(
            [t for t, _ in start], [v for _, v in start], [t for t, _ in end], [v for _, v in end],
            eps=self.eps,
        )
        self._records = self._empty_records()
        return self._weights.clone()

    @property
    def weights(self) -> Tensor:
        """(num_heads,) float64 weights of the last estimation."""
        if self._weights is None:
            raise RuntimeError("Gradient-Blending weights are estimated at epoch 0: call finish() first")
        return self._weights.clone()

    def loss(self, head_losses: Sequence[Tensor]) -> Tensor:
        """``sum_h w_h * head_losses[h]`` (modalities' losses first, the fused loss last)."""
        if len(head_losses) != self.num_heads:
            raise ValueError(f"expected {self.num_heads} head losses, got {len(head_losses)}")
        weights = self.weights
        return sum(
            weight.item() * head_loss for weight, head_loss in zip(weights, head_losses)
        )

    def state_dict(self) -> dict[str, object]:
        return {
            "num_modalities": self.num_modalities,
            "super_epoch": self.super_epoch,
            "weights": None if self._weights is None else self._weights.tolist(),
            "records": {probe_epoch: list(heads) for probe_epoch, heads in self._records.items()},
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        for key in ("num_modalities", "super_epoch"):
            if state.get(key) != getattr(self, key):
                raise ValueError(
                    f"Gradient-Blending state has {key}={state.get(key)!r}, this run has "
                    f"{getattr(self, key)!r}"
                )
        weights = state["weights"]
        if weights is not None and len(weights) != self.num_heads:
            raise ValueError(f"Gradient-Blending state has {len(weights)} weights, expected {self.num_heads}")
        self._weights = None if weights is None else torch.tensor(weights, dtype=torch.float64)
        records = state["records"]
        if sorted(records) != sorted(self.probe_epochs):
            raise ValueError(f"Gradient-Blending state records probe epochs {sorted(records)}")
        self._records = {
            int(probe_epoch): [None if losses is None else tuple(losses) for losses in heads]
            for probe_epoch, heads in records.items()
        }


class GradientBlendingStep(TrainingMethod):
    """Gradient-Blending as a training method (the engine's ``TrainingMethod`` hook):
    the weights are estimated by held-out probes before epochs 0, ``super_epoch``,
    ``2 * super_epoch``, ... (see the module docstring), and a step's loss is
    ``sum_m w_m L_m + w_fused L_fused`` over the unimodal heads' and the fused
    head's losses, which therefore must reach the encoders (unimodal loss weight
    above 0). Any task: the losses are the task's."""

    needs_unimodal_loss = True

    def __init__(self, super_epoch: int = 10, eps: float = 1e-12) -> None:
        self.super_epoch = check.integer("super_epoch", super_epoch, minimum=2)
        self.eps = check.positive("eps", eps)
        self.blending: GradientBlending | None = None

    def on_epoch_start(self, start: EpochStart) -> None:
        if self.blending is None:  # the hook names no modalities: count the features of one batch
            for features, _ in start.features(1):
                self.blending = self._new(len(features))
        if not self.blending.estimates_at(start.epoch):
            return
        if start.probe is None:
            raise RuntimeError("Gradient-Blending needs EpochStart.probe to estimate its weights")
        for head in range(self.blending.num_heads):
            losses = start.probe(self._objective(head, start.loss), self.super_epoch)
            for probe_epoch in self.blending.probe_epochs:
                self.blending.record(head, probe_epoch, *losses[probe_epoch])
        self.blending.finish()

    def _objective(self, head: int, loss: Callable[[Tensor, Tensor], Tensor]) -> Objective:
        """Head ``head``'s loss alone: a modality's unimodal head, or (last) the fused head."""
        if head == self.blending.num_modalities:
            return lambda outputs, labels: loss(outputs.fused_logits, labels)
        return lambda outputs, labels: loss(list(outputs.unimodal_logits.values())[head], labels)

    def backward(self, step: StepLosses) -> None:
        step.scale(self.blending.loss([*step.unimodal.values(), step.fused])).backward()

    def _new(self, num_modalities: int) -> GradientBlending:
        return GradientBlending(num_modalities, super_epoch=self.super_epoch, eps=self.eps)

    def state_dict(self) -> dict[str, object]:
        return {} if self.blending is None else self.blending.state_dict()

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        if not state:
            self.blending = None
            return
        self.blending = self._new(int(state["num_modalities"]))
        self.blending.load_state_dict(dict(state))
