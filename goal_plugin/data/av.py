"""The file-backed audio-visual dataset shared by CREMA-D, Kinetics-Sounds and AVE.

A dataset is a list of clips (name, label, audio file, frame folder) read by a
layout module, an audio reader and a ``FrameReader``. Samples are read lazily:
``{"audio": (1, F, T) float32, "visual": (3, frames, size, size) float32,
"label": int64}``. At construction every listed file is checked to exist (cheap);
a missing one is a ``DataError`` naming it, or, with ``skip_missing``, every file
is opened and clips with a missing or malformed file are dropped and counted
(``skipped``, and a warning per split). A malformed file found while training is
a ``DataError`` too: never a zero tensor in its place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from goal_plugin import _validation as check
from goal_plugin.data.audio import WAV_RECIPES, ArrayFormat, read_array, read_wav
from goal_plugin.data.base import stratified_split
from goal_plugin.data.cache import FeatureCache
from goal_plugin.data.files import MISSING, DataError
from goal_plugin.data.frames import SAMPLINGS, FrameReader, decode_frame

LOG = logging.getLogger("goal_plugin.data")
MODALITIES = ("audio", "visual")
# Defaults of ``val_fraction`` and ``split_seed`` for datasets without a validation list.
VAL_FRACTION, SPLIT_SEED = 0.1, 0


@dataclass(frozen=True)
class Clip:
    name: str
    label: int
    audio: Path
    frames: Path


class WavAudio:
    """A WAV file turned into features by a recipe of ``audio.WAV_RECIPES``, optionally cached."""

    def __init__(self, recipe: str, params: dict[str, object], layout: str, cache_dir: str | None):
        self.recipe, self.params, self.layout = recipe, params, layout
        self.cache = FeatureCache(cache_dir) if cache_dir is not None else None
        self.description = f"a WAV file (features: {recipe})"

    def _compute(self, path: Path) -> Tensor:
        return WAV_RECIPES[self.recipe](*read_wav(path, self.layout), **self.params)

    def __call__(self, path: Path) -> Tensor:
        if not path.is_file():
            raise DataError(path, self.description, self.layout, MISSING)
        if self.cache is None:
            return self._compute(path)
        return self.cache.get(
            path, {"recipe": self.recipe, **self.params, "version": 1}, lambda: self._compute(path)
        )


class StoredAudio:
    """A feature file written by a public codebase's pre-processing."""

    def __init__(self, form: ArrayFormat, layout: str):
        self.form, self.layout = form, layout
        self.description = form.description

    def __call__(self, path: Path) -> Tensor:
        if not path.is_file():
            raise DataError(path, self.description, self.layout, MISSING)
        return read_array(path, self.form, self.layout)


AudioReader = Callable[[Path], Tensor]


class EmptySplitError(ValueError):
    """Every clip of a split was skipped; ``problems`` holds why."""

    def __init__(self, message: str, problems: list[DataError]):
        super().__init__(message)
        self.problems = problems


class AudioVisualDataset(Dataset):
    """Lazily read audio-visual clips; ``modalities``, ``sample_shapes``,
    ``num_classes``, ``class_names``, ``protocol`` as ``MultimodalDataset``;
    ``skipped`` counts the clips dropped by ``skip_missing`` (``{"missing": n,
    "malformed": m}``) and ``problems`` their errors."""

    modalities = MODALITIES

    def __init__(
        self,
        clips: Sequence[Clip],
        audio: AudioReader,
        frames: FrameReader,
        class_names: Sequence[str],
        *,
        name: str,
        split: str,
        layout: str,
        protocol: str,
        skip_missing: bool = False,
    ):
        self.name, self.split, self.layout, self.protocol = name, split, layout, protocol
        self.audio, self.frames = audio, frames
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.skipped = {"missing": 0, "malformed": 0}
        self.problems: list[DataError] = []
        if skip_missing:
            clips = self._readable(clips)
        else:
            for clip in clips:
                _raise_if_missing(clip, audio, frames)
        if not clips:
            why = (
                f"all were skipped ({self.skipped['missing']} missing, {self.skipped['malformed']} malformed)"
                if self.problems
                else "its list selects none (a val_fraction too small for the list?)"
            )
            raise EmptySplitError(
                f"{name} ({layout} layout): the {split} split has no clips: {why}", self.problems
            )
        self.clips = list(clips)
        self.labels = torch.tensor([clip.label for clip in self.clips], dtype=torch.long)
        self.audio_shape = tuple(audio(self.clips[0].audio).shape)  # from the data, never assumed
        self.sample_shapes = {
            "audio": (1, *self.audio_shape),
            "visual": (3, frames.count, frames.size, frames.size),
        }

    def _readable(self, clips: Sequence[Clip]) -> list[Clip]:
        kept, shape = [], None
        for clip in clips:
            problem, found_shape = inspect_clip(clip, self.audio, self.frames, shape)
            if problem is None:
                kept.append(clip)
                shape = shape or found_shape
            else:
                self.skipped["missing" if problem.missing else "malformed"] += 1
                self.problems.append(problem)
        if any(self.skipped.values()):
            LOG.warning(
                "%s %s split (%s layout): skipped %d missing and %d malformed of %d clips",
                self.name,
                self.split,
                self.layout,
                self.skipped["missing"],
                self.skipped["malformed"],
                len(clips),
            )
        return kept

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        clip = self.clips[index]
        audio = self.audio(clip.audio)
        if tuple(audio.shape) != self.audio_shape:
            raise DataError(
                clip.audio,
                f"features of shape {self.audio_shape} like the split's first clip",
                self.layout,
                f"shape {tuple(audio.shape)}",
            )
        return {
            "audio": audio.unsqueeze(0),
            "visual": self.frames(clip.frames),
            "label": torch.tensor(clip.label, dtype=torch.long),
        }


def _raise_if_missing(clip: Clip, audio: AudioReader, frames: FrameReader) -> None:
    if not clip.audio.is_file():
        raise DataError(clip.audio, audio.description, frames.layout, MISSING)
    frames.frames(clip.frames)  # the folder exists and holds enough frames


def inspect_clip(
    clip: Clip, audio: AudioReader, frames: FrameReader, shape: tuple[int, ...] | None
) -> tuple[DataError | None, tuple[int, ...] | None]:
    """Opens every file the clip may be read from; (the first problem or None, audio shape)."""
    try:
        features = audio(clip.audio)
        if shape is not None and tuple(features.shape) != shape:
            raise DataError(
                clip.audio,
                f"features of shape {shape} like the split's other clips",
                frames.layout,
                f"shape {tuple(features.shape)}",
            )
        for path in frames.candidates(clip.frames):
            decode_frame(path, frames.layout)
    except DataError as problem:
        return problem, None
    return None, tuple(features.shape)


def resolve_label_order(label_order: object, reference: Sequence[str], dataset: str) -> list[str]:
    """Class names in label-index order: ``"ogm_ge"`` (the OGM-GE codebase's order,
    ``reference``), ``"sorted"`` (sorted names, as MMPareto / BalanceBenchmark's
    sorted lists), or an explicit list naming every class once."""
    if label_order == "ogm_ge":
        return list(reference)
    if label_order == "sorted":
        return sorted(reference)
    if isinstance(label_order, (list, tuple)) and sorted(map(str, label_order)) == sorted(
        reference
    ):
        return [str(name) for name in label_order]
    raise ValueError(
        f"label_order of {dataset} must be 'ogm_ge', 'sorted' or a list naming each of "
        f"{sorted(reference)} once, got {label_order!r}"
    )


def train_val_part(
    labels: Sequence[int], split: str, val_fraction: float, split_seed: int
) -> np.ndarray:
    """Indices of the train list that form ``split`` ("train" or "val"): a stratified
    ``val_fraction`` held out by ``split_seed`` alone (not the training seed), so every
    trial of a sweep validates on the same clips."""
    train, val = stratified_split(np.asarray(labels), (1 - val_fraction, val_fraction), split_seed)
    return train if split == "train" else val


def held_out_val_protocol(
    train_list: str, test_list: str, val_fraction: float, split_seed: int, about_lists: str = ""
) -> str:
    """The protocol of a train / test list pair whose ``val`` is held out of the train
    list by ``train_val_part``; ``about_lists`` says where the lists come from."""
    return (
        f"lists {train_list} / {test_list}{about_lists}; val: {100 * val_fraction:g}% of "
        f"{train_list}, stratified by class, split_seed {split_seed}"
    )


def frame_reader(
    split: str, num_frames: int, image_size: int, frame_sampling: str, layout: str, pattern: str
) -> FrameReader:
    check.integer("num_frames", num_frames, minimum=1)
    check.integer("image_size", image_size, minimum=8)
    check.choice("frame_sampling", frame_sampling, SAMPLINGS)
    return FrameReader(num_frames, image_size, frame_sampling, split == "train", layout, pattern)


def check_val_split(val_fraction: float, split_seed: int) -> None:
    if check.in_unit_interval("val_fraction", val_fraction) == 0:
        raise ValueError("val_fraction must be above 0: model selection reads the validation split")
    check.integer("split_seed", split_seed, minimum=0)


def check_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def detect_layout(
    root: Path, layouts: dict[str, Sequence[str]], layout: str | None, dataset: str
) -> str:
    """``layout`` if given (checked), else the first layout whose marker files exist under root."""
    if layout is not None:
        return check.choice("layout", layout, layouts)
    for name, markers in layouts.items():
        if all((root / marker).exists() for marker in markers):
            return name
    described = "; ".join(f"{name}: {', '.join(markers)}" for name, markers in layouts.items())
    raise ValueError(
        f"data_root {str(root)!r} does not look like any {dataset} layout (expected {described}); "
        f"set dataset_options.layout to read it as one of them"
    )
