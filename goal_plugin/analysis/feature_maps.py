"""Fused features of trained models in two dimensions, coloured by class (the paper's
Figures 3 and 6).

For every (dataset, backbone) and each chosen method, one trial (the chosen seed,
default the lowest the method ran): its model is rebuilt from the trial folder's
configuration and last checkpoint (``goal_plugin.engine.features.split_features``;
the last epoch's model), the split (default ``test``) is read in eval mode, and the
fusion module's input (every encoder's features concatenated in modality order) is
embedded in two dimensions by t-SNE (``sklearn.manifold.TSNE``, perplexity 30 or
fewer than the samples, PCA initialisation, ``random_state`` 0) or, with
``embedding="umap"``, UMAP (``umap.UMAP(random_state=0)``; needs umap-learn). The
figure ``features`` has a panel per (unit, method), a colour and marker per class.

Only classification trials have classes to colour; the trials must come from Ray
experiment folders that hold their checkpoints (a tidy CSV has no model), local or
in storage (a URI: each chosen trial's configuration and newest checkpoint are
fetched). A sweep whose data moved since training reads them from ``data_root``.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from goal_plugin import uris
from goal_plugin.analysis.errors import AnalysisError, output_folder
from goal_plugin.analysis.loading import TABLE_KEYS, Results
from goal_plugin.analysis.metrics import trial_tasks
from goal_plugin.analysis.plots import (
    MARKERS,
    STYLE,
    _figure_legend,
    _Grid,
    _labelled,
    _legend_margin,
    _save_all,
)

EMBEDDINGS = {"tsne": "t-SNE", "umap": "UMAP"}
EMBEDDING_SEED = 0
PERPLEXITY = 30.0  # scikit-learn's default
KIND = "features"
MAX_LEGEND_CLASSES = 20


@dataclass(frozen=True)
class FeatureMap:
    """One panel: the trial, the embedding's input and its output."""

    dataset: str
    backbone: str
    method: str
    seed: int
    trial_folder: Path | str  # a local folder, or the URI of one in storage
    features: np.ndarray  # (N, sum of the feature widths): the fusion module's input
    labels: np.ndarray  # (N,) classes
    points: np.ndarray  # (N, 2): the embedding of ``features``


def feature_maps(
    results: Results,
    methods: list[str] | None = None,
    *,
    seed: int | None = None,
    split: str = "test",
    embedding: str = "tsne",
    data_root: str | os.PathLike | None = None,
    device: str = "cpu",
) -> list[FeatureMap]:
    """The maps of every (dataset, backbone) for ``methods`` (method labels, as in the
    tables; default every method), in the order of the legends. ``seed``: the trial's
    seed (default the lowest each method ran). Errors (an unknown method or seed, a
    trial without checkpoint, umap-learn missing) are ``AnalysisError``s naming it."""
    reduce = _embedder(embedding)
    chosen = _chosen_trials(results, methods, seed)
    from goal_plugin.engine import CheckpointError, ConfigError
    from goal_plugin.engine.features import split_features

    maps = []
    for _, row in chosen.iterrows():
        folder = row.get("trial_folder")
        where = f"{row['experiment']}/{row['trial']}"
        if not isinstance(folder, str):
            raise AnalysisError(
                f"{where} comes from a tidy CSV: no model to read; give its Ray experiment folder"
            )
        try:
            read = split_features(folder, split, data_root=data_root, device=device)
        except (CheckpointError, ConfigError, ValueError) as error:
            moved = data_root is None and "data_root" in str(error)
            hint = "; data moved since training? give data_root (--data-root)" if moved else ""
            raise AnalysisError(
                f"features of {where} ({row['method']}, seed {row['seed']}): {error}{hint}"
            ) from None
        features = read.fused().numpy()
        maps.append(
            FeatureMap(
                row["dataset"], row["backbone"], row["method"], int(row["seed"]),
                folder if uris.is_uri(folder) else Path(folder),
                features, read.labels.numpy(), reduce(features),
            )
        )  # fmt: skip
    return maps


def draw_feature_maps(
    results: Results, out_dir: str | os.PathLike, methods: list[str] | None = None, **options
) -> tuple[list[Path], list[FeatureMap]]:
    """``feature_maps(results, methods, **options)`` drawn into ``out_dir`` as
    ``features.png`` / ``.pdf`` (pages ``features_p1``, ... as every figure); returns the
    written paths and the maps."""
    maps = feature_maps(results, methods, **options)
    out = output_folder(out_dir)
    embedding = EMBEDDINGS[options.get("embedding", "tsne")]
    with mpl.rc_context(STYLE):
        paths = _save_all(_figures(maps, options.get("split", "test"), embedding), out / KIND)
    return paths, maps


def _embedder(embedding: str):
    """The function from (N, D) features to (N, 2) points; checked before any model is read."""
    if embedding not in EMBEDDINGS:
        raise AnalysisError(
            f"unknown embedding {embedding!r}; choose one of: {', '.join(EMBEDDINGS)}"
        )
    if embedding == "umap":
        try:
            umap = importlib.import_module("umap")
        except ImportError:
            raise AnalysisError(
                "embedding 'umap' needs the package umap-learn, which is not installed "
                "(pip install umap-learn); t-SNE (the default) needs only scikit-learn"
            ) from None
        return lambda features: umap.UMAP(
            n_components=2, random_state=EMBEDDING_SEED
        ).fit_transform(features)
    from sklearn.manifold import TSNE

    def tsne(features: np.ndarray) -> np.ndarray:
        perplexity = min(PERPLEXITY, len(features) - 1)  # scikit-learn needs fewer than the samples
        return TSNE(
            2, perplexity=perplexity, init="pca", random_state=EMBEDDING_SEED
        ).fit_transform(features)

    return tsne


def _chosen_trials(results: Results, methods: list[str] | None, seed: int | None) -> pd.DataFrame:
    """One trial per (dataset, backbone, method): the given seed, or the lowest."""
    labelled = _labelled(results)
    trials = labelled.trials
    order = labelled.order if methods is None else list(dict.fromkeys(methods))
    unknown = [m for m in order if m not in labelled.order]
    if unknown:
        raise AnalysisError(
            f"no method {', '.join(map(repr, unknown))} in the trials; their methods: {', '.join(labelled.order)}"
        )
    tasks = trial_tasks(trials)
    other = trials[trials["method"].isin(order) & (tasks != "classification")]
    if len(other):
        row = other.iloc[0]
        raise AnalysisError(
            f"{row['dataset']}/{row['backbone']} is a {tasks[row.name]} task: the feature maps colour "
            "classes, for classification trials only"
        )
    chosen = []
    for keys, unit in trials.groupby(list(TABLE_KEYS), sort=True):
        for method in order:
            runs = unit[unit["method"] == method]
            if not len(runs):
                continue
            seeds = sorted(runs["seed"])
            if seed is not None and seed not in seeds:
                raise AnalysisError(
                    f"{'/'.join(map(str, keys))}: {method} ran no seed {seed}; its seeds: {', '.join(map(str, seeds))}"
                )
            chosen.append(runs[runs["seed"] == (seeds[0] if seed is None else seed)].iloc[0])
    if not chosen:
        raise AnalysisError("no methods chosen: name at least one (--methods)")
    return pd.DataFrame(chosen)


def _class_styles(count: int) -> list[dict]:
    """A colour and a marker per class, so that neighbouring classes differ in both."""
    colours = mpl.colormaps["tab10" if count <= 10 else "tab20" if count <= 20 else "turbo"]
    return [
        {
            "color": colours(k if count <= 20 else k / (count - 1)),
            "marker": MARKERS[k % len(MARKERS)],
        }
        for k in range(count)
    ]


def _figures(maps: list[FeatureMap], split: str, embedding: str):
    units = list(dict.fromkeys((m.dataset, m.backbone) for m in maps))
    methods = list(dict.fromkeys(m.method for m in maps))
    classes = int(max(m.labels.max() for m in maps)) + 1
    styles = _class_styles(classes)
    legend = classes <= MAX_LEGEND_CLASSES
    grid = _Grid(
        len(units), len(methods), width=2.4, height=2.4, left=0.3, bottom=0.2, wgap=0.25, hgap=0.45,
        right=_legend_margin([f"class {classes - 1}"]) if legend else 0.2,
    )  # fmt: skip
    by_panel = {(m.dataset, m.backbone, m.method): m for m in maps}
    title = f"fused features of the {split} split ({embedding}), coloured by class\nthe last epoch's model, one seed per method"
    figures = []
    for figure, groups, indices in grid.pages(title):
        for axes, i in zip(groups, indices):
            for ax, method in zip(axes, methods):
                found = by_panel.get((*units[i], method))
                ax.set_xticks([])
                ax.set_yticks([])
                if found is None:
                    ax.set_title(f"{'/'.join(units[i])} · no {method}", color="0.4")
                    continue
                # One collection per marker: a scatter takes one marker.
                for k in np.unique(found.labels):
                    at = found.labels == k
                    ax.scatter(*found.points[at].T, s=6, c=[styles[k]["color"]], marker=styles[k]["marker"],
                               linewidths=0)  # fmt: skip
                ax.set_title(f"{'/'.join(units[i])} · {method} (seed {found.seed})")
        if legend:
            entries = {
                f"class {k}": Line2D([], [], linestyle="none", markersize=5, **styles[k])
                for k in range(classes)
            }
            _figure_legend(figure, entries, grid)
        figures.append(figure)
    return figures
