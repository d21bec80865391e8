"""An example third-party strategy for goal_plugin: ``confidence_go``.

A magnitude step of its own (each modality's fusion gradient scaled by how
unconfident its unimodal head is, so a modality that is already sure of itself
is pushed less) followed by goal_plugin's gradient orthogonalisation (GO). The
package's pyproject.toml names the factory in the entry-point group
``goal_plugin.strategies``; goal_plugin finds it there on its first lookup.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from goal_plugin.strategies import (
    GradientOrthogonalisation,
    HarnessDefaults,
    MagnitudeStep,
    Strategy,
)


class InverseConfidence(MagnitudeStep):
    """Weights (1 - mean max-softmax probability of each head) ** strength, scaled to mean 1."""

    def __init__(self, strength: float):
        self.strength = strength

    def weights(self, logits: Sequence[Tensor], labels: Tensor | None) -> Tensor:
        confidence = torch.stack([z.softmax(dim=-1).amax(dim=-1).mean() for z in logits])
        raw = (1 - confidence).clamp_min(1e-6) ** self.strength
        return raw * len(raw) / raw.sum()


def confidence_go(*, strength: float = 1.0) -> Strategy:
    """InverseConfidence then GO, trained with the unimodal loss (weight 1) that the
    heads' confidences need."""
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not strength >= 0:
        raise ValueError(f"strength must be a number >= 0, got {strength!r}")
    return Strategy(
        InverseConfidence(float(strength)),
        GradientOrthogonalisation("sample", 1e-8),
        HarnessDefaults(unimodal_loss_weight=1.0),
    )
