"""Parameter-space extras applied after ``loss.backward()``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from goal_plugin import _validation as check
from goal_plugin.strategies.base import ParameterHook

NOISE_SCOPES = ("conv", "all")


class GradientEnhancementNoise(ParameterHook):
    """GE of OGM-GE (Peng et al., CVPR 2022, Eq. 11): after modulation, add
    ``N(0, std(original gradient) + 1e-8)`` to each modulated parameter gradient.

    noise_scope: ``"conv"`` (default, official: only 4-D weight gradients) or
    ``"all"`` (every encoder parameter with at least two elements).

    Parameters are chosen by module path (``Strategy.post_backward``), not as
    the official loop does with ``name.split('.')[1]``, which silently matches no
    parameter unless DataParallel's ``module.`` prefix is present; a prefix that
    matches nothing is an error here.

    Deviation: with the gate, the parameter gradient after backward is already
    ``k_m * g_m (+ unimodal-loss gradient)``; the original ``std(g_m)`` is
    recovered as ``std(grad) / k_m``. This is exact under the recipe's default
    fused-loss-only training (as in the official code); with a unimodal loss
    added, the unimodal part is included in the estimate.
    """

    def __init__(self, noise_scope: str = "conv") -> None:
        self.noise_scope = check.choice("noise_scope", noise_scope, NOISE_SCOPES)

    def __call__(
        self,
        params_by_modality: Sequence[Sequence[torch.nn.Parameter]],
        modality_weights: Tensor,
    ) -> None:
        for params, coefficient in zip(params_by_modality, modality_weights.unbind()):
            for param in params:
                grad = param.grad
                if grad is None or grad.numel() < 2:
                    continue
                if self.noise_scope == "conv" and grad.dim() != 4:
                    continue
                scale = coefficient.to(grad.dtype).clamp_min(torch.finfo(grad.dtype).tiny)
                std = grad.std() / scale
                grad.add_(torch.randn_like(grad) * (std + 1e-8))
