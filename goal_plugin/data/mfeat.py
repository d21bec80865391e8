"""UCI Multiple Features digits, embedded (see data/embedded/ATTRIBUTION.md).

Six real views of the same 2,000 handwritten digits; any 2 or more of them form
a multimodal classification task. Views differ strongly in how informative they
are, which gives real modality imbalance offline.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import resources

import numpy as np
import torch

from goal_plugin import _validation as check
from goal_plugin.data.base import DATASETS, SPLITS, MultimodalDataset, stratified_split

VIEWS = ("pix", "fou", "fac", "kar", "zer", "mor")


@functools.lru_cache(maxsize=1)
def _load() -> dict[str, np.ndarray]:
    with resources.files("goal_plugin.data").joinpath("embedded/mfeat.npz").open("rb") as handle:
        with np.load(handle) as archive:
            return {key: archive[key] for key in archive.files}


@DATASETS.register("mfeat")
def mfeat(
    root: str | None,
    split: str,
    *,
    views: Sequence[str] = ("pix", "fou"),
    split_seed: int = 0,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
) -> MultimodalDataset:
    """UCI mfeat with the chosen ``views`` as modalities (in that order).

    views: two or more of pix, fou, fac, kar, zer, mor (one view gives a unimodal
    baseline). The default ("pix", "fou") is the documented imbalanced pair: after
    joint concat training without unimodal loss, the linear probe of the fou
    encoder is about 6 points below that of the fou encoder trained alone
    (README, "Embedded data"). split_seed: the stratified train/val/test split (fractions
    0.6/0.2/0.2 by default). Each view is standardised with train-split statistics.
    """
    if root is not None:
        raise ValueError("mfeat is embedded in the package: leave data_root unset")
    if isinstance(views, str) or not isinstance(views, Sequence):
        raise ValueError(f"views must be a list of view names, got {views!r}")
    views = tuple(views)
    if not views or len(set(views)) != len(views):
        raise ValueError(f"views must name distinct views, got {views}")
    for view in views:
        check.choice("views", view, VIEWS)
    check.integer("split_seed", split_seed, minimum=0)
    fractions = tuple(check.positive("fractions", f) for f in fractions)
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three numbers summing to 1, got {fractions}")
    arrays = _load()
    labels = arrays["label"]
    parts = dict(zip(SPLITS, stratified_split(labels, fractions, split_seed)))
    train, chosen = parts["train"], parts[split]
    modalities = {}
    for view in views:
        values = arrays[view].astype(np.float32)
        mean, std = values[train].mean(axis=0), values[train].std(axis=0)
        modalities[view] = torch.from_numpy((values[chosen] - mean) / np.where(std > 0, std, 1))
    shares = " / ".join(f"{100 * f:g}" for f in fractions)
    protocol = (
        f"stratified {shares} % train / val / test parts of the {len(labels)} digits "
        f"(disjoint; split_seed {split_seed})"
    )
    return MultimodalDataset(modalities, torch.from_numpy(labels[chosen]), 10, protocol=protocol)
