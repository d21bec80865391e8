"""What counts as one method: the strategy, split by settings that vary beside it.

Seeds are the replicate unit, so everything else that differs between trials
of one strategy on one (dataset, backbone) is a different method, never
averaged over: if ``goal`` ran at temperatures 0.4 and 1 on mfeat/mlp, the
methods are ``goal (T=0.4)`` and ``goal (T=1)``. A config column becomes part
of a strategy's label when it varies among that strategy's trials within some
(dataset, backbone); it then labels that strategy's trials everywhere, so a
row means the same method in every table. A setting tuned once per dataset
(one temperature per dataset) does not split the method.

Columns that say where or how a trial ran (``EXECUTION_KEYS``) never split.
A key a search tuned (``search_params``, see ``goal_plugin.analysis.replicates``)
reads ``tuned`` in the trials of that search (``mask_searched``): a tuned
method is one method whatever each seed chose. A search alone leaves the method
the strategy; a search beside a grid study of the same strategy is one more
method, ``goal (T=tuned)`` beside ``goal (T=0.5)`` and ``goal (T=1)``, never
pooled with them.
"""

from __future__ import annotations

import math

import pandas as pd

from goal_plugin.analysis.loading import BOOKKEEPING, TABLE_KEYS

EXECUTION_KEYS = frozenset(
    {"seed", "device", "num_workers", "diagnostics", "data_root", *BOOKKEEPING}
)
SHORT_NAMES = {"temperature": "T", "arl_temperature": "T_arl"}
TUNED = "tuned"  # a searched key's value in labels: each seed's search chose its own


def label_columns(trials: pd.DataFrame, config_columns: list[str]) -> dict[str, list[str]]:
    """Per strategy, the config columns that distinguish its methods."""
    candidates = [
        c
        for c in config_columns
        if c in trials.columns
        and c not in EXECUTION_KEYS
        and c not in TABLE_KEYS
        and c != "strategy"
    ]
    settings = mask_searched(trials, [*TABLE_KEYS, "strategy", *candidates])
    columns = {}
    for strategy, group in settings.groupby("strategy", sort=False):
        varied = group.groupby(list(TABLE_KEYS))[candidates].nunique(dropna=False).max()
        columns[strategy] = [c for c in candidates if varied.get(c, 1) > 1]
    return columns


def mask_searched(trials: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``trials[columns]`` with ``TUNED`` for each key a trial's own search tuned."""
    frame = trials[columns].copy()
    if "search_params" not in trials.columns:
        return frame
    for params, rows in trials.groupby("search_params", sort=False).groups.items():
        for name in set(str(params).split(",")) & set(columns):
            frame[name] = frame[name].astype(object)
            frame.loc[rows, name] = TUNED
    return frame


def method_labels(trials: pd.DataFrame, columns: dict[str, list[str]]) -> pd.Series:
    """``strategy`` or ``strategy (key=value, ...)`` for every trial; a searched key
    reads ``tuned`` (see ``mask_searched``). A unimodal baseline reads ``<modality> only``
    (``audio only``), as the papers' tables name it."""
    labels = trials["strategy"].astype(str).copy()
    settings = mask_searched(trials, all_label_columns(columns))
    for strategy, keys in columns.items():
        rows = trials["strategy"] == strategy
        heads = labels[rows]
        if strategy == UNIMODAL and UNIMODAL_KEY in trials.columns:
            heads = trials.loc[rows, UNIMODAL_KEY].astype(str) + " only"
            keys = [k for k in keys if k != UNIMODAL_KEY]
        labels[rows] = [
            f"{head} ({', '.join(f'{SHORT_NAMES.get(k, k)}={_format(v)}' for k, v in zip(keys, values))})"
            if keys else head
            for head, values in zip(heads, settings.loc[rows, keys].itertuples(index=False))
        ]
    return labels


UNIMODAL, UNIMODAL_KEY = "unimodal", "modality"  # the recipe of goal_plugin.strategies.recipes


def all_label_columns(columns: dict[str, list[str]]) -> list[str]:
    """Every column that is part of some strategy's labels, once."""
    return list(dict.fromkeys(c for strategy_columns in columns.values() for c in strategy_columns))


def method_order(trials: pd.DataFrame, columns: dict[str, list[str]]) -> list[str]:
    """Strategies in order of first appearance, each strategy's settings in increasing order.

    ``trials`` carries the ``method`` column from ``method_labels``.
    """
    keys = all_label_columns(columns)
    settings = trials
    if keys:
        # Settings in increasing order, a tuned method after its strategy's grid settings.
        tuned = mask_searched(trials, keys).eq(TUNED).any(axis=1)
        settings = trials.assign(_tuned=tuned).sort_values(["_tuned", *keys], kind="stable")
    strategy_of = settings.drop_duplicates("method").set_index("method")["strategy"]
    position = {strategy: i for i, strategy in enumerate(dict.fromkeys(trials["strategy"]))}
    return sorted(strategy_of.index, key=lambda m: position[strategy_of[m]])


def _format(value) -> str:
    if isinstance(value, float):
        return "none" if math.isnan(value) else f"{value:g}"
    return str(value)
