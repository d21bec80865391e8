"""MLA: alternating unimodal updates through a shared head, with gradient
projection on the head, and entropy-weighted fusion at inference.

Paper: Zhang, Yoon, Bansal, Yao, "Multimodal Representation Learning by
Alternating Unimodal Adaptation", CVPR 2024. Official code:
Cecile-hi/Multimodal-Learning-with-Alternating-Unimodal-Adaptation, commit
ab6c184579f9ff390e9c9b8216c9900c2a43545b (``main.py``: ``train_epoch`` with
``--gs_flag``, ``calculate_entropy``, ``calculate_gating_weights[3]``;
``utils/utils.py``: ``GSPlugin.before_update``). Also read: BalanceBenchmark
(GeWu-Lab/BalanceBenchmark, commit 4c1482fca5aaa8d4278af8e26020daa039e3ccf3,
``balancemm/trainer/MLA_trainer.py``, ``models/avclassify_model.py``).

Training, per minibatch, for m = 0, ..., M-1 in turn: forward modality m's
encoder, ``z_m = head(f_m)`` through the one shared head, backward
``CE(z_m, y)``, modify the head's weight gradient (below), optimiser step, zero
the gradients. So each minibatch makes M optimiser steps, each touching one
encoder and the shared head.

Gradient modification (``GSPlugin.before_update``), skipped on the very first
update of the run; afterwards, with ``r`` the batch mean of the current
modality's (detached) features (1 x d), ``P`` the d x d projector (identity at
the start, kept across modalities, batches and epochs), batch ``b`` of ``N``::

    alpha = alpha_base ** (1 + b / N)                  (0.1 -> 0.01 over an epoch)
    k     = P r^T
    P     = P - k k^T / (alpha + r k)                  (OWM, Zeng et al. 2019)
    P     = P / ||P||_F
    grad(W) = grad(W) P^T                              (W: head weight, K x d; bias untouched)

For ``alpha -> 0`` the update removes ``P r^T``'s direction exactly, so the head's
gradient is orthogonal to every feature mean seen so far (up to ``alpha``):
learning modality m interferes least with what the head learned from the others.

Inference (``calculate_gating_weights``, the README's "dynamic fusion"): with
``H_m`` the entropy of modality m's prediction,
``lambda_m = exp(max_k H_k - H_m) / sum_j exp(max_k H_k - H_j)`` (= softmax of
``-H``) and the fused logits are ``sum_m lambda_m z_m``. ``entropy_scope``:
``"batch"`` (default, the official code): ``softmax(z_m, dim=0)`` (over the
*samples* of the evaluation batch) and ``H_m`` summed over the whole batch, so
one ``lambda_m`` per batch; ``"sample"`` (the paper's per-sample equation, and
BalanceBenchmark): ``softmax(z_m, dim=1)``, one ``lambda_m`` per sample. The
official choice makes predictions depend on the evaluation batch's size and
content; we keep it as the default because it produced the paper's numbers.

Hyperparameters: ``alpha_base`` > 0, default 0.1 (the official constant);
``projector_update`` "owm" (default) or "released"; ``entropy_scope`` "batch"
(default) or "sample".

Deliberate deviations from the official code:

* The official ``before_update`` only acts on a parameter named
  ``"module.weight"``, but it is given ``fusion_module.fc_out`` (an ``nn.Linear``
  whose parameters are ``weight`` and ``bias``), so the released code never
  projects. We apply the projection its body describes (BalanceBenchmark also
  matches ``"weight"``).
* The body divides by ``alpha + torch.mm(k, r)``, a d x d matrix (elementwise
  division), where OWM and the paper divide by the scalar ``alpha + r k``. The
  default ``projector_update="owm"`` uses the scalar; ``"released"`` reproduces
  the elementwise division literally (BalanceBenchmark runs that one).
* The official code replaces the gradient by ``grad P^T``; BalanceBenchmark adds
  it (``grad + grad P^T``). We follow the authors (replace).
* Entropies use ``log_softmax`` instead of ``log(softmax(.))``: equal for
  moderate logits, finite where the latter gives ``0 * log 0 = nan``.
* The official code (torch 1.8) zeroes gradients to zero tensors, so in the
  second modality's step SGD's momentum and weight decay also move the first
  encoder; a loop using this module zeroes with ``set_to_none=True`` (torch's
  default) so that each step updates only the current encoder and the head.
* Only the dynamic (entropy) fusion is provided; the official fixed-weight
  fusion (``av_alpha`` = 0.5, or 0.35/0.25/0.4 for three modalities) is not MLA's
  proposed rule.

Three modalities (the paper's IEMOCAP setting, ``--modal3``): a third
alternating step per batch through the same head and projector, and the
three-way softmax of ``-H`` above; M modalities generalise the same way.

Wiring into the engine (``MLAStep``, recipe ``mla``): the model's fusion module
is the shared head (``fusion="shared"``, ``model.fusion.fc_out``); the
modalities alternate in the dataset's modality order. The engine's one
train-mode forward gives every encoder's features, as the official loop's one
``model(...)`` call does; encoder m is untouched by the earlier modalities'
updates (their gradients are None, so the optimiser skips it), so its features
equal a fresh forward, while the head is re-applied after each update. The
engine makes the last modality's optimiser step; ``step.update()`` makes the
others. Further decisions:

* Harness: unimodal_loss_weight 0 (the official loop has only the alternating
  losses); the unimodal heads learn as probes on detached features, their loss
  added to the first modality's step (it reaches only the heads), so their
  accuracies stay meaningful. A classification method only (the entropy fusion
  reads class probabilities).
* ``entropy_scope`` stays "batch" (above): the predictions of an evaluation
  batch depend on its other samples and on ``batch_size``; "sample" removes that.
  The engine's training accuracy uses the same fusion on the training batch.
* The fused loss the engine reports (``train_fused_loss``: cross-entropy of
  the mean of ``fc_out(f_m)``) is a statistic only; nothing is trained on it.
* AMP: each modality's loss is scaled by the engine's GradScaler before
  backward, and the projection acts on the still-scaled gradient (the update
  unscales after it); ``grad P^T`` is linear, so projecting before unscaling
  equals projecting after (exactly, for the scaler's power-of-two scales), and
  an overflowing gradient stays non-finite, so the scaler skips that step as
  usual. The projector is updated from the features either way, also in a
  skipped step.
  The head is re-applied under autocast in the dtype it ran in during the
  engine's forward.
* Outside a modulation window set by hand the engine trains the plain fused
  loss of the shared head; predictions always use the entropy fusion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from goal_plugin import _validation as check
from goal_plugin.methods.hook import StepLosses, TrainingMethod

if TYPE_CHECKING:
    from goal_plugin.models.network import MultimodalOutput

PROJECTOR_UPDATES = ("owm", "released")
ENTROPY_SCOPES = ("batch", "sample")


def owm_alpha(batch_index: int, num_batches: int, *, alpha_base: float = 0.1) -> float:
    """``alpha_base ** (1 + batch_index / num_batches)``: the projector's regulariser."""
    check.integer("num_batches", num_batches, minimum=1)
    check.integer("batch_index", batch_index, minimum=0)
    if batch_index >= num_batches:
        raise ValueError(f"batch_index must be < num_batches={num_batches}, got {batch_index}")
    return check.positive("alpha_base", alpha_base) ** (1 + batch_index / num_batches)


def update_projector(
    projector: Tensor, features: Tensor, alpha: float, *, projector_update: str = "owm"
) -> Tensor:
    """One projector update from a (B, d) batch of features; returns a new (d, d) tensor."""
    check.positive("alpha", alpha)
    check.choice("projector_update", projector_update, PROJECTOR_UPDATES)
    _check_projector(projector)
    if features.dim() != 2 or features.shape[1] != projector.shape[0]:
        raise ValueError(
            f"features must have shape (batch, {projector.shape[0]}), got {tuple(features.shape)}"
        )
    mean = features.detach().to(projector.dtype).mean(dim=0, keepdim=True)  # r, (1, d)
    k = projector @ mean.T  # (d, 1)
    if projector_update == "owm":
        denominator = alpha + mean @ k  # (1, 1)
    else:
        denominator = alpha + k @ mean  # (d, d): the released code's elementwise division
    updated = projector - (k @ k.T) / denominator
    return updated / torch.linalg.matrix_norm(updated)


def project_gradient(grad: Tensor, projector: Tensor) -> Tensor:
    """``grad P^T`` for a (K, d) head-weight gradient, in the gradient's dtype."""
    _check_projector(projector)
    if grad.dim() != 2 or grad.shape[1] != projector.shape[0]:
        raise ValueError(
            f"the head weight's gradient must have shape (classes, {projector.shape[0]}), "
            f"got {tuple(grad.shape)}"
        )
    return (grad.to(projector.dtype) @ projector.T).to(grad.dtype)


def _check_projector(projector: Tensor) -> None:
    if projector.dim() != 2 or projector.shape[0] != projector.shape[1]:
        raise ValueError(f"projector must be a square matrix, got shape {tuple(projector.shape)}")


def entropy_fusion_weights(logits: Sequence[Tensor], *, entropy_scope: str = "batch") -> Tensor:
    """MLA's fusion weights ``softmax_m(-H_m)``: shape (M,) for "batch", (M, B) for "sample"."""
    check.choice("entropy_scope", entropy_scope, ENTROPY_SCOPES)
    stacked = _stack_logits(logits)  # (M, B, K)
    if entropy_scope == "batch":
        log_probs = torch.log_softmax(stacked, dim=1)
        entropy = -(log_probs.exp() * log_probs).sum(dim=(1, 2))  # (M,)
    else:
        log_probs = torch.log_softmax(stacked, dim=2)
        entropy = -(log_probs.exp() * log_probs).sum(dim=2)  # (M, B)
    return torch.softmax(-entropy, dim=0)


def fuse_logits(logits: Sequence[Tensor], *, entropy_scope: str = "batch") -> Tensor:
    """MLA's inference output ``sum_m lambda_m z_m`` (B, K)."""
    weights = entropy_fusion_weights(logits, entropy_scope=entropy_scope)
    stacked = _stack_logits(logits)
    weights = weights[:, None, None] if weights.dim() == 1 else weights[:, :, None]
    return (weights * stacked).sum(dim=0)


def _stack_logits(logits: Sequence[Tensor]) -> Tensor:
    if len(logits) < 2:
        raise ValueError(f"MLA fuses at least 2 modalities, got {len(logits)} logits tensor(s)")
    shapes = {tuple(z.shape) for z in logits}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"logits must all have the same shape (batch, classes), got {sorted(shapes)}")
    return torch.stack(list(logits))


class MLAProjection:
    """The shared head's projector across MLA's alternating steps.

    Call ``project(grad, features, batch_index, num_batches)`` after each
    modality step's backward with the head weight's gradient and that modality's
    features; write the returned gradient back before the optimiser step.
    """

    def __init__(
        self,
        feature_dim: int,
        *,
        alpha_base: float = 0.1,
        projector_update: str = "owm",
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        self.feature_dim = check.integer("feature_dim", feature_dim, minimum=1)
        self.alpha_base = check.positive("alpha_base", alpha_base)
        self.projector_update = check.choice("projector_update", projector_update, PROJECTOR_UPDATES)
        self.projector = torch.eye(feature_dim, dtype=dtype, device=device)
        self.updates = 0  # the official exp_count: modality steps taken so far

    def project(self, grad: Tensor, features: Tensor, batch_index: int, num_batches: int) -> Tensor:
        """The modified head-weight gradient of this modality step (unchanged on the first step)."""
        alpha = owm_alpha(batch_index, num_batches, alpha_base=self.alpha_base)
        if self.updates == 0:
            result = grad
        else:
            self.projector = update_projector(
                self.projector, features, alpha, projector_update=self.projector_update
            )
            result = project_gradient(grad, self.projector)
        self.updates += 1
        return result

    def state_dict(self) -> dict[str, object]:
        return {"projector": self.projector.clone(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, object]) -> None:
        projector = state["projector"]
        if not isinstance(projector, Tensor) or tuple(projector.shape) != (self.feature_dim,) * 2:
            shape = tuple(projector.shape) if isinstance(projector, Tensor) else type(projector).__name__
            raise ValueError(
                f"MLA state's projector must be ({self.feature_dim}, {self.feature_dim}), got {shape}"
            )
        self.projector = projector.to(dtype=self.projector.dtype, device=self.projector.device).clone()
        self.updates = check.integer("updates", state["updates"], minimum=0)


class MLAStep(TrainingMethod):
    """MLA as a training method (the engine's ``TrainingMethod`` hook): per batch, one
    step per modality through the shared head ``model.fusion.fc_out`` with the head
    weight's gradient projected (``MLAProjection``), and the entropy-weighted fusion
    of the modalities' head logits as the prediction (see the module docstring)."""

    heads_as_probes = True
    fusion = "shared"
    supported_tasks = ("classification",)

    def __init__(
        self, alpha_base: float = 0.1, projector_update: str = "owm", entropy_scope: str = "batch"
    ) -> None:
        self.alpha_base = check.positive("alpha_base", alpha_base)
        self.projector_update = check.choice(
            "projector_update", projector_update, PROJECTOR_UPDATES
        )
        self.entropy_scope = check.choice("entropy_scope", entropy_scope, ENTROPY_SCOPES)
        self.projection: MLAProjection | None = None
        self._restored: dict[str, object] | None = None  # loaded before the head's device is known

    def backward(self, step: StepLosses) -> None:
        head = step.model.fusion.fc_out
        projection = self._projection(head)
        modalities = list(step.unimodal)  # the model's modality order
        for position, modality in enumerate(modalities):
            features = step.features[modality]
            # The engine's forward ran the head under autocast iff its logits came out reduced.
            reduced = step.outputs.fusion_slice_logits[modality].dtype
            autocast = reduced != head.weight.dtype
            with torch.autocast(features.device.type, dtype=reduced, enabled=autocast):
                loss = step.loss(head(features))
                if position == 0:  # the probe heads' loss reaches only the (detached) heads
                    loss = loss + step.unimodal_weight * sum(step.unimodal.values())
            step.scale(loss).backward()
            head.weight.grad = projection.project(
                head.weight.grad, features.detach(), step.index, step.num_batches
            )
            if position < len(modalities) - 1:
                step.update()  # the engine makes the last modality's step

    def predict(self, outputs: MultimodalOutput) -> Tensor:
        logits = [z.float() for z in outputs.fusion_slice_logits.values()]
        return fuse_logits(logits, entropy_scope=self.entropy_scope)

    def _projection(self, head: nn.Linear) -> MLAProjection:
        if self.projection is None:
            self.projection = MLAProjection(
                head.in_features,
                alpha_base=self.alpha_base,
                projector_update=self.projector_update,
                device=head.weight.device,
            )
            if self._restored is not None:
                self.projection.load_state_dict(self._restored)
                self._restored = None
        return self.projection

    def state_dict(self) -> dict[str, object]:
        if self.projection is not None:
            return self.projection.state_dict()
        return {} if self._restored is None else dict(self._restored)

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Restore the projector; it moves to the head's device at the next step."""
        self.projection = None
        self._restored = None
        if state:
            expected = {"projector", "updates"}
            if set(state) != expected:
                raise ValueError(f"MLA state needs keys {sorted(expected)}, got {sorted(state)}")
            self._restored = dict(state)
