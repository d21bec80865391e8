"""Metric names: which columns are metrics, which direction is better, how to show them.

The trainer reports fractions for accuracies and F1 scores; tables show them
as percentages. Losses, errors (``mae``, ``mse``, ``rmse``, ``error``,
``err``), times and memory are better when lower; every other metric is better
when higher.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from goal_plugin.analysis.errors import AnalysisError

OVERHEAD_METRICS = ("time_per_sample_ms", "peak_memory_mb")
PROBE_PREFIX = "probe_acc_"  # the trainer's end-of-run linear probe per modality
# The trainer's per-epoch and final report names (engine.trainer); weight_decay is config.
_METRIC_COLUMN = re.compile(
    r"^(test|val|train|probe_acc|cca|best_val|cosine)_"
    r"|^weight_(?!decay$)"
    r"|_time_s$"
    r"|^(epoch|time_per_sample_ms|peak_memory_mb|conflict_fraction|modulating)$"
)
# Errors (MAE, MSE, error rates) as well: a regression table or another codebase's CSV
# must not rank the largest error best.
_LOWER_IS_BETTER = re.compile(r"(loss|_time_s|_ms|_mb|mae|mse|rmse|error|err)$")
_FRACTION = re.compile(r"(acc|f1)")
_DISPLAY_NAMES = {
    "acc": "Acc",
    "macro_f1": "Macro-F1",
    "time_per_sample_ms": "ms / sample",
    "peak_memory_mb": "Peak MB",
}


def is_metric_column(name: str) -> bool:
    """Whether a tidy-CSV column holds a reported metric rather than a config key."""
    return bool(_METRIC_COLUMN.search(str(name)))


def higher_is_better(metric: str) -> bool:
    return not _LOWER_IS_BETTER.search(metric)


def resolve_metrics(names: Iterable[str], columns: Iterable[str]) -> list[str]:
    """Full column names for ``names``; a short name ``acc`` means ``test_acc``."""
    available = list(columns)
    resolved, missing = [], []
    for name in names:
        match = next((c for c in (name, f"test_{name}") if c in available), None)
        if match is None:
            missing.append(name)
        elif match not in resolved:
            resolved.append(match)
    if missing:
        candidates = sorted(c for c in available if is_metric_column(c))
        raise AnalysisError(
            f"metric(s) not in the trials: {', '.join(missing)}; available: {', '.join(candidates) or 'none'}"
        )
    return resolved


def display_name(metric: str) -> str:
    if metric.startswith(PROBE_PREFIX):
        return f"{metric.removeprefix(PROBE_PREFIX)} probe (%)"
    short = metric.removeprefix("test_")
    name = _DISPLAY_NAMES.get(short, short)
    return f"{name} (%)" if is_fraction(metric) else name


def is_fraction(metric: str) -> bool:
    return bool(_FRACTION.search(metric))


def format_value(metric: str, value: float, scale: float | None = None) -> str:
    """Percent with two decimals for fractions; otherwise four significant digits of
    ``scale`` (default: the value itself), so that a std prints to the decimals of its mean."""
    if is_fraction(metric):
        return f"{100 * value:.2f}"
    magnitude = abs(value if scale is None else scale)
    digits = (
        3 - math.floor(math.log10(magnitude)) if magnitude > 0 and math.isfinite(magnitude) else 1
    )
    return f"{value:.{min(max(digits, 1), 6)}f}"
