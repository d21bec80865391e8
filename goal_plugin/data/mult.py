"""The MulT / MultiBench feature pickles (``mosi_data.pkl``, ``mosei_senti_data.pkl``,
``iemocap_data.pkl``, their ``*_data_noalign.pkl`` and ``mosi_raw.pkl``): a dict with
splits ``train`` / ``valid`` / ``test``, each holding ``text``, ``audio``, ``vision``
(N, L, D), ``labels`` (rank 3) and an optional ``id``.

The sequences are zero-padded at the front; as MultiBench reads them, a sequence's
real steps start at its first step with a non-zero value (the text's first such step
for all three modalities when the file is aligned, i.e. all three share L).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from goal_plugin.data.files import DataError
from goal_plugin.data.sequences import RawSplit, numeric_array, replace_nonfinite, require_key

LAYOUT = "mult"
SPLIT_KEYS = {"train": "train", "val": "valid", "test": "test"}
FILE_KEYS = {"audio": "audio", "visual": "vision", "text": "text"}


def first_real_step(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, length) of each sample: from its first step with a non-zero value to the
    end; (0, 0) for a sample that is zero throughout."""
    nonzero = np.any(values != 0, axis=2)
    start = nonzero.argmax(axis=1)
    length = np.where(nonzero.any(axis=1), values.shape[1] - start, 0)
    return start, length


def read_mult_split(
    data: object, path: Path, split: str, modalities: Sequence[str]
) -> tuple[RawSplit, np.ndarray, bool]:
    """The ``modalities`` of ``split`` of a loaded MulT pickle, its ``labels`` (rank 3,
    as stored) and whether the file is aligned."""
    key = SPLIT_KEYS[split]
    part = require_key(
        data, key, str(path), LAYOUT, "a split: a dict with text, audio, vision, labels"
    )
    where = f"{path} [{key!r}]"
    labels = numeric_array(
        require_key(part, "labels", where, LAYOUT, "labels of rank 3"),
        3,
        f"{where}['labels']",
        LAYOUT,
        "labels of rank 3 ((N, 1, 1) sentiment, (N, 4, 2) IEMOCAP emotions)",
    )
    arrays = {}
    for modality, name in FILE_KEYS.items():  # all three: alignment is read from their L
        raw = require_key(part, name, where, LAYOUT, "features (N, L, D)")
        array = numeric_array(raw, 3, f"{where}[{name!r}]", LAYOUT, "features (N, L, D)")
        if len(array) != len(labels):
            raise DataError(
                f"{where}[{name!r}]",
                f"{len(labels)} samples (as many as labels)",
                LAYOUT,
                f"{len(array)}",
            )
        arrays[modality] = array
    aligned = len({array.shape[1] for array in arrays.values()}) == 1
    cleaned, nonfinite = {}, {}
    for modality in dict.fromkeys([*modalities, "text"] if aligned else modalities):
        cleaned[modality], nonfinite[modality] = replace_nonfinite(arrays[modality])
    raw = RawSplit({}, {}, {}, {})
    for modality in modalities:
        source = cleaned["text"] if aligned else cleaned[modality]
        raw.arrays[modality] = cleaned[modality]
        raw.starts[modality], raw.lengths[modality] = first_real_step(source)
        raw.nonfinite[modality] = nonfinite[modality]
    return raw, labels, aligned
