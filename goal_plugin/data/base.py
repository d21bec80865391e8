"""Dataset registry and the in-memory multimodal dataset type."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from goal_plugin import _validation as check
from goal_plugin._registry import Registry

DATASETS = Registry("dataset", "goal_plugin.datasets")
SPLITS = ("train", "val", "test")
# What a run records for a dataset object without a ``protocol`` (a plugin written before it).
UNSTATED_PROTOCOL = "not stated by the dataset (it sets no protocol)"


def register_member(group: set[str], name: str) -> Callable:
    """``DATASETS.register(name)`` that also adds ``name`` to ``group`` (a family of
    datasets that ``check_data`` reads in its own way)."""

    def decorator(factory):
        group.add(name)
        return DATASETS.register(name)(factory)

    return decorator


def list_datasets() -> list[str]:
    return DATASETS.names()


def build_dataset(name: str, root: str | None = None, split: str = "train", **options: object):
    """The ``split`` of dataset ``name``; ``root`` is where its files live (embedded
    datasets need none). Options are the dataset's own keyword arguments."""
    check.choice("split", split, SPLITS)
    return DATASETS.create(name, root, split, **options)


def dataset_protocol(dataset: object) -> str:
    """The evaluation protocol a dataset object states (its ``protocol`` text: where
    train, val and test come from), or ``UNSTATED_PROTOCOL``."""
    protocol = getattr(dataset, "protocol", None)
    return protocol if isinstance(protocol, str) and protocol.strip() else UNSTATED_PROTOCOL


class MultimodalDataset(Dataset):
    """Samples ``{modality: Tensor, "label": Tensor}``; every modality held in memory.

    ``modalities`` gives the modality order, ``sample_shapes`` the per-sample
    shape of each modality, ``num_classes`` and ``class_names`` the label space,
    ``protocol`` the evaluation protocol in words (how train, val and test were
    formed; recorded with every run and printed under the tables).
    """

    def __init__(
        self,
        modalities: Mapping[str, Tensor],
        labels: Tensor,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        *,
        protocol: str | None = None,
    ):
        self.data = {m: x.contiguous() for m, x in modalities.items()}
        self.labels = labels.long()
        for m, x in self.data.items():
            if x.shape[0] != len(self.labels):
                raise ValueError(f"modality {m!r} has {x.shape[0]} samples, labels {len(self.labels)}")
        self.modalities = tuple(self.data)
        self.num_classes = int(num_classes)
        self.class_names = list(class_names) if class_names else [str(c) for c in range(num_classes)]
        self.protocol = protocol

    @property
    def sample_shapes(self) -> dict[str, tuple[int, ...]]:
        return {m: tuple(x.shape[1:]) for m, x in self.data.items()}

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {**{m: x[index] for m, x in self.data.items()}, "label": self.labels[index]}

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Tensor]]:
        index = torch.as_tensor(indices)
        return [ReadyBatch({**{m: x[index] for m, x in self.data.items()}, "label": self.labels[index]})]


class ReadyBatch(dict):
    """A whole batch made by a dataset's ``__getitems__`` (one indexing per modality);
    ``collate_batch`` passes it through instead of stacking it again."""


def collate_batch(samples: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Collate: a ``ReadyBatch`` as it is (whatever its labels' shape: class indices,
    regression targets or multi-hot rows), single samples stacked."""
    if len(samples) == 1 and isinstance(samples[0], ReadyBatch):
        return dict(samples[0])
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
