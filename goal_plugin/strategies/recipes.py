"""The built-in recipes: magnitude step + direction step + harness defaults.

=============  ==============  ===========  ==============================================
name           magnitude       direction    harness defaults (source method's training)
=============  ==============  ===========  ==============================================
none           identity        identity     fused loss only; always on
none_uniloss   identity        identity     unimodal loss 1; always on
al             AL (T)          identity     unimodal loss 1; unimodal-head logits; always on
go             identity        GO           unimodal loss 1; always on
goal           AL (T)          GO           unimodal loss 1; unimodal-head logits; always on
ogm            OGM (alpha)     identity     fused loss only; fusion-slice logits; epochs 0-50
ogm_ge         OGM (alpha)     identity     as ogm, plus GE noise after backward
ogm_go         OGM (alpha)     GO           as ogm
arl            ARL (T_arl)     identity     unimodal loss 4 (1 in warm-up); epochs 6-end
arl_go         ARL (T_arl)     GO           as arl
mmpareto       identity        identity     unimodal loss 1; MMPareto's step (gamma)
unimodal       -               -            one modality's encoder and head (modality)
pmr            identity        identity     fused loss; prototype losses (alpha, prototype_momentum); epochs 0-100
agm            identity        identity     fused loss; Shapley outputs of padded passes, coefficients (alpha, max_gap); epochs 0-19
mla            identity        identity     shared head, probes only; alternating steps (alpha_base, projector_update, entropy_scope)
grad_blending  identity        identity     unimodal loss 1; blended head losses (super_epoch, eps); every epoch
dnr            identity        identity     fused loss; encoders re-learnt after epochs 20, 40, 60 (move_lambda, reinit_epoch, reinit_num)
=============  ==============  ===========  ==============================================

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

from goal_plugin.methods.agm import AGMStep
from goal_plugin.methods.dnr import DNRStep
from goal_plugin.methods.grad_blending import GradientBlendingStep
from goal_plugin.methods.mla import MLAStep
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
def arl(*, arl_temperature: float = 8.0, entropy_floor: float = 0.3, uncertainty: str = "entropy") -> Strategy:
    """ARL (Wei, Luo, Luo, ICCV 2025) with its weight applied; ``uncertainty="variance"``
    is its regression version for Gaussian heads; see ``ARLModulation``."""
    return Strategy(ARLModulation(arl_temperature, entropy_floor, uncertainty), defaults=ARL_DEFAULTS)


@register_strategy("arl_go")
def arl_go(
    *,
    arl_temperature: float = 8.0,
    entropy_floor: float = 0.3,
    uncertainty: str = "entropy",
    space: str = "sample",
    eps: float = 1e-8,
) -> Strategy:
    """ARL weights, then GO on the scaled gradients."""
    return Strategy(
        ARLModulation(arl_temperature, entropy_floor, uncertainty),
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


# AGM's official loop (run/CREMAD_main.py, epochs counted from 1): CE of the fused output
# only (its networks have no unimodal heads; ours learn as probes), modulation while
# modulation_starts 0 <= epoch <= modulation_ends 20, i.e. the first 20 epochs (0-based
# 0-19); concatenation fusion (ConcatFusion).
AGM_DEFAULTS = HarnessDefaults(unimodal_loss_weight=0.0, modulation_starts=0, modulation_ends=19)


@register_strategy("agm")
def agm(*, alpha: float = 1.0, max_gap: float | None = None) -> Strategy:
    """AGM (Li et al., ICCV 2023; code lihong2303/AGM_ICCV2023): Shapley-style unimodal
    outputs from zero-padded forward passes, and per modality the coefficient
    ``exp(alpha * min(optimal_ratio - ratio, max_gap))`` on the gradient through its
    output; ``max_gap`` None is the official cap (10 for two modalities, 7 for three or
    more); see ``goal_plugin.methods.agm``."""
    return Strategy(defaults=AGM_DEFAULTS, training_method=AGMStep(alpha, max_gap))


# MLA's official loop (--gs_flag): the alternating losses through one shared head only,
# every epoch.
MLA_DEFAULTS = HarnessDefaults(unimodal_loss_weight=0.0, fusion="shared")


@register_strategy("mla")
def mla(*, alpha_base: float = 0.1, projector_update: str = "owm", entropy_scope: str = "batch") -> Strategy:
    """MLA (Zhang, Yoon, Bansal, Yao, CVPR 2024; code
    Cecile-hi/Multimodal-Learning-with-Alternating-Unimodal-Adaptation): one step per
    modality through a shared head whose weight gradient is projected by OWM with
    regulariser ``alpha_base ** (1 + b / N)`` (``projector_update="released"``: the
    released elementwise division), and entropy-weighted fusion of the modalities'
    logits (``entropy_scope="batch"`` as released, ``"sample"`` as in the paper's
    equation); see ``goal_plugin.methods.mla``."""
    return Strategy(defaults=MLA_DEFAULTS, training_method=MLAStep(alpha_base, projector_update, entropy_scope))


# Gradient-Blending's loop (BalanceBenchmark's GBlending trainer, which never reads
# its modulation window): the blended loss of the heads in every epoch. The unimodal
# losses must reach the encoders; their weights are the blend's, not this 1.
GRAD_BLENDING_DEFAULTS = HarnessDefaults(unimodal_loss_weight=1.0)


@register_strategy("grad_blending")
def grad_blending(*, super_epoch: int = 10, eps: float = 1e-12) -> Strategy:
    """Gradient-Blending (Wang, Tran, Feiszli, CVPR 2020; code facebookresearch/VMZ, which
    applies the weights, and GeWu-Lab/BalanceBenchmark's estimation): every
    ``super_epoch`` epochs from epoch 0, each head (every modality's unimodal head and
    the fused head) is probed for ``super_epoch`` epochs on a copy of the model, and the
    training loss is the heads' losses weighted by their generalisation over the square
    of their overfitting on the validation split (``eps`` floors the square). A
    ``super_epoch`` of at least the run's epochs estimates once (offline); see
    ``goal_plugin.methods.grad_blending``."""
    return Strategy(defaults=GRAD_BLENDING_DEFAULTS, training_method=GradientBlendingStep(super_epoch, eps))


# D&R's official loop (code/ours.py train_epoch): CE(fused) alone; the re-initialisations
# follow reinit_epoch / reinit_num, not the modulation window (which must start at 0).
DNR_DEFAULTS = HarnessDefaults(unimodal_loss_weight=0.0)


@register_strategy("dnr")
def dnr(
    *,
    move_lambda: float = 3.0,
    reinit_epoch: int = 20,
    reinit_num: int = 3,
    kmeans_seed: int = 0,
    kmeans_n_init: int = 10,
) -> Strategy:
    """D&R, Diagnosing and Re-learning (Wei, Li, Feng, Hu, ECCV 2024; code
    GeWu-Lab/Diagnosing_Relearning_ECCV2024): after every reinit_epoch-th epoch (at most
    reinit_num times) each encoder moves towards its initialisation by
    tanh(move_lambda * |purity gap|), the gap between the k-means purities of its training
    and validation features (kmeans_seed, kmeans_n_init); needs scikit-learn; see
    ``goal_plugin.methods.dnr``."""
    return Strategy(
        defaults=DNR_DEFAULTS,
        training_method=DNRStep(move_lambda, reinit_epoch, reinit_num, kmeans_seed, kmeans_n_init),
    )
