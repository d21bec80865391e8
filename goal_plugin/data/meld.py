"""MELD (audio, visual, text; 7 emotions or 3 sentiments) read from the conversation
feature pickle ``MELD_features_raw1.pkl``, flattened to utterances, with the labels of
the official CSVs where they are in the root (docs/sequence_datasets.md)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from goal_plugin.data.conversations import MELD_FIELDS, read_conversations
from goal_plugin.data.files import DataError, require_root
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

FILES = ("MELD_features_raw1.pkl",)
CSV_FILES = ("train_sent_emo.csv", "dev_sent_emo.csv", "test_sent_emo.csv")
CSV_HEADER = (
    "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,"
    "StartTime,EndTime"
)
# The pickle's label indices (as its readers document them) and the CSV column of each.
LABELS = {
    "emotion": (
        "videoLabels",
        "Emotion",
        ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"],
    ),
    "sentiment": ("videoLabelsSentiment", "Sentiment", ["neutral", "positive", "negative"]),
}
LABEL_SOURCES = ("csv", "pickle")
SUPPORTED_TASKS = ("classification",)
VAL_FRACTION, SPLIT_SEED = 0.1, 0
EXAMPLES = 3


def read_csv_labels(path: Path) -> dict[int, list[dict[str, str]]]:
    """The rows of an official MELD CSV per Dialogue_ID, in Utterance_ID order."""
    expected = f"the official header {CSV_HEADER}"
    try:
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            header = list(reader.fieldnames or [])
    except (OSError, csv.Error) as error:
        raise DataError(path, expected, "meld csv", f"an unreadable CSV ({error})") from None
    needed = ("Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID")
    if not rows or any(column not in header for column in needed):
        raise DataError(path, expected, "meld csv", f"header {','.join(header) or '(none)'}")
    dialogues: dict[int, list[tuple[int, dict[str, str]]]] = {}
    for line, row in enumerate(rows, start=2):
        try:
            dialogue, utterance = int(row["Dialogue_ID"]), int(row["Utterance_ID"])
        except (TypeError, ValueError):
            raise DataError(
                f"{path}, line {line}",
                "integer Dialogue_ID and Utterance_ID",
                "meld csv",
                f"{row['Dialogue_ID']!r}, {row['Utterance_ID']!r}",
            ) from None
        for _, column, names in LABELS.values():
            value = (row[column] or "").strip().lower()
            if value not in names:
                raise DataError(
                    f"{path}, line {line}",
                    f"{column} one of {' '.join(names)}",
                    "meld csv",
                    repr(row[column]),
                )
            row[column] = value
        dialogues.setdefault(dialogue, []).append((utterance, row))
    return {
        d: [row for _, row in sorted(rows, key=lambda r: r[0])] for d, rows in dialogues.items()
    }


def csv_dialogues(folder: Path) -> dict[int, tuple[str, int, list[dict[str, str]]]] | None:
    """The official CSVs' dialogues under the pickle's dialogue keys (train Dialogue_ID;
    dev Dialogue_ID + 1 + the last train id; test after the dev ones likewise, i.e.
    1039 and 1153 for the release), or None when the root holds none of the CSVs."""
    present = [name for name in CSV_FILES if (folder / name).is_file()]
    if not present:
        return None
    if len(present) != len(CSV_FILES):
        missing = [name for name in CSV_FILES if name not in present]
        raise DataError(
            folder / missing[0],
            "all three official CSVs (train, dev, test) or none",
            "meld csv",
            f"the file does not exist (present: {', '.join(present)})",
        )
    keyed, offset = {}, 0
    for name in CSV_FILES:
        dialogues = read_csv_labels(folder / name)
        for dialogue, rows in dialogues.items():
            keyed[offset + dialogue] = (name, dialogue, rows)
        offset += max(dialogues) + 1
    return keyed


def join_csv_labels(
    utterances, field: str, column: str, names: list[str], official
) -> tuple[np.ndarray, dict, list[str]]:
    """The labels of ``utterances`` taken from the official CSVs where a dialogue of the
    pickle has a CSV dialogue of as many rows (matched by position), the pickle's
    elsewhere; the counts, and examples of labels on which the two disagree."""
    labels = utterances.labels[field].copy()
    counts = {"from_csv": 0, "not_in_csv": 0, "disagreements": 0}
    examples = []
    size = {}
    for key in utterances.keys:
        size[key] = size.get(key, 0) + 1
    for i, (key, position) in enumerate(zip(utterances.keys, utterances.positions)):
        entry = official.get(key) if isinstance(key, (int, np.integer)) else None
        if entry is None or len(entry[2]) != size[key]:
            counts["not_in_csv"] += 1
            continue
        file, dialogue, rows = entry
        value = names.index(rows[position][column])
        counts["from_csv"] += 1
        if value != labels[i]:
            counts["disagreements"] += 1
            if len(examples) < EXAMPLES:
                examples.append(
                    f"dialogue {key!r} utterance {position} ({file} Dialogue_ID {dialogue}): "
                    f"CSV {names[value]!r}, pickle {names[labels[i]]!r}"
                )
            labels[i] = value
    return labels, counts, examples


def resolve_label_order(label_order: object, names: list[str]) -> list[str]:
    if label_order == "pickle":
        return list(names)
    if label_order == "sorted":
        return sorted(names)
    if isinstance(label_order, (list, tuple)) and sorted(map(str, label_order)) == sorted(names):
        return [str(name) for name in label_order]
    raise ValueError(
        f"label_order of meld must be 'pickle', 'sorted' or a list naming each of "
        f"{' '.join(names)} once, got {label_order!r}"
    )


@register_sequence_dataset("meld")
def meld(
    root: str | None,
    split: str,
    *,
    task: str = "classification",
    labels: str = "emotion",
    label_order: str | Sequence[str] = "pickle",
    label_source: str = "csv",
    file: str | None = None,
    modalities: Sequence[str] = MODALITIES,
    val_fraction: float = VAL_FRACTION,
    split_seed: int = SPLIT_SEED,
) -> SequenceDataset:
    """MELD from ``root`` (docs/sequence_datasets.md).

    labels: emotion (7 classes) or sentiment (3). label_order: pickle (the pickle's
    indices: neutral surprise fear sadness joy disgust anger; neutral positive
    negative), sorted, or a list of the class names. label_source: csv (the official
    CSVs' labels where they are in root and match a dialogue, the pickle's elsewhere;
    disagreements are counted) or pickle. train / test are the utterances of trainVid
    (MELD train + dev) / testVid; val a stratified val_fraction of the trainVid
    utterances drawn by split_seed. file: the pickle (MELD_features_raw1.pkl).
    """
    check_task("meld", task, SUPPORTED_TASKS)
    if labels not in LABELS:
        raise ValueError(f"option labels of meld must be emotion or sentiment, got {labels!r}")
    field, column, names = LABELS[labels]
    order = resolve_label_order(label_order, names)
    if label_source not in LABEL_SOURCES:
        raise ValueError(f"option label_source of meld must be csv or pickle, got {label_source!r}")
    modalities = check_modalities(modalities)
    val_fraction, split_seed = check_val_draw(val_fraction, split_seed)
    folder = require_root(root, "meld", f"{FILES[0]} (and optionally {', '.join(CSV_FILES)})")
    path = find_file(folder, file, FILES, "meld")
    name = relative_name(path, folder)
    data = load_pickle(path, "conversation")
    part = "testVid" if split == "test" else "trainVid"
    utterances = read_conversations(data, path, MELD_FIELDS, part, {field: len(names)}, modalities)
    notes = []
    official = csv_dialogues(folder) if label_source == "csv" else None
    if official is None:
        values = utterances.labels[field]
        source = "the pickle"
        if label_source == "csv":
            notes.append(
                f"no official CSVs ({', '.join(CSV_FILES)}) in {folder}: labels from the pickle"
            )
    else:
        values, counts, examples = join_csv_labels(utterances, field, column, names, official)
        source = "the official CSVs where they match a dialogue, the pickle elsewhere"
        if counts["not_in_csv"]:
            notes.append(
                f"{counts['not_in_csv']} utterances have no matching CSV dialogue: labels from the pickle"
            )
        if counts["disagreements"]:
            notes.append(
                f"{counts['disagreements']} of {counts['from_csv']} CSV labels disagree with the "
                f"pickle (the CSV's kept), e.g. " + "; ".join(examples)
            )
    remapped = np.asarray([order.index(names[v]) for v in range(len(names))])[values]
    rows = None if split == "test" else val_part(remapped, split, val_fraction, split_seed)
    sequences, empty = utterances.raw.pack(rows)
    notes += [
        note for note in (nonfinite_note(utterances.raw.nonfinite, name), empty_note(empty)) if note
    ]
    warn("meld", split, notes)
    protocol = (
        f"{name}: train / test = the utterances of the dialogues of trainVid (MELD train + dev) / "
        f"testVid (MELD test); val: {100 * val_fraction:g}% of the trainVid utterances, "
        f"stratified by class, split_seed {split_seed}; {labels} labels from {source}"
    )
    dataset = SequenceDataset(
        sequences,
        torch.from_numpy(remapped if rows is None else remapped[rows]),
        task=task,
        supported_tasks=SUPPORTED_TASKS,
        class_names=order,
        protocol=protocol,
        layout="conversation",
        source=str(path),
        nonfinite=utterances.raw.nonfinite,
        empty=empty,
        notes=notes,
    )
    dataset.label_check = counts if official is not None else None
    return dataset
