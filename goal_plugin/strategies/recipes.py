"""The built-in recipes: magnitude step + direction step + harness defaults.

============  ==============  ===========  ==============================================
name          magnitude       direction    harness defaults (source method's training)
============  ==============  ===========  ==============================================
none          identity        identity     fused loss only; always on
none_uniloss  identity        identity     unimodal loss 1; always on
al            AL (T)          identity     unimodal loss 1; unimodal-head logits; always on
go            identity        GO           unimodal loss 1; always on
goal          AL (T)          GO           unimodal loss 1; unimodal-head logits; always on
ogm           OGM (alpha)     identity     fused loss only; fusion-slice logits; epochs 0-50
ogm_ge        OGM (alpha)     identity     as ogm, plus GE noise after backward
ogm_go        OGM (alpha)     GO           as ogm
arl           ARL (T_arl)     identity     unimodal loss 4 (1 in warm-up); epochs 6-end
arl_go        ARL (T_arl)     GO           as arl
mmpareto      identity        identity     unimodal loss 1; MMPareto's step (gamma)
unimodal      -               -            one modality's encoder and head (modality)
pmr           identity        identity     fused loss; prototype losses (alpha, prototype_momentum); epochs 0-100
============  ==============  ===========  ==============================================

GOAL's recipes train the unimodal heads jointly (weight 1): AL reads their
logits (Eq. 3), which are meaningless untrained. ``none_uniloss`` is their
control: joint training with the same unimodal loss and no modulation, so that
a comparison with ``al``, ``go`` or ``goal`` measures the gradient modification
and not the extra loss (``none`` trains with the fused loss only). ``ogm_go``
and ``arl_go`` add GO after the magnitude step of OGM / ARL; ``ogm_go`` adds no
GE noise, which would undo the orthogonality that GO establishes. ``mmpareto``
changes how the step's gradients are computed (``goal_plugin.methods.mmpareto``,
through the engine's ``TrainingMethod`` hook), not the fusion gradients.
"""

from __future__ import annotations

from goal_plugin.methods.mmpareto import MMParetoStep
from goal_plugin.methods.pmr import PMRStep
from goal_plugin.registry import register_strategy
from goal_plugin.strategies.base import HarnessDefaults, Strategy
from goal_plugin.strategies.direction import GradientOrthogonalisation
from goal_plugin.strategies.hooks import GradientEnhancementNoise
from goal_plugin.strategies.magnitude import AdaptiveLeveraging, ARLModulation, OGMModulation

GOAL_DEFAULTS = HarnessDefaults(unimodal_loss_weight=1.0, logits_source="unimodal_head")
# OGM-GE's official loop: fused loss only, classifier-slice scores, modulation in
# epochs 0..50 of a 100-epoch schedule.
OGM_DEFAULTS = HarnessDefaults(
    unimodal_loss_weight=0.0, logits_source="fusion_slice", modulation_starts=0, modulation_ends=50
)
# ARL's released loop: gamma = 4 after a warm-up (epoch > 5, 0-based) trained with
# gamma = 1 and no modulation.
ARL_DEFAULTS = HarnessDefaults(
    unimodal_loss_weight=4.0,
    warmup_unimodal_loss_weight=1.0,
    logits_source="unimodal_head",
    modulation_starts=6,
)


@register_strategy("none")
def none() -> Strategy:
    """Plain joint training (the paper's "concat" baseline): gradients untouched."""
    return Strategy(defaults=HarnessDefaults(unimodal_loss_weight=0.0))


@register_strategy("none_uniloss")
def none_uniloss() -> Strategy:
    """Joint training with GOAL's unimodal loss (weight 1) and untouched gradients:
    the control that separates the unimodal loss from AL and GO."""
    return Strategy(defaults=GOAL_DEFAULTS)


@register_strategy("al")
def al(*, temperature: float = 1.0, uncertainty: str = "entropy") -> Strategy:
    """GOAL's adaptive leveraging only (Eq. 6-8); see ``AdaptiveLeveraging``
    (``uncertainty="variance"`` for regression heads)."""
    return Strategy(AdaptiveLeveraging(temperature, uncertainty), defaults=GOAL_DEFAULTS)


@register_strategy("go")
def go(*, space: str = "sample", eps: float = 1e-8) -> Strategy:
    """GOAL's gradient orthogonalisation only (Eq. 9-10, Algorithm 2)."""
    return Strategy(direction=GradientOrthogonalisation(space, eps), defaults=GOAL_DEFAULTS)


@register_strategy("goal")
def goal(
    *, temperature: float = 1.0, uncertainty: str = "entropy", space: str = "sample", eps: float = 1e-8
) -> Strategy:
    """GOAL = AL (Eq. 6-8) then GO (Eq. 9-10) on the leveraged gradients
    (``uncertainty="variance"``: AL for regression heads, see ``AdaptiveLeveraging``)."""
    return Strategy(
        AdaptiveLeveraging(temperature, uncertainty), GradientOrthogonalisation(space, eps), GOAL_DEFAULTS
    )


@register_strategy("ogm")
def ogm(*, alpha: float = 0.1) -> Strategy:
    """OGM (Peng et al., CVPR 2022) coefficients; see ``OGMModulation``."""
    return Strategy(OGMModulation(alpha), defaults=OGM_DEFAULTS)


@register_strategy("ogm_ge")
def ogm_ge(*, alpha: float = 0.1, noise_scope: str = "conv") -> Strategy:
    """OGM-GE: OGM plus Gaussian gradient enhancement after backward; call
    ``strategy.post_backward(model.named_parameters(), encoder_prefixes)``."""
    return Strategy(
        OGMModulation(alpha),
        defaults=OGM_DEFAULTS,
        parameter_hook=GradientEnhancementNoise(noise_scope),
    )


@register_strategy("ogm_go")
def ogm_go(*, alpha: float = 0.1, space: str = "sample", eps: float = 1e-8) -> Strategy:
    """OGM coefficients, then GO on the modulated gradients."""
    return Strategy(OGMModulation(alpha), GradientOrthogonalisation(space, eps), OGM_DEFAULTS)


@register_strategy("arl")
def arl(*, arl_temperature: float = 8.0, entropy_floor: float = 0.3) -> Strategy:
    """ARL (Wei, Luo, Luo, ICCV 2025) with its weight applied; see ``ARLModulation``."""
    return Strategy(ARLModulation(arl_temperature, entropy_floor), defaults=ARL_DEFAULTS)


@register_strategy("arl_go")
def arl_go(
    *,
    arl_temperature: float = 8.0,
    entropy_floor: float = 0.3,
    space: str = "sample",
    eps: float = 1e-8,
) -> Strategy:
    """ARL weights, then GO on the scaled gradients."""
    return Strategy(
        ARLModulation(arl_temperature, entropy_floor),
        GradientOrthogonalisation(space, eps),
        ARL_DEFAULTS,
    )


# MMPareto's official loop: loss_mm + sum_m loss_m (weight 1), every epoch.
MMPARETO_DEFAULTS = HarnessDefaults(unimodal_loss_weight=1.0)


@register_strategy("mmpareto")
def mmpareto(*, gamma: float = 1.5) -> Strategy:
    """MMPareto (Wei & Hu, ICML 2024; code GeWu-Lab/MMPareto_ICML2024): per encoder, the
    fused and unimodal gradients combined by the two-task min-norm rule and rescaled,
    times gamma; see ``goal_plugin.methods.mmpareto``."""
    return Strategy(defaults=MMPARETO_DEFAULTS, training_method=MMParetoStep(gamma))


@register_strategy("unimodal")
def unimodal(*, modality: str = "audio") -> Strategy:
    """A unimodal baseline: one encoder and its head trained on ``modality`` alone through
    the same harness (the paper's "audio only" / "visual only" rows); nothing is gated."""
    if not isinstance(modality, str) or not modality:
        raise ValueError(f"modality must name one of the dataset's modalities, got {modality!r}")
    return Strategy(defaults=HarnessDefaults(unimodal_loss_weight=0.0), only_modality=modality)


# PMR's official loop: CE(fused) plus the prototype losses inside epochs 0-100.
PMR_DEFAULTS = HarnessDefaults(unimodal_loss_weight=0.0, modulation_starts=0, modulation_ends=100)


@register_strategy("pmr")
def pmr(*, alpha: float = 1.0, prototype_momentum: float = 0.2) -> Strategy:
    """PMR (Fan et al., CVPR 2023; code fanyunfeng-bit/Modal-Imbalance-PMR): class
    prototypes of each modality's features (smoothed with ``prototype_momentum``, the
    official ``momentum_coef``; the optimiser's ``momentum`` is another key), the weaker
    modality's prototype cross-entropy weighted by alpha; see ``goal_plugin.methods.pmr``."""
    return Strategy(defaults=PMR_DEFAULTS, training_method=PMRStep(alpha, prototype_momentum))
