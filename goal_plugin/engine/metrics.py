"""Classification metrics and end-of-training diagnostics (linear probe, CCA)."""

from __future__ import annotations

import torch
from torch import Tensor


def accuracy(predictions: Tensor, labels: Tensor) -> float:
    return float((predictions == labels).double().mean()) if len(labels) else float("nan")


def macro_f1(predictions: Tensor, labels: Tensor, num_classes: int) -> float:
    """Unweighted mean of per-class F1 over the classes present in labels or predictions."""
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.float64)
    confusion.index_put_((labels.long(), predictions.long()), torch.ones(len(labels), dtype=torch.float64), accumulate=True)
    true_positive = confusion.diagonal()
    support = confusion.sum(dim=1)
    predicted = confusion.sum(dim=0)
    present = (support + predicted) > 0
    f1 = 2 * true_positive / (support + predicted).clamp_min(1)
    return float(f1[present].mean()) if present.any() else float("nan")


def linear_probe_accuracy(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    num_classes: int,
    *,
    l2: float = 1e-3,
    iterations: int = 100,
) -> float:
    """Test accuracy of a multinomial logistic regression on frozen features.

    Features are standardised with training statistics; the convex objective
    (cross-entropy + ``l2``/2 ||W||^2) is minimised by full-batch L-BFGS in
    float64 from zero, so the result is deterministic. Non-finite features give NaN.
    """
    if not (torch.isfinite(train_features).all() and torch.isfinite(test_features).all()):
        return float("nan")
    x_train = train_features.double()
    mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-8)
    x_train = (x_train - mean) / std
    x_test = (test_features.double() - mean) / std
    weight = torch.zeros(x_train.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe"
    )

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x_train @ weight + bias, train_labels.long())
        loss = loss + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        return accuracy((x_test @ weight + bias).argmax(1), test_labels)


def canonical_correlations(x: Tensor, y: Tensor, *, regularisation: float = 1e-3) -> Tensor:
    """Canonical correlations between two feature sets (rows = samples), descending.

    Ridge-regularised CCA: ``C_xx + r * tr(C_xx)/d * I``; the singular values of
    ``C_xx^-1/2 C_xy C_yy^-1/2`` are the correlations. Non-finite features give
    NaN correlations (the decompositions would not converge).
    """
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        return torch.full((min(x.shape[1], y.shape[1]),), float("nan"), dtype=torch.float64)
    x = x.double() - x.double().mean(0)
    y = y.double() - y.double().mean(0)
    n = max(len(x) - 1, 1)

    def inverse_sqrt(cov: Tensor) -> Tensor:
        ridge = regularisation * cov.trace().clamp_min(1e-12) / len(cov)
        values, vectors = torch.linalg.eigh(cov + ridge * torch.eye(len(cov), dtype=cov.dtype))
        return vectors @ torch.diag(values.clamp_min(1e-12).rsqrt()) @ vectors.T

    cxx, cyy, cxy = x.T @ x / n, y.T @ y / n, x.T @ y / n
    return torch.linalg.svdvals(inverse_sqrt(cxx) @ cxy @ inverse_sqrt(cyy)).clamp(0, 1)
