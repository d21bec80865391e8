"""``summarise``: the significance-tested summary table of a set of trials.

One row per (dataset, backbone, method, metric) with scope ``dataset``
(datasets and backbones in sorted order): n,
mean and sample std over seeds, and against the reference the difference of
means (method minus reference), its confidence interval at level 1 - alpha
(95 % by default), the test (paired t over seeds, or Welch when the seeds do
not match), p, Holm-adjusted p across the methods of that (dataset, backbone,
metric), and the seed win rate of the reference. Rows with scope
``across datasets`` (dataset and backbone ``all``) compare (dataset, backbone)
means with the Wilcoxon signed-rank test, Holm across methods, and count the
reference's wins, ties and losses. See ``goal_plugin.analysis.stats``.

The metrics by default follow the trials' task (see ``metrics.TASK_METRICS``).
Besides the requested metrics, the overhead metrics and, per (dataset,
backbone), the linear-probe accuracy of the weakest modality (the
``probe_acc_<modality>`` with the lowest mean over its trials: the modality
that imbalance starves) are summarised when the trials report them. Each
(dataset, backbone) keeps only its own weakest probe, so a probe column holds
one modality's number per unit and its across-datasets row pools only the
units where that modality is the weakest (a note lists them when datasets
differ in their weakest modality).

``significant`` means the reference is significantly better (p_holm < alpha,
in the metric's better direction, see ``metrics.higher_is_better``);
``significance_sign`` is +1 for that, -1 when the method is significantly
better than the reference, 0 otherwise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from goal_plugin._validation import closest_match
from goal_plugin.analysis import stats
from goal_plugin.analysis.errors import AnalysisError, output_folder
from goal_plugin.analysis.loading import TABLE_KEYS, Results, check_fractions
from goal_plugin.analysis.methods import (
    all_label_columns,
    label_columns,
    mask_searched,
    method_labels,
    method_order,
)
from goal_plugin.analysis.metrics import (
    OVERHEAD_METRICS,
    PROBE_PREFIX,
    default_metrics,
    higher_is_better,
    is_fraction,
    resolve_metrics,
)

DATASET_SCOPE, ACROSS_SCOPE = "dataset", "across datasets"
ALL = "all"
COLUMNS = [
    "scope",
    "dataset",
    "backbone",
    "metric",
    "higher_is_better",
    "method",
    "strategy",
    "is_reference",
    "n",
    "seeds",
    "mean",
    "std",
    "reference",
    "diff_vs_reference",
    "ci_low",
    "ci_high",
    "test",
    "statistic",
    "df",
    "n_pairs",
    "p_value",
    "p_holm",
    "significant",
    "significance_sign",
    "win_rate",
    "wins",
    "ties",
    "losses",
    "note",
]


@dataclass
class Summary:
    """The summary table with what is needed to render it."""

    table: pd.DataFrame
    reference: str
    alpha: float
    metrics: list[str]
    method_order: list[str]
    hyperparameters: dict[str, list[str]]  # per strategy, the columns in its method labels
    excluded: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    # Per method: trained with a unimodal loss (weight > 0)? None where the trials do not say.
    unimodal_loss: dict[str, bool | None] = field(default_factory=dict)
    # Per dataset: its evaluation protocol in words (``Results.protocols``), under every table.
    protocols: dict[str, str] = field(default_factory=dict)

    def to_terminal(self) -> str:
        from goal_plugin.analysis.tables import render_terminal

        return render_terminal(self)

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write summary.csv, tables.md and tables.tex into ``out_dir``; returns the paths."""
        from goal_plugin.analysis.tables import render_latex, render_markdown

        out = output_folder(out_dir)
        paths = [out / "summary.csv", out / "tables.md", out / "tables.tex"]
        self.table.to_csv(paths[0], index=False)
        paths[1].write_text(render_markdown(self), encoding="utf-8")
        paths[2].write_text(render_latex(self), encoding="utf-8")
        return paths


def summarise(
    results: Results,
    reference: str = "goal",
    metrics: tuple[str, ...] | list[str] | None = None,
    alpha: float = 0.05,
) -> Summary:
    """Significance-tested summary of ``results`` (see the module docstring).

    ``metrics`` may use short names (``acc`` = ``test_acc``); by default the
    metrics of the trials' tasks (``metrics.default_metrics``: accuracy and
    macro-F1 for classification, micro- and macro-F1 for multi-label, MAE,
    correlation and the sentiment scores for regression), each summarised where
    its task's trials report it. The overhead metrics ``time_per_sample_ms``
    and ``peak_memory_mb`` are added when the trials have them.
    """
    if not 0 < alpha < 1:
        raise AnalysisError(f"alpha must lie between 0 and 1, got {alpha}")
    trials = results.trials
    by_task = metrics is None
    if by_task:
        metrics = default_metrics(trials)
    elif not [m for m in metrics if str(m).strip()]:
        raise AnalysisError("no metric named: name at least one, e.g. acc or test_acc")
    metrics = resolve_metrics(metrics, trials.columns)
    # The task's metrics are summarised where its trials report them: not missing elsewhere.
    requested = [] if by_task else list(metrics)
    weakest = weak_probes(trials)
    probes = [m for m in dict.fromkeys(weakest) if m not in metrics]
    metrics += probes
    trials = _only_weak_probes(trials, weakest, probes)
    metrics += [m for m in OVERHEAD_METRICS if m in trials.columns and m not in metrics]
    _check_metric_values(trials, metrics)
    # A column named as a metric is never a setting, even where the reader took it for one.
    config_columns = [c for c in results.config_columns if c not in metrics]
    hyperparameters = label_columns(trials, config_columns)
    trials = trials.assign(method=method_labels(trials, hyperparameters))
    _refuse_one_method_per_trial(trials, hyperparameters)
    reference = _resolve_reference(trials, reference)
    reference_methods = _reference_methods(trials, reference)
    notes = list(results.notes)
    if len(set(weakest[weakest.isin(probes)])) > 1:
        notes.append(
            "probe columns: each (dataset, backbone) shows only its weakest modality's probe ("
            + "; ".join(f"{d}/{b}: {m}" for (d, b), m in weakest[weakest.isin(probes)].items())
            + "); across datasets, each probe over the units where it is the weakest"
        )
    for metric in metrics:
        # A metric added for the units that report it is not missing elsewhere.
        missing = trials[metric].isna()
        if metric not in requested:
            missing &= trials.groupby(list(TABLE_KEYS))[metric].transform("count") > 0
        lacking = int(missing.sum())
        if lacking:
            notes.append(f"{lacking} finished trial(s) lack {metric}: left out of its statistics")
    rows = []
    for metric in metrics:
        slim = trials[[*TABLE_KEYS, "method", "strategy", "seed", metric]]
        metric_rows = [
            row
            for keys, group in slim.groupby(list(TABLE_KEYS))
            for row in _dataset_rows(keys, group, metric, reference_methods, alpha, notes)
        ]
        rows += metric_rows + _across_rows(metric_rows, alpha)
    table = pd.DataFrame(rows, columns=COLUMNS).astype(
        {column: "Int64" for column in ("n_pairs", "wins", "ties", "losses")}
    )
    label_values = (
        mask_searched(trials, ["method", "strategy", *all_label_columns(hyperparameters)])
        .drop_duplicates("method")
        .set_index("method")
    )
    for column in reversed(all_label_columns(hyperparameters)):
        labelled = label_values["strategy"].isin(
            [s for s, cs in hyperparameters.items() if column in cs]
        )
        table.insert(
            COLUMNS.index("strategy") + 1,
            column,
            table["method"].map(label_values[column].where(labelled)),
        )
    return Summary(
        table=table,
        reference=reference,
        alpha=alpha,
        metrics=metrics,
        # The reference last, as in the paper's tables.
        method_order=sorted(
            method_order(trials, hyperparameters), key=lambda m: m in reference_methods
        ),
        hyperparameters=hyperparameters,
        excluded=results.excluded,
        notes=notes,
        unimodal_loss=_unimodal_loss(trials),
        protocols=dict(results.protocols),
    )


def weak_probes(trials: pd.DataFrame) -> pd.Series:
    """Per (dataset, backbone), the probe column of the modality with the lowest mean."""
    probes = [c for c in trials.columns if str(c).startswith(PROBE_PREFIX)]
    if not probes:
        return pd.Series(dtype=object)
    values = trials[probes].apply(pd.to_numeric, errors="coerce")
    means = values.groupby([trials[k] for k in TABLE_KEYS]).mean().dropna(how="all")
    return means.idxmin(axis=1, skipna=True) if len(means) else pd.Series(dtype=object)


def _only_weak_probes(trials: pd.DataFrame, weakest: pd.Series, probes: list[str]) -> pd.DataFrame:
    """``probes`` blanked wherever another modality is the weakest: a probe column never
    mixes the weak modality of one (dataset, backbone) with the strong one of another."""
    if not probes:
        return trials
    weak_of_trial = pd.MultiIndex.from_frame(trials[list(TABLE_KEYS)]).map(weakest.to_dict())
    return trials.assign(
        **{m: trials[m].where(weak_of_trial == m) for m in probes}  # NaN: left out of statistics
    )


def _check_metric_values(trials: pd.DataFrame, metrics: list[str]) -> None:
    """Numbers only; fractions where the metric is one (a column the reader took for a
    setting was not checked when it was read)."""
    for metric in metrics:
        values = pd.to_numeric(trials[metric], errors="coerce")
        text = trials.loc[values.isna() & trials[metric].notna(), metric]
        if len(text):
            raise AnalysisError(
                f"{metric} is not a number in {len(text)} trial(s), e.g. {text.iloc[0]!r} "
                f"({_where(trials.loc[text.index[0]])})"
            )
    check_fractions(trials, [m for m in metrics if is_fraction(m)])


def _where(row: pd.Series) -> str:
    return f"{row['experiment']}/{row['trial']}"


def _refuse_one_method_per_trial(trials: pd.DataFrame, columns: dict[str, list[str]]) -> None:
    """A setting that differs in every seed makes each trial its own method (n = 1 each):
    an unnamed metric or an unmarked search, never a study of that setting."""
    for (dataset, backbone, strategy), runs in trials.groupby(
        [*TABLE_KEYS, "strategy"], sort=False
    ):
        # Two trials that differ could be a two-point study that lost a seed each: not judged.
        if not columns.get(strategy) or runs["seed"].nunique() < 2 or len(runs) < 3:
            continue
        settings = mask_searched(runs, columns[strategy])
        differing = [c for c in columns[strategy] if settings[c].nunique(dropna=False) == len(runs)]
        if differing and runs["method"].value_counts().max() == 1:
            raise AnalysisError(
                f"every trial of {strategy} on {dataset}/{backbone} is its own method: "
                f"{', '.join(differing)} differ(s) in each of its {len(runs)} "
                "trials; a metric must be named as one (--metric), and the trials of a search need "
                "search_params and search_metric columns"
            )


def _unimodal_loss(trials: pd.DataFrame) -> dict[str, bool | None]:
    """From the weight in effect at the end (``final_unimodal_loss_weight``), else the config."""
    weights = pd.Series(math.nan, index=trials.index)
    for column in ("unimodal_loss_weight", "final_unimodal_loss_weight"):
        if column in trials.columns:
            values = pd.to_numeric(trials[column], errors="coerce")
            weights = values.where(values.notna(), weights)
    found = weights.groupby(trials["method"]).max()
    return {m: None if pd.isna(w) else bool(w > 0) for m, w in found.items()}


def _resolve_reference(trials: pd.DataFrame, reference: str) -> str:
    """The reference as given, or the one method / strategy that matches it up to case."""
    names = list(dict.fromkeys([*trials["method"].astype(str), *trials["strategy"].astype(str)]))
    if reference in names:
        return reference
    folded = [n for n in names if n.casefold() == reference.casefold()]
    if len(folded) == 1:
        return folded[0]
    close = closest_match(reference, names)
    hint = f"; did you mean {close!r}?" if close else ""
    raise AnalysisError(
        f"reference {reference!r} matches no method{hint} methods: "
        f"{', '.join(sorted(trials['method'].unique()))}"
    )


def _reference_methods(trials: pd.DataFrame, reference: str) -> set[str]:
    """Methods that can serve as reference: the exact label, else every label of the strategy."""
    if (trials["method"] == reference).any():
        return {reference}
    return set(trials.loc[trials["strategy"] == reference, "method"])


def _dataset_rows(keys, group, metric, reference_methods, alpha, notes) -> list[dict]:
    dataset, backbone = keys
    better_high = higher_is_better(metric)
    values = {
        method: pd.Series(
            runs[metric].to_numpy(dtype=float), index=runs["seed"].to_numpy()
        ).dropna()
        for method, runs in group.groupby("method", sort=False)
    }
    values = {method: seeds for method, seeds in values.items() if len(seeds)}
    if not values:
        return []  # nothing reports this metric here
    for method, seeds in values.items():
        repeated = seeds.index[seeds.index.duplicated()]
        if len(repeated):
            # One trial per replicate is what loading leaves: a repeat is a labelling fault.
            raise AnalysisError(
                f"{dataset}/{backbone}: seed {repeated[0]} occurs more than once in method "
                f"{method!r}; a seed counts once, never as two replicates"
            )
    strategy_of = dict(zip(group["method"], group["strategy"]))
    present_references = sorted(reference_methods & set(values))
    reference = present_references[0] if len(present_references) == 1 else None
    where = f"{dataset}/{backbone}, {metric}"
    if not present_references:
        notes.append(f"{where}: reference not present, no tests")
    elif reference is None:
        notes.append(
            f"{where}: reference is ambiguous ({'; '.join(present_references)}): no tests; "
            "name one of them as the reference"
        )
    rows = []
    for method, seeds in values.items():
        description = stats.describe(seeds)
        row = {
            "scope": DATASET_SCOPE,
            "dataset": dataset,
            "backbone": backbone,
            "metric": metric,
            "higher_is_better": better_high,
            "method": method,
            "strategy": strategy_of[method],
            "is_reference": method == reference,
            "n": description.n,
            "seeds": ",".join(map(str, sorted(seeds.index))),
            "mean": description.mean,
            "std": description.std,
            "reference": reference,
        }
        if reference is not None and method != reference:
            comparison = stats.compare_over_seeds(
                values[reference], seeds, higher_is_better=better_high, confidence=1 - alpha
            )
            row.update(_comparison_columns(comparison))
        rows.append(row)
    return _with_holm(rows, alpha)


def _across_rows(dataset_rows: list[dict], alpha: float) -> list[dict]:
    if not dataset_rows:
        return []
    table = pd.DataFrame(dataset_rows)
    metric, better_high = table["metric"].iloc[0], bool(table["higher_is_better"].iloc[0])
    unit_means = table.set_index(["dataset", "backbone", "method"])["mean"]
    references = table.loc[table["is_reference"].eq(True), ["dataset", "backbone", "method"]]
    # The reference's label may differ between units only if it was named by strategy.
    reference_means = unit_means.loc[list(references.itertuples(index=False, name=None))].droplevel(
        "method"
    )
    reference = "; ".join(dict.fromkeys(references["method"])) or None
    rows = []
    for method, group in table.groupby("method", sort=False):
        means = group.set_index(["dataset", "backbone"])["mean"]
        description = stats.describe(means)
        is_reference = bool(group["is_reference"].any())
        row = {
            "scope": ACROSS_SCOPE,
            "dataset": ALL,
            "backbone": ALL,
            "metric": metric,
            "higher_is_better": better_high,
            "method": method,
            "strategy": group["strategy"].iloc[0],
            "is_reference": is_reference,
            "n": description.n,
            "seeds": "",
            "mean": description.mean,
            "std": description.std,
            "reference": reference,
        }
        if reference is not None and not is_reference:
            comparison = stats.compare_over_units(
                reference_means, means, higher_is_better=better_high
            )
            row.update(_comparison_columns(comparison))
        rows.append(row)
    return _with_holm(rows, alpha)


def _comparison_columns(comparison: stats.Comparison) -> dict:
    columns = asdict(comparison)
    columns["diff_vs_reference"] = columns.pop("diff")
    return columns


def _with_holm(rows: list[dict], alpha: float) -> list[dict]:
    p_values = pd.Series([row.get("p_value", math.nan) for row in rows], dtype=float)
    adjusted = stats.holm(p_values)
    for row, p_holm in zip(rows, adjusted):
        row["p_holm"] = p_holm
        rejected = p_holm < alpha  # False for NaN
        if rejected:
            diff = row["diff_vs_reference"]
            reference_better = diff < 0 if row["higher_is_better"] else diff > 0
            row["significance_sign"] = 1 if reference_better else -1
        else:
            row["significance_sign"] = 0
        row["significant"] = row["significance_sign"] == 1
        if row["is_reference"]:
            row["note"] = "reference"
    return rows
