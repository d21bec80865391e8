"""The gate: identity in forward, the strategy in backward.

Insert it between the encoders and the fusion module. In the backward pass it
receives all M feature gradients ``dL/df_m`` at once and returns
``strategy.modify(...)`` of them, so a strategy costs no extra backward pass and
never touches parameter-sized tensors. Gradients that reach ``f_m`` by another
path (the unimodal heads read ``f_m`` before the gate) are not affected.

Works on any device, under autocast (arithmetic in float32, results in the
incoming dtype), with some features that do not require grad (their gradient
still informs the others; none is returned for them) and inside DataParallel / DDP
replicas, where each replica applies the strategy to its own shard of the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from goal_plugin.strategies.base import Strategy


class _GateFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, strategy: Strategy, logits: tuple, labels: Any, *features: Tensor):
        ctx.strategy = strategy
        ctx.num_logits = 0 if logits is None else len(logits)
        ctx.has_labels = labels is not None
        saved = list(logits or ()) + ([labels] if labels is not None else [])
        ctx.save_for_backward(*saved)
        return tuple(feature.view_as(feature) for feature in features)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, *grad_outputs: Tensor):
        saved = ctx.saved_tensors
        logits = saved[: ctx.num_logits] if ctx.num_logits else None
        labels = saved[ctx.num_logits] if ctx.has_labels else None
        modified = ctx.strategy.modify(grad_outputs, logits, labels)
        needed = ctx.needs_input_grad[3:]
        return (None, None, None, *(g if need else None for g, need in zip(modified, needed)))


def gate(
    strategy: Strategy,
    *features: Tensor,
    logits: Sequence[Tensor] | None = None,
    labels: Tensor | None = None,
) -> tuple[Tensor, ...]:
    """Apply ``strategy`` to the gradients of ``features`` in the backward pass.

    While gradients are disabled (evaluation), or when no feature requires grad,
    the gate does nothing and checks nothing: it returns ``features``. Otherwise
    the shapes are checked now, and whether the strategy got the logits and
    labels it reads is checked in the backward pass, where it reads them.
    """
    acts = torch.is_grad_enabled() and any(isinstance(f, Tensor) and f.requires_grad for f in features)
    if not acts:
        return tuple(features)
    strategy.check_inputs(features, logits, labels, what="features", complete=False)
    detached_logits = None if logits is None else tuple(z.detach() for z in logits)
    detached_labels = None if labels is None else labels.detach()
    return _GateFunction.apply(strategy, detached_logits, detached_labels, *features)
