"""Dataset registry and the in-memory multimodal dataset type."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from goal_plugin import _validation as check
from goal_plugin._registry import Registry

DATASETS = Registry("dataset", "goal_plugin.datasets")
SPLITS = ("train", "val", "test")


def list_datasets() -> list[str]:
    return DATASETS.names()


def build_dataset(name: str, root: str | None = None, split: str = "train", **options: object):
    """The ``split`` of dataset ``name``; ``root`` is where its files live (embedded
    datasets need none). Options are the dataset's own keyword arguments."""
    check.choice("split", split, SPLITS)
    return DATASETS.create(name, root, split, **options)


class MultimodalDataset(Dataset):
    """Samples ``{modality: Tensor, "label": Tensor}``; every modality held in memory.

    ``modalities`` gives the modality order, ``sample_shapes`` the per-sample
    shape of each modality, ``num_classes`` and ``class_names`` the label space.
    """

    def __init__(
        self,
        modalities: Mapping[str, Tensor],
        labels: Tensor,
        num_classes: int,
        class_names: Sequence[str] | None = None,
    ):
        self.data = {m: x.contiguous() for m, x in modalities.items()}
        self.labels = labels.long()
        for m, x in self.data.items():
            if x.shape[0] != len(self.labels):
                raise ValueError(f"modality {m!r} has {x.shape[0]} samples, labels {len(self.labels)}")
        self.modalities = tuple(self.data)
        self.num_classes = int(num_classes)
        self.class_names = list(class_names) if class_names else [str(c) for c in range(num_classes)]

    @property
    def sample_shapes(self) -> dict[str, tuple[int, ...]]:
        return {m: tuple(x.shape[1:]) for m, x in self.data.items()}

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {**{m: x[index] for m, x in self.data.items()}, "label": self.labels[index]}

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Tensor]]:
        index = torch.as_tensor(indices)
        batch = {**{m: x[index] for m, x in self.data.items()}, "label": self.labels[index]}
        return [batch]  # already a batch; see ``collate_batch``


def collate_batch(samples: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Collate for ``MultimodalDataset``: ``__getitems__`` returns one ready batch."""
    if len(samples) == 1 and samples[0]["label"].dim() == 1:
        return samples[0]
    return torch.utils.data.default_collate(samples)


def stratified_split(labels: np.ndarray, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Index arrays of each split, the same class proportions in each, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    cumulative = np.cumsum(fractions)
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        cuts = np.round(cumulative * len(members)).astype(int)
        for part, start, stop in zip(parts, np.r_[0, cuts[:-1]], cuts):
            part.append(members[start:stop])
    return [np.sort(np.concatenate(part)) for part in parts]
