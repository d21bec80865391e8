"""Magnitude steps: one non-negative multiplier per modality, from its logits."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from goal_plugin import _validation as check
from goal_plugin.strategies.base import MagnitudeStep


def _entropy(logits: Tensor) -> Tensor:
    """Shannon entropy (nats) of softmax(logits) per row, finite for finite logits."""
    log_probs = torch.log_softmax(logits, dim=-1)
    return -(log_probs.exp() * log_probs).sum(dim=-1)


UNCERTAINTIES = ("entropy", "variance")


class AdaptiveLeveraging(MagnitudeStep):
    """AL of GOAL ("GOAL: Balance multimodal learning with Gradient
    Orthogonalization and Adaptive Leveraging"), Eq. 6-8.

    ``uncertainty="entropy"`` (classification, the paper's Eq. 6-8): for sample i
    and modality m, ``u_im = H(softmax(z_im)) / log K`` (normalised entropy),
    ``c_im = 1 - u_im`` (confidence); per sample the modality weights are
    ``softmax_m(c_im / T)``; ``w_m`` is their batch mean, so ``sum_m w_m = 1``.

    ``uncertainty="variance"`` (regression with Gaussian heads: each unimodal
    head gives ``z_im = (mu_im, log sigma^2_im)``): the confidence is the
    negative log-variance, ``c_im = -log sigma^2_im``, and the weights are again
    the batch mean of ``softmax_m(c_im / T)``. At T = 1 the per-sample weights are
    ``(1 / sigma^2_im) / sum_k (1 / sigma^2_ik)``: inverse-variance weighting, the
    principle the paper builds AL on (the more certain modality leads); a larger
    T flattens them towards equal weights, a smaller one sharpens them. This
    mapping is ours: the paper states AL for regression without its formula.

    temperature: T > 0, default 1.0 (the paper sweeps 0.2 ... 1.0).
    uncertainty: "entropy" (default) or "variance".
    """

    def __init__(self, temperature: float = 1.0, uncertainty: str = "entropy") -> None:
        self.temperature = check.positive("temperature", temperature)
        self.uncertainty = check.choice("uncertainty", uncertainty, UNCERTAINTIES)

    @property
    def reads(self) -> str:
        return "gaussian" if self.uncertainty == "variance" else "class_probabilities"

    def weights(self, logits: Sequence[Tensor], labels: Tensor | None) -> Tensor:
        stacked = torch.stack(logits)  # (M, B, K)
        if self.uncertainty == "variance":
            if stacked.shape[2] != 2:
                raise ValueError(
                    "AL with uncertainty='variance' reads Gaussian heads (mean, log-variance): "
                    f"logits of shape (batch, 2), got (batch, {stacked.shape[2]})"
                )
            confidence = -stacked[:, :, 1]
        else:
            confidence = 1 - _entropy(stacked) / math.log(stacked.shape[2])  # (M, B)
        return self.batch_mean(torch.softmax(confidence / self.temperature, dim=0), dim=1)


def _true_class_score(logits: Tensor, labels: Tensor) -> Tensor:
    return torch.softmax(logits, dim=-1).gather(1, labels.long().unsqueeze(1)).sum()


class OGMModulation(MagnitudeStep):
    """OGM coefficients (Peng et al., "Balanced Multimodal Learning via On-the-fly
    Gradient Modulation", CVPR 2022, Eq. 9-10; code GeWu-Lab/OGM-GE_CVPR2022).

    ``score_m = sum_i softmax(z_m)[i, y_i]``.
    Two modalities (official code): ``ratio_1 = score_1 / score_0``; if
    ``ratio_1 > 1`` then ``k_1 = 1 - tanh(alpha * relu(ratio_1))``, ``k_0 = 1``;
    otherwise ``k_0 = 1 - tanh(alpha * relu(1 / ratio_1))``, ``k_1 = 1`` (so on an
    exact tie modality 0 is damped, as in the official ``else`` branch).
    M >= 3 (BalanceMM): ``ratio_m = score_m / (min_k score_k + 1e-5)``,
    ``k_m = max(1 - tanh(alpha * relu(ratio_m)), 0)`` where ``ratio_m > 1``, else 1.

    alpha: >= 0, default 0.1 (the official README's example; 0.8 recommended for
    CREMA-D).

    Deliberate deviations from the official code: the coefficient multiplies
    ``dL_mm/df_m`` at the fusion input, i.e. every encoder parameter's fused-loss
    gradient, not only the 4-D (conv) parameter gradients after backward, and it
    never touches the unimodal-loss gradient; BalanceMM's three-modality score
    (softmax of cos(logits), correct predictions only) is replaced by the same
    true-class score as for two modalities; scores are floored at the smallest
    positive float so that an underflowing softmax cannot produce 0/0.
    """

    requires_labels = True

    def __init__(self, alpha: float = 0.1) -> None:
        self.alpha = check.non_negative("alpha", alpha)

    def weights(self, logits: Sequence[Tensor], labels: Tensor | None) -> Tensor:
        scores = self.batch_sum(torch.stack([_true_class_score(z, labels) for z in logits]))
        scores = scores.clamp_min(torch.finfo(scores.dtype).tiny)
        damped = lambda ratio: 1 - torch.tanh(self.alpha * torch.relu(ratio))  # noqa: E731
        one = torch.ones((), dtype=scores.dtype, device=scores.device)
        if len(logits) == 2:
            ratio_1 = scores[1] / scores[0]
            second_dominates = ratio_1 > 1
            return torch.stack(
                [
                    torch.where(second_dominates, one, damped(scores[0] / scores[1])),
                    torch.where(second_dominates, damped(ratio_1), one),
                ]
            )
        ratios = scores / (scores.min() + 1e-5)
        return torch.where(ratios > 1, damped(ratios).clamp_min(0), one)


class ARLModulation(MagnitudeStep):
    """ARL weights (Wei, Luo, Luo, "Improving multimodal learning via imbalanced
    learning", ICCV 2025; code shicaiwei123/ICCV2025-ARL).

    ``H_m``: batch-mean entropy of softmax(z_m); normalised ``H_m / sum H``,
    floored at ``entropy_floor`` (0.3), inverted and renormalised:
    ``q_m = (1/H_m) / sum_k (1/H_k)``. ``d_m = sum_k mean_i |z_m[i, k]|``,
    normalised to sum 1. Two modalities: ``w = softmax(T * [d_1 q_0, d_0 q_1])``;
    for M >= 3 the other modality's ``d`` becomes the mean of the others'.
    The returned multiplier is ``1 + w_m``.

    arl_temperature: T > 0, default 8.0 (CREMA-D; the paper uses 4 on AVE, KS, MOSI).
    entropy_floor: in [0, 1), default 0.3.
    uncertainty: "entropy" (default, classification) or "variance": the regression
    version for Gaussian heads (``z_im = (mu_im, log sigma^2_im)``), where the batch
    mean of the predicted variance ``sigma^2`` takes the place of the entropy (both
    are the head's uncertainty: the more certain modality gets the larger ``q``) and
    ``d_m`` is the batch mean of ``|mu_m|`` (the log-variance is no logit). The rest
    of the rule is unchanged. This mapping is ours: the released code has no
    regression version.

    Deliberate deviations from the released code: it computes ``w`` but never
    applies it (the gradient-scaling layer keeps the warm-up value 0.5 for both
    modalities); we apply ``1 + w_m`` as the paper intends. The released code's
    scaling layer sits inside the backbone, so it also scales the unimodal-loss
    gradient; ours scales only ``dL_mm/df_m``. Entropies use ``log_softmax``
    instead of ``log(p + 1e-16)``; sums of zero are guarded to give uniform weights.
    """

    def __init__(
        self, arl_temperature: float = 8.0, entropy_floor: float = 0.3, uncertainty: str = "entropy"
    ) -> None:
        self.arl_temperature = check.positive("arl_temperature", arl_temperature)
        self.entropy_floor = check.in_unit_interval("entropy_floor", entropy_floor)
        self.uncertainty = check.choice("uncertainty", uncertainty, UNCERTAINTIES)

    @property
    def reads(self) -> str:
        return "gaussian" if self.uncertainty == "variance" else "class_probabilities"

    def weights(self, logits: Sequence[Tensor], labels: Tensor | None) -> Tensor:
        tiny = torch.finfo(logits[0].dtype).tiny
        if self.uncertainty == "variance":
            if any(z.shape[1] != 2 for z in logits):
                raise ValueError(
                    "ARL with uncertainty='variance' reads Gaussian heads (mean, log-variance): "
                    f"logits of shape (batch, 2), got {[tuple(z.shape) for z in logits]}"
                )
            entropy = torch.stack([self.batch_mean(z[:, 1].exp(), dim=0) for z in logits])
            logits = [z[:, :1] for z in logits]  # d_m reads the means
        else:
            entropy = torch.stack([self.batch_mean(_entropy(z), dim=0) for z in logits])
        entropy = (entropy / entropy.sum().clamp_min(tiny)).clamp_min(self.entropy_floor)
        inverse = 1 / entropy.clamp_min(1e-12)
        certainty = inverse / inverse.sum()
        magnitude = torch.stack([self.batch_mean(z.abs(), dim=0).sum() for z in logits])
        magnitude = magnitude / magnitude.sum().clamp_min(tiny)
        others = (magnitude.sum() - magnitude) / (len(logits) - 1)
        return 1 + torch.softmax(self.arl_temperature * certainty * others, dim=0)
