"""Post-backward modes: apply a strategy without a gate in the model's graph.

For code that cannot put ``strategy.gate`` between its encoders and its fusion
module, these functions replace ``loss.backward()``. Both leave ``.grad`` as a
plain ``loss.backward()`` would, except for the encoders' share of the fused
loss ``L_mm``, which the strategy modifies.

``feature_space_backward`` (needs the fusion inputs ``f_m`` with their graph)
    Computes ``dL_mm/df_m`` with ``torch.autograd.grad``, applies
    ``strategy.modify`` and back-propagates the result. This is the gate's
    arithmetic, so the parameter gradients equal the gate's (the tests check
    every registered strategy to 1e-12 in float64).

``parameter_space_backward`` (needs only the encoders' parameters)
    Computes ``g_m = dL_mm/dtheta_m`` with ``torch.autograd.grad``, applies the
    strategy to the flattened per-encoder vectors and writes ``.grad``. A
    different method from the gate whenever a direction step is involved: GO
    then compares parameter vectors instead of per-sample feature gradients.

Cost, counted in backward passes through the encoders (the expensive part):

- gate / ``attach``: 1 pass; ``modify`` on (B, d) feature gradients.
- ``feature_space_backward``: 1 pass, plus a partial backward through the
  fusion head for ``dL_mm/df_m``; ``modify`` on (B, d) feature gradients.
- ``parameter_space_backward``: 2 passes (the fused loss is back-propagated
  twice); ``modify`` on M parameter-sized vectors, which are also copied.

``benchmarks/post_backward_cost.py`` measures the step times side by side;
docs/plain_pytorch.md reports them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from goal_plugin.strategies.base import MagnitudeStep, Strategy


def feature_space_backward(
    strategy: Strategy,
    features: Sequence[Tensor],
    fused_loss: Tensor,
    *,
    unimodal_loss: Tensor | None = None,
    logits: Sequence[Tensor] | None = None,
    labels: Tensor | None = None,
) -> None:
    """Back-propagate ``fused_loss + unimodal_loss`` with ``strategy`` applied to
    ``dL_mm/df_m``, exactly as the gate would.

    ``features``: the M tensors the fusion module read, still attached to the
    graph (not gathered copies: ``nn.DataParallel`` on several devices returns
    copies, which are not on the fused loss's graph and are refused).
    ``unimodal_loss``: the already weighted unimodal term ``lambda * sum_m L(z_m)``;
    its gradient reaches the encoders unmodified. ``logits`` / ``labels``: what the
    strategy's magnitude step reads (see ``Strategy.modify``).

    Steps: ``d_m = dL_mm/df_m`` by ``torch.autograd.grad`` (a partial backward
    through the fusion head only), ``d'_m = strategy.modify(d, logits, labels)``,
    then one backward of the whole loss with ``d'_m - d_m`` added at ``f_m``, so
    that the fusion parameters get their usual gradient and the encoders get
    ``d'_m`` (plus the unimodal part) in a single pass. ``.grad`` accumulates as
    with ``loss.backward()``; a parameter-space extra (OGM-GE noise) still needs
    ``strategy.post_backward(...)`` afterwards, as with the gate.
    """
    features = list(features)
    strategy.check_inputs(features, logits, labels, what="features")
    _check_loss("fused_loss", fused_loss)
    if unimodal_loss is not None:
        _check_loss("unimodal_loss", unimodal_loss)
    for index, feature in enumerate(features):
        if not feature.requires_grad:
            raise ValueError(
                f"features[{index}] does not require grad; feature_space_backward needs every "
                "fusion input on the graph (use the gate for frozen encoders)"
            )
    fused_grads = torch.autograd.grad(fused_loss, features, retain_graph=True, allow_unused=True)
    for index, grad in enumerate(fused_grads):
        if grad is None:
            raise ValueError(
                f"features[{index}] is not on the graph of fused_loss: the fusion module read "
                "another tensor (a DataParallel-style wrapper gathers copies, for example). Pass "
                "the tensors the fusion module read, or insert the gate in the model instead"
            )
    modified = strategy.modify(fused_grads, logits, labels)
    total = fused_loss if unimodal_loss is None else fused_loss + unimodal_loss
    corrections = [new - old for new, old in zip(modified, fused_grads)]
    torch.autograd.backward([total, *features], [torch.ones_like(total), *corrections])


def parameter_space_backward(
    strategy: Strategy,
    encoders: Sequence[nn.Module | Iterable[nn.Parameter]],
    fused_loss: Tensor,
    *,
    unimodal_loss: Tensor | None = None,
    logits: Sequence[Tensor] | None = None,
    labels: Tensor | None = None,
) -> dict[str, object]:
    """Back-propagate ``fused_loss + unimodal_loss`` with ``strategy`` applied to the
    encoders' fused-loss parameter gradients ``g_m``; returns the step's diagnostics
    (the keys of ``Strategy.last_stats``, measured on the parameter vectors).

    ``encoders[m]``: modality m's encoder module, or an iterable of its parameters
    (those with ``requires_grad``; no parameter may belong to two encoders).

    The space: ``g_m`` is the concatenation of ``dL_mm/dtheta`` over encoder m's
    parameters in ``parameters()`` order, one vector per modality. The magnitude
    step reads the batch's ``logits`` (and ``labels``) as usual and scales
    ``g_m`` by ``w_m``; since ``g_m`` is linear in ``dL_mm/df_m`` this equals the
    gate for strategies without a direction step. A direction step (GO) compares
    the M vectors element by element, so the encoders must have equal parameter
    counts, and the comparison means something only for identical architectures;
    unequal counts are an error. With one vector per modality, ``space`` "sample"
    and "batch" coincide. The unimodal loss's gradient ``G_m`` is not modified.

    Deliberate differences from the gate: GO acts on parameter gradients rather
    than per-sample feature gradients; the fused loss is back-propagated twice
    (once by ``torch.autograd.grad`` for ``g_m``, once with the unimodal loss for
    every other parameter), and M parameter-sized vectors are held. The
    strategy's parameter-space extra (OGM-GE noise) is applied here, to the
    encoders given, because ``strategy.post_backward`` needs a gate pass;
    ``strategy.last_stats`` is not updated.
    """
    groups = _parameter_groups(encoders)
    _check_loss("fused_loss", fused_loss)
    if unimodal_loss is not None:
        _check_loss("unimodal_loss", unimodal_loss)
    sizes = [sum(p.numel() for p in params) for params in groups]
    if strategy.direction is not None and strategy.direction.requires_equal_sizes and len(set(sizes)) > 1:
        raise ValueError(
            f"{strategy.name} compares the encoders' parameter gradients element by element, "
            f"which needs equal parameter counts; got {sizes}. Use feature_space_backward or "
            "the gate, which compare dL_mm/df_m instead"
        )
    weights = _magnitude_weights(strategy, logits, labels, len(groups)).to(groups[0][0].device)
    flat_params = [p for params in groups for p in params]
    fused_grads = torch.autograd.grad(fused_loss, flat_params, retain_graph=True, allow_unused=True)
    vectors, start = [], 0
    for params in groups:
        grads = fused_grads[start : start + len(params)]
        start += len(params)
        vectors.append(
            torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for p, g in zip(params, grads)])
        )
    step = Strategy(_FixedWeights(weights), strategy.direction)
    step.name = strategy.name
    modified = step.modify([v.unsqueeze(0) for v in vectors], None)
    total = fused_loss if unimodal_loss is None else fused_loss + unimodal_loss
    total.backward()
    with torch.no_grad():
        for params, old, new in zip(groups, vectors, modified):
            corrections = (new[0] - old).split([p.numel() for p in params])
            for param, correction in zip(params, corrections):
                correction = correction.view_as(param)
                # GO can give a parameter outside L_mm's graph a nonzero share.
                if param.grad is None:
                    param.grad = correction.clone()
                else:
                    param.grad.add_(correction)
    if strategy.parameter_hook is not None:
        strategy.parameter_hook(groups, weights.detach())
    return step.last_stats


class _FixedWeights(MagnitudeStep):
    """Hands ``Strategy.modify`` multipliers computed elsewhere (from the batch's logits)."""

    requires_logits = False

    def __init__(self, weights: Tensor) -> None:
        self._weights = weights

    def weights(self, logits: Sequence[Tensor], labels: Tensor | None) -> Tensor:
        return self._weights


def _magnitude_weights(
    strategy: Strategy, logits: Sequence[Tensor] | None, labels: Tensor | None, num_modalities: int
) -> Tensor:
    """The magnitude step's (M,) multipliers, read as ``Strategy.modify`` reads them."""
    if logits is None:
        if strategy.requires_logits:
            raise ValueError(f"{strategy.name} reads modality-specific logits: pass logits=(z_1, ..., z_M)")
        if strategy.requires_labels and labels is None:
            raise ValueError(f"{strategy.name} needs the labels: pass labels=y")
        detached, work_dtype, device_type = [], torch.float32, "cpu"
    else:
        if len(logits) != num_modalities:
            raise ValueError(f"got {len(logits)} logits tensors for {num_modalities} encoders")
        strategy.check_inputs(list(logits), logits, labels, what="logits")
        work_dtype = torch.promote_types(logits[0].dtype, torch.float32)
        detached = [z.detach().to(work_dtype) for z in logits]
        device_type = detached[0].device.type
    if strategy.magnitude is None:
        return torch.ones(num_modalities, dtype=work_dtype)
    with torch.autocast(device_type=device_type, enabled=False):
        return strategy.magnitude.weights(detached, labels).to(work_dtype)


def _parameter_groups(encoders: Sequence[nn.Module | Iterable[nn.Parameter]]) -> list[list[nn.Parameter]]:
    if isinstance(encoders, (nn.Module, Tensor)) or len(encoders) < 2:
        raise ValueError("encoders must be a sequence of at least 2 encoder modules (or parameter lists)")
    groups, seen = [], set()
    for index, encoder in enumerate(encoders):
        params = encoder.parameters() if isinstance(encoder, nn.Module) else encoder
        params = [p for p in params if p.requires_grad]
        if not params:
            raise ValueError(f"encoders[{index}] has no parameter that requires grad")
        for param in params:
            if id(param) in seen:
                raise ValueError(f"encoders[{index}] shares a parameter with an earlier encoder")
            seen.add(id(param))
        groups.append(params)
    return groups


def _check_loss(name: str, loss: object) -> None:
    if not isinstance(loss, Tensor) or loss.dim() != 0 or not loss.requires_grad:
        shown = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
        raise ValueError(f"{name} must be a scalar tensor that requires grad, got {shown}")
