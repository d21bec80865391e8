"""What the heads predict, how they are trained and scored: classification, multi-label, regression.

A dataset states its ``task`` (``"classification"`` when it says nothing); the
engine builds every head (the unimodal heads and the fusion) with the task's
output width, trains them with the task's loss (the fused loss and, weighted by
the harness, the unimodal losses) and scores them with the task's metrics.

- ``classification``: K logits, cross-entropy; ``acc``, ``macro_f1``, and
  ``acc_<modality>`` from the unimodal heads; the best epoch by ``val_acc``.
- ``multilabel``: K logits, binary cross-entropy with logits (mean over samples
  and labels); a label is predicted where its sigmoid exceeds 0.5; ``micro_f1``,
  ``macro_f1``, ``weighted_f1``, ``samples_f1`` (scikit-learn's definitions: a
  label or sample without true or predicted positives counts F1 = 0), and
  ``micro_f1_<modality>``; the best epoch by ``val_micro_f1``.
- ``regression`` with ``regression_head: gaussian`` (default): each head gives
  a mean and a log-variance and is trained with the beta-NLL of Seitzer et al.
  (ICLR 2022, "On the Pitfalls of Heteroscedastic Uncertainty Estimation with
  Probabilistic Neural Networks", Eq. 4): ``0.5 (log s^2 + (y - mu)^2 / s^2)``
  per sample, multiplied by ``stop_gradient(s^2) ** beta`` (``beta_nll``, 0.5 as
  the authors recommend; 0 is the plain Gaussian NLL, 1 gives the mean the MSE
  gradient). ``regression_head: mse``: one output, mean squared error.
  Metrics: ``mae``, ``corr`` (Pearson), ``mae_<modality>``; for datasets whose
  targets are sentiment scores in [-3, 3] (CMU-MOSI / MOSEI) also
  ``acc2_has_zero`` / ``f1_has_zero`` (negative vs non-negative, every sample),
  ``acc2_non_zero`` / ``f1_non_zero`` (negative vs positive, samples scored 0
  left out), and ``acc7`` (scores and predictions clipped to [-3, 3] and
  rounded); F1 is weighted over the two classes, as the MulT / MMSA lineage
  reports it. The best epoch by ``val_mae`` (lowest).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from goal_plugin.engine.metrics import accuracy, macro_f1

TASKS = ("classification", "multilabel", "regression")
REGRESSION_HEADS = ("gaussian", "mse")
MULTILABEL_SCORES = ("micro_f1", "macro_f1", "weighted_f1", "samples_f1")
SENTIMENT_SCORES = ("acc2_has_zero", "f1_has_zero", "acc2_non_zero", "f1_non_zero", "acc7")


@dataclass(frozen=True)
class Task:
    name: str
    num_labels: int  # classes (classification, multilabel); 1 for regression
    regression_head: str = "gaussian"
    beta_nll: float = 0.5
    score_range: tuple[float, float] | None = None  # sentiment scores: the Acc-2 / Acc-7 metrics

    @property
    def outputs(self) -> int:
        """Width of every head."""
        if self.name != "regression":
            return self.num_labels
        return 2 if self.regression_head == "gaussian" else 1

    @property
    def heads_read(self) -> str:
        """What a magnitude step may read from the unimodal heads' outputs."""
        if self.name == "classification":
            return "class_probabilities"
        if self.name == "regression" and self.regression_head == "gaussian":
            return "gaussian"
        return "nothing"

    @property
    def selection(self) -> tuple[str, bool]:
        """(validation metric that picks the best epoch, higher is better)."""
        return {"classification": ("acc", True), "multilabel": ("micro_f1", True)}.get(self.name, ("mae", False))

    @property
    def score_names(self) -> tuple[str, ...]:
        """The names ``scores`` returns, in order."""
        if self.name == "classification":
            return ("acc", "macro_f1")
        if self.name == "multilabel":
            return MULTILABEL_SCORES
        return ("mae", "corr", *(SENTIMENT_SCORES if self.score_range is not None else ()))

    # ------------------------------------------------------------------ training
    def loss(self, outputs: Tensor, labels: Tensor) -> Tensor:
        if self.name == "classification":
            return F.cross_entropy(outputs, labels)
        if self.name == "multilabel":
            return F.binary_cross_entropy_with_logits(outputs, labels.to(outputs.dtype))
        target = labels.to(outputs.dtype)
        if self.regression_head == "mse":
            return F.mse_loss(outputs[:, 0], target)
        mean, log_variance = outputs[:, 0], outputs[:, 1]
        nll = 0.5 * (log_variance + (target - mean) ** 2 * torch.exp(-log_variance))
        if self.beta_nll:
            nll = nll * torch.exp(log_variance.detach() * self.beta_nll)
        return nll.mean()

    def correct(self, outputs: Tensor, labels: Tensor) -> Tensor:
        """Training-time count of correct predictions (classification), else 0."""
        if self.name == "classification":
            return (outputs.argmax(1) == labels).sum()
        return torch.zeros((), device=outputs.device)

    # ------------------------------------------------------------------ scoring
    def predict(self, outputs: Tensor) -> Tensor:
        if self.name == "classification":
            return outputs.argmax(1)
        if self.name == "multilabel":
            return (outputs > 0).to(torch.int64)  # sigmoid > 0.5
        return outputs[:, 0].float()

    def scores(self, predictions: Tensor, labels: Tensor) -> dict[str, float]:
        if self.name == "classification":
            return {"acc": accuracy(predictions, labels), "macro_f1": macro_f1(predictions, labels, self.num_labels)}
        if self.name == "multilabel":
            return multilabel_f1(predictions, labels.to(torch.int64))
        labels = labels.float()
        scores = {"mae": float((predictions - labels).abs().mean()), "corr": pearson(predictions, labels)}
        if self.score_range is not None:
            scores.update(sentiment_scores(predictions, labels, self.score_range))
        return scores

    def modality_score(self, predictions: Tensor, labels: Tensor) -> tuple[str, float]:
        """(name, value) of the score reported per unimodal head."""
        if self.name == "classification":
            return "acc", accuracy(predictions, labels)
        if self.name == "multilabel":
            return "micro_f1", multilabel_f1(predictions, labels.to(torch.int64))["micro_f1"]
        return "mae", float((predictions - labels.float()).abs().mean())


def _f1(true_positive: Tensor, predicted: Tensor, actual: Tensor) -> Tensor:
    """F1 = 2 TP / (predicted + actual), 0 where both are 0 (scikit-learn's zero_division=0)."""
    denominator = predicted + actual
    return torch.where(denominator > 0, 2 * true_positive / denominator.clamp_min(1), torch.zeros_like(denominator))


def multilabel_f1(predictions: Tensor, labels: Tensor) -> dict[str, float]:
    """Micro, macro, weighted (by support) and samples F1 of multi-hot rows (N, K)."""
    predictions, labels = predictions.double(), labels.double()
    true_positive = predictions * labels
    per_label = _f1(true_positive.sum(0), predictions.sum(0), labels.sum(0))
    support = labels.sum(0)
    micro = _f1(true_positive.sum(), predictions.sum(), labels.sum())
    per_sample = _f1(true_positive.sum(1), predictions.sum(1), labels.sum(1))
    weighted = (per_label * support).sum() / support.sum() if support.sum() > 0 else torch.tensor(0.0)
    return {
        "micro_f1": float(micro),
        "macro_f1": float(per_label.mean()),
        "weighted_f1": float(weighted),
        "samples_f1": float(per_sample.mean()),
    }


def pearson(predictions: Tensor, labels: Tensor) -> float:
    if len(labels) < 2 or float(predictions.std()) == 0 or float(labels.std()) == 0:
        return float("nan")
    return float(torch.corrcoef(torch.stack([predictions.double(), labels.double()]))[0, 1])


def _weighted_binary_f1(predictions: Tensor, labels: Tensor) -> float:
    scores = []
    for positive in (0, 1):
        p, y = predictions == positive, labels == positive
        scores.append((float(_f1((p & y).sum().double(), p.sum().double(), y.sum().double())), int(y.sum())))
    total = sum(count for _, count in scores)
    return sum(f1 * count for f1, count in scores) / total if total else float("nan")


def sentiment_scores(predictions: Tensor, labels: Tensor, score_range: tuple[float, float]) -> dict[str, float]:
    """Acc-2 and F1 in both conventions and Acc-7 (see the module docstring)."""
    low, high = score_range
    has_zero_pred, has_zero_true = (predictions >= 0).long(), (labels >= 0).long()
    kept = labels != 0
    non_zero_pred, non_zero_true = (predictions[kept] > 0).long(), (labels[kept] > 0).long()
    seven = lambda x: torch.round(x.clamp(low, high))
    return {
        "acc2_has_zero": accuracy(has_zero_pred, has_zero_true),
        "f1_has_zero": _weighted_binary_f1(has_zero_pred, has_zero_true),
        "acc2_non_zero": accuracy(non_zero_pred, non_zero_true),
        "f1_non_zero": _weighted_binary_f1(non_zero_pred, non_zero_true),
        "acc7": accuracy(seven(predictions), seven(labels)),
    }
