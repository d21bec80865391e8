"""Kinetics-Sounds from the Kinetics videos a user downloaded.

Kinetics has no archive: users download the YouTube clips, usually as
``<class>/<youtube id>_<start>_<end>.mp4`` (the Kinetics downloaders' naming,
which the OGM-GE lists use as clip ids). Videos are found anywhere under the
raw folder by that file name. The clips, their split and their labels are
OGM-GE's lists (``definitions/kinetics_sounds_{train,test}.txt``, 31 label
indices); a listed clip whose video is absent is reported as missing (YouTube
clips disappear, so every copy of Kinetics differs: the manifest lists them).

The classes are pinned in ``definitions/kinetics_sounds_classes.csv``: the 31
Kinetics-400 classes of the 34 of Arandjelovic & Zisserman (2017). A video
stored in a folder named after a Kinetics class that is not one of them (the
three the paper lists but Kinetics-400 lacks, and the two Kinetics-400 classes
some reproductions put in their place) is reported and skipped. OGM-GE's lists
name no class for their label indices; the manifest records, per label, the
class folders its videos were found in.

Audio is the video's track as the codebases extract it (16 kHz, 16 bits;
``recipes.py``), then per layout:

- ``ogm_ge``: ``audio_spec/<id>.pkl`` (the (257, 1004) spectrogram), lists
  ``my_train.txt`` / ``my_test.txt`` (rows ``<id>,10,<label>``);
- ``balancebenchmark``: ``audio/<id>.npy`` (the (1024, 128) fbank), lists
  ``train.txt`` / ``test.txt`` (rows ``<id> <label>``);

frames ``visual/<id>/frame_00001.jpg ...`` at 1 fps in both.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path

from goal_plugin.data.files import write_atomic
from goal_plugin.data.kinetics_sounds import read_list
from goal_plugin.prepare.clip import Job, Recipe
from goal_plugin.prepare.media import find_videos
from goal_plugin.prepare.runner import DEFINITIONS, Plan, PrepareError

PINNED_LISTS = {"train": "kinetics_sounds_train.txt", "test": "kinetics_sounds_test.txt"}
OUTPUT_LISTS = {
    "ogm_ge": {"train": "my_train.txt", "test": "my_test.txt"},
    "balancebenchmark": {"train": "train.txt", "test": "test.txt"},
}
RECIPES = {
    "ogm_ge": Recipe("visual", "numbered", 3, "audio_spec", "pkl"),
    "balancebenchmark": Recipe("visual", "numbered", 3, "audio", "npy"),
}
CLASSES = "kinetics_sounds_classes.csv"
NUM_CLASSES = 31  # the pinned lists' label count


def pinned_rows(split: str) -> list[tuple[str, int]]:
    """(clip, label) rows of a pinned OGM-GE list, read by the loader's own reader."""
    return read_list(DEFINITIONS / PINNED_LISTS[split], "ogm_ge", NUM_CLASSES)


def _normalised(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


def class_names() -> tuple[set[str], set[str]]:
    """(names of the 31 classes, names of the classes that are not Kinetics-Sounds), normalised;
    each class by its Kinetics-400 and its paper name."""
    kept, excluded = set(), set()
    with open(DEFINITIONS / CLASSES, newline="") as handle:
        for row in csv.DictReader(handle):
            names = {_normalised(row[key]) for key in ("kinetics_400_name", "l3net_name") if row[key]}
            (kept if row["kinetics_sounds_31"] == "yes" else excluded).update(names)
    return kept, excluded - kept


def plan(raw: Path, layout: str) -> Plan:
    videos = find_videos(raw)
    if not videos:
        raise PrepareError(f"--raw {raw}: no video files (.mp4, .webm, ...) anywhere under it")
    kept, excluded = class_names()
    jobs, unavailable = [], {}
    folders_per_label: dict[int, Counter] = defaultdict(Counter)
    for split in PINNED_LISTS:
        for clip, label in pinned_rows(split):
            paths = videos.get(clip)
            if not paths:
                unavailable[clip] = "missing video (no file of this name under --raw)"
                continue
            if len(paths) > 1:
                unavailable[clip] = f"{len(paths)} videos of this name: {', '.join(str(p.relative_to(raw)) for p in paths)}"
                continue
            folder = _normalised(paths[0].parent.name)
            if folder in excluded:
                unavailable[clip] = (
                    f"in class folder {paths[0].parent.name!r}, which is not one of the 31 pinned Kinetics-Sounds classes"
                )
                continue
            if folder in kept:
                folders_per_label[label][folder] += 1
            jobs.append(Job(clip, paths[0]))

    def write_lists(out: Path, prepared: set[str]) -> list[str]:
        names = OUTPUT_LISTS[layout]
        for split, name in names.items():
            rows = [
                f"{clip},10,{label}\n" if layout == "ogm_ge" else f"{clip} {label}\n"
                for clip, label in pinned_rows(split)
                if clip in prepared
            ]
            write_atomic(out / name, "".join(rows).encode())
        return list(names.values())

    return Plan(
        "kinetics_sounds",
        layout,
        RECIPES[layout],
        jobs,
        unavailable,
        write_lists,
        definitions=[*PINNED_LISTS.values(), CLASSES],
        parameters={
            "frames_per_second": 1,
            "audio": _audio_recipe(layout),
            "class_folders_per_label": {
                str(label): dict(sorted(counts.items())) for label, counts in sorted(folders_per_label.items())
            },
        },
    )


def _audio_recipe(layout: str) -> str:
    track = "the video's audio track at 16 kHz, 16 bits (torchaudio resampling)"
    if layout == "ogm_ge":
        return f"{track}; OGM-GE lineage spectrogram (257, 1004) pickled"
    return f"{track}; BalanceBenchmark fbank (1024, 128) of channel 0, .npy"
