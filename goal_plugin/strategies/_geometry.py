"""Inner-product geometry shared by the direction step and the diagnostics."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor

SPACES = ("sample", "batch")


def to_space(stacked: Tensor, space: str) -> Tensor:
    """(M, B, D) -> (M, N, D): N = B inner products per pair, or one over the batch."""
    if space == "sample":
        return stacked
    return stacked.reshape(stacked.shape[0], 1, -1)


@functools.lru_cache(maxsize=32)
def pair_indices(num_modalities: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Row and column indices of the pairs i < j (cached: this runs every step)."""
    return tuple(torch.triu_indices(num_modalities, num_modalities, offset=1, device=device))


def pairwise_cosines(stacked: Tensor) -> tuple[Tensor, Tensor]:
    """Inner products and cosines of every modality pair i < j, shape (N, P) each."""
    gram = torch.einsum("mnd,knd->nmk", stacked, stacked)
    rows, cols = pair_indices(stacked.shape[0], gram.device)
    norms = gram.diagonal(dim1=1, dim2=2).clamp_min(0).sqrt()
    dots = gram[:, rows, cols]
    denominator = (norms[:, rows] * norms[:, cols]).clamp_min(torch.finfo(gram.dtype).tiny)
    return dots, dots / denominator


@dataclass
class StepStats:
    """Device tensors describing one ``modify`` call; converted to floats lazily."""

    weights: Tensor
    conflict_fraction: Tensor | None
    cosines_before: Tensor | None
    cosines_after: Tensor | None

    @classmethod
    def measure(cls, weights: Tensor, before: Tensor | None, after: Tensor | None) -> StepStats:
        weights = weights.detach()
        if before is None or after is None:
            return cls(weights, None, None, None)
        dots, cos_before = pairwise_cosines(before)
        rows, cols = pair_indices(len(weights), weights.device)
        # The sign of a pair's inner product after scaling is what the direction step sees.
        scaled_dots = dots * weights[rows] * weights[cols]
        conflict = (scaled_dots < 0).to(dots.dtype).mean()
        _, cos_after = pairwise_cosines(after)
        return cls(weights, conflict, cos_before.flatten(), cos_after.flatten())

    def as_dict(self) -> dict[str, object]:
        def mean(values: Tensor | None) -> float | None:
            return None if values is None else float(values.mean())

        return {
            "weights": [float(w) for w in self.weights.cpu()],
            "conflict_fraction": None
            if self.conflict_fraction is None
            else float(self.conflict_fraction),
            "cosine_before": mean(self.cosines_before),
            "cosine_after": mean(self.cosines_after),
        }
