"""Figures of a sweep, one set per (dataset, backbone), each as PNG and PDF.

* ``temperature_*``: test metrics against the temperature, per strategy that ran
  several temperatures there;
* ``curves_*``: validation accuracy per epoch, per method;
* ``weights_*``: the per-modality weights (``weight_<modality>``) per epoch;
* ``cosine_*``: histograms of the cosine between the modality gradients before
  and after the strategy, one row per method: the 20-bin counts over [-1, 1]
  summed over epochs and seeds, shown as fractions of all counted samples;
* ``diagnostics_*``: linear-probe accuracy per modality and mean CCA of the
  frozen encoders, per method.

Lines are means over seeds with a band of the 95 % t-interval of the mean
(df = n - 1; no band for one seed); bars carry the sample std. Methods differ
in marker and line style, histograms and bars in hatching, not in colour
alone, so the figures survive black-and-white printing. Margins are fixed in
inches rather than left to a layout engine, which would double the drawing
time. Uses the Agg backend; nothing is shown.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator
from scipy import stats

from goal_plugin.analysis.loading import TABLE_KEYS, Results
from goal_plugin.analysis.methods import label_columns, method_labels, method_order
from goal_plugin.analysis.metrics import display_name

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
LINESTYLES = ("-", "--", "-.", ":")
HATCHES = ("//", "\\\\", "..", "xx", "oo", "--", "++", "**")
CONFIDENCE = 0.95
COSINE_BINS = np.linspace(-1.0, 1.0, 21)
TEMPERATURE_METRICS = ("test_acc", "test_macro_f1")
STYLE = {"figure.dpi": 100, "savefig.dpi": 150, "font.size": 9, "legend.fontsize": 7}
CHAR_WIDTH_IN = 0.065  # of a 7-9 pt label character, for margins that fit the labels


def make_plots(results: Results, out_dir: str | Path) -> list[Path]:
    """Write every figure the data allows into ``out_dir``; returns the written paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    columns = label_columns(results.trials, results.config_columns)
    trials = results.trials.assign(method=method_labels(results.trials, columns))
    epochs = results.epochs
    if len(epochs):
        epochs = epochs.assign(method=method_labels(epochs, columns))
    order = method_order(trials, columns)
    styles = {method: i for i, method in enumerate(order)}
    paths: list[Path] = []
    with plt.rc_context(STYLE):
        for keys, unit in trials.groupby(list(TABLE_KEYS)):
            unit_epochs = epochs
            if len(epochs):
                unit_epochs = epochs[
                    (epochs[TABLE_KEYS[0]] == keys[0]) & (epochs[TABLE_KEYS[1]] == keys[1])
                ]
            figures = [
                ("temperature", _temperature_figure, (unit, columns, styles)),
                ("curves", _curves_figure, (unit_epochs, order, styles)),
                ("weights", _weights_figure, (unit_epochs, order, styles)),
                ("cosine", _cosine_figure, (unit_epochs, order)),
                ("diagnostics", _diagnostics_figure, (unit, order)),
            ]
            name = "_".join(_safe(str(k)) for k in keys)
            for kind, draw, arguments in figures:
                figure = draw(*arguments)
                if figure is not None:
                    figure.suptitle("/".join(map(str, keys)))
                    paths += _save(figure, out / f"{kind}_{name}")
    return paths


def _save(figure, stem: Path) -> list[Path]:
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in paths:
        figure.savefig(path)
    plt.close(figure)
    return paths


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "unspecified"


def _panels(
    count: int,
    *,
    width=3.6,
    height=2.6,
    left=0.65,
    right=0.2,
    bottom=0.5,
    top=0.45,
    gap=0.7,
    **kwargs,
):
    """``count`` panels side by side with margins in inches."""
    figure_width = left + right + count * width + (count - 1) * gap
    figure_height = bottom + top + height
    figure, axes = plt.subplots(
        1, count, figsize=(figure_width, figure_height), squeeze=False, **kwargs
    )
    figure.subplots_adjust(
        left=left / figure_width,
        right=1 - right / figure_width,
        bottom=bottom / figure_height,
        top=1 - top / figure_height,
        wspace=gap / width,
    )
    return figure, axes[0]


def _legend_margin(labels) -> float:
    return 0.6 + CHAR_WIDTH_IN * max(len(str(label)) for label in labels)


def _legend_outside(ax) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def _line_style(index: int) -> dict:
    return {
        "marker": MARKERS[index % len(MARKERS)],
        "linestyle": LINESTYLES[index % len(LINESTYLES)],
        "color": plt.get_cmap("tab10")(index % 10),
        "markersize": 4,
    }


def mean_band(values: pd.Series, by: pd.Series) -> pd.DataFrame:
    """Mean of ``values`` per value of ``by`` with the 95 % t-interval of the mean."""
    grouped = values.groupby(by).agg(["mean", "std", "count"])
    half = (
        stats.t.ppf((1 + CONFIDENCE) / 2, grouped["count"] - 1)
        * grouped["std"]
        / np.sqrt(grouped["count"])
    )
    half = half.where(grouped["count"] >= 2)
    return grouped.assign(low=grouped["mean"] - half, high=grouped["mean"] + half)


def _plot_band(ax, band: pd.DataFrame, label: str, style_index: int) -> None:
    style = _line_style(style_index)
    # About ten markers per line tell the methods apart; one per epoch only clutters.
    ax.plot(band.index, band["mean"], label=label, markevery=max(1, len(band) // 10), **style)
    ax.fill_between(
        band.index, band["low"], band["high"], color=style["color"], alpha=0.15, linewidth=0
    )


def _epoch_axis(ax) -> None:
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _temperature_figure(unit: pd.DataFrame, columns: dict[str, list[str]], styles: dict[str, int]):
    metrics = [m for m in TEMPERATURE_METRICS if m in unit.columns]
    swept = [
        s
        for s, keys in columns.items()
        if "temperature" in keys and unit.loc[unit["strategy"] == s, "temperature"].nunique() >= 2
    ]
    if not metrics or not swept:
        return None
    lines = []
    for strategy in swept:
        runs = unit[unit["strategy"] == strategy]
        # One line per setting of the strategy's other label columns: never averaged over.
        others = [c for c in columns[strategy] if c != "temperature"]
        for setting, line in runs.groupby(others, dropna=False) if others else [((), runs)]:
            label = ", ".join([strategy, *(f"{k}={v}" for k, v in zip(others, setting))])
            lines.append((label, line))
    figure, axes = _panels(len(metrics), right=_legend_margin([label for label, _ in lines]))
    temperatures = unit["temperature"].dropna()
    for ax, metric in zip(axes, metrics):
        for label, line in lines:
            band = mean_band(line[metric] * 100, line["temperature"])
            _plot_band(ax, band, label, styles[line["method"].iloc[0]])
        if temperatures.max() / max(temperatures.min(), 1e-12) >= 10:
            ax.set_xscale("log")
        ax.set_xlabel("temperature T")
        ax.set_ylabel(display_name(metric))
    _legend_outside(axes[-1])
    return figure


def _curves_figure(epochs: pd.DataFrame, order: list[str], styles: dict[str, int]):
    if "val_acc" not in epochs.columns or epochs["val_acc"].isna().all():
        return None
    methods = [m for m in order if m in set(epochs["method"])]
    figure, (ax,) = _panels(1, width=4.2, right=_legend_margin(methods))
    runs_of = dict(tuple(epochs.groupby("method")))
    for method in methods:
        runs = runs_of[method]
        _plot_band(ax, mean_band(runs["val_acc"] * 100, runs["epoch"]), method, styles[method])
    _epoch_axis(ax)
    ax.set_ylabel("validation accuracy (%)")
    _legend_outside(ax)
    return figure


def _weights_figure(epochs: pd.DataFrame, order: list[str], styles: dict[str, int]):
    weights = [c for c in epochs.columns if c.startswith("weight_") and c != "weight_decay"]
    weights = [c for c in weights if epochs[c].notna().any()]
    if not weights:
        return None
    methods = [m for m in order if m in set(epochs["method"])]
    figure, axes = _panels(len(weights), right=_legend_margin(methods), top=0.65, sharey=True)
    runs_of = dict(tuple(epochs.groupby("method")))
    for ax, column in zip(axes, weights):
        for method in methods:
            runs = runs_of[method].dropna(subset=[column])
            if len(runs):  # strategies that were inactive report no weights
                _plot_band(ax, mean_band(runs[column], runs["epoch"]), method, styles[method])
        ax.set_title(f"modality {column.removeprefix('weight_')}")
        _epoch_axis(ax)
    axes[0].set_ylabel("weight")
    _legend_outside(axes[-1])
    return figure


def cosine_histograms(epochs: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per method, the before / after bin counts summed over epochs and seeds."""
    if not {"cosine_hist_before", "cosine_hist_after"} <= set(epochs.columns):
        return {}
    histograms = {}
    for method, runs in epochs.groupby("method", sort=False):
        sums = [_sum_counts(runs[column]) for column in ("cosine_hist_before", "cosine_hist_after")]
        if all(s is not None for s in sums):
            histograms[method] = (sums[0], sums[1])
    return histograms


def _sum_counts(lists: pd.Series) -> np.ndarray | None:
    counts = [
        np.asarray(c, dtype=float)
        for c in lists
        if isinstance(c, list) and len(c) == len(COSINE_BINS) - 1
    ]
    return np.sum(counts, axis=0) if counts else None


def _cosine_figure(epochs: pd.DataFrame, order: list[str]):
    histograms = cosine_histograms(epochs)
    if not histograms:
        return None
    methods = [m for m in order if m in histograms]
    fractions = {m: [h / max(h.sum(), 1) for h in histograms[m]] for m in methods}
    peak = max(max(before.max(), after.max()) for before, after in fractions.values()) or 1.0
    figure, (ax,) = _panels(
        1,
        width=4.2,
        height=0.2 + 0.42 * len(methods),
        left=0.3 + _legend_margin(methods) - 0.6,
        right=_legend_margin(["before", "after"]),
    )
    # One row per method (first on top), heights scaled to the tallest bin of all rows.
    for row, method in enumerate(reversed(methods)):
        before, after = fractions[method]
        ax.stairs(
            row + 0.9 * before / peak,
            COSINE_BINS,
            baseline=row,
            fill=True,
            hatch="///",
            facecolor="0.88",
            edgecolor="0.45",
            linewidth=0.6,
            label="before" if row == 0 else None,
        )
        ax.stairs(
            row + 0.9 * after / peak,
            COSINE_BINS,
            baseline=row,
            color="black",
            linewidth=1.4,
            label="after" if row == 0 else None,
        )
    ax.set_yticks(np.arange(len(methods)) + 0.3, list(reversed(methods)))
    ax.set_ylim(0, len(methods))
    ax.set_xlim(-1, 1)
    ax.set_xlabel(
        f"cosine between modality gradients (rows scaled to the tallest bin, {100 * peak:.0f} %)"
    )
    _legend_outside(ax)
    return figure


def _diagnostics_figure(unit: pd.DataFrame, order: list[str]):
    probes = [c for c in unit.columns if c.startswith("probe_acc_") and unit[c].notna().any()]
    panels = [("linear-probe accuracy (%)", probes, 100)] if probes else []
    if "cca_mean" in unit.columns and unit["cca_mean"].notna().any():
        panels.append(("mean CCA", ["cca_mean"], 1))
    if not panels:
        return None
    methods = [m for m in order if m in set(unit["method"])]
    figure, axes = _panels(
        len(panels),
        width=max(2.6, 0.4 * len(methods) * max(len(probes), 1) ** 0.5),
        bottom=0.35 + CHAR_WIDTH_IN * 0.75 * max(map(len, methods)),
        top=0.7,
    )
    by_method = unit.groupby("method")
    positions = np.arange(len(methods))
    for ax, (label, columns, scale) in zip(axes, panels):
        width = 0.8 / len(columns)
        for i, column in enumerate(columns):
            summary = by_method[column].agg(["mean", "std"]).reindex(methods)
            ax.bar(
                positions + (i - (len(columns) - 1) / 2) * width,
                summary["mean"] * scale,
                width,
                yerr=summary["std"].fillna(0) * scale,
                capsize=2,
                hatch=HATCHES[i % len(HATCHES)],
                facecolor="white",
                edgecolor="black",
                label=column.removeprefix("probe_acc_"),
            )
        ax.set_xticks(positions, methods, rotation=40, ha="right")
        ax.set_ylabel(label)
        if len(columns) > 1:
            ax.legend(
                title="modality",
                loc="lower left",
                bbox_to_anchor=(0.0, 1.0),
                ncol=len(columns),
                frameon=False,
                borderaxespad=0.2,
            )
    return figure
