"""AVE (audio + visual, 28 event categories) from its official annotation files.

``Annotations.txt`` (a header line, then ``Category&VideoID&Quality&StartTime&EndTime``)
gives the categories; ``trainSet.txt``, ``valSet.txt`` and ``testSet.txt`` (same
rows) give the splits. Lines are split on ``&`` only, because categories contain
commas. A video listed on several lines of a split is one sample whose label is
its last line's category (as OGM-GE's reader keeps it). Audio per layout:

- ``ogm_ge``: ``audio_spec/<VideoID>.pkl``, a pickled float array (257, 1004);
- ``balancebenchmark``: ``audio/<VideoID>.npy``, a fbank (1024, 128);

frames ``visual/<VideoID>/frame_00001.jpg ...`` in both.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from goal_plugin.data.av import (
    AudioVisualDataset,
    Clip,
    StoredAudio,
    check_flag,
    detect_layout,
    frame_reader,
    resolve_label_order,
)
from goal_plugin.data.base import DATASETS
from goal_plugin.data.files import line_error, read_lines, require_root
from goal_plugin.data.kinetics_sounds import AUDIO, FRAME_PATTERN

LAYOUTS = {
    "ogm_ge": ("Annotations.txt", "audio_spec", "visual"),
    "balancebenchmark": ("Annotations.txt", "audio", "visual"),
}
SPLIT_FILES = {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"}
PROTOCOL = "official lists trainSet.txt / valSet.txt / testSet.txt"
ROW = "rows 'Category&VideoID&Quality&StartTime&EndTime'"
ROOT_HELP = "Annotations.txt, trainSet.txt, valSet.txt, testSet.txt, visual/ and audio_spec/ (OGM-GE) or audio/ (BalanceBenchmark)"


def read_annotations(path: Path, layout: str) -> dict[str, str]:
    """VideoID -> category of an AVE annotation file, in file order (header skipped)."""
    labels: dict[str, str] = {}
    for number, line in enumerate(read_lines(path, layout, ROW), start=1):
        fields = [field.strip() for field in line.split("&")]
        if len(fields) != 5 or not fields[0] or not fields[1]:
            raise line_error(path, number, line, ROW, layout)
        if number == 1 and fields[:2] == ["Category", "VideoID"]:
            continue
        labels[fields[1]] = fields[0]
    return labels


@DATASETS.register("ave")
def ave(
    root: str | None,
    split: str,
    *,
    layout: str | None = None,
    label_order: str | Sequence[str] = "ogm_ge",
    num_frames: int = 3,
    frame_sampling: str = "segment_start",
    image_size: int = 224,
    skip_missing: bool = False,
) -> AudioVisualDataset:
    """AVE from ``root`` (options in docs/datasets.md).

    layout: ogm_ge | balancebenchmark, detected from the folders when unset.
    label_order: ogm_ge and sorted are both the sorted category names (OGM-GE sorts
    them), or an explicit list of the categories of Annotations.txt. num_frames
    (3), frame_sampling, image_size, skip_missing: as for crema_d.
    """
    root_path = require_root(root, "ave", ROOT_HELP)
    layout = detect_layout(root_path, LAYOUTS, layout, "ave")
    check_flag("skip_missing", skip_missing)
    categories = sorted(set(read_annotations(root_path / "Annotations.txt", layout).values()))
    classes = resolve_label_order(label_order, categories, "ave")
    split_file = root_path / SPLIT_FILES[split]
    rows = read_annotations(split_file, layout)
    unknown = sorted(set(rows.values()) - set(classes))
    if unknown:
        raise ValueError(
            f"{split_file}: categories {unknown} are not in Annotations.txt ({layout} layout)"
        )
    audio_dir, form = AUDIO[layout]
    clips = [
        Clip(
            video,
            classes.index(category),
            root_path / audio_dir / f"{video}{form.suffix}",
            root_path / "visual" / video,
        )
        for video, category in rows.items()
    ]
    frames = frame_reader(split, num_frames, image_size, frame_sampling, layout, FRAME_PATTERN)
    return AudioVisualDataset(
        clips,
        StoredAudio(form, layout),
        frames,
        classes,
        name="ave",
        split=split,
        layout=layout,
        protocol=PROTOCOL,
        skip_missing=skip_missing,
    )
