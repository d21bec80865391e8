"""The ``tensors`` dataset: data already in arrays, one file per modality and split
(docs/your_data.md).

``data_root`` holds a folder per split, ``train/``, ``test/`` and optionally ``val/``,
each with one array file per modality (``<modality>.npy``, ``.pt`` or ``.npz``, the
first axis the samples) and ``labels.npy`` / ``.pt`` / ``.npz``: class indices
(N,) of an integer type (classification), numbers (N,) of a float type (regression)
or a 0 / 1 matrix (N, K) (multi-label). An ``.npz`` file holds one array. Every
split has the same modality files, with the same per-sample shapes. Without
``val/``, val is a ``val_fraction`` of the train arrays drawn by ``split_seed``
(stratified by class for classification), stated in ``protocol``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from goal_plugin import _validation as check
from goal_plugin.data.base import MultimodalDataset, register_member, stratified_split
from goal_plugin.data.files import MISSING, DataError, require_root

LAYOUT = "tensors"
ARRAY_SUFFIXES = (".npy", ".pt")
SPLIT_FILE_SUFFIXES = (*ARRAY_SUFFIXES, ".npz")
LABELS = "labels"
TASKS = ("classification", "multilabel", "regression")
VAL_FRACTION, SPLIT_SEED = 0.1, 0
# Datasets whose arrays hold whole splits: ``check_data`` reports a bad file per split.
ARRAY_DATASETS: set[str] = set()
ROOT_HELP = "train/ and test/ (val/ optional), each with <modality>.npy / .pt / .npz and labels.npy / .pt / .npz"


def read_array_file(path: Path, layout: str) -> np.ndarray:
    """The numeric array stored in a ``.npy``, ``.pt`` (a tensor) or ``.npz`` (one array)
    file, read without unpickling code; ``DataError`` naming the file otherwise."""
    expected = "a numeric array in a .npy, .pt (a tensor) or .npz (one array) file"
    if not path.is_file():
        raise DataError(path, expected, layout, MISSING)
    try:
        if path.suffix == ".pt":
            value = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(value, Tensor):
                raise DataError(path, expected, layout, f"a {type(value).__name__}")
            value = value.numpy()
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                if len(archive.files) != 1:
                    raise DataError(path, expected, layout, f"arrays {archive.files}")
                value = archive[archive.files[0]]
        else:
            value = np.load(path, allow_pickle=False)
    except DataError:
        raise
    except Exception as error:  # noqa: BLE001  (any decoding failure of a user file: name the file)
        raise DataError(
            path, expected, layout, f"unreadable ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(value, np.ndarray) or not (
        np.issubdtype(value.dtype, np.number) or value.dtype == bool
    ):
        raise DataError(
            path, expected, layout, f"dtype {getattr(value, 'dtype', type(value).__name__)}"
        )
    return value


def load_array(path: Path, layout: str) -> Tensor:
    """A sample's array file as a float32 tensor (NaN and inf refused: never trained on)."""
    array = read_array_file(path, layout)
    if not np.isfinite(array).all():
        raise DataError(path, "finite values", layout, "NaN or inf")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def sample_shape(path: Path) -> tuple[int, ...]:
    """One sample's shape in an array file (a ``.npy`` is only mapped, not read)."""
    if path.suffix == ".npy":
        try:
            return tuple(np.load(path, mmap_mode="r", allow_pickle=False).shape[1:])
        except (OSError, ValueError):
            pass  # read_array_file names the problem
    return tuple(read_array_file(path, LAYOUT).shape[1:])


def split_files(folder: Path) -> dict[str, Path]:
    """{stem: file} of the array files of a split folder; a stem given twice is an error."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix in SPLIT_FILE_SUFFIXES and path.is_file():
            if path.stem in found:
                raise DataError(
                    path, "one file per modality", LAYOUT, f"also {found[path.stem].name}"
                )
            found[path.stem] = path
    return found


def split_labels(path: Path, task: str | None, count: int) -> tuple[np.ndarray, str]:
    labels = read_array_file(path, LAYOUT)
    if len(labels) != count:
        raise DataError(
            path, f"{count} labels (the samples of the modality arrays)", LAYOUT, f"{len(labels)}"
        )
    if task is None:
        task = (
            "multilabel"
            if labels.ndim == 2
            else "classification"
            if np.issubdtype(labels.dtype, np.integer)
            else "regression"
        )
    expected = {
        "classification": "class indices (N,) of an integer type, from 0",
        "regression": "numbers (N,)",
        "multilabel": "a 0 / 1 matrix (N, K)",
    }[task]
    ok = {
        "classification": labels.ndim == 1
        and np.issubdtype(labels.dtype, np.integer)
        and (labels >= 0).all(),
        "regression": labels.ndim == 1 and np.isfinite(labels).all(),
        "multilabel": labels.ndim == 2 and np.isin(labels, (0, 1)).all(),
    }[task]
    if not ok:
        raise DataError(path, expected, LAYOUT, f"dtype {labels.dtype}, shape {labels.shape}")
    return labels, task


class ArrayDataset(MultimodalDataset):
    """``MultimodalDataset`` with a stated ``task``: labels int64 (classification) or
    float32 (regression (N,), multi-label (N, K))."""

    def __init__(
        self, modalities, labels: Tensor, task: str, class_names: Sequence[str], *, protocol: str
    ):
        super().__init__(modalities, labels, len(class_names), class_names, protocol=protocol)
        self.task, self.supported_tasks = task, (task,)
        if task != "classification":
            self.labels = labels.float()


@register_member(ARRAY_DATASETS, "tensors")
def tensors(
    root: str | None,
    split: str,
    *,
    modalities: Sequence[str] | None = None,
    task: str | None = None,
    classes: Sequence[str] | None = None,
    val_fraction: float = VAL_FRACTION,
    split_seed: int = SPLIT_SEED,
) -> ArrayDataset:
    """Arrays per modality and split under ``root`` (docs/your_data.md).

    modalities: the modality files to read (default: every array file of train/ but
    labels). task: classification, multilabel or regression (default: from the labels'
    dtype and rank). classes: class names in label-index order (default: 0 .. K-1).
    val_fraction / split_seed: the validation part of train/ when there is no val/
    (0.1, 0).
    """
    if task is not None:
        check.choice("task", task, TASKS)
    fraction = check.positive("val_fraction", val_fraction)
    if fraction >= 1:
        raise ValueError(f"val_fraction must be < 1, got {val_fraction!r}")
    check.integer("split_seed", split_seed, minimum=0)
    base = require_root(root, "tensors", ROOT_HELP)
    has_val = (base / "val").is_dir()
    folder = base / (split if split == "test" or has_val else "train")
    if not folder.is_dir():
        raise DataError(
            folder, f"the {folder.name} folder ({ROOT_HELP})", LAYOUT, "the folder does not exist"
        )
    found = split_files(folder)
    if LABELS not in found:
        raise DataError(
            folder / "labels.npy",
            "the labels of the split (labels.npy, .pt or .npz)",
            LAYOUT,
            MISSING,
        )
    train_files = split_files(base / "train") if (base / "train").is_dir() else found
    names = list(modalities) if modalities is not None else [n for n in train_files if n != LABELS]
    if not names:
        raise DataError(folder, "at least one modality array besides labels", LAYOUT, "none")
    arrays = {}
    for name in names:
        if name not in found:
            raise DataError(
                folder / f"{name}.npy",
                f"modality {name!r} (.npy, .pt or .npz) like train/",
                LAYOUT,
                MISSING,
            )
        arrays[name] = load_array(found[name], LAYOUT)
        if folder.name != "train" and name in train_files:  # the encoders are built for train's shapes
            train_shape = sample_shape(train_files[name])
            if tuple(arrays[name].shape[1:]) != train_shape:
                raise DataError(
                    found[name],
                    f"samples of shape {train_shape}, as in {train_files[name].name} of train/",
                    LAYOUT,
                    f"shape {tuple(arrays[name].shape[1:])}",
                )
    counts = {name: len(array) for name, array in arrays.items()}
    if len(set(counts.values())) != 1:
        raise DataError(
            folder, "modality arrays with the same number of samples", LAYOUT, f"{counts}"
        )
    labels, task = split_labels(found[LABELS], task, next(iter(counts.values())))
    keep = np.arange(len(labels))
    if split != "test" and not has_val:
        strata = labels if task == "classification" else np.zeros(len(labels), dtype=np.int64)
        keep = stratified_split(strata, (1 - fraction, fraction), split_seed)[split == "val"]
    if task == "regression":
        class_names = ["label"]
    else:
        size = labels.shape[1] if task == "multilabel" else int(labels.max()) + 1
        class_names = (
            [str(i) for i in range(size)] if classes is None else [str(c) for c in classes]
        )
        if len(class_names) < size or (task == "multilabel" and len(class_names) != size):
            raise DataError(
                found[LABELS],
                f"labels of the {len(class_names)} classes of option classes",
                LAYOUT,
                f"{size} classes",
            )
    protocol = (
        f"arrays {base.name}/train, val, test as given"
        if has_val
        else f"arrays {base.name}/train and test; no val/, so val is {100 * fraction:g}% of train, "
        f"{'stratified by class' if task == 'classification' else 'drawn at random'}, split_seed {split_seed}"
    )
    keep_t = torch.from_numpy(keep)
    return ArrayDataset(
        {name: array[keep_t] for name, array in arrays.items()},
        torch.from_numpy(np.asarray(labels)[keep]),
        task,
        class_names,
        protocol=protocol,
    )
