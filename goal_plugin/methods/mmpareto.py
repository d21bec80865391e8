"""MMPareto (Wei & Hu, "MMPareto: Boosting Multimodal Learning with Innocent
Unimodal Assistance", ICML 2024; code GeWu-Lab/MMPareto_ICML2024, ``code/MMPareto.py``
and ``code/min_norm_solvers.py`` at commit a339db39cc25b157df376b50bb894917dc6c01d6).

For one encoder (modality m), let ``G`` be the gradient of the fused loss and
``g`` the gradient of that modality's unimodal loss, both with respect to the
encoder's parameters (every parameter of the encoder flattened and concatenated,
as the official ``"concat"`` entry):

1. Conflict check: ``cos(G, g)`` (``F.cosine_similarity``). If ``cos > 0`` the
   weights are ``(w_G, w_g) = (0.5, 0.5)``.
2. Otherwise the two-task min-norm weights (``MinNormSolver._min_norm_element_from2``
   with ``x1 = G``, ``x2 = g``): ``c = argmin_{c in [0, 1]} ||c G + (1 - c) g||``,
   in closed form ``c = (<g, g> - <G, g>) / ||G - g||^2``; the boundary cases are
   replaced as in the official code: ``<G, g> >= <G, G>`` gives ``c = 0.999``,
   else ``<G, g> >= <g, g>`` gives ``c = 0.001`` (an interior ``c`` is not
   clipped). ``(w_G, w_g) = (c, 1 - c)``.
3. Per parameter tensor p (not per encoder): ``new_p = 2 w_G G_p + 2 w_g g_p``;
   ``diff = ||G_p + g_p|| / ||new_p||`` (the norm of the uniform-sum gradient the
   official code reads from ``param.grad`` after backward of
   ``loss_mm + sum_k loss_k``); the parameter's gradient becomes
   ``gamma * diff * new_p`` if ``diff > 1`` else ``gamma * new_p``. So the
   direction comes from the min-norm combination, the magnitude is at least the
   uniform sum's, and gamma (1.5) always multiplies.

With no conflict the result is ``gamma * (G + g)``. The official code rescales
only encoder parameters; the heads and the fusion module keep the plain gradient
of ``loss_mm + sum_k loss_k``.

Three or more modalities ("*" extension): encoder m receives gradient only from
the fused loss and its own unimodal loss (every other unimodal head reads only
its own modality's features), so each encoder stays a two-task problem and the
rule above applies per encoder unchanged; BalanceBenchmark's MMParetoTrainer
loops over modalities the same way. Regression: the rule reads only the two
losses' gradients, so it applies unchanged with regression losses.

Deliberate deviations from the official code:

- ``||G_p + g_p||`` is computed from the two gradients instead of from a third
  backward pass of the summed loss; the two agree up to float rounding whenever
  no other loss reaches the encoder (the case above), and it saves a backward.
- The official solver's inner products include the ``"concat"`` tensor besides
  the per-parameter tensors, so every inner product is counted twice; ``c`` is a
  ratio of inner products, so this changes nothing and we count once.
- Where ``new_p`` is zero (G and g exactly opposed with the min-norm point at 0,
  a Pareto-stationary point) the official ``diff`` is inf and the gradient NaN;
  we return zeros.
- The arithmetic runs in at least float32 with the inputs' device; weights are
  Python floats as in the official solver (which runs on the CPU).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from goal_plugin import _validation as check
from goal_plugin.methods.hook import StepLosses, TrainingMethod

FALLBACK_FUSED_WEIGHT = 0.999  # MinNormSolver: <G, g> >= <G, G>, the min-norm point is (almost) G
FALLBACK_UNIMODAL_WEIGHT = (
    0.001  # MinNormSolver: <G, g> >= <g, g>, the min-norm point is (almost) g
)


def min_norm_weight(fused_sq: float, cross: float, unimodal_sq: float) -> float:
    """Weight c of ``x1 = G`` minimising ``||c G + (1 - c) g||`` over c in [0, 1].

    ``fused_sq = <G, G>``, ``cross = <G, g>``, ``unimodal_sq = <g, g>``; the
    boundary cases return 0.999 / 0.001 as ``_min_norm_element_from2`` does.
    """
    if cross >= fused_sq:
        return FALLBACK_FUSED_WEIGHT
    if cross >= unimodal_sq:
        return FALLBACK_UNIMODAL_WEIGHT
    return -1.0 * ((cross - unimodal_sq) / (fused_sq + unimodal_sq - 2 * cross))


def _work(tensor: Tensor) -> Tensor:
    return tensor.detach().reshape(-1).to(torch.promote_types(tensor.dtype, torch.float32))


class MMPareto:
    """The MMPareto gradient rule for one encoder at a time (stateless).

    gamma: > 0, default 1.5 (``gamma=1.5`` in the official ``train_epoch``;
    BalanceBenchmark calls it ``alpha: 1.5``).
    """

    def __init__(self, gamma: float = 1.5) -> None:
        self.gamma = check.positive("gamma", gamma)

    def weights(self, fused: Tensor, unimodal: Tensor) -> tuple[float, float]:
        """``(w_G, w_g)`` for one encoder's flat fused and unimodal gradients."""
        fused, unimodal = _work(fused), _work(unimodal)
        if fused.shape != unimodal.shape:
            raise ValueError(
                f"fused and unimodal gradients must have the same size, got "
                f"{fused.numel()} and {unimodal.numel()}"
            )
        if F.cosine_similarity(fused, unimodal, dim=0) > 0:
            return 0.5, 0.5
        fused_sq = float(fused.dot(fused))
        cross = float(fused.dot(unimodal))
        unimodal_sq = float(unimodal.dot(unimodal))
        c = min_norm_weight(fused_sq, cross, unimodal_sq)
        return c, 1.0 - c

    def combine(self, fused: Tensor, unimodal: Tensor, weights: tuple[float, float]) -> Tensor:
        """One parameter's new gradient from its two gradients and the encoder's weights."""
        if fused.shape != unimodal.shape:
            raise ValueError(
                f"fused and unimodal gradients of a parameter must have the same shape, got "
                f"{tuple(fused.shape)} and {tuple(unimodal.shape)}"
            )
        work = torch.promote_types(fused.dtype, torch.float32)
        g_fused, g_uni = fused.detach().to(work), unimodal.detach().to(work)
        new = 2 * weights[0] * g_fused + 2 * weights[1] * g_uni
        new_norm = torch.linalg.vector_norm(new)
        diff = torch.linalg.vector_norm(g_fused + g_uni) / new_norm
        scale = torch.where(diff > 1, diff * self.gamma, torch.full_like(diff, self.gamma))
        result = torch.where(new_norm > 0, new * scale, torch.zeros_like(new))
        return result.to(fused.dtype)

    def encoder_gradients(self, pairs: Sequence[tuple[Tensor, Tensor]]) -> list[Tensor]:
        """New gradients for one encoder's parameters, given ``(G_p, g_p)`` per parameter.

        The weights come from the encoder's concatenated gradients; the rescale is
        per parameter, as the official loop over ``named_parameters`` does.
        """
        if not pairs:
            raise ValueError("an encoder needs at least one (fused, unimodal) gradient pair")
        fused = torch.cat([_work(g_fused) for g_fused, _ in pairs])
        unimodal = torch.cat([_work(g_uni) for _, g_uni in pairs])
        weights = self.weights(fused, unimodal)
        return [self.combine(g_fused, g_uni, weights) for g_fused, g_uni in pairs]

    def flat_gradient(self, fused: Tensor, unimodal: Tensor) -> Tensor:
        """The rule for an encoder seen as a single flat parameter tensor."""
        return self.combine(fused, unimodal, self.weights(fused, unimodal))

    def state_dict(self) -> dict[str, object]:
        """MMPareto keeps no state across steps."""
        return {}

    def load_state_dict(self, state: dict[str, object]) -> None:
        if state:
            raise ValueError(f"MMPareto keeps no state, got keys {sorted(state)}")


class MMParetoStep(TrainingMethod):
    """MMPareto as a training step (the engine's ``TrainingMethod`` hook).

    The step's gradients: each unimodal loss ``lambda * L_m`` and the fused loss
    ``L_mm`` are differentiated separately (M + 1 backward passes over the one
    forward; the official loop runs M + 2, the last one for ``||G_p + g_p||``,
    which ``MMPareto.combine`` computes from the two gradients instead). Encoder
    m's parameters get the MMPareto rule of ``(G, g)``: ``G`` from ``L_mm``, ``g``
    from ``lambda * L_m`` (the official loss has lambda = 1); every other
    parameter (heads, fusion) gets the plain gradient of
    ``L_mm + lambda * sum_m L_m``, as in the official code.
    """

    needs_unimodal_loss = True

    def __init__(self, gamma: float = 1.5) -> None:
        self.rule = MMPareto(gamma)

    def backward(self, step: StepLosses) -> None:
        model = step.model
        encoders = {m: [p for p in model.encoders[m].parameters() if p.requires_grad] for m in step.unimodal}
        in_encoders = {id(p) for params in encoders.values() for p in params}
        others = [p for p in model.parameters() if p.requires_grad and id(p) not in in_encoders]
        every = [p for params in encoders.values() for p in params] + others
        unimodal = {
            m: torch.autograd.grad(
                step.scale(step.unimodal_weight * loss), encoders[m] + others, retain_graph=True, allow_unused=True
            )
            for m, loss in step.unimodal.items()
        }
        fused = dict(zip(map(id, every), torch.autograd.grad(step.scale(step.fused), every, allow_unused=True)))
        for m, params in encoders.items():
            own = unimodal[m][: len(params)]
            pairs = [(_or_zeros(fused[id(p)], p), _or_zeros(g, p)) for p, g in zip(params, own)]
            for param, grad in zip(params, self.rule.encoder_gradients(pairs)):
                param.grad = grad
        for index, param in enumerate(others):
            grad = _or_zeros(fused[id(param)], param)
            for m, params in encoders.items():
                extra = unimodal[m][len(params) + index]
                if extra is not None:
                    grad = grad + extra
            param.grad = grad


def _or_zeros(grad: Tensor | None, param: Tensor) -> Tensor:
    return torch.zeros_like(param) if grad is None else grad
