"""Direction steps."""

from __future__ import annotations

import torch
from torch import Tensor

from goal_plugin import _validation as check
from goal_plugin.strategies._geometry import SPACES
from goal_plugin.strategies.base import DirectionStep


class GradientOrthogonalisation(DirectionStep):
    """GO of GOAL ("GOAL: Balance multimodal learning with Gradient
    Orthogonalization and Adaptive Leveraging"), Eq. 9-10 and Algorithm 2.

    For every modality i, starting from ``final_i = g'_i`` and visiting the other
    modalities j in index order: if ``<final_i, g'_j> < 0`` then
    ``final_i -= <final_i, g'_j> / (||g'_j||^2 + eps) * g'_j``. The projection is
    always onto the *input* (leveraged) ``g'_j``, never onto ``final_j``. With two
    modalities in conflict this gives ``<final_1, g'_2> = 0`` (appendix A.9);
    pairs that do not conflict are left untouched.

    space: ``"sample"`` (default) takes one inner product per sample, the reading
    of "projections are applied to all conflicting pairs within a batch";
    ``"batch"`` takes it over the flattened batch.
    eps: > 0, default 1e-8 (the paper's).

    All i are updated together for each j, which visits the same (i, j) sequence
    as the algorithm's nested loop, so the result is identical.
    """

    requires_equal_sizes = True

    def __init__(self, space: str = "sample", eps: float = 1e-8) -> None:
        self.space = check.choice("space", space, SPACES)
        self.eps = check.positive("eps", eps)

    def apply(self, stacked: Tensor) -> Tensor:
        squared_norms = stacked.pow(2).sum(dim=-1)  # (M, N)
        final = stacked.clone()
        for j in range(stacked.shape[0]):
            target = stacked[j]
            dots = (final * target).sum(dim=-1)  # (M, N)
            coefficient = torch.where(dots < 0, dots / (squared_norms[j] + self.eps), 0.0)
            coefficient[j] = 0.0
            final = final - coefficient.unsqueeze(-1) * target
        return final
