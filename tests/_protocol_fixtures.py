"""Fixtures for the evaluation-protocol tests: a CREMA-D root whose clips come from
chosen actors, and a tiny root (or none) with options for every registered dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from goal_plugin.data.image_text import IMAGE_TEXT_DATASETS
from goal_plugin.data.sequences import SEQUENCE_DATASETS
from tests._av_fixtures import (
    EMOTIONS,
    write_ave,
    write_crema_d,
    write_frames,
    write_kinetics_sounds,
    write_list,
)
from tests._image_text_fixtures import image_text_dataset_case
from tests._sequence_fixtures import sequence_dataset_case

SMALL = {"image_size": 16}


def write_crema_d_actors(root: Path, actors: dict[str, list[int]]) -> dict[str, list[str]]:
    """A CREMA-D root (BalanceBenchmark layout: fbank .pt files, 2 frames per clip) with
    one clip per emotion for each actor of ``actors["train"]`` (listed in train.csv)
    and ``actors["test"]`` (test.csv); returns the clips per list."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    lists = {}
    for name in ("train", "test"):
        clips = [f"{actor}_IEO_{emotion}_XX" for actor in actors[name] for emotion in EMOTIONS]
        write_list(
            root / f"{name}.csv", [f"{clip},{clip.split('_')[2]}" for clip in clips], crlf=True
        )
        for clip in clips:
            (root / "audio").mkdir(exist_ok=True)
            fbank = torch.from_numpy(rng.standard_normal((20, 128)).astype(np.float32))
            torch.save(fbank, root / "audio" / f"{clip}.pt")
            write_frames(root / "visual" / clip, [f"frame_{k + 1:05d}.jpg" for k in range(2)])
        lists[name] = clips
    return lists


def dataset_case(name: str, base: Path) -> tuple[str | None, dict]:
    """(data_root, options) that build every split of registered dataset ``name``
    from a tiny fixture; a dataset without a case here fails the tests that need one."""
    if name == "mfeat":
        return None, {}
    if name == "synthetic":
        return None, {"sizes": [60, 20, 20]}
    if name == "crema_d":
        write_crema_d(base / "crema", "balancebenchmark")
        return str(base / "crema"), {**SMALL, "val_fraction": 0.34}
    if name == "kinetics_sounds":
        write_kinetics_sounds(base / "ks", "ogm_ge")
        return str(base / "ks"), {**SMALL, "val_fraction": 0.25, "num_classes": 3}
    if name == "ave":
        write_ave(base / "ave", "ogm_ge")
        return str(base / "ave"), SMALL
    if name in SEQUENCE_DATASETS:
        return sequence_dataset_case(name, base)
    if name in IMAGE_TEXT_DATASETS:
        return image_text_dataset_case(name, base)
    if name == "files":  # a manifest of WAV, JPEG, .npy and text cells, no val rows
        from tests.test_files_dataset import OPTIONS, write_manifest_root

        write_manifest_root(base / "files", count=24, test=6)
        return str(base / "files"), OPTIONS
    if name == "tensors":  # arrays per modality and split, no val/ folder
        rng = np.random.default_rng(0)
        for split, count in (("train", 30), ("test", 10)):
            (base / "tensors" / split).mkdir(parents=True)
            np.save(base / "tensors" / split / "a.npy", rng.normal(size=(count, 4)).astype(np.float32))
            np.save(base / "tensors" / split / "b.npy", rng.normal(size=(count, 3)).astype(np.float32))
            np.save(base / "tensors" / split / "labels.npy", np.arange(count) % 3)
        return str(base / "tensors"), {}
    raise LookupError(
        f"no fixture for dataset {name!r}: add one to tests/_protocol_fixtures.py (dataset_case)"
    )
