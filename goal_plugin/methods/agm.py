"""AGM (Li, Li, Hu, Lei, Li, Zhou, "Boosting Multi-modal Model Performance with
Adaptive Gradient Modulation", ICCV 2023; code lihong2303/AGM_ICCV2023 at commit
5a65542c70b1c7c15c5df291e77fa9cf2bbb9549: ``model/CREMAD_net.py`` and
``run/CREMAD_main.py`` for two modalities, ``model/URFunny_net.py`` and
``run/URFunny_main.py`` for three).

Unimodal outputs (Shapley-style, ``GradMod.forward``): ``f(S)`` is the fused
model's output with the modalities outside S zero-padded (inputs replaced by
``torch.zeros_like``). For modality m of M,

    phi_m = sum_{S subset of N \\ {m}} |S|! (M - |S| - 1)! / M! * (f(S + {m}) - f(S)),

with ``f(empty) := 0``: the official two- and three-modality formulas, e.g.
``m_a = 0.5 * (total_out - pad_audio_out + pad_visual_out)``, leave the all-padded
pass out (the code computes it but never uses it). So ``sum_m phi_m = f(N)``,
and the fused output the loss reads is ``out = sum_m phi_m`` (``m_a + m_v``).
The 2^M - 1 passes with a non-empty S are needed; the padded ones run in eval
mode *with* autograd (only the full pass runs in train mode).

Coefficients (``train`` in ``run/*_main.py``): per batch, the score of modality m
is ``s_m = mean_i -log max(softmax(phi_m)[i, y_i], 1e-8)``; with
``k = M / (M - 1)``

    ratio_m         = exp(k * (mean_j s_j - s_m))
    optimal_ratio_m = exp(k * (mean_j S_j - S_m))
    coeff_m         = exp(alpha * min(optimal_ratio_m - ratio_m, max_gap))

where ``S_m`` is the running mean of all previous batches' ``s_m`` since the
start of training (``S <- S (t - 1) / t + s / t`` at iteration t, starting from
0, updated after the coefficient is computed; the official loop updates it in
every step, inside or outside the modulation window). For M = 2 this is the
official ``exp(score_v - score_a)``.
``coeff_m`` scales the gradient that flows back through ``phi_m`` (a full
backward hook on an identity module): ``modulated_output`` does the same.

alpha: >= 0, default 1.0 (``--alpha`` default in ``utils/config.py``; the README's
AV-MNIST example uses 2.5, BalanceBenchmark 0.1).
max_gap: > 0 or None (default): None takes the official cap, 10 for two
modalities (``run/CREMAD_main.py``) and 7 for three (``run/URFunny_main.py``).

Training (``AGMStep``, the ``agm`` recipe): inside the modulation window each
step runs the 2^M - 1 passes (the engine's own pass is ``f(N)``; a padded pass
keeps padding masks and labels and zeroes only the inputs), and the loss is the
fused loss through ``modulated_output``. The harness follows the official loop:
the fused loss only (AGM's networks have no unimodal heads, so ours learn as
probes on detached features), concatenation fusion, and the window of its
defaults ``modulation_starts 0 <= epoch <= modulation_ends 20`` over epochs
counted from 1, i.e. the first 20 epochs (0-based 0-19). Three or more
modalities: the same rule with every subset (the official three-modality
formulas are its M = 3 case).

Deliberate deviations: the 1e-8 floor on the true-class probability (two-modality
scripts) is used for three modalities too (``URFunny_main.py`` has none, so a
probability that underflows gives an infinite score there); the unused all-padded
pass is not run. Outside the modulation window the engine trains its plain step,
which is AGM's with every coefficient 1, and the running scores absorb only the
steps inside the window; the official loop runs the padded passes in every epoch,
so its running scores absorb every step, and after the window (it stops calling
``update_scale``) its hooks keep the last in-window coefficients. Most official
scripts also clip the gradient norm in the steps where an entry of the
classifier's weight gradient leaves [-c, c] (CREMA-D and AV-MNIST: c = 1, norm
1; UR-Funny: c = 5, norm 5; AVE: never); the engine clips only with
``grad_clip`` (in every step), unset by default. BalanceBenchmark's
AGMTrainer differs from the authors' code (it drops the ``f({m})`` term of phi_m,
flips the ratio's sign, scales parameter gradients after backward and caps the
gap at 7): we follow the authors.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from goal_plugin import _validation as check
from goal_plugin.methods.hook import StepLosses, TrainingMethod

SCORE_FLOOR = 1e-8  # official: probabilities below 1e-8 score as -log(1e-8)
OFFICIAL_MAX_GAP = {2: 10.0}  # run/CREMAD_main.py; three modalities: run/URFunny_main.py
OFFICIAL_MAX_GAP_MANY = 7.0

Subset = tuple[int, ...]


def present_subsets(num_modalities: int) -> list[Subset]:
    """Every non-empty subset of modality indices (sorted tuples), largest first.

    Each is one forward pass with the other modalities' inputs zero-padded; the
    first is the full (unpadded) pass.
    """
    check.integer("num_modalities", num_modalities, minimum=2)
    indices = range(num_modalities)
    return [
        s for size in range(num_modalities, 0, -1) for s in itertools.combinations(indices, size)
    ]


def shapley_weight(subset_size: int, num_modalities: int) -> float:
    """|S|! (M - |S| - 1)! / M!"""
    return (
        math.factorial(subset_size)
        * math.factorial(num_modalities - subset_size - 1)
        / math.factorial(num_modalities)
    )


def shapley_outputs(outputs: Mapping[Subset, Tensor], num_modalities: int) -> list[Tensor]:
    """phi_m for every modality from the fused outputs of the padded passes.

    ``outputs[S]`` is the fused output with only the modalities in S present
    (S a sorted tuple, every non-empty subset needed, see ``present_subsets``).
    Differentiable: gradients flow into every pass.
    """
    needed = present_subsets(num_modalities)
    missing = [s for s in needed if s not in outputs]
    if missing:
        raise ValueError(
            f"shapley_outputs needs the output of every non-empty subset; missing {missing}"
        )
    phis = []
    for m in range(num_modalities):
        others = [k for k in range(num_modalities) if k != m]
        phi = None
        for size in range(num_modalities):
            for rest in itertools.combinations(others, size):
                with_m = outputs[tuple(sorted(rest + (m,)))]
                gain = with_m - outputs[rest] if rest else with_m  # f(empty) := 0
                term = shapley_weight(size, num_modalities) * gain
                phi = term if phi is None else phi + term
        phis.append(phi)
    return phis


def shapley_from_passes(fused: Callable[[Subset], Tensor], num_modalities: int) -> list[Tensor]:
    """phi_m for every modality, calling ``fused(S)`` once per non-empty subset S.

    ``fused(S)`` must return the fused output with only the modalities in S
    present (the others' inputs zero-padded); the caller sets train mode for the
    full pass and eval mode for the padded ones, as the official ``GradMod`` does.
    """
    return shapley_outputs({s: fused(s) for s in present_subsets(num_modalities)}, num_modalities)


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; the incoming gradient times ``scale`` in backward."""

    @staticmethod
    def forward(ctx, tensor: Tensor, scale: float) -> Tensor:  # type: ignore[override]
        ctx.scale = scale
        return tensor.clone()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return grad * ctx.scale, None


def modulated_output(phis: Sequence[Tensor], coefficients: Sequence[float]) -> Tensor:
    """``sum_m phi_m`` whose backward multiplies the gradient reaching phi_m by coeff_m."""
    if len(phis) != len(coefficients):
        raise ValueError(f"got {len(coefficients)} coefficients for {len(phis)} modalities")
    out = None
    for phi, coefficient in zip(phis, coefficients):
        term = _ScaleGradient.apply(phi, float(coefficient))
        out = term if out is None else out + term
    return out


class AGMController:
    """AGM's running scores and coefficients (the only state AGM keeps).

    Call ``update`` once per training step with the step's phi_m (detached or
    not) and labels; it returns the coefficients for this step's backward and
    then folds the step's scores into the running means.
    """

    def __init__(
        self, num_modalities: int, alpha: float = 1.0, max_gap: float | None = None
    ) -> None:
        self.num_modalities = check.integer("num_modalities", num_modalities, minimum=2)
        self.alpha = check.non_negative("alpha", alpha)
        if max_gap is None:
            max_gap = OFFICIAL_MAX_GAP.get(num_modalities, OFFICIAL_MAX_GAP_MANY)
        self.max_gap = check.positive("max_gap", max_gap)
        self.running_scores = [0.0] * num_modalities
        self.num_updates = 0

    def scores(self, phis: Sequence[Tensor], labels: Tensor) -> list[float]:
        """Per-modality batch score ``mean_i -log max(p_i[y_i], 1e-8)`` (one device sync)."""
        if len(phis) != self.num_modalities:
            raise ValueError(
                f"got {len(phis)} unimodal outputs for {self.num_modalities} modalities"
            )
        index = labels.long().reshape(-1, 1)
        rows = []
        for phi in phis:
            if phi.dim() != 2 or phi.shape[0] != index.shape[0]:
                raise ValueError(
                    f"unimodal outputs must have shape ({index.shape[0]}, classes), got {tuple(phi.shape)}"
                )
            logits = phi.detach().to(torch.promote_types(phi.dtype, torch.float32))
            probability = torch.softmax(logits, dim=1).gather(1, index.to(phi.device))
            rows.append(-torch.log(probability.clamp_min(SCORE_FLOOR)).mean())
        return torch.stack(rows).tolist()

    def coefficients_from_scores(self, scores: Sequence[float]) -> list[float]:
        """The coefficients for batch scores ``scores`` under the current running scores."""
        k = self.num_modalities / (self.num_modalities - 1)
        mean = sum(scores) / self.num_modalities
        running_mean = sum(self.running_scores) / self.num_modalities
        coefficients = []
        for score, running in zip(scores, self.running_scores):
            ratio = math.exp(k * (mean - score))
            optimal_ratio = math.exp(k * (running_mean - running))
            coefficients.append(math.exp(self.alpha * min(optimal_ratio - ratio, self.max_gap)))
        return coefficients

    def update(self, phis: Sequence[Tensor], labels: Tensor) -> list[float]:
        """This step's coefficients; then the running scores absorb the step's scores."""
        scores = self.scores(phis, labels)
        coefficients = self.coefficients_from_scores(scores)
        iteration = self.num_updates + 1
        self.running_scores = [
            running * (iteration - 1) / iteration + score / iteration
            for running, score in zip(self.running_scores, scores)
        ]
        self.num_updates = iteration
        return coefficients

    def state_dict(self) -> dict[str, object]:
        return {"running_scores": list(self.running_scores), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict[str, object]) -> None:
        expected = {"running_scores", "num_updates"}
        if set(state) != expected:
            raise ValueError(f"AGM state needs keys {sorted(expected)}, got {sorted(state)}")
        scores = [float(s) for s in state["running_scores"]]  # type: ignore[union-attr]
        if len(scores) != self.num_modalities:
            raise ValueError(
                f"AGM state has {len(scores)} running scores for {self.num_modalities} modalities"
            )
        self.running_scores = scores
        self.num_updates = check.integer("num_updates", state["num_updates"], minimum=0)


class AGMStep(TrainingMethod):
    """AGM as a training method (the engine's ``TrainingMethod`` hook); classification only.

    In each step inside the modulation window, the engine's forward pass (train mode)
    is ``f(N)``; every other non-empty subset S of the modalities is one more pass of
    the step's batch with the inputs of the modalities outside S replaced by
    ``torch.zeros_like`` (padding masks and labels kept), in eval mode and with
    autograd, as ``GradMod.forward`` runs them. The coefficients come from the phi_m
    of this step and the running scores (``AGMController``), and the step's loss is
    the task's loss of ``modulated_output(phi, coeff)`` (numerically the fused loss)
    plus the unimodal heads' probe loss on detached features: AGM's networks have no
    unimodal heads, so its harness trains them as probes only (``heads_as_probes``).

    Outside the window the engine trains its plain step, which is AGM's step with
    every coefficient 1 (``sum_m phi_m = f(N)``, so the padded passes' gradients
    cancel), and the running scores do not absorb those steps. The official loop
    instead runs the padded passes in every epoch: its running scores absorb every
    step, and after the window its hooks keep the last in-window coefficients.
    """

    supported_tasks = ("classification",)
    heads_as_probes = True

    def __init__(self, alpha: float = 1.0, max_gap: float | None = None) -> None:
        self.alpha = check.non_negative("alpha", alpha)
        self.max_gap = None if max_gap is None else check.positive("max_gap", max_gap)
        self.controller: AGMController | None = None  # sized by the first step's modalities

    def backward(self, step: StepLosses) -> None:
        modalities = step.model.modalities
        if self.controller is None:
            self.controller = AGMController(len(modalities), self.alpha, self.max_gap)
        everything = tuple(range(len(modalities)))

        def fused(present: Subset) -> Tensor:
            if present == everything:
                logits = step.outputs.fused_logits
            else:
                padded = dict(step.batch)
                for index, modality in enumerate(modalities):
                    if index not in present:
                        padded[modality] = torch.zeros_like(step.batch[modality])
                logits = step.forward(padded, train=False).fused_logits
            # phi_m sums differences of outputs: under AMP take them in float32 at least
            return logits.to(torch.promote_types(logits.dtype, torch.float32))

        phis = shapley_from_passes(fused, len(modalities))
        coefficients = self.controller.update(phis, step.labels)
        loss = step.loss(modulated_output(phis, coefficients))
        step.scale(loss + step.unimodal_weight * sum(step.unimodal.values())).backward()

    def state_dict(self) -> dict[str, object]:
        if self.controller is None:
            return {}
        return {"num_modalities": self.controller.num_modalities, **self.controller.state_dict()}

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        if not state:
            self.controller = None
            return
        state = dict(state)
        num_modalities = check.integer(
            "num_modalities", state.pop("num_modalities", None), minimum=2
        )
        self.controller = AGMController(num_modalities, self.alpha, self.max_gap)
        self.controller.load_state_dict(state)
