"""Each magnitude method beside itself with GO added (the paper's Figure 2c).

The pairs (``GO_PAIRS``, strategy without GO, strategy with it): AL and GOAL (=
AL + GO), OGM and OGM + GO, ARL and ARL + GO, and GO alone against its control
``none_uniloss`` (the unimodal loss without AL or GO). Within a (dataset,
backbone), a method of the first strategy pairs with the method of the second
that has the same settings (the same label after the strategy's name:
``al (T=0.5)`` with ``goal (T=0.5)``).

Per pair, the test metric of the unit's task (the first of ``metrics.TASK_METRICS``:
accuracy, micro-F1 or MAE) of each side over seeds: n, mean and the 95 %
t-interval of the mean (df = n - 1; none for one seed), and the difference with
GO minus without as the tables compute it (``stats.compare_over_seeds``: a
paired t-test when both ran the same seeds, Welch's otherwise).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from goal_plugin.analysis import stats
from goal_plugin.analysis.errors import AnalysisError
from goal_plugin.analysis.loading import TABLE_KEYS
from goal_plugin.analysis.metrics import TASK_METRICS, higher_is_better, is_fraction, trial_tasks

GO_PAIRS = (("al", "goal"), ("ogm", "ogm_go"), ("arl", "arl_go"), ("none_uniloss", "go"))
CONFIDENCE = 0.95
SIDES = ("without", "with")  # GO


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """``"al:goal,ogm:ogm_go"`` as [("al", "goal"), ("ogm", "ogm_go")]."""
    pairs = []
    for item in (part.strip() for part in text.split(",")):
        names = [name.strip() for name in item.split(":")]
        if len(names) != 2 or not all(names):
            raise AnalysisError(f"--pairs: {item!r} is not WITHOUT:WITH (e.g. ogm:ogm_go)")
        pairs.append((names[0], names[1]))
    return pairs


def pair_summary(trials: pd.DataFrame, pairs=None) -> pd.DataFrame:
    """One row per (dataset, backbone, pair of methods) found in ``trials`` (which carry
    the ``method`` labels): ``metric``, ``without`` / ``with`` (the methods), per side
    ``n_<side>``, ``mean_<side>``, ``low_<side>``, ``high_<side>`` (in the drawn scale:
    percent for accuracies and F1 scores), and ``diff``, ``diff_low``, ``diff_high``,
    ``test``, ``p_value``. ``pairs``: (strategy without GO, strategy with GO) pairs
    (default ``GO_PAIRS``, those present); a named pair of which a strategy ran
    nowhere, or never beside the other, is an ``AnalysisError``.
    """
    named = pairs is not None
    pairs = list(GO_PAIRS if pairs is None else pairs)
    strategies = set(trials["strategy"])
    if named:
        for pair in pairs:
            missing = [s for s in pair if s not in strategies]
            if missing:
                raise AnalysisError(
                    f"pair {pair[0]}:{pair[1]}: no finished trials of {', '.join(missing)}; the "
                    f"strategies found: {', '.join(sorted(map(str, strategies)))}"
                )
    tasks = trial_tasks(trials)
    rows = []
    for keys, unit in trials.groupby(list(TABLE_KEYS), sort=True):
        metric = _unit_metric(unit, tasks[unit.index[0]])
        if metric is None:
            continue
        for pair in pairs:
            for without, with_go in _matched_methods(unit, pair):
                rows.append(
                    {**dict(zip(TABLE_KEYS, keys)), **_compare(unit, metric, without, with_go)}
                )
    summary = pd.DataFrame(rows)
    if named:
        found = (
            set(zip(summary["strategy_without"], summary["strategy_with"]))
            if len(summary)
            else set()
        )
        for pair in pairs:
            if pair not in found:
                raise AnalysisError(
                    f"pair {pair[0]}:{pair[1]}: the two never ran in one (dataset, backbone) with "
                    "the same settings"
                )
    return summary


def _unit_metric(unit: pd.DataFrame, task: str) -> str | None:
    """The column of the task's first metric (``test_acc``, or a tidy CSV's ``acc``)."""
    metric = TASK_METRICS.get(task, TASK_METRICS["classification"])[0]
    return next((c for c in (metric, metric.removeprefix("test_")) if c in unit.columns), None)


def _matched_methods(unit: pd.DataFrame, pair: tuple[str, str]) -> list[tuple[str, str]]:
    """The (without, with) methods of ``pair`` in ``unit`` whose settings agree."""
    settings = [
        {
            m.removeprefix(strategy): m
            for m in dict.fromkeys(unit.loc[unit["strategy"] == strategy, "method"])
        }
        for strategy in pair
    ]
    return [(settings[0][s], settings[1][s]) for s in settings[0] if s in settings[1]]


def _compare(unit: pd.DataFrame, metric: str, without: str, with_go: str) -> dict:
    scale = 100.0 if is_fraction(metric) else 1.0
    sides = {}
    for side, method in zip(SIDES, (without, with_go)):
        runs = unit[(unit["method"] == method) & unit[metric].notna()]
        sides[side] = pd.Series(
            runs[metric].to_numpy(dtype=float) * scale, index=runs["seed"].to_numpy(), name=method
        )
    comparison = stats.compare_over_seeds(
        sides["without"],
        sides["with"],
        higher_is_better=higher_is_better(metric),
        confidence=CONFIDENCE,
    )
    row = {
        "metric": metric,
        "without": without,
        "with": with_go,
        "strategy_without": unit.loc[unit["method"] == without, "strategy"].iloc[0],
        "strategy_with": unit.loc[unit["method"] == with_go, "strategy"].iloc[0],
    }
    for side, values in sides.items():
        description = stats.describe(values)
        half = math.nan
        if description.n >= 2:
            half = (
                scipy_stats.t.ppf((1 + CONFIDENCE) / 2, description.n - 1)
                * description.std
                / np.sqrt(description.n)
            )
        row.update(
            {
                f"n_{side}": description.n,
                f"mean_{side}": description.mean,
                f"low_{side}": description.mean - half,
                f"high_{side}": description.mean + half,
            }
        )
    row.update(
        diff=comparison.diff,
        diff_low=comparison.ci_low,
        diff_high=comparison.ci_high,
        test=comparison.test or comparison.note,
        p_value=comparison.p_value,
    )
    return row
