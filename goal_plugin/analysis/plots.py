"""Figures of a sweep: one figure per kind, with a panel group per (dataset, backbone).

Kinds (``KINDS``; files ``<kind>.png`` and ``<kind>.pdf``):

* ``temperature``: test metrics (the first two of each task's, see
  ``metrics.TASK_METRICS``) against the temperature, per strategy that ran
  several temperatures in that (dataset, backbone); one panel per metric; a
  grid study as a line of means over seeds, a search as one point per trial
  (marker per seed, filled where the search chose it), never joined;
* ``curves``: the validation score that picks the best epoch per epoch, per
  method (accuracy for classification, micro-F1 for multi-label, MAE for
  regression: the unit's task, see ``metrics.SELECTION_METRICS``); one panel;
* ``weights``: the per-modality weights (``weight_<modality>``) per epoch; one
  panel per modality (any number of them), all on one y scale;
* ``gradients``: per epoch, the fraction of conflicting modality pairs
  (``conflict_fraction``, over all pairs) and the mean cosine of every pair of
  modality gradients before and after the strategy
  (``cosine_before_<a>_<b>``, ``cosine_after_<a>_<b>``): one panel for the
  conflicts, then a before and an after panel per pair;
* ``cosine``: histograms of the cosine between the modality gradients before
  and after the strategy, one row per method: the 20-bin counts over [-1, 1]
  summed over epochs and seeds, shown as fractions of all counted samples and
  scaled to the tallest bin of the panel (its height is in the panel title);
* ``diagnostics``: linear-probe accuracy per modality and mean CCA of the
  frozen encoders, per method; one panel each.

The paper's figures, drawn when named (``PAPER_KINDS``):

* ``cca`` (Figure 2b): per epoch, the CCA between the modalities' features on
  the test split (the mean of the first 10 canonical correlations, which the
  trainer records every epoch as ``test_cca_mean``), per method; one panel, and
  with three or more modalities one more per pair (``test_cca_<a>_<b>``);
  ``cca_bands`` returns the lines;
* ``go_pairs`` (Figure 2c): each magnitude method beside itself with GO added
  (AL / GOAL, OGM / OGM + GO, ARL / ARL + GO, none_uniloss / GO), grouped bars
  of the unit's test metric with the difference above each pair; see
  ``goal_plugin.analysis.go_pairs``, and ``go_pair_summary`` for the bars;
* ``features`` (Figures 3 and 6, ``goal_plugin.analysis.feature_maps``): the
  fused features of trained models in two dimensions; it reads checkpoints, so
  it has its own function, ``draw_feature_maps``.

Layout: every (dataset, backbone) with something to show gets a group of
panels, each titled ``dataset/backbone``; the groups fill the rows of a grid in
sorted order, as many side by side as fit ``MAX_WIDTH_IN`` inches, at most
``ROWS_PER_PAGE`` rows per figure. More units than that are split evenly over
pages ``<kind>_p1.png``, ``<kind>_p2.png``, ... (and PDF). All panels of a
figure share the x axis (tick labels only under the lowest panel of each
column); where the quantity is the same everywhere (weights, the method rows
of the cosine histograms, probe accuracy, CCA) they share the y axis too, with
tick labels only in the first column where the panels are neighbours. Method
(and modality) styles are the same in every panel, so each figure has one
legend, right of the grid.

Lines are means over seeds with a band of the 95 % t-interval of the mean
(df = n - 1; no band for one seed); bars carry the sample std. Methods differ
in marker and line style, histograms and bars in hatching, not in colour
alone, so the figures survive black-and-white printing.

Speed (matplotlib's drawing of axes, ticks and text is most of the cost): few
figures with many panels rather than many figures; margins fixed in inches
rather than a layout engine; at most about four ticks per axis; one collection
per panel for the bands, bars and histogram rows; bare ``Figure`` objects (no
pyplot state, nothing shown); PNGs written from the Agg buffer without
Pillow's per-row filters; and no automatic garbage collection while drawing
(which would walk the loaded results again and again), one collection of the
young objects after each kind instead.
"""

from __future__ import annotations

import gc
import math
import struct
import zlib
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, MaxNLocator
from scipy import special

from goal_plugin.analysis.errors import output_folder
from goal_plugin.analysis.loading import BOOKKEEPING, TABLE_KEYS, Results
from goal_plugin.analysis.methods import (
    TUNED,
    label_columns,
    mask_searched,
    method_labels,
    method_order,
)
from goal_plugin.analysis.metrics import (
    SELECTION_METRICS,
    TASK_METRICS,
    display_name,
    higher_is_better,
    is_fraction,
    trial_tasks,
)

KINDS = ("temperature", "curves", "weights", "gradients", "cosine", "diagnostics")
PAPER_KINDS = ("cca", "go_pairs")  # the paper's Figures 2b and 2c: drawn when named
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
LINESTYLES = ("-", "--", "-.", ":")
HATCHES = ("//", "\\\\", "..", "xx", "oo", "--", "++", "**")
CONFIDENCE = 0.95
COSINE_BINS = np.linspace(-1.0, 1.0, 21)
TEMPERATURE_METRICS_PER_TASK = 2  # the first of each task's metrics (metrics.TASK_METRICS)
PROBE_PANEL, CCA_PANEL = "linear-probe accuracy (%)", "mean CCA"
MAX_WIDTH_IN = 16.0  # of the panels of one grid row, gaps included
ROWS_PER_PAGE = 6
STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.size": 9,
    "axes.titlesize": 9,
    "legend.fontsize": 8,
    "axes.titley": 1.0,  # a fixed title position: no search for the tick labels in its way
}
PNG_COMPRESSION = 1  # zlib level: a quarter larger files than level 6, half the time
CHAR_WIDTH_IN = 0.065  # of a 7-9 pt label character, for margins that fit the labels


def make_plots(
    results: Results,
    out_dir: str | Path,
    kinds: Iterable[str] | None = None,
    *,
    pairs: Iterable[tuple[str, str]] | None = None,
) -> list[Path]:
    """Write every figure the data allows into ``out_dir``; returns the written paths.

    ``kinds``: these of ``KINDS + PAPER_KINDS``, drawn in that order (default: ``KINDS``;
    the paper's figures are drawn when named).
    ``pairs``: the (without GO, with GO) strategy pairs of ``go_pairs`` (default: those of
    ``go_pairs.GO_PAIRS`` in the sweep; a named pair not in it is an ``AnalysisError``).
    """
    known = KINDS + PAPER_KINDS
    wanted = KINDS if kinds is None else (kinds,) if isinstance(kinds, str) else tuple(kinds)
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise ValueError(f"unknown figure kind(s): {', '.join(unknown)}; known: {', '.join(known)}")
    out = output_folder(out_dir)
    labelled = _labelled(results)
    trials, epochs, order = labelled.trials, labelled.epochs, labelled.order
    styles = {method: i for i, method in enumerate(order)}
    drawers = {
        "temperature": lambda: _temperature_figures(trials, labelled.searched, labelled.columns, styles),
        "curves": lambda: _curves_figures(epochs, order, styles, _selection_metrics(trials)),
        "weights": lambda: _weights_figures(epochs, order, styles),
        "gradients": lambda: _gradient_figures(epochs, order, styles),
        "cosine": lambda: _cosine_figures(epochs, order),
        "diagnostics": lambda: _diagnostics_figures(trials, order),
        "cca": lambda: _cca_figures(_cca_frame(epochs, order), order, styles),
        "go_pairs": lambda: _go_pair_figures(_go_pair_frame(trials, pairs)),
    }
    paths: list[Path] = []
    with mpl.rc_context(STYLE), _collection_after_each_kind():
        for kind in known:
            if kind in wanted:
                paths += _save_all(drawers[kind](), out / kind)
                gc.collect(0)  # the figures just saved: only young objects to look at
    return paths


@dataclass(frozen=True)
class Labelled:
    """A sweep's rows with their ``method`` labels (see ``goal_plugin.analysis.methods``)."""

    trials: pd.DataFrame
    epochs: pd.DataFrame
    searched: pd.DataFrame
    columns: dict[str, list[str]]  # per strategy, the config columns of its labels
    order: list[str]  # the methods in the order of the legends


def _labelled(results: Results) -> Labelled:
    columns = label_columns(results.trials, results.config_columns)
    trials = results.trials.assign(method=method_labels(results.trials, columns))
    epochs = results.epochs
    if len(epochs):
        # Per-epoch rows do not say what a search tuned: they take their trial's label.
        labels = trials[[*BOOKKEEPING, "method"]].drop_duplicates(list(BOOKKEEPING))
        epochs = epochs.merge(labels, on=list(BOOKKEEPING), how="left")
    searched = results.searched
    if len(searched):
        searched = searched.assign(method=method_labels(searched, columns))
    return Labelled(trials, epochs, searched, columns, method_order(trials, columns))


def _save_all(figures: list, stem: Path) -> list[Path]:
    """``stem`` for a single figure, ``stem_p1``, ``stem_p2``, ... for pages."""
    if len(figures) == 1:
        return _save(figures[0], stem)
    paths = []
    for page, figure in enumerate(figures, 1):
        paths += _save(figure, stem.with_name(f"{stem.name}_p{page}"))
    return paths


@contextmanager
def _collection_after_each_kind():
    """Pause the automatic garbage collection while drawing.

    Drawing makes many objects, the figures in reference cycles; the full
    collections this triggers would walk the loaded results again and again (up
    to a second on a large sweep). ``make_plots`` collects the young generation,
    where all of a saved figure is, after each kind instead.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _units(frame: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    """The rows of every (dataset, backbone), in sorted order."""
    if not len(frame):
        return []
    return [(tuple(keys), unit) for keys, unit in frame.groupby(list(TABLE_KEYS))]


def _save(figure, stem: Path) -> list[Path]:
    png, pdf = stem.with_suffix(".png"), stem.with_suffix(".pdf")
    dpi = mpl.rcParams["savefig.dpi"]
    figure.set_dpi(dpi)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    _write_png(png, np.asarray(canvas.buffer_rgba()), dpi)
    figure.savefig(pdf)
    return [png, pdf]


def _write_png(path: Path, rgba: np.ndarray, dpi: float) -> None:
    """The pixels as a PNG: RGB (RGBA if any pixel is see-through), no row filters.

    What ``savefig`` writes through Pillow, about four times faster: Pillow tries
    a filter per row, which on flat plot colours gains almost nothing.
    """
    opaque = bool((rgba[..., 3] == 255).all())
    pixels = rgba[..., :3] if opaque else rgba
    height, width, channels = pixels.shape
    rows = np.zeros((height, 1 + width * channels), dtype=np.uint8)  # filter byte 0: none
    rows[:, 1:] = pixels.reshape(height, -1)
    per_metre = round(dpi / 0.0254)

    def chunk(kind: bytes, data: bytes) -> bytes:
        checksum = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", checksum)

    software = f"Matplotlib version{mpl.__version__}, https://matplotlib.org/"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2 if opaque else 6, 0, 0, 0))
        + chunk(b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1))
        + chunk(b"tEXt", b"Software\0" + software.encode("latin-1"))
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), PNG_COMPRESSION))
        + chunk(b"IEND", b"")
    )


def _unit_name(keys: tuple) -> str:
    return "/".join(map(str, keys))


# ----------------------------------------------------------------------------- layout


class _Grid:
    """Groups of ``group`` panels filling the rows of a grid, over as many pages as needed.

    ``pages(title)`` yields ``(figure, groups, indices)``: per unit of the page (the
    ``indices`` into the caller's list) the array of its ``group`` axes. Draw into
    them, then call ``link(figure, groups)``, then set what the panels share
    (scale, locators, limits) on ``figure.axes[0]``.
    """

    def __init__(
        self,
        count: int,
        group: int,
        *,
        width=3.2,
        height=2.1,
        left=0.75,
        right=0.2,
        bottom=0.5,
        top=0.75,
        wgap=0.6,
        hgap=0.4,
        sharey: str | None = None,
    ):
        self.count, self.group = count, group
        self.width, self.height = width, height
        self.left, self.right, self.bottom, self.top = left, right, bottom, top
        self.wgap, self.hgap = wgap, hgap
        self.sharey = sharey  # None, "all" or "position" (the k-th panel of every group)
        fit = (MAX_WIDTH_IN + wgap) // (group * (width + wgap))
        self.per_row = int(max(1, min(count, fit)))
        page_count = math.ceil(count / (self.per_row * ROWS_PER_PAGE))
        # Even pages: 7 units on pages of 6 rows become 4 + 3, not 6 + 1.
        self.per_page = math.ceil(count / page_count)

    def pages(self, title: str):
        page_count = math.ceil(self.count / self.per_page)
        for page, start in enumerate(range(0, self.count, self.per_page), 1):
            n = min(self.per_page, self.count - start)
            figure, groups = self._figure(n)
            suffix = f" (page {page} of {page_count})" if page_count > 1 else ""
            figure.suptitle(title + suffix, x=self.left / figure.get_figwidth(), ha="left")
            yield figure, groups, range(start, start + n)

    def _figure(self, n: int):
        rows = math.ceil(n / self.per_row)
        cols = min(n, self.per_row) * self.group
        figure_width = self.left + self.right + cols * self.width + (cols - 1) * self.wgap
        figure_height = self.bottom + self.top + rows * self.height + (rows - 1) * self.hgap
        # A bare Figure, not pyplot's: nothing to register, show or close.
        figure = Figure(figsize=(figure_width, figure_height))
        axes = figure.subplots(rows, cols, squeeze=False)
        figure.subplots_adjust(
            left=self.left / figure_width,
            right=1 - self.right / figure_width,
            bottom=self.bottom / figure_height,
            top=1 - self.top / figure_height,
            wspace=self.wgap / self.width,
            hspace=self.hgap / self.height,
        )
        groups = []
        for slot in range(rows * self.per_row):
            row, column = divmod(slot, self.per_row)
            panels = axes[row, column * self.group : (column + 1) * self.group]
            if slot < n:
                groups.append(panels)
            else:  # the rest of the last row
                for ax in panels:
                    ax.remove()
        return figure, groups

    def link(self, figure, groups) -> None:
        """Share the axes once everything is drawn, and hide the inner tick labels.

        Sharing afterwards, not in ``subplots``: with shared axes every added
        artist that updates the view limits updates them for all panels at once.
        """
        panels = [ax for group in groups for ax in group]
        first = panels[0]
        for ax in panels[1:]:
            ax.sharex(first)
        bottom = set(map(id, _bottom_panels(figure)))
        for ax in panels:
            if id(ax) not in bottom:
                ax.xaxis.set_tick_params(which="both", labelbottom=False)
        if self.sharey == "all":
            for ax in panels[1:]:
                ax.sharey(first)
            for ax in panels:
                if ax.get_subplotspec().colspan.start > 0:
                    ax.yaxis.set_tick_params(which="both", labelleft=False)
        elif self.sharey == "position":  # panels apart: each keeps its tick labels
            for k in range(self.group):
                for group in groups[1:]:
                    group[k].sharey(groups[0][k])
        # Joining copies the limits known so far; let every panel's data count.
        for ax in panels[: self.group if self.sharey == "position" else 1]:
            ax.autoscale_view()


def _bottom_panels(figure) -> list:
    """The lowest panel of every column: the ones that carry x tick labels and label."""
    lowest: dict[int, tuple[int, object]] = {}
    for ax in figure.axes:
        spec = ax.get_subplotspec()
        if spec is None:
            continue
        row, column = spec.rowspan.start, spec.colspan.start
        if column not in lowest or lowest[column][0] < row:
            lowest[column] = (row, ax)
    return [ax for _, ax in lowest.values()]


def _xlabel(figure, label: str) -> None:
    for ax in _bottom_panels(figure):
        ax.set_xlabel(label)


def _legend_margin(labels) -> float:
    return 0.75 + 1.15 * CHAR_WIDTH_IN * max(len(str(label)) for label in labels)


def _figure_legend(figure, entries: dict, grid: _Grid, title: str | None = None) -> None:
    """One legend right of the grid, top aligned with the panels."""
    if not entries:
        return
    width, height = figure.get_size_inches()
    figure.legend(
        list(entries.values()),
        list(entries.keys()),
        loc="upper left",
        bbox_to_anchor=(1 - (grid.right - 0.15) / width, 1 - grid.top / height),
        borderaxespad=0.0,
        title=title,
    )


def _legend_entries(groups, order: list[str] | None = None) -> dict:
    entries = {}
    for panels in groups:
        for ax in panels:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                entries.setdefault(label, handle)
    if order is not None:
        rank = {label: i for i, label in enumerate(order)}
        entries = dict(sorted(entries.items(), key=lambda item: rank.get(item[0], len(rank))))
    return entries


def _line_style(index: int) -> dict:
    return {
        "marker": MARKERS[index % len(MARKERS)],
        "linestyle": LINESTYLES[index % len(LINESTYLES)],
        "color": mpl.colormaps["tab10"](index % 10),
        "markersize": 4,
    }


# ----------------------------------------------------------------------------- statistics


def mean_band(values: pd.Series, by: pd.Series) -> pd.DataFrame:
    """Mean of ``values`` per value of ``by`` with the 95 % t-interval of the mean."""
    return _with_interval(values.groupby(by).agg(["mean", "std", "count"]))


def _with_interval(grouped: pd.DataFrame) -> pd.DataFrame:
    half = (
        special.stdtrit(grouped["count"] - 1, (1 + CONFIDENCE) / 2)
        * grouped["std"]
        / np.sqrt(grouped["count"])
    )
    half = half.where(grouped["count"] >= 2)
    return grouped.assign(low=grouped["mean"] - half, high=grouped["mean"] + half)


def _bands(frame: pd.DataFrame, by: list[str], x: str, value: str, scale=1.0) -> dict:
    """``mean_band`` of ``value`` against ``x`` for every group of ``by`` at once.

    Returns ``{group key tuple: band}``; groups without a value are left out.
    """
    grouped = (
        (frame[value] * scale).groupby([frame[c] for c in [*by, x]]).agg(["mean", "std", "count"])
    )
    grouped = _with_interval(grouped[grouped["count"] > 0])
    return {
        tuple(key): band.droplevel(list(range(len(by))))
        for key, band in grouped.groupby(level=list(range(len(by))), sort=False)
    }


def _plot_bands(ax, lines) -> None:
    """Per ``(label, style index, band)`` the mean line and its interval as a shaded area.

    The areas of all lines are one collection, drawn below the lines like
    ``fill_between``'s would be, without its update of the view limits per call.
    """
    polygons, colours = [], []
    for label, style_index, band in lines:
        style = _line_style(style_index)
        x = band.index.to_numpy(dtype=float)
        # About six markers per line tell the methods apart (one per epoch only clutters
        # and costs drawing time), staggered so that lines on top of each other show all.
        step = max(1, round(len(x) / 6))
        markevery = (style_index % step, step)
        ax.plot(x, band["mean"].to_numpy(), label=label, markevery=markevery, **style)
        low, high = band["low"].to_numpy(dtype=float), band["high"].to_numpy(dtype=float)
        # No interval for one seed: the area stops where the interval does.
        finite = np.r_[False, np.isfinite(low) & np.isfinite(high), False]
        edges = np.flatnonzero(np.diff(finite.astype(int)))
        for start, stop in zip(edges[::2], edges[1::2]):
            xs, upper = x[start:stop], high[start:stop][::-1]
            polygons.append(np.column_stack([np.r_[xs, xs[::-1]], np.r_[low[start:stop], upper]]))
            colours.append(style["color"])
    if polygons:
        ax.add_collection(
            PolyCollection(polygons, facecolors=colours, alpha=0.15, linewidth=0), autolim=False
        )
        ax.update_datalim(np.concatenate(polygons))


class _FewTicks(MaxNLocator):
    """About four ticks at round numbers, none beyond the axis ends.

    ``MaxNLocator`` also returns a location beyond each end, and matplotlib builds
    (and lays out) a tick object for every location, drawn or not; ticks are the
    most expensive part of a panel.
    """

    def __init__(self, **kwargs):
        super().__init__(nbins=5, steps=[1, 2, 2.5, 5, 10], **kwargs)

    def __call__(self):
        low, high = sorted(self.axis.get_view_interval())
        locations = super().__call__()
        slack = 1e-9 * (high - low)
        return locations[(locations >= low - slack) & (locations <= high + slack)]


def _epoch_axis(figure) -> None:
    figure.axes[0].xaxis.set_major_locator(_FewTicks(integer=True))  # shared by all panels
    _xlabel(figure, "epoch")


def _few_y_ticks(ax) -> None:
    ax.yaxis.set_major_locator(_FewTicks())


# ----------------------------------------------------------------------------- figure kinds


def _temperature_figures(
    trials: pd.DataFrame,
    searched: pd.DataFrame,
    columns: dict[str, list[str]],
    styles: dict[str, int],
):
    """Grid studies: a line per strategy, mean over seeds with its 95 % CI. Searched
    temperatures are single trials, never averaged: a point per trial, a marker per
    seed, filled where the search chose the trial for its seed."""
    tasks = set(trial_tasks(trials))
    metrics = [
        m
        for task, names in TASK_METRICS.items()
        if task in tasks
        for m in names[:TEMPERATURE_METRICS_PER_TASK]
        if m in trials.columns
    ]
    metrics = list(dict.fromkeys(metrics))
    if not metrics:
        return []
    if len(searched) and "temperature" in searched.columns:
        searched = searched[
            searched["search_params"].str.split(",").map(lambda names: "temperature" in names)
        ]
    else:
        searched = pd.DataFrame()
    points_of = dict(_units(searched)) if len(searched) else {}
    # Lines are grid studies only: a searched temperature is a point, never a line's.
    if "temperature" in trials.columns:
        trials = trials[mask_searched(trials, ["temperature"])["temperature"].ne(TUNED)]
    drawn = []  # (unit name, [(line label, its methods, {metric: band})], searched trials)
    for keys, unit in _units(trials):
        swept = [
            s
            for s, names in columns.items()
            if "temperature" in names
            and unit.loc[unit["strategy"] == s, "temperature"].nunique() >= 2
        ]
        lines = []
        for strategy in swept:
            runs = unit[unit["strategy"] == strategy]
            # One line per setting of the strategy's other label columns: never averaged over.
            others = [c for c in columns[strategy] if c != "temperature"]
            for setting, line in runs.groupby(others, dropna=False) if others else [((), runs)]:
                label = ", ".join([strategy, *(f"{k}={v}" for k, v in zip(others, setting))])
                bands = {m: mean_band(line[m] * _percent(m), line["temperature"]) for m in metrics}
                lines.append((label, set(line["method"]), bands))
        points = points_of.get(keys, pd.DataFrame())
        if lines or len(points):
            drawn.append((_unit_name(keys), lines, points))
    if not drawn:
        return []
    # A line joins several methods (one per temperature): it takes the style of the first
    # of them anywhere, so that it looks the same in every panel, as the one legend says.
    style_of: dict[str, int] = {}
    for _, lines, _ in drawn:
        for label, methods, _ in lines:
            style_of[label] = min(style_of.get(label, len(styles)), *(styles[m] for m in methods))
    seeds = sorted(searched["seed"].unique()) if len(searched) else []
    temperatures = np.concatenate(
        [
            band.index.to_numpy(dtype=float)
            for _, lines, _ in drawn
            for *_, bands in lines
            for band in bands.values()
        ]
        + [points["temperature"].to_numpy(dtype=float) for *_, points in drawn if len(points)]
    )
    log = temperatures.max() / max(temperatures.min(), 1e-12) >= 10  # one scale: shared axes
    labels = list(dict.fromkeys(label for _, lines, _ in drawn for label, *_ in lines))
    entries_order = [*labels, *_searched_legend(searched, styles, seeds)]
    grid = _Grid(len(drawn), len(metrics), right=_legend_margin(entries_order), wgap=0.75)
    if not len(searched):
        title = "test metrics against the temperature (mean over seeds, 95 % CI)"
    elif not labels:
        title = "test metrics against the searched temperature (one point per trial, no mean)"
    else:
        title = (
            "test metrics against the temperature (lines: grid, mean over seeds, 95 % CI;"
            " points: searched trials)"
        )
    figures = []
    for figure, groups, indices in grid.pages(title):
        for panels, i in zip(groups, indices):
            name, lines, points = drawn[i]
            for ax, metric in zip(panels, metrics):
                _plot_bands(ax, [(label, style_of[label], b[metric]) for label, _, b in lines])
                _plot_searched(ax, points, metric, styles, seeds)
                ax.set_title(name)
                ax.set_ylabel(display_name(metric))
                _few_y_ticks(ax)
        grid.link(figure, groups)
        if log:
            figure.axes[0].set_xscale("log")
        else:
            figure.axes[0].xaxis.set_major_locator(_FewTicks())
        _xlabel(figure, "temperature T")
        entries = _legend_entries(groups, labels)
        entries.update(_searched_legend(searched, styles, seeds))
        _figure_legend(figure, entries, grid)
        figures.append(figure)
    return figures


def _percent(metric: str) -> float:
    """Fractions are drawn as percentages, as the tables show them."""
    return 100.0 if is_fraction(metric) else 1.0


def _plot_searched(ax, points: pd.DataFrame, metric: str, styles, seeds) -> None:
    """One point per searched trial: colour per strategy, marker per seed, filled if chosen."""
    if not len(points):
        return
    for (method, seed), runs in points.groupby(["method", "seed"], sort=False):
        colour = _method_colour(styles, method)
        for chosen, part in runs.groupby("chosen"):
            ax.plot(
                part["temperature"].to_numpy(dtype=float),
                part[metric].to_numpy(dtype=float) * _percent(metric),
                linestyle="none",
                marker=MARKERS[seeds.index(seed) % len(MARKERS)],
                markersize=5,
                color=colour,
                markerfacecolor=colour if chosen else "none",
            )


def _searched_legend(searched: pd.DataFrame, styles, seeds) -> dict:
    if not len(searched):
        return {}
    entries = {
        f"{method}, searched": Line2D(
            [], [], linestyle="none", marker="o", color=_method_colour(styles, method)
        )
        for method in dict.fromkeys(searched["method"])
    }
    for k, seed in enumerate(seeds):
        marker = MARKERS[k % len(MARKERS)]
        entries[f"seed {seed}"] = Line2D(
            [], [], linestyle="none", marker=marker, color="0.3", markerfacecolor="none"
        )
    entries["filled: chosen for its seed"] = Line2D(
        [], [], linestyle="none", marker="o", color="0.3"
    )
    return entries


def _method_colour(styles: dict[str, int], method: str):
    """The colour of the tuned method in the other figures."""
    return _line_style(styles.get(method, len(styles)))["color"]


def _selection_metrics(trials: pd.DataFrame) -> dict[tuple, str]:
    """Per (dataset, backbone), the validation score of its trials' task."""
    tasks = trial_tasks(trials)
    return {keys: SELECTION_METRICS[tasks[unit.index[0]]] for keys, unit in _units(trials)}


def _curves_figures(
    epochs: pd.DataFrame, order: list[str], styles: dict[str, int], selection: dict[tuple, str]
):
    drawn = []  # (unit name, validation score, [(method, band)])
    for keys, unit in _units(epochs):
        metric = selection.get(keys, SELECTION_METRICS["classification"])
        if metric not in unit.columns or unit[metric].isna().all():
            continue
        bands = _bands(unit, ["method"], "epoch", metric, _percent(metric))
        lines = [(m, bands[(m,)]) for m in order if (m,) in bands]
        if lines:
            drawn.append((_unit_name(keys), metric, lines))
    if not drawn:
        return []
    used = {m for *_, lines in drawn for m, _ in lines}
    methods = [m for m in order if m in used]
    grid = _Grid(len(drawn), 1, right=_legend_margin(methods))
    figures = []
    for figure, groups, indices in grid.pages(
        "validation score per epoch (mean over seeds, 95 % CI)"
    ):
        for (ax,), i in zip(groups, indices):
            name, metric, lines = drawn[i]
            _plot_bands(ax, [(method, styles[method], band) for method, band in lines])
            direction = "higher" if higher_is_better(metric) else "lower"
            ax.set_title(name)
            ax.set_ylabel(f"validation {display_name(metric.removeprefix('val_'))}, {direction} is better")
            _few_y_ticks(ax)
        grid.link(figure, groups)
        _epoch_axis(figure)
        _figure_legend(figure, _legend_entries(groups, methods), grid)
        figures.append(figure)
    return figures


def _weights_figures(epochs: pd.DataFrame, order: list[str], styles: dict[str, int]):
    unit_epochs = _units(epochs)
    weights = [c for c in epochs.columns if c.startswith("weight_") and c != "weight_decay"]
    weights = [c for c in weights if epochs[c].notna().any()]
    if not unit_epochs or not weights:
        return []
    bands = {c: _bands(epochs, [*TABLE_KEYS, "method"], "epoch", c) for c in weights}
    drawn = []  # (unit name, [(modality, [(method, band)])])
    for keys, unit in unit_epochs:
        panels = []
        for column in weights:
            if unit[column].notna().any():
                # Strategies that were inactive report no weights: no line.
                found = bands[column]
                lines = [(m, found[(*keys, m)]) for m in order if (*keys, m) in found]
                panels.append((column.removeprefix("weight_"), lines))
        if panels:
            drawn.append((_unit_name(keys), panels))
    return _panel_figures(
        drawn, order, styles, title="modality weights per epoch (mean over seeds, 95 % CI)",
        ylabel="weight", missing="no more modalities", wgap=0.3, sharey="all",
    )


def _panel_figures(drawn, order: list[str], styles: dict[str, int], *, title: str, ylabel: str, missing: str,
                   sharey: str, **grid_options):
    """Pages of per-unit rows of panels, a band per method in each: ``drawn`` holds
    (unit name, [(panel title, [(method, band)])])."""
    if not drawn:
        return []
    used = {m for _, panels in drawn for _, lines in panels for m, _ in lines}
    methods = [m for m in order if m in used]
    group = max(len(panels) for _, panels in drawn)
    grid = _Grid(len(drawn), group, right=_legend_margin(methods), sharey=sharey, **grid_options)
    figures = []
    for figure, groups, indices in grid.pages(title):
        for axes, i in zip(groups, indices):
            name, panels = drawn[i]
            for ax, (panel, lines) in zip(axes, panels):
                _plot_bands(ax, [(method, styles[method], band) for method, band in lines])
                ax.set_title(f"{name} · {panel}")
            for ax in axes[len(panels) :]:
                ax.set_title(f"{name} · {missing}", color="0.4")
        for axes in groups[:: grid.per_row]:
            axes[0].set_ylabel(ylabel)
        grid.link(figure, groups)
        for ax in figure.axes[: 1 if sharey == "all" else group]:  # one tick set per shared y axis
            _few_y_ticks(ax)
        _epoch_axis(figure)
        _figure_legend(figure, _legend_entries(groups, methods), grid)
        figures.append(figure)
    return figures


def modality_pairs(columns, prefix: str = "cosine_before_") -> list[tuple[str, str]]:
    """The modality pairs (a, b) that have ``<prefix><a>_<b>`` columns, in column
    order; the modalities are those with ``weight_<modality>`` columns, so names that
    hold underscores split correctly."""
    modalities = [c.removeprefix("weight_") for c in columns if c.startswith("weight_") and c != "weight_decay"]
    pairs = []
    for column in columns:
        if not column.startswith(prefix):
            continue
        pair = column.removeprefix(prefix)
        split = [(a, b) for a in modalities for b in modalities if a != b and pair == f"{a}_{b}"]
        pairs += split[:1]
    return pairs


def _gradient_figures(epochs: pd.DataFrame, order: list[str], styles: dict[str, int]):
    """Conflict fraction, then per modality pair of the unit the mean cosine before and after."""
    drawn = []  # (unit name, [(panel title, [(method, band)])])
    for keys, unit in _units(epochs):
        reported = [c for c in unit.columns if unit[c].notna().any()]
        panels_of = [("conflict_fraction", "conflicting pairs")] + [
            (f"cosine_{when}_{a}_{b}", f"cos {a}·{b} {when}")
            for a, b in modality_pairs(reported)
            for when in ("before", "after")
        ]
        panels = []
        for column, title in panels_of:
            if column in reported:
                bands = _bands(unit, ["method"], "epoch", column)
                panels.append((title, [(m, bands[(m,)]) for m in order if (m,) in bands]))
        if panels:
            drawn.append((_unit_name(keys), panels))
    return _panel_figures(
        drawn, order, styles,
        title="gradient conflicts per epoch: fraction of conflicting modality pairs, mean cosine of each"
        " pair before and after the strategy (mean over seeds, 95 % CI)",
        ylabel="fraction / cosine", missing="no more pairs", width=2.4, wgap=0.55, sharey="position",
    )


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


def _steps(heights: np.ndarray, baseline: float, closed=False) -> np.ndarray:
    """Vertices of a histogram over ``COSINE_BINS`` drawn as steps up from ``baseline``."""
    x = np.repeat(COSINE_BINS, 2)
    y = np.r_[baseline, np.repeat(heights, 2), baseline]
    vertices = np.column_stack([x, y])
    return np.vstack([vertices, vertices[:1]]) if closed else vertices


def _cosine_figures(epochs: pd.DataFrame, order: list[str]):
    unit_epochs = _units(epochs)
    drawn = []  # (unit name, {method: (before, after) fractions}, peak)
    for keys, unit in unit_epochs:
        histograms = cosine_histograms(unit)
        if histograms:
            fractions = {m: [h / max(h.sum(), 1) for h in histograms[m]] for m in histograms}
            peak = max(max(b.max(), a.max()) for b, a in fractions.values()) or 1.0
            drawn.append((_unit_name(keys), fractions, peak))
    if not drawn:
        return []
    # Every panel has a row for every method (first on top), so rows line up across panels.
    methods = [m for m in order if any(m in fractions for _, fractions, _ in drawn)]
    grid = _Grid(
        len(drawn),
        1,
        width=2.8,
        height=0.25 + 0.22 * len(methods),
        left=0.2 + CHAR_WIDTH_IN * max(map(len, methods)),
        right=_legend_margin(["before", "after"]),
        wgap=0.4,
        sharey="all",
    )
    figures = []
    for figure, groups, indices in grid.pages(
        "cosine between the modality gradients: fraction of samples per bin, summed over"
        " epochs and seeds, rows scaled to the panel's tallest bin"
    ):
        for (ax,), i in zip(groups, indices):
            name, fractions, peak = drawn[i]
            rows = [(r, fractions[m]) for r, m in enumerate(reversed(methods)) if m in fractions]
            # One collection per panel for all rows: a stairs patch per row draws much slower.
            ax.add_collection(
                PolyCollection(
                    [_steps(r + 0.9 * before / peak, r, closed=True) for r, (before, _) in rows],
                    hatch="///",
                    facecolor="0.88",
                    edgecolor="0.45",
                    linewidth=0.6,
                    label="before",
                ),
                autolim=False,
            )
            ax.add_collection(
                LineCollection(
                    [_steps(r + 0.9 * after / peak, r) for r, (_, after) in rows],
                    color="black",
                    linewidth=1.2,
                    label="after",
                ),
                autolim=False,
            )
            ax.set_title(f"{name} · tallest bin {100 * peak:.0f} %")
            ax.yaxis.set_tick_params(length=0)
        grid.link(figure, groups)
        first = figure.axes[0]
        first.set_yticks(np.arange(len(methods)) + 0.3, list(reversed(methods)))
        first.set_ylim(0, len(methods))
        first.set_xlim(-1, 1)
        first.xaxis.set_major_locator(FixedLocator([-1, -0.5, 0, 0.5, 1]))
        first.xaxis.set_major_formatter("{x:g}")
        _xlabel(figure, "cosine")
        _figure_legend(figure, _legend_entries(groups), grid)
        figures.append(figure)
    return figures


def _bars(ax, x, height, error, width: float, hatch: str | None) -> None:
    """Hatched bars with sample-std error bars, as three artists instead of ``bar``'s many."""
    keep = np.isfinite(height)
    x, height, error = x[keep], height[keep], np.nan_to_num(error[keep])
    left, right, zero = x - width / 2, x + width / 2, np.zeros_like(x)
    corners = [(left, zero), (left, height), (right, height), (right, zero)]
    boxes = PolyCollection(
        np.stack([np.column_stack(c) for c in corners], axis=1),
        hatch=hatch,
        facecolor="white" if hatch else "0.8",  # unhatched: not one of the modalities
        edgecolor="black",
        linewidth=0.6,
    )
    boxes.sticky_edges.y.append(0)  # as for bar: no margin below the baseline
    ax.add_collection(boxes, autolim=False)
    low, high = height - error, height + error
    whiskers = np.stack([np.column_stack([x, low]), np.column_stack([x, high])], axis=1)
    ax.add_collection(LineCollection(whiskers, color="black", linewidth=0.8), autolim=False)
    caps = Line2D(np.r_[x, x], np.r_[low, high], linestyle="none", marker="_", markersize=3)
    caps.set(color="black", markeredgewidth=0.8)
    ax.add_line(caps)
    ax.update_datalim(np.column_stack([np.r_[left, right], np.r_[np.minimum(low, 0), high]]))


def _diagnostics_figures(trials: pd.DataFrame, order: list[str]):
    units = _units(trials)
    drawn = []  # (unit name, {panel kind: (columns, scale)}, by-method mean and std)
    for keys, unit in units:
        probes = [c for c in unit.columns if c.startswith("probe_acc_") and unit[c].notna().any()]
        panels = {PROBE_PANEL: (probes, 100)} if probes else {}
        if "cca_mean" in unit.columns and unit["cca_mean"].notna().any():
            panels[CCA_PANEL] = (["cca_mean"], 1)
        if panels:
            needed = [c for columns, _ in panels.values() for c in columns]
            summary = unit.groupby("method")[needed].agg(["mean", "std"])
            drawn.append((_unit_name(keys), panels, summary))
    if not drawn:
        return []
    methods = [m for m in order if any(m in summary.index for *_, summary in drawn)]
    kinds = [k for k in (PROBE_PANEL, CCA_PANEL) if any(k in panels for _, panels, _ in drawn)]
    # Hatching tells the modalities apart: the k-th probe column of every unit alike.
    probe_sets = [panels[PROBE_PANEL][0] for _, panels, _ in drawn if PROBE_PANEL in panels]
    modalities = [
        " / ".join(dict.fromkeys(c[k].removeprefix("probe_acc_") for c in probe_sets if k < len(c)))
        for k in range(max(map(len, probe_sets), default=0))
    ]
    grid = _Grid(
        len(drawn),
        len(kinds),
        width=max(2.4, 0.23 * len(methods) * max(len(modalities), 1) ** 0.5),
        bottom=0.3 + CHAR_WIDTH_IN * 0.8 * max(map(len, methods)),
        right=_legend_margin(["modality", *modalities]) if modalities else 0.2,
        wgap=0.7,
        sharey="position",
    )
    positions = np.arange(len(methods))
    figures = []
    for figure, groups, indices in grid.pages(
        "frozen-encoder diagnostics per method (mean over seeds, error bar: sample std)"
    ):
        for axes, i in zip(groups, indices):
            name, panels, summary = drawn[i]
            summary = summary.reindex(methods)
            for ax, kind in zip(axes, kinds):
                ax.set_ylabel(kind)
                if kind not in panels:
                    ax.set_title(f"{name}: no {kind}", color="0.4")
                    continue
                columns, scale = panels[kind]
                width = 0.8 / len(columns)
                for k, column in enumerate(columns):
                    _bars(
                        ax,
                        positions + (k - (len(columns) - 1) / 2) * width,
                        summary[(column, "mean")].to_numpy(dtype=float) * scale,
                        summary[(column, "std")].to_numpy(dtype=float) * scale,
                        width,
                        HATCHES[k % len(HATCHES)] if kind == PROBE_PANEL else None,
                    )
                ax.set_title(name)
        grid.link(figure, groups)
        for ax in figure.axes[: len(kinds)]:
            _few_y_ticks(ax)
        figure.axes[0].set_xlim(-0.6, len(methods) - 0.4)
        for ax in _bottom_panels(figure):
            # Shared ticks, but each panel's labels are its own texts to rotate.
            ax.set_xticks(positions, methods, rotation=40, ha="right")
        if modalities:
            entries = {
                name: Patch(facecolor="white", edgecolor="black", hatch=HATCHES[k % len(HATCHES)])
                for k, name in enumerate(modalities)
            }
            _figure_legend(figure, entries, grid, title="modality")
        figures.append(figure)
    return figures


# ----------------------------------------------------------------------------- the paper's figures 2b and 2c

CCA_PREFIX, CCA_MEAN = "test_cca_", "test_cca_mean"
BAND_COLUMNS = ["mean", "std", "count", "low", "high"]


def cca_bands(results: Results) -> pd.DataFrame:
    """The lines of the ``cca`` figure: per (dataset, backbone, method, ``column``, epoch)
    the mean over seeds of the test split's CCA between modality features (the engine's
    per-epoch ``test_cca_mean``; with three or more modalities also each pair's
    ``test_cca_<a>_<b>``), its ``std``, ``count`` and 95 % t-interval ``low`` / ``high``
    (none for one seed); ``panel`` is the panel's title."""
    labelled = _labelled(results)
    return _cca_frame(labelled.epochs, labelled.order)


def go_pair_summary(results: Results, pairs: Iterable[tuple[str, str]] | None = None) -> pd.DataFrame:
    """The bars of the ``go_pairs`` figure: ``go_pairs.pair_summary`` of the sweep's trials."""
    return _go_pair_frame(_labelled(results).trials, pairs)


def _cca_frame(epochs: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    frames = []
    for keys, unit in _units(epochs):
        reported = [c for c in unit.columns if c.startswith(CCA_PREFIX) and unit[c].notna().any()]
        pairs = [c for c in reported if c != CCA_MEAN]
        # With two modalities the one pair is the mean: one panel.
        panels = [CCA_MEAN, *pairs] if len(pairs) > 1 else [CCA_MEAN] if CCA_MEAN in reported else []
        pair_names = modality_pairs(list(unit.columns), CCA_PREFIX)
        titles = {f"{CCA_PREFIX}{a}_{b}": f"{a}·{b}" for a, b in pair_names}
        titles[CCA_MEAN] = "mean over pairs"
        for column in panels:
            bands = _bands(unit, ["method"], "epoch", column)
            panel = titles.get(column, column.removeprefix(CCA_PREFIX))
            for method in order:
                if (method,) in bands:
                    band = bands[(method,)].reset_index()
                    frames.append(
                        band.assign(**dict(zip(TABLE_KEYS, keys)), method=method, column=column, panel=panel)
                    )
    columns = [*TABLE_KEYS, "method", "column", "panel", "epoch", *BAND_COLUMNS]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def _cca_figures(frame: pd.DataFrame, order: list[str], styles: dict[str, int]):
    drawn = []  # (unit name, [(panel title, [(method, band)])])
    for keys, unit in _units(frame):
        panels = []
        for title, lines in unit.groupby("panel", sort=False):
            bands = {
                m: band.set_index("epoch")[BAND_COLUMNS] for m, band in lines.groupby("method", sort=False)
            }
            panels.append((title, [(m, bands[m]) for m in order if m in bands]))
        drawn.append((_unit_name(keys), panels))
    return _panel_figures(
        drawn, order, styles,
        title="CCA of the modality features per epoch (test split; first 10\n"
        "canonical correlations; mean over seeds, 95 % CI)",
        ylabel="CCA", missing="no more pairs", wgap=0.3, sharey="all",
    )


def _go_pair_frame(trials: pd.DataFrame, pairs) -> pd.DataFrame:
    from goal_plugin.analysis.go_pairs import pair_summary  # scipy.stats: imported when drawn

    return pair_summary(trials, None if pairs is None else list(pairs))


def _go_pair_figures(frame: pd.DataFrame):
    if not len(frame):
        return []
    units = _units(frame)
    sides = {
        "without": f"without GO: {', '.join(dict.fromkeys(frame['strategy_without']))}",
        "with": f"with GO: {', '.join(dict.fromkeys(frame['strategy_with']))}",
    }
    entries = {
        sides["without"]: Patch(facecolor="0.8", edgecolor="black"),
        sides["with"]: Patch(facecolor="white", edgecolor="black", hatch=HATCHES[0]),
    }
    most = max(len(unit) for _, unit in units)
    grid = _Grid(len(units), 1, width=max(2.4, 1.3 * most), right=_legend_margin(entries), hgap=0.8)
    figures = []
    for figure, groups, indices in grid.pages(
        "test metric without and with GO (mean over seeds, 95 % CI)\n"
        "above each pair: with minus without GO"
    ):
        for (ax,), i in zip(groups, indices):
            keys, unit = units[i]
            x = np.arange(len(unit))
            tops = np.full(len(unit), -np.inf)
            for offset, side, hatch in ((-0.2, "without", None), (0.2, "with", HATCHES[0])):
                mean = unit[f"mean_{side}"].to_numpy(dtype=float)
                high = unit[f"high_{side}"].to_numpy(dtype=float)
                _bars(ax, x + offset, mean, high - mean, 0.4, hatch)
                tops = np.fmax(tops, np.where(np.isfinite(high), high, mean))
            for position, top, diff in zip(x, tops, unit["diff"]):
                ax.annotate(
                    f"{diff:+.2f}", (position, top), xytext=(0, 2), textcoords="offset points",
                    ha="center", va="bottom", fontsize=7,
                )  # fmt: skip
            # Each panel its own pairs: the x axes are not shared.
            ax.set_xticks(x, [f"{a} · {b}" for a, b in zip(unit["without"], unit["with"])], fontsize=7)
            ax.set_xlim(-0.6, len(unit) - 0.4)
            ax.set_title(_unit_name(keys))
            ax.set_ylabel(display_name(unit["metric"].iloc[0]))
            ax.margins(y=0.12)
            _few_y_ticks(ax)
        _figure_legend(figure, entries, grid)
        figures.append(figure)
    return figures
