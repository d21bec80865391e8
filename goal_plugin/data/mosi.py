"""CMU-MOSI and CMU-MOSEI (audio, visual, text; sentiment scores in [-3, 3]) read from
the MMSA pickles (``aligned_50.pkl`` / ``unaligned_50.pkl``) or the MulT / MultiBench
pickles (options and label conventions in docs/sequence_datasets.md)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from goal_plugin.data.files import DataError, require_root
from goal_plugin.data.mult import read_mult_split
from goal_plugin.data.sequences import (
    MODALITIES,
    RawSplit,
    SequenceDataset,
    check_modalities,
    check_task,
    checked_lengths,
    describe,
    empty_note,
    find_file,
    load_pickle,
    nonfinite_note,
    numeric_array,
    register_sequence_dataset,
    relative_name,
    replace_nonfinite,
    require_key,
    warn,
)

MMSA_FILES = ("aligned_50.pkl", "unaligned_50.pkl")
MULT_FILES = {
    "mosi": ("mosi_data.pkl", "mosi_data_noalign.pkl", "mosi_raw.pkl"),
    "mosei": ("mosei_senti_data.pkl", "mosei_senti_data_noalign.pkl"),
}
FORMATS = ("mmsa", "mult")
SPLIT_KEYS = {"train": "train", "val": "valid", "test": "test"}
SUPPORTED_TASKS = ("regression", "classification")
SCORE_RANGE = (-3.0, 3.0)
# Classification labels made from the scores: Acc-2 in both conventions, and Acc-7.
LABEL_SCHEMES = {
    "has_zero": ["negative", "non-negative"],  # y < 0 -> 0, y >= 0 -> 1
    "non_zero": ["negative", "positive"],  # y == 0 dropped, y < 0 -> 0, y > 0 -> 1
    "seven_class": ["-3", "-2", "-1", "0", "1", "2", "3"],  # round(clip(y, -3, 3)) + 3
}
MMSA_KEYS = {"audio": "audio", "visual": "vision", "text": "text"}


def read_mmsa_split(
    data: object, path: Path, split: str, modalities: Sequence[str]
) -> tuple[RawSplit, np.ndarray, bool]:
    """The ``modalities`` of ``split`` of a loaded MMSA pickle, its regression labels and
    whether it is aligned (no ``*_lengths`` keys). The text's lengths are the sums of
    ``text_bert``'s attention-mask row; an aligned file's audio and vision share them."""
    layout = "mmsa"
    key = SPLIT_KEYS[split]
    part = require_key(data, key, str(path), layout, "a split: a dict of MMSA arrays")
    where = f"{path} [{key!r}]"
    labels = numeric_array(
        require_key(part, "regression_labels", where, layout, "scores (N,)"),
        1,
        f"{where}['regression_labels']",
        layout,
        "scores (N,)",
    )
    count = len(labels)
    arrays = {}
    for modality, name in MMSA_KEYS.items():
        raw = require_key(part, name, where, layout, "features (N, L, D)")
        arrays[modality] = numeric_array(raw, 3, f"{where}[{name!r}]", layout, "features (N, L, D)")
    text_steps = arrays["text"].shape[1]
    expected_bert = f"token ids / mask / segment ids (N, 3, L) with N = {count}, L = {text_steps}"
    text_bert = numeric_array(
        require_key(part, "text_bert", where, layout, "(N, 3, L) token ids / mask / segments"),
        3,
        f"{where}['text_bert']",
        layout,
        expected_bert,
    )
    if text_bert.shape != (count, 3, text_steps):
        raise DataError(f"{where}['text_bert']", expected_bert, layout, f"shape {text_bert.shape}")
    mask = text_bert[:, 1, :]
    if not np.isin(mask, (0, 1)).all():
        raise DataError(
            f"{where}['text_bert']",
            "an attention mask of 0 / 1 in row 1",
            layout,
            f"values {np.unique(mask)[:6]}",
        )
    text_lengths = mask.sum(axis=1).astype(np.int64)
    present = [name in part for name in ("audio_lengths", "vision_lengths")]
    aligned = not any(present)
    if any(present) and not all(present):
        missing = "vision_lengths" if present[0] else "audio_lengths"
        raise DataError(
            where, f"key {missing!r} (an unaligned file has both lengths)", layout, "no such key"
        )
    raw = RawSplit({}, {}, {}, {})
    for modality in modalities:
        name = MMSA_KEYS[modality]
        array = arrays[modality]
        if len(array) != count:
            raise DataError(
                f"{where}[{name!r}]",
                f"{count} samples (as many as labels)",
                layout,
                f"{len(array)}",
            )
        if modality == "text":
            lengths = text_lengths
        elif aligned:
            if array.shape[1] != text_steps:
                raise DataError(
                    f"{where}[{name!r}]",
                    f"L = {text_steps} (an aligned file: the text's L)",
                    layout,
                    f"shape {array.shape}",
                )
            lengths = text_lengths
        else:
            lengths = checked_lengths(
                part[f"{name}_lengths"], count, array.shape[1], f"{where}['{name}_lengths']", layout
            )
        raw.arrays[modality], raw.nonfinite[modality] = replace_nonfinite(array)
        raw.starts[modality], raw.lengths[modality] = np.zeros(count, dtype=np.int64), lengths
    return raw, labels, aligned


def detect_format(data: object, path: Path) -> str:
    """mmsa or mult, from the keys of the file's train split."""
    train = require_key(data, "train", str(path), "mmsa or mult", "the train split")
    if isinstance(train, dict) and "regression_labels" in train:
        return "mmsa"
    if isinstance(train, dict) and "labels" in train:
        return "mult"
    raise DataError(
        f"{path} ['train']",
        "MMSA keys (regression_labels, text, text_bert, audio, vision) or MulT keys "
        "(labels, text, audio, vision)",
        "mmsa or mult",
        describe(train),
    )


def checked_scores(labels: np.ndarray, where: str, layout: str) -> np.ndarray:
    """Sentiment scores, each finite and in [-3, 3]."""
    low, high = SCORE_RANGE
    bad = ~np.isfinite(labels) | (labels < low) | (labels > high)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            where, "sentiment scores in [-3, 3]", layout, f"{labels[i].item()!r} at index {i}"
        )
    return labels.astype(np.float32)


def labels_for(scores: np.ndarray, task: str, label_scheme: str | None):
    """(labels, class names, rows kept) of ``scores`` under ``task`` / ``label_scheme``."""
    if task == "regression":
        return torch.from_numpy(scores), ["sentiment"], None
    if label_scheme == "has_zero":
        return torch.from_numpy((scores >= 0).astype(np.int64)), LABEL_SCHEMES[label_scheme], None
    if label_scheme == "non_zero":
        keep = np.flatnonzero(scores != 0)
        return (
            torch.from_numpy((scores[keep] > 0).astype(np.int64)),
            LABEL_SCHEMES[label_scheme],
            keep,
        )
    # numpy rounds halves to even, as MulT's and MMSA's Acc-7 do
    seven = np.round(np.clip(scores, *SCORE_RANGE)).astype(np.int64) + 3
    return torch.from_numpy(seven), LABEL_SCHEMES[label_scheme], None


def check_label_scheme(dataset: str, task: str, label_scheme: object) -> str | None:
    if task == "classification":
        if label_scheme not in LABEL_SCHEMES:
            raise ValueError(
                f"option label_scheme of {dataset} (task classification) must be one of "
                f"{', '.join(LABEL_SCHEMES)}, got {label_scheme!r}"
            )
        return label_scheme
    if label_scheme is not None:
        raise ValueError(
            f"option label_scheme of {dataset} applies to task classification only; "
            f"task is {task!r}: leave it unset"
        )
    return None


def sentiment_dataset(
    dataset: str,
    root: str | None,
    split: str,
    task: str,
    label_scheme: str | None,
    file: str | None,
    format: str | None,
    modalities: Sequence[str],
) -> SequenceDataset:
    task = check_task(dataset, task, SUPPORTED_TASKS)
    label_scheme = check_label_scheme(dataset, task, label_scheme)
    modalities = check_modalities(modalities)
    if format is not None and format not in FORMATS:
        raise ValueError(f"option format of {dataset} must be mmsa or mult, got {format!r}")
    candidates = {"mmsa": MMSA_FILES, "mult": MULT_FILES[dataset]}
    listed = candidates[format] if format else MMSA_FILES + MULT_FILES[dataset]
    folder = require_root(root, dataset, f"one of {', '.join(listed)}")
    path = find_file(folder, file, listed, dataset)
    data = load_pickle(path, format or "mmsa or mult")
    format = format or detect_format(data, path)
    if format == "mmsa":
        raw, labels, aligned = read_mmsa_split(data, path, split, modalities)
        labels_key = "regression_labels"
    else:
        raw, labels, aligned = read_mult_split(data, path, split, modalities)
        labels_key = "labels"
        if labels.shape[1:] != (1, 1):
            raise DataError(
                f"{path} [{SPLIT_KEYS[split]!r}]['labels']",
                "sentiment scores (N, 1, 1)",
                format,
                f"shape {labels.shape}",
            )
        labels = labels.reshape(-1)
    scores = checked_scores(labels, f"{path} [{SPLIT_KEYS[split]!r}][{labels_key!r}]", format)
    targets, class_names, keep = labels_for(scores, task, label_scheme)
    sequences, empty = raw.pack(keep)
    name = relative_name(path, folder)
    notes = [
        note
        for note in (
            nonfinite_note(raw.nonfinite, f"{name} [{SPLIT_KEYS[split]!r}]"),
            empty_note(empty),
        )
        if note
    ]
    protocol = f"the train / valid / test splits of {name} ({format}) as stored; val = valid"
    if keep is not None:
        notes.append(f"dropped {len(scores) - len(keep)} samples scored 0 (label_scheme non_zero)")
        protocol += "; samples scored 0 dropped from every split (label_scheme non_zero)"
    warn(dataset, split, notes)
    return SequenceDataset(
        sequences,
        targets,
        task=task,
        supported_tasks=SUPPORTED_TASKS,
        class_names=class_names,
        protocol=protocol,
        layout=f"{format}_{'aligned' if aligned else 'unaligned'}",
        source=str(path),
        nonfinite=raw.nonfinite,
        empty=empty,
        notes=notes,
        score_range=SCORE_RANGE if task == "regression" else None,
    )


@register_sequence_dataset("mosi")
def mosi(
    root: str | None,
    split: str,
    *,
    task: str = "regression",
    label_scheme: str | None = None,
    file: str | None = None,
    format: str | None = None,
    modalities: Sequence[str] = MODALITIES,
) -> SequenceDataset:
    """CMU-MOSI from ``root`` (docs/sequence_datasets.md).

    task: regression (scores in [-3, 3], default) or classification with label_scheme
    has_zero (y >= 0 vs y < 0), non_zero (y == 0 dropped from every split, y > 0 vs
    y < 0) or seven_class (round(clip(y, -3, 3)) + 3). file: the pickle to read when
    root holds several (aligned_50.pkl, unaligned_50.pkl, mosi_data.pkl,
    mosi_data_noalign.pkl, mosi_raw.pkl). format: mmsa or mult, detected from the keys
    when unset. modalities: which of audio, visual, text, in that order.
    """
    return sentiment_dataset("mosi", root, split, task, label_scheme, file, format, modalities)


@register_sequence_dataset("mosei")
def mosei(
    root: str | None,
    split: str,
    *,
    task: str = "regression",
    label_scheme: str | None = None,
    file: str | None = None,
    format: str | None = None,
    modalities: Sequence[str] = MODALITIES,
) -> SequenceDataset:
    """CMU-MOSEI from ``root``: the options of ``mosi``; MulT's files are
    mosei_senti_data.pkl and mosei_senti_data_noalign.pkl."""
    return sentiment_dataset("mosei", root, split, task, label_scheme, file, format, modalities)
