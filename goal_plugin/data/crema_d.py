"""CREMA-D (audio + visual, 6 emotions) in the layouts of OGM-GE and BalanceBenchmark / MMPareto.

Both layouts use the same lists, ``train.csv`` and ``test.csv`` (no header, rows
``clip_id,EMO``, CRLF line ends and a byte-order mark accepted).

- ``ogm_ge``: ``AudioWAV/<clip>.wav`` turned into OGM-GE's spectrogram (257, 188)
  (or BalanceBenchmark's fbank with ``audio_features: fbank``), frames
  ``Image-01-FPS/<clip>/00000.jpg ...``.
- ``balancebenchmark``: ``audio/<clip>.pt`` holding a Kaldi fbank (T, 128) or
  (1, T, 128), frames ``visual/<clip>/frame_00001.jpg ...``.

CREMA-D has no validation list: ``val`` is a stratified ``val_fraction`` of
``train.csv`` fixed by ``split_seed`` (independent of the training seed), and
``train`` is the rest; ``test`` is ``test.csv``.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from goal_plugin import _validation as check
from goal_plugin.data.audio import PT_FBANK, STFT_PADDINGS, WAV_RECIPES
from goal_plugin.data.av import (
    AudioVisualDataset,
    Clip,
    StoredAudio,
    WavAudio,
    check_flag,
    check_val_split,
    detect_layout,
    frame_reader,
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
    val_fraction: float = 0.1,
    split_seed: int = 0,
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
    segment_random. image_size: frame side (224 in the papers). val_fraction /
    split_seed: the validation part of train.csv. cache_dir: cache of the features
    computed from WAVs. skip_missing: drop clips whose files are missing or
    malformed (counted per split) instead of failing.
    """
    root_path = require_root(root, "crema_d", ROOT_HELP)
    layout = detect_layout(root_path, LAYOUTS, layout, "crema_d")
    check_val_split(val_fraction, split_seed)
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
        skip_missing=skip_missing,
    )
