"""Kinetics-Sounds (audio + visual, 31 classes) in the layouts of OGM-GE and BalanceBenchmark.

- ``ogm_ge``: lists ``my_train.txt`` / ``my_test.txt`` (no header, rows
  ``<id>,10,<label 0-30>``), spectrograms ``audio_spec/<id>.pkl`` (a pickled float
  array (257, 1004)), frames ``visual/<id>/frame_00001.jpg ...``.
- ``balancebenchmark``: lists ``train.txt`` / ``test.txt`` (space-separated, the
  name first and the integer label last), fbank ``audio/<id>.npy`` (1024, 128),
  frames ``visual/<id>/frame_00001.jpg ...``.

The lists carry label indices, so the label order is the lists' own; ``class_names``
may name them. Neither codebase has a validation list: ``val`` is a stratified
``val_fraction`` of the train list fixed by ``split_seed``, as for CREMA-D.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from goal_plugin import _validation as check
from goal_plugin.data.audio import NPY_FBANK, PKL_SPECTROGRAM
from goal_plugin.data.av import (
    SPLIT_SEED,
    VAL_FRACTION,
    AudioVisualDataset,
    Clip,
    StoredAudio,
    check_flag,
    check_val_split,
    detect_layout,
    frame_reader,
    held_out_val_protocol,
    train_val_part,
)
from goal_plugin.data.base import DATASETS
from goal_plugin.data.files import line_error, read_lines, require_root

LAYOUTS = {"ogm_ge": ("audio_spec", "visual"), "balancebenchmark": ("audio", "visual")}
LISTS = {"ogm_ge": ("my_train.txt", "my_test.txt"), "balancebenchmark": ("train.txt", "test.txt")}
AUDIO = {"ogm_ge": ("audio_spec", PKL_SPECTROGRAM), "balancebenchmark": ("audio", NPY_FBANK)}
FRAME_PATTERN = "frame_00001.jpg, ..."
ROOT_HELP = "my_train.txt, my_test.txt, audio_spec/, visual/ (OGM-GE) or train.txt, test.txt, audio/, visual/ (BalanceBenchmark)"


def read_list(path: Path, layout: str, num_classes: int) -> list[tuple[str, int]]:
    """(clip id, label) rows of a Kinetics-Sounds list in ``layout``'s format."""
    if layout == "ogm_ge":
        expected = f"rows '<id>,10,<label 0-{num_classes - 1}>'"
    else:
        expected = f"rows '<name> ... <label 0-{num_classes - 1}>' separated by spaces"
    rows = []
    for number, line in enumerate(read_lines(path, layout, expected), start=1):
        fields = line.split(",") if layout == "ogm_ge" else line.split()
        valid = len(fields) == 3 if layout == "ogm_ge" else len(fields) >= 2
        label = fields[-1].strip()
        if not valid or not label.isdigit() or int(label) >= num_classes or not fields[0].strip():
            raise line_error(path, number, line, expected, layout)
        rows.append((fields[0].strip(), int(label)))
    return rows


@DATASETS.register("kinetics_sounds")
def kinetics_sounds(
    root: str | None,
    split: str,
    *,
    layout: str | None = None,
    num_classes: int = 31,
    class_names: Sequence[str] | None = None,
    train_list: str | None = None,
    test_list: str | None = None,
    num_frames: int = 3,
    frame_sampling: str = "segment_start",
    image_size: int = 224,
    val_fraction: float = VAL_FRACTION,
    split_seed: int = SPLIT_SEED,
    skip_missing: bool = False,
) -> AudioVisualDataset:
    """Kinetics-Sounds from ``root`` (options in docs/datasets.md).

    layout: ogm_ge | balancebenchmark, detected from the folders when unset.
    num_classes: 31 (the OGM-GE list); class_names: optional names of labels 0..K-1.
    train_list / test_list: list files (default: the layout's), relative to root or
    absolute. num_frames (3), frame_sampling, image_size, val_fraction, split_seed,
    skip_missing: as for crema_d.
    """
    root_path = require_root(root, "kinetics_sounds", ROOT_HELP)
    layout = detect_layout(root_path, LAYOUTS, layout, "kinetics_sounds")
    check_val_split(val_fraction, split_seed)
    check_flag("skip_missing", skip_missing)
    num_classes = check.integer("num_classes", num_classes, minimum=2)
    if class_names is None:
        class_names = [str(index) for index in range(num_classes)]
    elif isinstance(class_names, str) or len(class_names) != num_classes:
        raise ValueError(
            f"class_names must list {num_classes} names (num_classes), got {class_names!r}"
        )
    train_list, test_list = train_list or LISTS[layout][0], test_list or LISTS[layout][1]
    list_name = test_list if split == "test" else train_list
    rows = read_list(root_path / list_name, layout, num_classes)
    if split != "test":
        rows = [
            rows[i]
            for i in train_val_part([label for _, label in rows], split, val_fraction, split_seed)
        ]
    audio_dir, form = AUDIO[layout]
    clips = [
        Clip(
            name, label, root_path / audio_dir / f"{name}{form.suffix}", root_path / "visual" / name
        )
        for name, label in rows
    ]
    frames = frame_reader(split, num_frames, image_size, frame_sampling, layout, FRAME_PATTERN)
    return AudioVisualDataset(
        clips,
        StoredAudio(form, layout),
        frames,
        [str(n) for n in class_names],
        name="kinetics_sounds",
        split=split,
        layout=layout,
        protocol=held_out_val_protocol(train_list, test_list, val_fraction, split_seed),
        skip_missing=skip_missing,
    )
