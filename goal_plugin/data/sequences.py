"""The in-memory dataset of feature sequences (CMU-MOSI / MOSEI, MELD, IEMOCAP) and the
checks shared by the readers of their feature pickles.

A sample is ``{modality: (T, D) float32, f"{modality}_mask": (T,) bool, "label": ...}``:
the real steps of a sequence come first, the padding after them is zero and masked
False. ``T`` is the longest sequence of that modality in the split, so splits may
differ in ``T``.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from goal_plugin import _validation as check
from goal_plugin.data.base import ReadyBatch, register_member, stratified_split
from goal_plugin.data.files import MISSING, DataError

LOG = logging.getLogger("goal_plugin.data")
MODALITIES = ("audio", "visual", "text")
# Names of the registered datasets built on SequenceDataset (check_data reports their
# bad pickles per split instead of raising).
SEQUENCE_DATASETS: set[str] = set()


def register_sequence_dataset(name: str) -> Callable:
    """``DATASETS.register(name)`` that also lists ``name`` in ``SEQUENCE_DATASETS``."""
    return register_member(SEQUENCE_DATASETS, name)


@dataclass(frozen=True)
class Sequences:
    """One modality of a split: ``values`` (N, T, D) with real steps first and zero
    padding after them, ``lengths`` (N,) the real steps of each sample."""

    values: Tensor
    lengths: Tensor

    @property
    def mask(self) -> Tensor:
        return torch.arange(self.values.shape[1]) < self.lengths[:, None]


class SequenceDataset(Dataset):
    """Feature sequences of several modalities held in memory, with one label per sample.

    ``task`` is classification (labels int64 (N,)), multilabel (float32 (N, K)) or
    regression (float32 (N,)), one of the ``supported_tasks`` of the labels read;
    ``num_classes`` is K (1 for regression: one target, named by ``class_names``). ``layout`` names the file format read, ``source`` the
    file, ``protocol`` where train / val / test come from. ``nonfinite`` counts, per
    modality, the NaN / inf feature values of the file's split that were replaced by
    0; ``empty`` counts the samples of a modality with no real step (given one zero
    step so that every mask has a True entry). ``notes`` says the same in words, and
    what else a reader counted (label disagreements, dropped samples).
    """

    def __init__(
        self,
        sequences: Mapping[str, Sequences],
        labels: Tensor,
        *,
        task: str,
        supported_tasks: Sequence[str],
        class_names: Sequence[str],
        protocol: str,
        layout: str,
        source: str,
        nonfinite: Mapping[str, int],
        empty: Mapping[str, int],
        notes: Sequence[str] = (),
        score_range: tuple[float, float] | None = None,
    ):
        check.choice("task", task, supported_tasks)
        self.sequences = dict(sequences)
        self.modalities = tuple(self.sequences)
        self.data = {m: s.values for m, s in self.sequences.items()}
        self.masks = {m: s.mask for m, s in self.sequences.items()}
        self.labels = labels
        for m, s in self.sequences.items():
            if s.values.shape[0] != len(labels):
                raise ValueError(
                    f"modality {m!r} has {s.values.shape[0]} samples, labels {len(labels)}"
                )
        self.task = task
        self.supported_tasks = tuple(supported_tasks)
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.protocol = protocol
        self.layout = layout
        self.source = source
        self.nonfinite = dict(nonfinite)
        self.empty = dict(empty)
        self.notes = list(notes)
        # Targets that are sentiment scores in this range: the engine adds Acc-2, Acc-7 and F1.
        self.score_range = score_range

    @property
    def sample_shapes(self) -> dict[str, tuple[int, int]]:
        return {m: tuple(x.shape[1:]) for m, x in self.data.items()}

    def __len__(self) -> int:
        return len(self.labels)

    def _select(self, index) -> dict[str, Tensor]:
        sample = {}
        for m in self.modalities:
            sample[m] = self.data[m][index]
            sample[f"{m}_mask"] = self.masks[m][index]
        sample["label"] = self.labels[index]
        return sample

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return self._select(index)

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Tensor]]:
        return [ReadyBatch(self._select(torch.as_tensor(indices)))]  # see ``collate_batch``


# ----------------------------------------------------------------------------- options


def check_task(dataset: str, task: object, supported: Sequence[str]) -> str:
    """``task`` if the labels of ``dataset`` support it; a one-line error otherwise."""
    if task not in supported:
        raise ValueError(
            f"option task of {dataset} must be one of {', '.join(supported)} (what its labels "
            f"support), got {task!r}"
        )
    return task


def check_modalities(modalities: object) -> tuple[str, ...]:
    if isinstance(modalities, str) or not isinstance(modalities, Sequence) or not modalities:
        raise ValueError(
            f"modalities must be a list of {', '.join(MODALITIES)}, got {modalities!r}"
        )
    chosen = tuple(modalities)
    for m in chosen:
        check.choice("modalities", m, MODALITIES)
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"modalities must name distinct modalities, got {list(chosen)}")
    return chosen


def check_val_draw(val_fraction: object, split_seed: object) -> tuple[float, int]:
    fraction = check.positive("val_fraction", val_fraction)
    if fraction >= 1:
        raise ValueError(f"val_fraction must be < 1, got {val_fraction!r}")
    return fraction, check.integer("split_seed", split_seed, minimum=0)


def val_part(labels: np.ndarray, split: str, val_fraction: float, split_seed: int) -> np.ndarray:
    """Indices of ``split`` ("train" or "val") of a training set with class ``labels``:
    val is a stratified ``val_fraction`` of it drawn by ``split_seed``, train the rest."""
    train, val = stratified_split(labels, (1 - val_fraction, val_fraction), split_seed)
    return train if split == "train" else val


# ----------------------------------------------------------------------------- files


def find_file(root: Path, file: str | None, candidates: Sequence[str], dataset: str) -> Path:
    """The pickle to read: ``file`` (relative to ``root`` or absolute), or the one of
    ``candidates`` present in ``root``."""
    if file is not None:
        if not isinstance(file, str) or not file:
            raise ValueError(f"option file of {dataset} must be a file name, got {file!r}")
        path = root / Path(file).expanduser()
        if not path.is_file():
            raise DataError(path, "the feature pickle named by option file", dataset, MISSING)
        return path
    present = [name for name in candidates if (root / name).is_file()]
    if not present:
        raise DataError(root, f"one of {', '.join(candidates)} (or option file)", dataset, MISSING)
    if len(present) > 1:
        raise ValueError(
            f"data_root {root} of {dataset} holds {', '.join(present)}: pick one with option file"
        )
    return root / present[0]


def load_pickle(path: Path, layout: str) -> object:
    """The object pickled in ``path``, read with encoding latin1 (the Python 2 pickles of
    the public feature releases hold numpy arrays that need it; Python 3 pickles read
    the same). The last file read stays cached for the other splits."""
    stat = path.stat()
    version = (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    return _load_pickle(str(path.resolve()), version, layout)


@functools.lru_cache(maxsize=1)
def _load_pickle(path: str, version: tuple[int, ...], layout: str) -> object:
    try:
        with open(path, "rb") as handle:
            return pickle.load(handle, encoding="latin1")
    except Exception as error:  # noqa: BLE001  (unpickling garbage raises any type)
        found = f"an unreadable pickle ({type(error).__name__}: {error})"
        raise DataError(path, "a feature pickle", layout, found) from None


def describe(value: object) -> str:
    """What a pickle holds where an array was expected, in a few words."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} ({value.dtype})"
    if isinstance(value, Mapping):
        return f"a {type(value).__name__} with keys {sorted(map(str, value))[:12]}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


def require_key(container: object, key: str, where: str, layout: str, expected: str):
    """``container[key]``; a missing key (or no mapping at all) names ``where``."""
    if not isinstance(container, Mapping):
        raise DataError(where, f"a dict with key {key!r}", layout, describe(container))
    if key not in container:
        raise DataError(
            where,
            f"key {key!r} ({expected})",
            layout,
            f"no such key (keys: {', '.join(sorted(map(str, container)))})",
        )
    return container[key]


def numeric_array(value: object, rank: int, where: str, layout: str, expected: str) -> np.ndarray:
    """``value`` as a numeric array of ``rank`` dimensions (not copied when it is one),
    or an error naming ``where``."""
    try:
        array = np.asarray(value)
    except ValueError:  # ragged nested lists
        array = None
    if array is None or array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise DataError(where, expected, layout, describe(value))
    if array.ndim != rank:
        raise DataError(where, expected, layout, f"rank {array.ndim}, shape {array.shape}")
    return array


def replace_nonfinite(array: np.ndarray) -> tuple[np.ndarray, int]:
    """``array`` as float32 with NaN and +-inf replaced by 0 (MulT and MMSA zero MOSI's
    -inf audio values), and how many were replaced."""
    array = array.astype(np.float32, copy=False)
    bad = ~np.isfinite(array)
    count = int(bad.sum())
    return (np.where(bad, np.float32(0), array) if count else array), count


def pack(array: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[Sequences, int]:
    """The real steps ``array[i, starts[i] : starts[i] + lengths[i]]`` of each sample moved
    to the front of a (N, T, D) float32 tensor, T the longest length; a sample with no
    real step gets one zero step. Returns the sequences and how many samples were empty."""
    lengths = lengths.astype(np.int64)
    steps = max(int(lengths.max()) if len(lengths) else 0, 1)
    offsets = np.arange(steps)
    real = offsets < lengths[:, None]
    if array.shape[1]:
        index = np.minimum(starts[:, None] + offsets, array.shape[1] - 1)
        taken = np.take_along_axis(array, index[:, :, None], axis=1)
        values = np.where(real[:, :, None], taken, np.float32(0))
    else:
        values = np.zeros((len(array), steps, array.shape[2]), dtype=np.float32)
    sequences = Sequences(
        torch.from_numpy(values.astype(np.float32)), torch.from_numpy(np.maximum(lengths, 1))
    )
    return sequences, int((lengths == 0).sum())


@dataclass
class RawSplit:
    """A split as read from a file, before packing: per modality the features
    ``arrays`` (N, L, D) float32 with non-finite values already replaced (``nonfinite``
    counts them) and where each sample's real steps lie (``starts``, ``lengths``)."""

    arrays: dict[str, np.ndarray]
    starts: dict[str, np.ndarray]
    lengths: dict[str, np.ndarray]
    nonfinite: dict[str, int]

    def pack(self, rows: np.ndarray | None = None) -> tuple[dict[str, Sequences], dict[str, int]]:
        """The sequences of the samples ``rows`` (all when None), padded to their own
        longest length, and how many of them were empty per modality."""
        sequences, empty = {}, {}
        for m, array in self.arrays.items():
            starts, lengths = self.starts[m], self.lengths[m]
            if rows is not None:
                array, starts, lengths = array[rows], starts[rows], lengths[rows]
            sequences[m], empty[m] = pack(array, starts, lengths)
        return sequences, empty


def checked_lengths(value: object, count: int, steps: int, where: str, layout: str) -> np.ndarray:
    """Integer lengths (N,) each in [0, steps]."""
    lengths = numeric_array(value, 1, where, layout, f"lengths (N,) with N = {count}")
    if len(lengths) != count:
        raise DataError(where, f"lengths (N,) with N = {count}", layout, f"{len(lengths)} lengths")
    bad = (lengths != np.round(lengths)) | (lengths < 0) | (lengths > steps)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            where,
            f"integer lengths in [0, {steps}] (the sequence axis)",
            layout,
            f"{lengths[i].item()!r} at index {i}",
        )
    return lengths.astype(np.int64)


def nonfinite_note(counts: Mapping[str, int], source: str) -> str | None:
    total = sum(counts.values())
    if not total:
        return None
    parts = ", ".join(f"{m} {n}" for m, n in counts.items() if n)
    return f"replaced {total} non-finite feature values (NaN / inf) by 0 in {source}: {parts}"


def empty_note(counts: Mapping[str, int]) -> str | None:
    if not sum(counts.values()):
        return None
    parts = ", ".join(f"{m} {n}" for m, n in counts.items() if n)
    return f"samples with no real step (given one zero step): {parts}"


def warn(dataset: str, split: str, notes: Sequence[str]) -> None:
    for note in notes:
        LOG.warning("%s %s: %s", dataset, split, note)


def relative_name(path: Path, root: Path) -> str:
    """``path`` as the user would name it: relative to ``root`` when inside it."""
    try:
        return os.path.relpath(path, root) if path.is_relative_to(root) else str(path)
    except ValueError:
        return str(path)
