"""Metric names: which columns are metrics, which direction is better, how to show them.

The trainer reports fractions for accuracies and F1 scores; tables show them
as percentages. Losses, errors (``mae``, ``mse``, ``rmse``, ``error``,
``err``), times and memory are better when lower, wherever the error's name
stands in the column (``test_mae``, ``best_val_mae``, ``test_mae_at_best_val``,
``test_mae_audio``); every other metric is better when higher.

Each trial's task (the ``task`` of the trainer's final report; a trial that
does not state one is taken for classification, or for the task whose scores
it reports) decides the metrics a table shows by default (``TASK_METRICS``);
``default_metrics`` takes them per task present, so a table that pools datasets
of different tasks shows each dataset its own task's metrics.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable

import pandas as pd

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
# An error word as a whole word of the name (prefixes test_ / best_val_, suffixes
# _at_best_val / _<modality> around it), or a unit at the end.
_LOWER_IS_BETTER = re.compile(r"(^|_)(loss|mae|mse|rmse|error|err)(_|$)|(_time_s|_ms|_mb)$")
_FRACTION = re.compile(r"(acc|f1)")
_DISPLAY_NAMES = {
    "acc": "Acc",
    "macro_f1": "Macro-F1",
    "micro_f1": "Micro-F1",
    "weighted_f1": "Weighted-F1",
    "samples_f1": "Samples-F1",
    "mae": "MAE",
    "corr": "Corr",
    "acc2_has_zero": "Acc-2 (has-zero)",
    "acc2_non_zero": "Acc-2 (non-zero)",
    "acc7": "Acc-7",
    "f1_has_zero": "F1 (has-zero)",
    "f1_non_zero": "F1 (non-zero)",
    "time_per_sample_ms": "ms / sample",
    "peak_memory_mb": "Peak MB",
}
AT_BEST_VAL = "_at_best_val"
TASK_COLUMN = "task"  # the trainer's final report (engine.tasks.TASKS; not imported: no torch here)
DEFAULT_TASK = "classification"
# The scores a table shows by default, per task (engine.tasks: the task's score names). A
# regression's sentiment scores (MOSI / MOSEI) only where the trials report them.
TASK_METRICS = {
    "classification": ("test_acc", "test_macro_f1"),
    "multilabel": ("test_micro_f1", "test_macro_f1"),
    "regression": (
        "test_mae",
        "test_corr",
        "test_acc2_has_zero",
        "test_acc2_non_zero",
        "test_acc7",
        "test_f1_has_zero",
        "test_f1_non_zero",
    ),
}
# The validation score that picks a run's best epoch, per task (engine.tasks.Task.selection).
SELECTION_METRICS = {"classification": "val_acc", "multilabel": "val_micro_f1", "regression": "val_mae"}


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


def task_metric_names() -> list[str]:
    """The short names (``acc``, ``mae``, ...) of every task's default metrics: what a
    tidy CSV's columns may be called (``metrics`` of ``load_results``)."""
    return list(dict.fromkeys(m.removeprefix("test_") for names in TASK_METRICS.values() for m in names))


def _column(trials: pd.DataFrame, metric: str) -> str | None:
    """The column holding ``metric`` (``test_acc``, or a tidy CSV's ``acc``)."""
    return next((c for c in (metric, metric.removeprefix("test_")) if c in trials.columns), None)


def trial_tasks(trials: pd.DataFrame) -> pd.Series:
    """Each trial's task: its ``task`` column where it states one, else the task whose
    scores it reports (``test_mae``: regression, ``test_micro_f1``: multilabel), else
    classification."""
    stated = trials[TASK_COLUMN] if TASK_COLUMN in trials.columns else pd.Series(None, index=trials.index)
    inferred = pd.Series(DEFAULT_TASK, index=trials.index, dtype=object)
    for task, score in (("multilabel", "test_micro_f1"), ("regression", "test_mae")):
        column = _column(trials, score)
        if column is not None:
            inferred[pd.to_numeric(trials[column], errors="coerce").notna()] = task
    known = stated.isin(list(TASK_METRICS))
    return stated.where(known, inferred).astype(object)


def default_metrics(trials: pd.DataFrame) -> list[str]:
    """The columns of every task's metrics among ``trials`` (``TASK_METRICS``), each where
    its task's trials report it; classification's when none is (so that the error names them).

    The tasks' lists are interleaved (the first of each, then the second, ...), so that
    the metrics of any one task keep their order: Micro-F1 before Macro-F1 beside Acc.
    """
    tasks = trial_tasks(trials)
    lists = []
    for task in (t for t in TASK_METRICS if (tasks == t).any()):
        columns = [_column(trials, metric) for metric in TASK_METRICS[task]]
        lists.append([c for c in columns if c is not None and trials.loc[tasks == task, c].notna().any()])
    found = [c for position in itertools.zip_longest(*lists) for c in position if c is not None]
    return list(dict.fromkeys(found)) or [m.removeprefix("test_") for m in TASK_METRICS[DEFAULT_TASK]]


def display_name(metric: str) -> str:
    """``test_acc2_non_zero`` -> ``Acc-2 (non-zero) (%)``, ``test_mae_at_best_val`` ->
    ``MAE @ best val``, ``best_val_mae`` -> ``best val MAE``, ``test_acc_text`` -> ``Acc text (%)``."""
    if metric.startswith(PROBE_PREFIX):
        return f"{metric.removeprefix(PROBE_PREFIX)} probe (%)"
    short, suffix, prefix = metric.removeprefix("test_"), "", ""
    if short.endswith(AT_BEST_VAL):
        short, suffix = short.removesuffix(AT_BEST_VAL), " @ best val"
    elif short.startswith("best_val_"):
        short, prefix = short.removeprefix("best_val_"), "best val "
    name = _DISPLAY_NAMES.get(short)
    if name is None:  # a per-modality score: <score>_<modality>
        base = max((n for n in _DISPLAY_NAMES if short.startswith(f"{n}_")), key=len, default=None)
        name = f"{_DISPLAY_NAMES[base]} {short.removeprefix(f'{base}_')}" if base else short
    name = f"{prefix}{name}{suffix}"
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
