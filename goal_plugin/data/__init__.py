"""Datasets: a registry, the in-memory dataset type, the embedded datasets and the
paper's datasets read from their public on-disk layouts, and your own data
(``files``: a manifest; ``tensors``: arrays per modality and split)."""

from goal_plugin.data import ave as _ave  # noqa: F401  (registers "ave")
from goal_plugin.data import crema_d as _crema_d  # noqa: F401  (registers "crema_d")
from goal_plugin.data import hateful_memes as _hateful_memes  # noqa: F401  (registers "hateful_memes")
from goal_plugin.data import iemocap as _iemocap  # noqa: F401  (registers "iemocap")
from goal_plugin.data import kinetics_sounds as _kinetics_sounds  # noqa: F401  (registers "kinetics_sounds")
from goal_plugin.data import manifest as _manifest  # noqa: F401  (registers "files")
from goal_plugin.data import meld as _meld  # noqa: F401  (registers "meld")
from goal_plugin.data import mfeat as _mfeat  # noqa: F401  (registers "mfeat")
from goal_plugin.data import mmimdb as _mmimdb  # noqa: F401  (registers "mmimdb")
from goal_plugin.data import mosi as _mosi  # noqa: F401  (registers "mosi" and "mosei")
from goal_plugin.data import synthetic as _synthetic  # noqa: F401  (registers "synthetic")
from goal_plugin.data import tensors as _tensors  # noqa: F401  (registers "tensors")
from goal_plugin.data.av import AudioVisualDataset
from goal_plugin.data.base import (
    DATASETS,
    SPLITS,
    MultimodalDataset,
    build_dataset,
    collate_batch,
    list_datasets,
    stratified_split,
)
from goal_plugin.data.check import SplitCheck, check_data, format_check
from goal_plugin.data.files import DataError

register_dataset = DATASETS.register

__all__ = [
    "DATASETS",
    "SPLITS",
    "AudioVisualDataset",
    "DataError",
    "MultimodalDataset",
    "SplitCheck",
    "build_dataset",
    "check_data",
    "collate_batch",
    "format_check",
    "list_datasets",
    "register_dataset",
    "stratified_split",
]
