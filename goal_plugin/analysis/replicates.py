"""One trial per replicate: the seed is the replicate unit of every statistic.

* A search (a sweep with a ``search`` block) samples several trials per seed;
  the tuned method (``goal``, or ``goal (T=tuned)`` beside a grid study of
  ``goal``'s temperature; see ``methods.mask_searched``) is represented per (experiment, dataset,
  backbone, strategy, seed, other settings) by the trial with the best search
  metric (``search_metric`` in ``search_mode``: the validation accuracy by
  default, never a test metric). The chosen values are reported in a note
  (mean ± sample std over seeds, or counts for non-numeric values); the
  searched keys never split a method.
* The same replicate, (dataset, backbone, method, seed), from two trials (two
  sweeps given together, a CSV beside the experiment it came from) would be
  pooled as two seeds: n doubles and p shrinks. It is an error naming both
  sources, unless a rule picks one: ``newest`` or ``oldest`` by the time of
  the trial's final report (``finished_at``).
"""

from __future__ import annotations

import math

import pandas as pd

from goal_plugin.analysis.errors import AnalysisError
from goal_plugin.analysis.loading import BOOKKEEPING, TABLE_KEYS
from goal_plugin.analysis.methods import EXECUTION_KEYS, SHORT_NAMES, mask_searched

DUPLICATE_RULES = ("error", "newest", "oldest")


def check_rule(rule: str) -> None:
    if rule not in DUPLICATE_RULES:
        raise AnalysisError(
            f"unknown duplicates rule {rule!r}; choose one of: {', '.join(DUPLICATE_RULES)}"
        )


def _settings(trials: pd.DataFrame, config_columns: list[str]) -> list[str]:
    """Config columns that may distinguish methods (as in ``methods.label_columns``)."""
    return [
        c
        for c in config_columns
        if c in trials.columns and c not in EXECUTION_KEYS and c not in (*TABLE_KEYS, "strategy")
    ]


def _replicate_keys(trials: pd.DataFrame, config_columns: list[str]) -> pd.DataFrame:
    """Columns that are equal exactly for trials of one replicate; searched values masked."""
    keys = mask_searched(
        trials, [*TABLE_KEYS, "strategy", "seed", *_settings(trials, config_columns)]
    )
    return keys.astype(object).where(keys.notna(), None)


def one_per_replicate(
    trials: pd.DataFrame, config_columns: list[str], rule: str, notes: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The trials, one per replicate; and every trial of the searches kept (``chosen``
    marks the representatives), for the figures."""
    trials, searched = _select_tuned(trials, config_columns, notes)
    trials = _resolve_duplicates(trials, config_columns, rule, notes)
    if not len(searched):
        return trials, searched
    kept = trials["search_group"].dropna()
    searched = searched[searched["search_group"].isin(kept)]
    notes += _choice_notes(searched[searched["chosen"]])
    return trials.drop(columns="search_group"), searched.drop(columns="search_group")


def _select_tuned(
    trials: pd.DataFrame, config_columns: list[str], notes: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Grid trials plus the chosen trial of every searched seed; and every search trial,
    each with the number of its search (``search_group``: one seed of one experiment)."""
    if "search_params" not in trials.columns or trials["search_params"].isna().all():
        return trials, pd.DataFrame()
    is_search = trials["search_params"].notna()
    search = trials[is_search].copy()
    keys = _replicate_keys(trials, config_columns)[is_search]
    search["search_group"] = (
        keys.assign(experiment=search["experiment"])
        .groupby(list(keys.columns) + ["experiment"], dropna=False, sort=False)
        .ngroup()
    )
    chosen = []
    for _, rows in search.groupby("search_group", sort=False):
        metric, mode = rows["search_metric"].iloc[0], rows["search_mode"].iloc[0]
        values = (
            pd.to_numeric(rows[metric], errors="coerce")
            if metric in rows.columns
            else pd.Series(math.nan, index=rows.index)
        )
        if values.notna().any():
            chosen.append(values.idxmax() if mode == "max" else values.idxmin())
            continue
        row = rows.iloc[0]
        notes.append(
            f"{row['strategy']} seed {row['seed']} on {row['dataset']}/{row['backbone']} "
            f"({row['experiment']}): no trial of its search reported {metric}; left out"
        )
    search["chosen"] = search.index.isin(chosen)
    grid = trials[~is_search]
    return pd.concat([grid, search.loc[chosen].drop(columns="chosen")]), search


def _choice_notes(chosen: pd.DataFrame) -> list[str]:
    notes = []
    for (strategy, dataset, backbone), rows in chosen.groupby(
        ["strategy", *TABLE_KEYS], sort=False
    ):
        names = str(rows["search_params"].iloc[0]).split(",")
        metric, mode = rows["search_metric"].iloc[0], rows["search_mode"].iloc[0]
        values = "; ".join(f"{SHORT_NAMES.get(n, n)} = {_spread(rows[n])}" for n in names)
        notes.append(
            f"{strategy} on {dataset}/{backbone}: {', '.join(names)} tuned per seed "
            f"({'highest' if mode == 'max' else 'lowest'} {metric} of its search); "
            f"test metrics of the chosen trials; chosen {values}"
        )
    return notes


def _spread(values: pd.Series) -> str:
    """Mean ± sample std of numeric choices over seeds, else each choice with its count."""
    numbers = pd.to_numeric(values, errors="coerce")
    n = len(values)
    if numbers.notna().all():
        std = f" ± {numbers.std(ddof=1):.3g}" if n > 1 else ""
        return f"{numbers.mean():.3g}{std} (over {n} seed(s))"
    counts = values.astype(str).value_counts()
    return ", ".join(f"{value} ({count}x)" for value, count in counts.items())


def _resolve_duplicates(
    trials: pd.DataFrame, config_columns: list[str], rule: str, notes: list[str]
) -> pd.DataFrame:
    """One trial per replicate: an error naming the sources, or the newest / oldest."""
    keys = _replicate_keys(trials, config_columns)
    group = keys.groupby(list(keys.columns), dropna=False, sort=False).ngroup()
    repeated = group.duplicated(keep=False)
    if not repeated.any():
        return trials
    copies = trials[repeated].assign(_replicate=group[repeated])
    if rule == "error":
        first = copies[copies["_replicate"] == copies["_replicate"].iloc[0]]
        row = first.iloc[0]
        raise AnalysisError(
            f"seed {row['seed']} of {row['strategy']} on {row['dataset']}/{row['backbone']} comes from "
            f"{len(first)} trials: {' and '.join(_source(r) for _, r in first.iterrows())} "
            f"({copies['_replicate'].nunique()} replicate(s) repeated in all); a seed counts once: "
            "give each experiment once, or keep one copy with --duplicates newest|oldest"
        )
    times = pd.to_numeric(copies["finished_at"], errors="coerce")
    if times.isna().any():
        row = copies[times.isna()].iloc[0]
        raise AnalysisError(f"{_source(row)} has no finish time: cannot tell the {rule} copy")
    order = times.sort_values(ascending=rule == "oldest", kind="stable")
    keep = copies.loc[order.index].drop_duplicates("_replicate").index
    dropped = copies.index.difference(keep)
    notes.append(
        f"{copies['_replicate'].nunique()} replicate(s) came from several trials: kept the "
        f"{rule} copy, left out {len(dropped)}: "
        + ", ".join(_source(trials.loc[i]) for i in dropped[:5])
        + (", ..." if len(dropped) > 5 else "")
    )
    return trials.drop(index=dropped)


def _source(row: pd.Series) -> str:
    trial = str(row["trial"])
    # A CSV row's trial name already says file and line.
    return trial if ":" in trial else f"{row[BOOKKEEPING[0]]}/{trial}"
