"""IEMOCAP (audio, visual, text) read from the conversation feature pickle
``IEMOCAP_features.pkl`` (six emotions, utterance level) or MulT's
``iemocap_data.pkl`` / ``iemocap_data_noalign.pkl`` (four binary emotion tasks);
options in docs/sequence_datasets.md."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from goal_plugin.data.conversations import IEMOCAP_FIELDS, read_conversations
from goal_plugin.data.files import DataError, require_root
from goal_plugin.data.mult import SPLIT_KEYS, read_mult_split
from goal_plugin.data.sequences import (
    MODALITIES,
    SequenceDataset,
    check_modalities,
    check_task,
    check_val_draw,
    empty_note,
    find_file,
    load_pickle,
    nonfinite_note,
    register_sequence_dataset,
    relative_name,
    val_part,
    warn,
)

CONVERSATION_FILES = ("IEMOCAP_features.pkl",)
MULT_FILES = ("iemocap_data.pkl", "iemocap_data_noalign.pkl")
FORMATS = ("conversation", "mult")
# The conversation pickle's label indices (DialogueRNN): hap sad neu ang exc fru -> 0..5.
EMOTIONS = ["hap", "sad", "neu", "ang", "exc", "fru"]
# MulT's label axis 1 (its eval_metrics order); axis 2 is one-hot (absent, present).
MULT_EMOTIONS = ["neutral", "happy", "sad", "angry"]
SUPPORTED_TASKS = {"conversation": ("classification",), "mult": ("classification", "multilabel")}
VAL_FRACTION, SPLIT_SEED = 0.1, 0


def detect_format(data: object) -> str:
    return "conversation" if isinstance(data, (tuple, list)) else "mult"


def mult_labels(labels: np.ndarray, where: str) -> np.ndarray:
    """MulT's (N, 4, 2) one-hot labels as (N, 4) of 0 / 1 (1: the emotion is present),
    the argmax MulT takes."""
    if labels.shape[1:] != (4, 2):
        raise DataError(
            where,
            "one-hot labels (N, 4, 2) (neutral happy sad angry)",
            "mult",
            f"shape {labels.shape}",
        )
    bad = ~np.isin(labels, (0, 1)).all(axis=2) | (labels.sum(axis=2) != 1)
    if bad.any():
        i, emotion = map(int, np.argwhere(bad)[0])
        raise DataError(
            where,
            "one-hot pairs (absent, present) of 0 / 1",
            "mult",
            f"{labels[i, emotion].tolist()} at index {i}, emotion {MULT_EMOTIONS[emotion]}",
        )
    return labels.argmax(axis=2)


@register_sequence_dataset("iemocap")
def iemocap(
    root: str | None,
    split: str,
    *,
    task: str = "classification",
    emotion: str | None = None,
    file: str | None = None,
    format: str | None = None,
    modalities: Sequence[str] = MODALITIES,
    val_fraction: float = VAL_FRACTION,
    split_seed: int = SPLIT_SEED,
) -> SequenceDataset:
    """IEMOCAP from ``root`` (docs/sequence_datasets.md).

    Conversation pickle: task classification over hap sad neu ang exc fru (0..5);
    train / test are trainVid / testVid, val a stratified val_fraction of the trainVid
    utterances drawn by split_seed. MulT pickle: its train / valid / test; task
    classification is one binary task, the emotion named by ``emotion`` (neutral,
    happy, sad, angry); task multilabel gives all four (float (N, 4)). file / format
    pick the pickle when root holds several. modalities: audio, visual, text.
    """
    modalities = check_modalities(modalities)
    val_fraction, split_seed = check_val_draw(val_fraction, split_seed)
    if format is not None and format not in FORMATS:
        raise ValueError(f"option format of iemocap must be conversation or mult, got {format!r}")
    listed = {"conversation": CONVERSATION_FILES, "mult": MULT_FILES}.get(
        format, CONVERSATION_FILES + MULT_FILES
    )
    folder = require_root(root, "iemocap", f"one of {', '.join(listed)}")
    path = find_file(folder, file, listed, "iemocap")
    data = load_pickle(path, format or "conversation or mult")
    format = format or detect_format(data)
    name = relative_name(path, folder)
    task = check_task(f"iemocap ({name}, {format} format)", task, SUPPORTED_TASKS[format])
    if format == "conversation":
        if emotion is not None:
            raise ValueError(
                "option emotion of iemocap selects a MulT task; the conversation pickle has six classes: leave it unset"
            )
        part = "testVid" if split == "test" else "trainVid"
        utterances = read_conversations(
            data, path, IEMOCAP_FIELDS, part, {"videoLabels": len(EMOTIONS)}, modalities
        )
        labels = utterances.labels["videoLabels"]
        rows = None if split == "test" else val_part(labels, split, val_fraction, split_seed)
        targets = torch.from_numpy(labels if rows is None else labels[rows])
        class_names, raw = EMOTIONS, utterances.raw
        protocol = (
            f"{name}: train / test = the utterances of the dialogues of trainVid / testVid; "
            f"val: {100 * val_fraction:g}% of the trainVid utterances, stratified by class, "
            f"split_seed {split_seed}"
        )
    else:
        if (val_fraction, split_seed) != (VAL_FRACTION, SPLIT_SEED):
            raise ValueError(
                "val_fraction / split_seed draw val from the conversation pickle's trainVid; "
                f"{name} has its own valid split: leave them unset"
            )
        raw, stored, aligned = read_mult_split(data, path, split, modalities)
        present = mult_labels(stored, f"{path} [{SPLIT_KEYS[split]!r}]['labels']")
        if task == "multilabel":
            if emotion is not None:
                raise ValueError(
                    "option emotion of iemocap picks one binary task (task classification); task multilabel takes all four: leave it unset"
                )
            targets, class_names = torch.from_numpy(present.astype(np.float32)), MULT_EMOTIONS
        else:
            if emotion not in MULT_EMOTIONS:
                raise ValueError(
                    f"option emotion of iemocap ({name}, task classification) must be one of "
                    f"{', '.join(MULT_EMOTIONS)}, got {emotion!r} (task multilabel takes all four)"
                )
            column = present[:, MULT_EMOTIONS.index(emotion)]
            targets, class_names = (
                torch.from_numpy(column.astype(np.int64)),
                [f"not {emotion}", emotion],
            )
        rows = None
        protocol = f"the train / valid / test splits of {name} (mult) as stored; val = valid"
    sequences, empty = raw.pack(rows)
    where = f"{name} [{SPLIT_KEYS[split]!r}]" if format == "mult" else name
    notes = [note for note in (nonfinite_note(raw.nonfinite, where), empty_note(empty)) if note]
    warn("iemocap", split, notes)
    layout = (
        "conversation"
        if format == "conversation"
        else f"mult_{'aligned' if aligned else 'unaligned'}"
    )
    return SequenceDataset(
        sequences,
        targets,
        task=task,
        supported_tasks=SUPPORTED_TASKS[format],
        class_names=class_names,
        protocol=protocol,
        layout=layout,
        source=str(path),
        nonfinite=raw.nonfinite,
        empty=empty,
        notes=notes,
    )
