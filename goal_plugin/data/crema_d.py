"""CREMA-D (audio + visual, 6 emotions) in the layouts of OGM-GE and BalanceBenchmark / MMPareto.

Both layouts use the same lists, ``train.csv`` and ``test.csv`` (no header, rows
``clip_id,EMO``, CRLF line ends and a byte-order mark accepted).

- ``ogm_ge``: ``AudioWAV/<clip>.wav`` turned into OGM-GE's spectrogram (257, 188)
  (or BalanceBenchmark's fbank with ``audio_features: fbank``), frames
  ``Image-01-FPS/<clip>/00000.jpg ...``.
- ``balancebenchmark``: ``audio/<clip>.pt`` holding a Kaldi fbank (T, 128) or
  (1, T, 128), frames ``visual/<clip>/frame_00001.jpg ...``.

Two evaluation protocols (``protocol``):

- ``ogm_ge`` (default): ``test`` is ``test.csv``; CREMA-D has no validation list,
  so ``val`` is a stratified ``val_fraction`` of ``train.csv`` fixed by
  ``split_seed`` (independent of the training seed), and ``train`` is the rest.
  OGM-GE's public lists share actors between train and test.
- ``actor_disjoint``: the clips of both lists pooled and split by actor (the
  first ``_``-field of the clip id) with the pinned actor split shipped in
  ``definitions/crema_d_actor_split.json`` (73 / 9 / 9 of the 91 actors, balanced
  by sex), so that no actor is in two of train, val and test.
"""

from __future__ import annotations

import csv
import functools
import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from goal_plugin import _validation as check
from goal_plugin.data.audio import PT_FBANK, STFT_PADDINGS, WAV_RECIPES
from goal_plugin.data.av import (
    SPLIT_SEED,
    VAL_FRACTION,
    AudioVisualDataset,
    Clip,
    StoredAudio,
    WavAudio,
    check_flag,
    check_val_split,
    detect_layout,
    frame_reader,
    held_out_val_protocol,
    resolve_label_order,
    train_val_part,
)
from goal_plugin.data.base import DATASETS
from goal_plugin.data.files import line_error, read_lines, require_root

OGM_GE_ORDER = ("NEU", "HAP", "SAD", "FEA", "DIS", "ANG")
LAYOUTS = {
    "ogm_ge": ("AudioWAV", "Image-01-FPS"),
    "balancebenchmark": ("audio", "visual"),
}
PROTOCOLS = ("ogm_ge", "actor_disjoint")
ACTOR_SPLIT = "definitions/crema_d_actor_split.json"
ROOT_HELP = (
    "train.csv, test.csv and AudioWAV/ + Image-01-FPS/ (OGM-GE layout) or audio/ + visual/ "
    "(BalanceBenchmark layout)"
)


def read_list(path: Path, layout: str) -> list[tuple[str, str]]:
    """(clip, emotion) rows of a CREMA-D list file."""
    expected = "rows 'clip_id,EMO' with EMO one of " + " ".join(sorted(OGM_GE_ORDER))
    rows = []
    for number, line in enumerate(read_lines(path, layout, expected), start=1):
        fields = next(csv.reader([line]))
        if len(fields) != 2 or fields[1].strip() not in OGM_GE_ORDER or not fields[0].strip():
            raise line_error(path, number, line, expected, layout)
        rows.append((fields[0].strip(), fields[1].strip()))
    return rows


@functools.lru_cache(maxsize=1)
def pinned_actor_split() -> dict:
    """The shipped actor split: ``train`` / ``val`` / ``test`` actor ids, its
    ``version`` and ``how_drawn``."""
    with resources.files("goal_plugin.data").joinpath(ACTOR_SPLIT).open("rb") as handle:
        return json.load(handle)


def actor_of(clip: str) -> str:
    """The actor id of a CREMA-D clip ``<actor>_<sentence>_<EMO>_<level>``."""
    return clip.split("_", 1)[0]


def actor_disjoint_part(rows: list[tuple[str, str, Path]], split: str) -> list[tuple[str, str]]:
    """The (clip, emotion) rows of ``split`` under the pinned actor split; ``rows``
    carry the list file each came from, named when a clip's actor is in no part."""
    part_of = {
        str(actor): part for part in ("train", "val", "test") for actor in pinned_actor_split()[part]
    }
    chosen = {}
    for name, emotion, source in rows:
        part = part_of.get(actor_of(name))
        if part is None:
            raise ValueError(
                f"{source}: clip {name!r} has actor {actor_of(name)!r}, which is in no part of the "
                f"pinned actor split (CREMA-D actors 1001-1091; protocol actor_disjoint)"
            )
        if part == split:
            chosen.setdefault(name, emotion)  # a clip listed in both files is one sample
    return list(chosen.items())


def protocol_description(
    protocol: str, train_list: str, test_list: str, val_fraction: float, split_seed: int
) -> str:
    """The protocol in words, as recorded with every run and printed under the tables."""
    if protocol == "ogm_ge":
        public = (train_list, test_list) == ("train.csv", "test.csv")
        about = " (OGM-GE's public lists: train and test share actors)" if public else ""
        return held_out_val_protocol(train_list, test_list, val_fraction, split_seed, about)
    pinned = pinned_actor_split()
    counts = " / ".join(str(len(pinned[part])) for part in ("train", "val", "test"))
    return (
        f"actor-disjoint: {train_list} + {test_list} pooled, split by actor {counts} "
        f"(train / val / test; pinned {pinned['name']} v{pinned['version']}, balanced by sex)"
    )


def check_protocol(protocol: str, val_fraction: float, split_seed: int) -> None:
    check.choice("protocol", protocol, PROTOCOLS)
    if protocol == "actor_disjoint" and (val_fraction, split_seed) != (VAL_FRACTION, SPLIT_SEED):
        raise ValueError(
            "val_fraction / split_seed hold val out of train.csv under protocol ogm_ge only; "
            "protocol actor_disjoint takes val from its pinned actor split: leave them unset"
        )


@DATASETS.register("crema_d")
def crema_d(
    root: str | None,
    split: str,
    *,
    layout: str | None = None,
    label_order: str | Sequence[str] = "ogm_ge",
    train_list: str = "train.csv",
    test_list: str = "test.csv",
    audio_features: str | None = None,
    stft_padding: str = "reflect",
    num_frames: int = 2,
    frame_sampling: str = "segment_start",
    image_size: int = 224,
    protocol: str = "ogm_ge",
    val_fraction: float = VAL_FRACTION,
    split_seed: int = SPLIT_SEED,
    cache_dir: str | None = None,
    skip_missing: bool = False,
) -> AudioVisualDataset:
    """CREMA-D from ``root`` (options in docs/datasets.md).

    layout: ogm_ge | balancebenchmark, detected from the folders when unset.
    label_order: ogm_ge (NEU HAP SAD FEA DIS ANG -> 0..5), sorted (ANG DIS FEA HAP
    NEU SAD, MMPareto) or a list of the six codes. train_list / test_list: list
    files, relative to root or absolute. audio_features (ogm_ge layout): spectrogram
    (default) or fbank. stft_padding: reflect (librosa <= 0.8, OGM-GE's environment)
    or constant (librosa >= 0.9) padding of the spectrogram's centred frames.
    num_frames: frames per clip (2, as OGM-GE). frame_sampling: segment_start |
    segment_random. image_size: frame side (224 in the papers). protocol: ogm_ge
    (test.csv is test; val held out of train.csv) or actor_disjoint (both lists
    pooled and split by the pinned actor split). val_fraction / split_seed (ogm_ge
    only): the validation part of train.csv. cache_dir: cache of the features
    computed from WAVs. skip_missing: drop clips whose files are missing or
    malformed (counted per split) instead of failing.
    """
    root_path = require_root(root, "crema_d", ROOT_HELP)
    layout = detect_layout(root_path, LAYOUTS, layout, "crema_d")
    check_val_split(val_fraction, split_seed)
    check_protocol(protocol, val_fraction, split_seed)
    check_flag("skip_missing", skip_missing)
    if cache_dir is not None and not isinstance(cache_dir, str):
        raise ValueError(f"cache_dir must be a folder path or null, got {cache_dir!r}")
    classes = resolve_label_order(label_order, OGM_GE_ORDER, "crema_d")
    if layout == "ogm_ge":
        recipe = check.choice("audio_features", audio_features or "spectrogram", WAV_RECIPES)
        padding = check.choice("stft_padding", stft_padding, STFT_PADDINGS)
        params = {"padding": padding} if recipe == "spectrogram" else {}
        audio = WavAudio(recipe, params, layout, cache_dir)
        audio_dir, suffix = root_path / "AudioWAV", ".wav"
        frames_dir, pattern = root_path / "Image-01-FPS", "00000.jpg, ..."
    else:
        if audio_features not in (None, "fbank"):
            raise ValueError(
                f"audio_features {audio_features!r}: the balancebenchmark layout stores fbank .pt files"
            )
        audio, audio_dir, suffix = StoredAudio(PT_FBANK, layout), root_path / "audio", ".pt"
        frames_dir, pattern = root_path / "visual", "frame_00001.jpg, ..."
    frames = frame_reader(split, num_frames, image_size, frame_sampling, layout, pattern)
    if protocol == "actor_disjoint":
        rows = actor_disjoint_part(
            [
                (name, emotion, path)
                for path in (root_path / train_list, root_path / test_list)
                for name, emotion in read_list(path, layout)
            ],
            split,
        )
    else:
        rows = read_list(root_path / (test_list if split == "test" else train_list), layout)
        labels = [classes.index(emotion) for _, emotion in rows]
        if split != "test":
            rows = [rows[i] for i in train_val_part(labels, split, val_fraction, split_seed)]
    clips = [
        Clip(name, classes.index(emotion), audio_dir / f"{name}{suffix}", frames_dir / name)
        for name, emotion in rows
    ]
    return AudioVisualDataset(
        clips,
        audio,
        frames,
        classes,
        name="crema_d",
        split=split,
        layout=layout,
        protocol=protocol_description(protocol, train_list, test_list, val_fraction, split_seed),
        skip_missing=skip_missing,
    )
