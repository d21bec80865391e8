"""Tiny audio-visual datasets written in each public on-disk layout (real WAV, JPEG,
.pt, .npy and pickle files of the documented ranks; list files as the codebases ship
them). Frame k of every clip is a flat grey of value ``frame_value(k)``, so a test can
read the frame order back from the decoded tensor."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import soundfile
import torch
from torchvision.io import encode_jpeg

EMOTIONS = ("NEU", "HAP", "SAD", "FEA", "DIS", "ANG")
AVE_CATEGORIES = ("Church bell", "Male speech, man speaking", "Dog", "Violin, fiddle")
FRAME_SIDE = 12


def frame_value(k: int) -> int:
    return 10 + 20 * k


def write_frames(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        image = torch.full((3, FRAME_SIDE, FRAME_SIDE), frame_value(k), dtype=torch.uint8)
        (folder / name).write_bytes(encode_jpeg(image, quality=100).numpy().tobytes())


def write_list(path: Path, rows: list[str], *, crlf: bool = False, bom: bool = False) -> None:
    text = ("\r\n" if crlf else "\n").join(rows) + ("\r\n" if crlf else "\n")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())


def crema_d_rows(per_class_train: int = 3, per_class_test: int = 1) -> tuple[list[str], list[str]]:
    """(train clips, test clips) named like CREMA-D's ``<actor>_<sentence>_<EMO>_<level>``."""
    train, test = [], []
    for index, emotion in enumerate(EMOTIONS):
        train += [f"10{index:02d}_IEO_{emotion}_X{k}" for k in range(per_class_train)]
        test += [f"10{index:02d}_DFA_{emotion}_T{k}" for k in range(per_class_test)]
    return train, test


def write_crema_d(
    root: Path, layout: str, *, frames_per_clip: int = 3, seed: int = 0
) -> dict[str, list[str]]:
    """A CREMA-D root in ``layout`` (ogm_ge: WAVs at 16 kHz of 0.4 s; balancebenchmark:
    fbank .pt files, half (T, 128) and half (1, T, 128)); returns the clips per list."""
    rng = np.random.default_rng(seed)
    train, test = crema_d_rows()
    root.mkdir(parents=True, exist_ok=True)
    for name, clips in (("train.csv", train), ("test.csv", test)):
        write_list(
            root / name, [f"{clip},{clip.split('_')[2]}" for clip in clips], crlf=True, bom=True
        )
    for index, clip in enumerate(train + test):
        if layout == "ogm_ge":
            (root / "AudioWAV").mkdir(exist_ok=True)
            samples = 0.3 * rng.standard_normal(6400).astype(np.float32)
            soundfile.write(root / "AudioWAV" / f"{clip}.wav", samples, 16000, subtype="PCM_16")
            write_frames(
                root / "Image-01-FPS" / clip, [f"{30 * k:05d}.jpg" for k in range(frames_per_clip)]
            )
        else:
            (root / "audio").mkdir(exist_ok=True)
            fbank = torch.from_numpy(rng.standard_normal((20, 128)).astype(np.float32))
            torch.save(fbank if index % 2 else fbank[None], root / "audio" / f"{clip}.pt")
            write_frames(
                root / "visual" / clip, [f"frame_{k + 1:05d}.jpg" for k in range(frames_per_clip)]
            )
    return {"train": train, "test": test}


def write_kinetics_sounds(
    root: Path, layout: str, *, num_classes: int = 3, per_class: int = 4, seed: int = 0
) -> dict:
    """A Kinetics-Sounds root in ``layout``: 10 frames per clip, (257, 12) pickled
    spectrograms (ogm_ge) or (16, 128) .npy fbanks (balancebenchmark)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = {"train": [], "test": []}
    for label in range(num_classes):
        rows["train"] += [(f"-k{label}x{k}_000010_000020", label) for k in range(per_class)]
        rows["test"] += [(f"-k{label}t{k}_000030_000040", label) for k in range(2)]
    for split, entries in rows.items():
        if layout == "ogm_ge":
            write_list(root / f"my_{split}.txt", [f"{clip},10,{label}" for clip, label in entries])
        else:
            write_list(root / f"{split}.txt", [f"{clip} extra {label}" for clip, label in entries])
        for clip, _ in entries:
            if layout == "ogm_ge":
                (root / "audio_spec").mkdir(exist_ok=True)
                with open(root / "audio_spec" / f"{clip}.pkl", "wb") as handle:
                    pickle.dump(rng.standard_normal((257, 12)), handle)
            else:
                (root / "audio").mkdir(exist_ok=True)
                np.save(
                    root / "audio" / f"{clip}.npy",
                    rng.standard_normal((16, 128)).astype(np.float32),
                )
            write_frames(root / "visual" / clip, [f"frame_{k + 1:05d}.jpg" for k in range(10)])
    return rows


def write_ave(
    root: Path, layout: str = "ogm_ge", *, seed: int = 0
) -> dict[str, list[tuple[str, str]]]:
    """An AVE root: official annotation files (categories with commas, a video on two
    lines of the train split) and per-video audio and 10 frames."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    splits = {"train": [], "val": [], "test": []}
    for c, category in enumerate(AVE_CATEGORIES):
        splits["train"] += [(category, f"trainvid{c}{k}") for k in range(2)]
        splits["val"].append((category, f"valvid{c}"))
        splits["test"].append((category, f"testvid{c}"))
    splits["train"].append((AVE_CATEGORIES[1], "trainvid00"))  # relabelled by its last line
    header = "Category&VideoID&Quality&StartTime&EndTime"
    rows = {s: [f"{cat}&{vid}&good&0&10" for cat, vid in entries] for s, entries in splits.items()}
    write_list(
        root / "Annotations.txt", [header, *rows["train"], *rows["val"], *rows["test"]], crlf=True
    )
    for split, name in (("train", "trainSet.txt"), ("val", "valSet.txt"), ("test", "testSet.txt")):
        write_list(root / name, rows[split])
    for _, video in splits["train"] + splits["val"] + splits["test"]:
        if layout == "ogm_ge":
            (root / "audio_spec").mkdir(exist_ok=True)
            with open(root / "audio_spec" / f"{video}.pkl", "wb") as handle:
                pickle.dump(rng.standard_normal((257, 12)).astype(np.float32), handle)
        else:
            (root / "audio").mkdir(exist_ok=True)
            np.save(
                root / "audio" / f"{video}.npy", rng.standard_normal((16, 128)).astype(np.float32)
            )
        write_frames(root / "visual" / video, [f"frame_{k + 1:05d}.jpg" for k in range(10)])
    return splits


# runners/train.py settings for one quick epoch on these fixtures.
TINY_NETWORK = [
    "--set",
    "backbone=small_cnn",
    "--set",
    "backbone_options={channels: [4], out_dim: 8}",
    "--set",
    "batch_size=6",
    "--set",
    "epochs=1",
    "--set",
    "diagnostics=false",
    "--quiet",
]
