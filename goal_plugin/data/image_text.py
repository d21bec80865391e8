"""The image + text dataset shared by Hateful Memes and MM-IMDB, and its readers.

A sample is ``{"image": ..., "text": ..., "label": ...}``; each modality comes from
one of these sources:

- ``ImageFiles``: image files decoded with ``frames.decode_frame`` and transformed
  as the audio-visual frames are (``frames.FrameReader``'s transform: in training
  ``RandomResizedCrop`` + horizontal flip, otherwise ``Resize``; ImageNet
  normalisation; torch's generator, so seeded), read lazily: ``(3, S, S)`` float32;
- ``StoredImages``: the uint8-valued pixel rows of an HDF5 dataset, read lazily and
  transformed the same way;
- ``Tokens``: texts tokenised once per split by a tokenizer from a local folder,
  padded to ``max_length``: ``{"text": (L,) int64, "text_mask": (L,) bool}``;
- ``Vectors``: pre-extracted feature vectors held in memory, ``(D,)`` float32.

Single samples are stacked by ``collate_batch`` (``default_collate``).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from goal_plugin import _validation as check
from goal_plugin.data.base import register_member
from goal_plugin.data.files import MISSING, DataError, read_text
from goal_plugin.data.frames import FrameReader, decode_frame

MODALITIES = ("image", "text")
# Names of the registered datasets built on ImageTextDataset (check_data decodes their images).
IMAGE_TEXT_DATASETS: set[str] = set()


def register_image_text_dataset(name: str) -> Callable:
    """``DATASETS.register(name)`` that also lists ``name`` in ``IMAGE_TEXT_DATASETS``."""
    return register_member(IMAGE_TEXT_DATASETS, name)


# ----------------------------------------------------------------------------- sources


class Vectors:
    """Feature vectors (N, D) in memory."""

    def __init__(self, modality: str, values: Tensor):
        self.modality, self.values = modality, values.float()
        self.shape = tuple(values.shape[1:])

    def sample(self, index: int) -> dict[str, Tensor]:
        return {self.modality: self.values[index]}


class Tokens:
    """Token ids and attention masks (N, L), padded to ``max_length``."""

    def __init__(self, modality: str, ids: Tensor, mask: Tensor):
        self.modality, self.ids, self.mask = modality, ids.long(), mask.bool()
        self.shape = tuple(ids.shape[1:])

    def sample(self, index: int) -> dict[str, Tensor]:
        return {self.modality: self.ids[index], f"{self.modality}_mask": self.mask[index]}


def image_transform(size: int, train: bool) -> Callable[[Tensor], Tensor]:
    """The frames' per-image transform (see ``goal_plugin.data.frames``) for one image."""
    return FrameReader(1, size, "segment_start", train, "", "").transform


class ImageFiles:
    """Image files decoded and transformed when a sample is read."""

    def __init__(self, modality: str, paths: Sequence[Path], size: int, train: bool, layout: str):
        self.modality, self.paths, self.layout = modality, list(paths), layout
        self.transform = image_transform(size, train)
        self.shape = (3, size, size)

    def sample(self, index: int) -> dict[str, Tensor]:
        return {self.modality: self.transform(decode_frame(self.paths[index], self.layout))}

    def inspect(self) -> list[DataError]:
        """Decodes every image; the errors of those that cannot be."""
        problems = []
        for path in self.paths:
            try:
                decode_frame(path, self.layout)
            except DataError as problem:
                problems.append(problem)
        return problems


class StoredImages:
    """Rows ``rows`` of the (N, 3, H, W) pixel dataset ``key`` of an HDF5 file, values in
    [0, 255]; the file is opened once per process (DataLoader workers open their own)."""

    def __init__(
        self,
        modality: str,
        path: Path,
        key: str,
        rows: np.ndarray,
        size: int,
        train: bool,
        layout: str,
    ):
        self.modality, self.path, self.key, self.rows, self.layout = (
            modality,
            path,
            key,
            rows,
            layout,
        )
        self.transform = image_transform(size, train)
        self.shape = (3, size, size)
        self._file, self._pid = None, None

    def __getstate__(self):
        return {**self.__dict__, "_file": None, "_pid": None}

    def _pixels(self, start: int, stop: int) -> np.ndarray:
        if self._file is None or self._pid != os.getpid():
            import h5py

            self._file, self._pid = h5py.File(self.path, "r"), os.getpid()
        return np.asarray(self._file[self.key][start:stop])

    def _checked(self, pixels: np.ndarray, row: int) -> np.ndarray:
        bad = (pixels < 0) | (pixels > 255)
        if bad.any():
            raise DataError(
                f"{self.path} [{self.key!r}] row {row}",
                "pixel values in [0, 255]",
                self.layout,
                f"{pixels[bad].flat[0]!r}",
            )
        return pixels

    def sample(self, index: int) -> dict[str, Tensor]:
        row = int(self.rows[index])
        pixels = self._checked(self._pixels(row, row + 1)[0], row)
        return {self.modality: self.transform(torch.from_numpy(pixels.astype(np.uint8)))}

    def inspect(self) -> list[DataError]:
        """Reads every row of the split; the first row with a value outside [0, 255]."""
        for start in range(0, len(self.rows), 256):
            rows = self.rows[start : start + 256]
            pixels = self._pixels(int(rows[0]), int(rows[-1]) + 1)
            for row, values in zip(rows, pixels[rows - rows[0]]):
                try:
                    self._checked(values, int(row))
                except DataError as problem:
                    return [problem]
        return []


# ----------------------------------------------------------------------------- dataset


class ImageTextDataset(Dataset):
    """Image and text samples with one label each, images read lazily.

    ``clips`` holds each sample's id (the attribute name the file-backed datasets
    share), ``sources`` a source per modality (``image``, ``text``). ``task`` is
    classification (labels int64 (N,)), multilabel (float32 (N, K)) or regression
    (float32 (N,)), one of ``supported_tasks``; ``num_classes`` is K (1 for
    regression), ``class_names`` names them. ``layout`` names the format read,
    ``source`` the file or folder, ``protocol`` where train / val / test come from,
    ``notes`` what was dropped or ignored while reading (also logged as warnings).
    """

    def __init__(
        self,
        ids: Sequence[str],
        labels: Tensor,
        sources: Mapping[str, object],
        *,
        task: str,
        supported_tasks: Sequence[str],
        class_names: Sequence[str],
        protocol: str,
        layout: str,
        source: str,
        notes: Sequence[str] = (),
        text_checkpoint: Path | None = None,
    ):
        check.choice("task", task, supported_tasks)
        if not len(labels):
            why = f" ({'; '.join(notes)})" if notes else ""
            raise ValueError(f"{source} ({layout} layout): the split has no samples{why}")
        self.clips = [SampleId(str(name)) for name in ids]
        self.labels = labels
        self.sources = dict(sources)
        self.modalities = tuple(self.sources)
        self.task, self.supported_tasks = task, tuple(supported_tasks)
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.protocol, self.layout, self.source = protocol, layout, source
        self.notes = list(notes)
        # The tokenizer's folder: a bert_base encoder given no checkpoint of its own reads it.
        self.text_checkpoint = text_checkpoint

    @property
    def sample_shapes(self) -> dict[str, tuple[int, ...]]:
        return {m: source.shape for m, source in self.sources.items()}

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        sample = {}
        for source in self.sources.values():
            sample.update(source.sample(index))
        sample["label"] = self.labels[index]
        return sample

    def inspect(self) -> list[DataError]:
        """Reads every image of the split (what ``check_data`` reports)."""
        return [p for s in self.sources.values() if hasattr(s, "inspect") for p in s.inspect()]


class SampleId(str):
    """A sample's id; ``name`` as the audio-visual clips name theirs."""

    @property
    def name(self) -> str:
        return str(self)


# ----------------------------------------------------------------------------- text


def check_tokenizer_options(
    dataset: str, tokenizer: object, max_length: object, root: Path
) -> tuple[Path, int]:
    """The tokenizer folder (a relative path is read inside the data root) and max_length."""
    if tokenizer is None:
        raise ValueError(
            f"option tokenizer of {dataset} is required: a local folder holding a tokenizer "
            "saved by save_pretrained (e.g. the bert_base checkpoint's folder); nothing is downloaded"
        )
    if not isinstance(tokenizer, (str, os.PathLike)) or not str(tokenizer):
        raise ValueError(f"option tokenizer of {dataset} must be a folder path, got {tokenizer!r}")
    folder = Path(tokenizer).expanduser()
    return (folder if folder.is_absolute() else root / folder), check.integer("max_length", max_length, minimum=2)


def tokenize(
    dataset: str, folder: Path, texts: Sequence[str], max_length: int, modality: str = "text"
) -> Tokens:
    """``texts`` tokenised by the tokenizer saved in ``folder``, truncated and padded to
    ``max_length`` tokens (special tokens included)."""
    if not texts:  # the tokenizer cannot encode an empty batch; the dataset then says why
        empty = torch.zeros((0, max_length), dtype=torch.int64)
        return Tokens(modality, empty, empty.bool())
    encoded = load_tokenizer(dataset, str(folder))(
        list(texts),
        padding="max_length",
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
    )
    return Tokens(modality, encoded["input_ids"], encoded["attention_mask"])


@functools.lru_cache(maxsize=2)
def load_tokenizer(dataset: str, folder: str):
    """``AutoTokenizer`` from a local folder only; a folder without one is a one-line error."""
    if not Path(folder).is_dir():
        raise ValueError(
            f"option tokenizer of {dataset}: {folder!r} is not a folder (expected a tokenizer "
            "saved by save_pretrained)"
        )
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise ImportError(
            f"dataset {dataset!r} tokenises with transformers: pip install 'goal-plugin[text]'"
        ) from None
    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"option tokenizer of {dataset}: {folder!r} holds no tokenizer saved by "
            f"save_pretrained ({first})"
        ) from None


# ----------------------------------------------------------------------------- files


def read_json(path: Path, layout: str, expected: str) -> object:
    """The JSON value in ``path``; missing or malformed is a ``DataError`` naming it."""
    if not path.is_file():
        raise DataError(path, expected, layout, MISSING)
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(path, expected, layout, f"unreadable JSON ({error})") from None


def read_jsonl(path: Path, layout: str, expected: str) -> list[tuple[int, dict]]:
    """(line number, object) of each non-blank line of a JSON-lines file."""
    text = read_text(path, layout, expected)
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(
                f"{path}, line {number}",
                "a JSON object",
                layout,
                f"{line.strip()[:80]!r} ({error.msg})",
            ) from None
        if not isinstance(row, dict):
            raise DataError(
                f"{path}, line {number}", "a JSON object", layout, f"{line.strip()[:80]!r}"
            )
        rows.append((number, row))
    return rows


def require_file(path: Path, expected: str, layout: str) -> Path:
    if not path.is_file():
        raise DataError(path, expected, layout, MISSING)
    return path
