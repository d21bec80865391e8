"""PMR (Fan, Xu, Wang, Wang, Wang, Sun, "PMR: Prototypical Modal Rebalance for
Multimodal Learning", CVPR 2023; code fanyunfeng-bit/Modal-Imbalance-PMR at commit
3615e48983555089b0e693380087617c3797a641, ``main_Prototype_grad.py``).

Prototypes (``calculate_prototype``): with the model in eval mode and without
gradients, the class mean of each modality's encoder features (the fusion
module's inputs) over the first ``max(1, n_batches // 10)`` training batches
(``sample_count >= all_num // 10``). They are computed once before training and
again after every epoch; after epoch e >= 1 they are smoothed as

    c_new = (1 - momentum) * class_mean + momentum * c_old

while before training and after epoch 0 the class mean is taken as is
(``if epoch <= 0``).

Prototype classifier: logits ``-||f_i - c_k||_2`` (Euclidean distance,
``EU_dist``); the prototype loss of modality m is ``CE(-d_m, y)`` and its score
``s_m = sum_i softmax(-d_m)[i, y_i]``.

Loss weights (``train_epoch``, two modalities): ``rho = s_0 / s_1``; if
``rho > 1`` the weights are ``(0, alpha)``, if ``rho < 1`` ``(alpha, 0)``, on a
tie ``(0, 0)``. The loss is ``CE(fused) + sum_m w_m * CE(-d_m, y)`` inside the
modulation window (epochs 0..100 by default, 0-based inclusive), ``CE(fused)``
outside it. The prototype loss reaches only modality m's encoder (prototypes are
constants). Inference uses the fused output.

alpha: >= 0, default 1.0 (``--alpha``; the README's scripts use 1.0 to 3.0,
BalanceBenchmark 0.6).
momentum: in [0, 1), default 0.2 (``--momentum_coef``; the scripts mostly use
0.0, BalanceBenchmark 0.5).
subset_divisor: integer >= 1, default 10 (``all_num // 10``); 1 uses every batch.

Three or more modalities ("*" extension, ours): ``w_m = alpha`` for every
modality whose prototype score is below the best modality's, 0 for the best
(and for all modalities on a tie). For two modalities this is exactly the rule
above. BalanceBenchmark's PMRTrainer replaces PMR for three modalities by an
OGM-GE-like gradient scaling; we keep the prototype losses. Regression: class
prototypes need classes, so PMR does not apply to regression tasks.

Deliberate deviations: the distance's gradient is 0 where a feature equals its
prototype (``torch.cdist``; the official ``sqrt`` gives NaN there); a class with no sample in the subset keeps its previous
prototype (zeros before the first), where the official ``/= count_class[c]``
makes it NaN; class sums accumulate in float64. The paper's ratio-dependent
coefficient and prototype-entropy regularisation are not in the released
``main_Prototype_grad.py`` (its ``bash.sh`` calls a ``main_Proto_PER.py`` that is
not in the repository); we follow the released code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from goal_plugin import _validation as check
from goal_plugin.methods.hook import EpochStart, StepLosses, TrainingMethod


def _copy(tensors: Sequence[Tensor] | None) -> list[Tensor] | None:
    return None if tensors is None else [t.detach().clone() for t in tensors]


def prototype_logits(features: Tensor, prototypes: Tensor) -> Tensor:
    """(B, D) features, (C, D) prototypes -> (B, C) negative Euclidean distances."""
    if features.dim() != 2 or prototypes.dim() != 2 or features.shape[1] != prototypes.shape[1]:
        raise ValueError(
            f"features (batch, dim) and prototypes (classes, dim) must share dim, got "
            f"{tuple(features.shape)} and {tuple(prototypes.shape)}"
        )
    # cdist's gradient at a zero distance is 0, where sqrt's is infinite (the official
    # EU_dist then gives NaN: a feature equal to its prototype, e.g. a dead ReLU layer's).
    distances = torch.cdist(features, prototypes.to(features.dtype), compute_mode="donot_use_mm_for_euclid_dist")
    return -distances


def prototype_score(logits: Tensor, labels: Tensor) -> Tensor:
    """``sum_i softmax(logits)[i, y_i]`` (the score the ratio compares)."""
    return torch.softmax(logits, dim=1).gather(1, labels.long().reshape(-1, 1)).sum()


def loss_weights(scores: Sequence[float], alpha: float) -> list[float]:
    """alpha for each modality scoring below the best one, 0 for the best (and on ties)."""
    best = max(scores)
    return [alpha if score < best else 0.0 for score in scores]


class PMR:
    """Prototype bank and loss weights of PMR; see the module docstring.

    Prototype recomputation: ``start_prototypes()``, then ``accumulate(features,
    labels)`` for each of the first ``subset_batches(len(loader))`` batches
    (eval mode, no grad), then ``finish_prototypes(finished_epoch)`` with
    ``None`` before training and the 0-based epoch just finished afterwards.
    """

    def __init__(
        self,
        num_classes: int,
        alpha: float = 1.0,
        momentum: float = 0.2,
        subset_divisor: int = 10,
    ) -> None:
        self.num_classes = check.integer("num_classes", num_classes, minimum=2)
        self.alpha = check.non_negative("alpha", alpha)
        self.momentum = check.in_unit_interval("momentum", momentum)
        self.subset_divisor = check.integer("subset_divisor", subset_divisor, minimum=1)
        self.prototypes: list[Tensor] | None = None
        self._sums: list[Tensor] | None = None
        self._counts: Tensor | None = None

    # ------------------------------------------------------------ prototypes
    def subset_batches(self, num_batches: int) -> int:
        """How many leading training batches a recomputation reads."""
        check.integer("num_batches", num_batches, minimum=1)
        return max(1, num_batches // self.subset_divisor)

    def start_prototypes(self) -> None:
        self._sums = None
        self._counts = None

    def accumulate(self, features: Sequence[Tensor], labels: Tensor) -> None:
        """Add one batch of per-modality encoder features (B, D_m) to the class sums."""
        if len(features) < 2:
            raise ValueError(
                f"PMR needs at least 2 modalities, got {len(features)} feature tensors"
            )
        labels = labels.long().reshape(-1)
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"labels must lie in [0, {self.num_classes}), got {labels.tolist()}")
        device = features[0].device
        if self._sums is None:
            self._sums = [
                torch.zeros(self.num_classes, f.shape[1], dtype=torch.float64, device=device)
                for f in features
            ]
            self._counts = torch.zeros(self.num_classes, dtype=torch.float64, device=device)
        if len(features) != len(self._sums):
            raise ValueError(
                f"got {len(features)} feature tensors, earlier batches had {len(self._sums)}"
            )
        for index, (f, total) in enumerate(zip(features, self._sums)):
            if f.dim() != 2 or f.shape[0] != labels.shape[0] or f.shape[1] != total.shape[1]:
                raise ValueError(
                    f"features[{index}] must have shape ({labels.shape[0]}, {total.shape[1]}), "
                    f"got {tuple(f.shape)}"
                )
            total.index_add_(0, labels.to(device), f.detach().to(torch.float64))
        self._counts.index_add_(
            0, labels.to(device), torch.ones_like(labels, dtype=torch.float64, device=device)
        )

    def finish_prototypes(self, finished_epoch: int | None) -> None:
        """Turn the sums into prototypes; smooth with ``momentum`` after epoch >= 1."""
        if self._sums is None or self._counts is None:
            raise RuntimeError(
                "finish_prototypes needs at least one accumulate() call since start_prototypes()"
            )
        if finished_epoch is not None:
            check.integer("finished_epoch", finished_epoch, minimum=0)
        seen = (self._counts > 0).unsqueeze(1)
        previous = self.prototypes
        new = []
        for m, total in enumerate(self._sums):
            mean = total / self._counts.clamp_min(1).unsqueeze(1)
            old = previous[m].to(torch.float64) if previous is not None else torch.zeros_like(mean)
            if previous is not None and finished_epoch is not None and finished_epoch > 0:
                mean = (1 - self.momentum) * mean + self.momentum * old
            new.append(torch.where(seen, mean, old).to(torch.float32))
        self.prototypes = new
        self.start_prototypes()

    # ------------------------------------------------------------------ loss
    def prototype_terms(
        self, features: Sequence[Tensor], labels: Tensor
    ) -> tuple[list[Tensor], list[float]]:
        """Per-modality prototype losses ``CE(-d_m, y)`` and their weights ``w_m``."""
        if self.prototypes is None:
            raise RuntimeError(
                "PMR has no prototypes yet: compute them before the first training step"
            )
        if len(features) != len(self.prototypes):
            raise ValueError(
                f"got {len(features)} feature tensors for {len(self.prototypes)} modalities"
            )
        labels = labels.long().reshape(-1)
        losses, scores = [], []
        for f, prototypes in zip(features, self.prototypes):
            logits = prototype_logits(f, prototypes.to(f.device))
            losses.append(torch.nn.functional.cross_entropy(logits, labels.to(f.device)))
            scores.append(prototype_score(logits.detach(), labels.to(f.device)))
        return losses, loss_weights(torch.stack(scores).tolist(), self.alpha)

    def loss(self, fused_loss: Tensor, features: Sequence[Tensor], labels: Tensor) -> Tensor:
        """``fused_loss + sum_m w_m CE(-d_m, y)`` (use inside the modulation window)."""
        losses, weights = self.prototype_terms(features, labels)
        total = fused_loss
        for weight, term in zip(weights, losses):
            total = total + weight * term
        return total

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, object]:
        """Prototypes and an unfinished recomputation's class sums and counts (or None)."""
        return {
            "prototypes": _copy(self.prototypes),
            "sums": _copy(self._sums),
            "counts": None if self._counts is None else self._counts.detach().clone(),
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        expected = {"prototypes", "sums", "counts"}
        if set(state) != expected:
            raise ValueError(f"PMR state needs keys {sorted(expected)}, got {sorted(state)}")
        prototypes = state["prototypes"]
        if prototypes is not None:
            for index, p in enumerate(prototypes):  # type: ignore[union-attr]
                if not isinstance(p, Tensor) or p.dim() != 2 or p.shape[0] != self.num_classes:
                    shape = tuple(p.shape) if isinstance(p, Tensor) else type(p).__name__
                    raise ValueError(
                        f"PMR state prototypes[{index}] must be a ({self.num_classes}, dim) tensor, got {shape}"
                    )
        self.prototypes = _copy(prototypes)  # type: ignore[arg-type]
        self._sums = _copy(state["sums"])  # type: ignore[arg-type]
        counts = state["counts"]
        self._counts = None if counts is None else counts.clone()  # type: ignore[union-attr]


class PMRStep(TrainingMethod):
    """PMR as a training method (the engine's ``TrainingMethod`` hook): the prototypes
    are recomputed before every epoch from its first ``max(1, n // 10)`` training
    batches (before epoch e they are the class means after epoch e - 1, smoothed
    for e >= 2, as ``finish_prototypes`` says), and a step's loss is the engine's
    (fused loss, plus the unimodal heads trained as probes on detached features,
    PMR's harness weight being 0) plus ``sum_m w_m CE(-d_m, y)``. Classification only.
    """

    supported_tasks = ("classification",)

    def __init__(self, alpha: float = 1.0, momentum: float = 0.2) -> None:
        self.alpha = check.non_negative("alpha", alpha)
        self.momentum = check.in_unit_interval("momentum", momentum)
        self.pmr: PMR | None = None

    def on_epoch_start(self, start: EpochStart) -> None:
        if self.pmr is None:
            self.pmr = PMR(start.num_classes, self.alpha, self.momentum)
        self.pmr.start_prototypes()
        for features, labels in start.features(self.pmr.subset_batches(start.num_batches)):
            self.pmr.accumulate(features, labels)
        self.pmr.finish_prototypes(None if start.epoch == 0 else start.epoch - 1)

    def backward(self, step: StepLosses) -> None:
        features = [step.features[m] for m in step.unimodal]  # modality order
        step.scale(self.pmr.loss(step.total, features, step.labels)).backward()

    def state_dict(self) -> dict[str, object]:
        return {} if self.pmr is None else {"num_classes": self.pmr.num_classes, **self.pmr.state_dict()}

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        if not state:
            self.pmr = None
            return
        state = dict(state)
        self.pmr = PMR(int(state.pop("num_classes")), self.alpha, self.momentum)
        self.pmr.load_state_dict(state)
