"""The conversation feature pickles of the DialogueRNN / MMGCN lineage
(``IEMOCAP_features.pkl``, a 9-tuple, and ``MELD_features_raw1.pkl``, a 10-tuple) of
per-dialogue dicts, flattened to one sample per utterance.

Each feature field maps a dialogue key to its utterances' vectors (n, D); an
utterance is a sequence of one step, (1, D). The dialogues of ``trainVid`` (or
``testVid``) are read in sorted key order, their utterances in stored order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from goal_plugin.data.files import DataError
from goal_plugin.data.sequences import RawSplit, describe, replace_nonfinite

LAYOUT = "conversation"
IEMOCAP_FIELDS = (
    "videoIDs",
    "videoSpeakers",
    "videoLabels",
    "videoText",
    "videoAudio",
    "videoVisual",
    "videoSentence",
    "trainVid",
    "testVid",
)
MELD_FIELDS = (*IEMOCAP_FIELDS, "videoLabelsSentiment")
FEATURE_FIELDS = {"audio": "videoAudio", "visual": "videoVisual", "text": "videoText"}


@dataclass
class Conversations:
    """The utterances of one part (trainVid or testVid): the dialogue ``keys`` and the
    ``positions`` within it of each, the integer ``labels`` of each label field, and
    the features as a ``RawSplit`` of one-step sequences."""

    keys: list
    positions: np.ndarray
    labels: dict[str, np.ndarray]
    raw: RawSplit


def _key_order(key: object) -> tuple:
    return (0, key, "") if isinstance(key, (int, np.integer)) else (1, 0, str(key))


def read_conversations(
    data: object,
    path: Path,
    fields: Sequence[str],
    part: str,
    label_fields: Mapping[str, int],
    modalities: Sequence[str],
) -> Conversations:
    """The utterances of the dialogues listed in ``part`` (trainVid or testVid); each
    label of ``label_fields`` must be an integer in [0, its class count)."""
    expected = f"a {len(fields)}-tuple ({', '.join(fields)})"
    if not isinstance(data, (tuple, list)) or len(data) != len(fields):
        raise DataError(path, expected, LAYOUT, describe(data))
    named = dict(zip(fields, data))
    listed = {}
    for name in ("trainVid", "testVid"):
        value = named[name]
        if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
            raise DataError(f"{path} {name}", "a list of dialogue keys", LAYOUT, describe(value))
        listed[name] = list(value)
    shared = set(listed["trainVid"]) & set(listed["testVid"])
    if shared:
        raise DataError(
            f"{path} trainVid / testVid",
            "disjoint lists of dialogues",
            LAYOUT,
            f"{len(shared)} dialogue(s) in both, e.g. {min(shared, key=_key_order)!r}",
        )
    for name in (*label_fields, *(FEATURE_FIELDS[m] for m in modalities)):
        if not isinstance(named[name], Mapping):
            raise DataError(
                f"{path} {name}",
                "a dict: dialogue key -> per-utterance values",
                LAYOUT,
                describe(named[name]),
            )
    keys, positions, features = [], [], {m: [] for m in modalities}
    labels = {name: [] for name in label_fields}
    for key in sorted(listed[part], key=_key_order):
        counts = set()
        for name, classes in label_fields.items():
            values = _entry(named, name, key, path, part)
            array = np.asarray(values)
            if array.ndim != 1 or not np.issubdtype(array.dtype, np.number):
                raise DataError(
                    f"{path} {name}[{key!r}]", "a list of integer labels", LAYOUT, describe(values)
                )
            bad = (array != np.round(array)) | (array < 0) | (array >= classes)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise DataError(
                    f"{path} {name}[{key!r}]",
                    f"integer labels in [0, {classes - 1}]",
                    LAYOUT,
                    f"{array[i].item()!r} at utterance {i}",
                )
            labels[name].append(array.astype(np.int64))
            counts.add(len(array))
        for modality in modalities:
            name = FEATURE_FIELDS[modality]
            values = _entry(named, name, key, path, part)
            try:
                array = np.asarray(values, dtype=np.float32)
            except (TypeError, ValueError):
                array = None
            if array is None or array.ndim != 2:
                found = (
                    describe(values) if array is None else f"rank {array.ndim}, shape {array.shape}"
                )
                raise DataError(
                    f"{path} {name}[{key!r}]", "per-utterance vectors (n, D)", LAYOUT, found
                )
            if features[modality] and array.shape[1] != features[modality][0].shape[1]:
                raise DataError(
                    f"{path} {name}[{key!r}]",
                    f"D = {features[modality][0].shape[1]} (as the dialogues before)",
                    LAYOUT,
                    f"shape {array.shape}",
                )
            features[modality].append(array)
            counts.add(len(array))
        if len(counts) > 1:
            raise DataError(
                f"{path} dialogue {key!r}",
                "as many utterances in every label and feature field",
                LAYOUT,
                f"counts {sorted(counts)}",
            )
        size = counts.pop() if counts else 0
        keys.extend([key] * size)
        positions.extend(range(size))
    if not keys:
        raise DataError(f"{path} {part}", "at least one dialogue with utterances", LAYOUT, "none")
    raw = RawSplit({}, {}, {}, {})
    for modality in modalities:
        stacked = np.concatenate(features[modality])[:, None, :]
        raw.arrays[modality], raw.nonfinite[modality] = replace_nonfinite(stacked)
        raw.starts[modality] = np.zeros(len(keys), dtype=np.int64)
        raw.lengths[modality] = np.ones(len(keys), dtype=np.int64)
    return Conversations(
        keys, np.asarray(positions), {name: np.concatenate(v) for name, v in labels.items()}, raw
    )


def _entry(named: Mapping, name: str, key: object, path: Path, part: str):
    field = named[name]
    if key not in field:
        raise DataError(
            f"{path} {name}",
            f"an entry for dialogue {key!r} (listed in {part})",
            LAYOUT,
            "no such key",
        )
    return field[key]
