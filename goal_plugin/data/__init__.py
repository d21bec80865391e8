"""Datasets: a registry, the in-memory dataset type and the embedded datasets."""

from goal_plugin.data import mfeat as _mfeat  # noqa: F401  (registers "mfeat")
from goal_plugin.data import synthetic as _synthetic  # noqa: F401  (registers "synthetic")
from goal_plugin.data.base import (
    DATASETS,
    SPLITS,
    MultimodalDataset,
    build_dataset,
    collate_batch,
    list_datasets,
    stratified_split,
)

register_dataset = DATASETS.register

__all__ = [
    "DATASETS",
    "SPLITS",
    "MultimodalDataset",
    "build_dataset",
    "collate_batch",
    "list_datasets",
    "register_dataset",
    "stratified_split",
]
