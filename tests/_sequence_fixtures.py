"""Tiny feature pickles in the exact formats of the public releases, for the tests of
the MOSI / MOSEI, MELD and IEMOCAP loaders:

* MMSA ``aligned_50.pkl`` / ``unaligned_50.pkl``: dict of train / valid / test with
  text (N, L, 768), text_bert (N, 3, L), audio (N, L_a, 5), vision (N, L_v, 20),
  audio_lengths / vision_lengths (unaligned only), regression_labels (N,), id, raw_text;
  right-padded with zeros; MOSI's -inf audio values in the real steps;
* MulT / MultiBench ``mosi_data.pkl`` / ``*_data_noalign.pkl`` / ``iemocap_data.pkl``:
  text / audio / vision (N, L, D) zero-padded at the front, labels (N, 1, 1) or
  one-hot (N, 4, 2), id;
* the conversation pickles: IEMOCAP's 9-tuple written as Python 2 writes it (numpy
  buffers as py2 strings: it needs encoding latin1), MELD's 10-tuple, and MELD's
  official CSVs with their header.

Each writer returns what it wrote, so that the tests compare against the stored
values rather than against the loader's own reading.
"""

from __future__ import annotations

import csv
import io
import pickle
import struct
from pathlib import Path

import numpy as np

SPLIT_SIZES = {"train": 7, "valid": 3, "test": 4}
# Scores covering both signs, zero, halves (numpy rounds them to even) and the ends.
SCORES = {
    "train": [-3.0, -1.4, 0.0, 0.5, 1.5, 2.6, 3.0],
    "valid": [-0.6, 0.0, 1.2],
    "test": [-2.5, -0.2, 0.0, 2.2],
}
MELD_EMOTIONS = ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"]
MELD_SENTIMENTS = ["neutral", "positive", "negative"]
MELD_HEADER = [
    "Sr No.",
    "Utterance",
    "Speaker",
    "Emotion",
    "Sentiment",
    "Dialogue_ID",
    "Utterance_ID",
    "Season",
    "Episode",
    "StartTime",
    "EndTime",
]


def write_pickle(path: Path, obj: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj))
    return path


# ----------------------------------------------------------------------------- MMSA


def mmsa_split(rng, count: int, scores, aligned: bool, steps: int = 8) -> dict:
    """One MMSA split; real steps first, zero padding after them."""
    text_lengths = rng.integers(3, steps + 1, count)
    text_lengths[0] = steps  # one full sequence: the split's T is L
    text = np.zeros((count, steps, 768), dtype=np.float32)
    text_bert = np.zeros((count, 3, steps), dtype=np.float32)
    for i, n in enumerate(text_lengths):
        text[i, :n] = rng.standard_normal((n, 768))
        text_bert[i, 0, :n] = rng.integers(100, 30000, n)
        text_bert[i, 1, :n] = 1
    if aligned:
        audio_steps, vision_steps = steps, steps
        audio_lengths = vision_lengths = text_lengths
    else:
        audio_steps, vision_steps = 12, 10
        audio_lengths = rng.integers(2, audio_steps, count)  # never full: T < L_a
        vision_lengths = rng.integers(1, vision_steps + 1, count)
    audio = np.zeros((count, audio_steps, 5), dtype=np.float32)
    vision = np.zeros((count, vision_steps, 20), dtype=np.float32)
    for i in range(count):
        audio[i, : audio_lengths[i]] = rng.standard_normal((audio_lengths[i], 5))
        vision[i, : vision_lengths[i]] = rng.standard_normal((vision_lengths[i], 20))
    part = {
        "raw_text": [f"utterance {i}" for i in range(count)],
        "id": np.asarray([f"video{i}$_${i % 3}" for i in range(count)]),
        "text": text,
        "text_bert": text_bert,
        "audio": audio,
        "vision": vision,
        "regression_labels": np.asarray(scores, dtype=np.float32),
    }
    if not aligned:
        part["audio_lengths"] = [int(n) for n in audio_lengths]  # MMSA stores lists
        part["vision_lengths"] = [int(n) for n in vision_lengths]
    return part


def write_mmsa(root: Path, aligned: bool = True, seed: int = 0) -> dict:
    """``aligned_50.pkl`` or ``unaligned_50.pkl`` in ``root``; the train split's audio
    holds 3 -inf values and 1 NaN in real steps. Returns the pickled dict."""
    rng = np.random.default_rng(seed)
    data = {
        split: mmsa_split(rng, SPLIT_SIZES[split], SCORES[split], aligned)
        for split in ("train", "valid", "test")
    }
    audio = data["train"]["audio"]
    audio[0, 0, 0] = audio[0, 1, 2] = audio[1, 0, 4] = -np.inf
    audio[2, 0, 1] = np.nan
    write_pickle(root / ("aligned_50.pkl" if aligned else "unaligned_50.pkl"), data)
    return data


# ----------------------------------------------------------------------------- MulT


def front_padded(rng, count: int, steps: int, dim: int, lengths) -> np.ndarray:
    """Features zero-padded at the front, as in MulT's pickles; real steps have no
    all-zero row."""
    values = np.zeros((count, steps, dim), dtype=np.float32)
    for i, n in enumerate(lengths):
        values[i, steps - n :] = rng.uniform(0.1, 1.0, (n, dim)) * rng.choice([-1, 1], (n, dim))
    return values


def write_mult(
    root: Path, name: str, labels: str = "sentiment", aligned: bool = True, seed: int = 1
) -> dict:
    """A MulT pickle ``name``: labels (N, 1, 1) scores or (N, 4, 2) one-hot IEMOCAP
    emotions; the train audio holds 2 -inf values. Returns the dict and, per split,
    the real length of each modality under ``"lengths"``."""
    rng = np.random.default_rng(seed)
    steps = (
        {"text": 6, "audio": 6, "vision": 6} if aligned else {"text": 6, "audio": 9, "vision": 7}
    )
    dims = {"text": 300, "audio": 74, "vision": 35}
    data, lengths = {}, {}
    for split, count in SPLIT_SIZES.items():
        shared = rng.integers(1, steps["text"] + 1, count)
        shared[0] = steps["text"]
        part, real = {}, {}
        for key in ("text", "audio", "vision"):
            n = shared if aligned else rng.integers(1, steps[key] + 1, count)
            part[key] = front_padded(rng, count, steps[key], dims[key], n)
            real[key] = n
        if labels == "sentiment":
            part["labels"] = np.asarray(SCORES[split], dtype=np.float32).reshape(count, 1, 1)
        else:
            present = rng.integers(0, 2, (count, 4))
            present[0] = [1, 0, 0, 1]
            part["labels"] = np.stack([1 - present, present], axis=2).astype(np.float32)
        part["id"] = np.asarray([[f"vid{i}".encode(), b"0.0", b"1.5"] for i in range(count)])
        data[split] = part
        lengths[split] = real
    audio = data["train"]["audio"]
    audio[0, -1, 3] = audio[0, -2, 0] = -np.inf  # inside the first sample's real steps
    write_pickle(root / name, data)
    return {"data": data, "lengths": lengths}


# ----------------------------------------------------------------------------- conversations


class Python2Pickler(pickle._Pickler):
    """Writes ``bytes`` as Python 2 ``str`` (SHORT_BINSTRING / BINSTRING), as a pickle
    written by Python 2 holds numpy buffers: Python 3 reads them only with
    ``encoding="latin1"``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def python2_pickle(obj: object) -> bytes:
    buffer = io.BytesIO()
    Python2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def conversation_dialogues(rng, keys, sizes, dims, classes, speakers) -> dict:
    fields = {
        name: {} for name in ("ids", "speakers", "labels", "text", "audio", "visual", "sentence")
    }
    for key, n in zip(keys, sizes):
        fields["ids"][key] = [f"{key}_utt{u}" for u in range(n)]
        fields["speakers"][key] = [speakers[u % len(speakers)] for u in range(n)]
        fields["labels"][key] = [int(v) for v in rng.integers(0, classes, n)]
        for modality in ("text", "audio", "visual"):
            # lists of per-utterance vectors, as the releases store them
            fields[modality][key] = [
                rng.standard_normal(dims[modality]).astype(np.float32) for _ in range(n)
            ]
        fields["sentence"][key] = [f"utterance {u}, of {key}" for u in range(n)]
    return fields


IEMOCAP_DIMS = {"text": 100, "audio": 100, "visual": 512}


def write_iemocap_features(root: Path, seed: int = 2) -> dict:
    """``IEMOCAP_features.pkl``: the 9-tuple, written as Python 2 did. 4 train
    dialogues (30 utterances) and 2 test dialogues (9); the first test utterance's
    audio holds a NaN. Returns the fields and the dialogue lists."""
    rng = np.random.default_rng(seed)
    train = ["Ses01F_impro01", "Ses01M_script02", "Ses02F_impro03", "Ses03M_impro04"]
    test = ["Ses05F_impro01", "Ses05M_script01"]
    fields = conversation_dialogues(
        rng, train + test, [8, 7, 9, 6, 5, 4], IEMOCAP_DIMS, 6, ["M", "F"]
    )
    fields["audio"][test[0]][0][3] = np.nan
    train_vid, test_vid = list(reversed(train)), test  # stored order differs from sorted
    data = (
        fields["ids"],
        fields["speakers"],
        fields["labels"],
        fields["text"],
        fields["audio"],
        fields["visual"],
        fields["sentence"],
        train_vid,
        test_vid,
    )
    path = root / "IEMOCAP_features.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(python2_pickle(data))
    return {"fields": fields, "train": sorted(train), "test": sorted(test)}


MELD_DIMS = {"text": 600, "audio": 300, "visual": 342}
# Pickle dialogue keys: train Dialogue_ID 0..2, dev 0..1 (keys 3, 4), test 0..1 (5, 6).
MELD_PARTS = {"train": [0, 1, 2], "dev": [0, 1], "test": [0, 1]}
MELD_SIZES = [5, 4, 6, 3, 4, 5, 3]


def write_meld(root: Path, csvs: bool = True, seed: int = 3) -> dict:
    """``MELD_features_raw1.pkl`` (the 10-tuple) and, with ``csvs``, the official
    ``train_sent_emo.csv`` / ``dev_sent_emo.csv`` / ``test_sent_emo.csv``. The CSVs agree
    with the pickle except: dialogue key 1, utterance 2 has another emotion in the CSV;
    the test CSV's Dialogue_ID 1 (key 6) has one row fewer than the pickle."""
    rng = np.random.default_rng(seed)
    keys = list(range(7))
    fields = conversation_dialogues(
        rng, keys, MELD_SIZES, MELD_DIMS, 7, [[1] + [0] * 8, [0, 1] + [0] * 7]
    )
    sentiments = {key: [int(v) for v in rng.integers(0, 3, n)] for key, n in zip(keys, MELD_SIZES)}
    data = (
        fields["ids"],
        fields["speakers"],
        fields["labels"],
        fields["text"],
        fields["audio"],
        fields["visual"],
        fields["sentence"],
        keys[:5],
        keys[5:],
        sentiments,
    )
    write_pickle(root / "MELD_features_raw1.pkl", data)
    csv_emotions = {key: list(fields["labels"][key]) for key in keys}
    changed = (fields["labels"][1][2] + 1) % 7
    csv_emotions[1][2] = changed
    if csvs:
        key, number = 0, 1
        for part, dialogues in MELD_PARTS.items():
            rows = []
            for dialogue in dialogues:
                count = MELD_SIZES[key] - (1 if (part, dialogue) == ("test", 1) else 0)
                for u in range(count):
                    rows.append(
                        [
                            number,
                            f'He said, "hi" ({dialogue}, {u})',
                            "Joey",
                            MELD_EMOTIONS[csv_emotions[key][u]],
                            MELD_SENTIMENTS[sentiments[key][u]],
                            dialogue,
                            u,
                            3,
                            19,
                            "00:14:15,055",
                            "00:14:17,380",
                        ]
                    )
                    number += 1
                key += 1
            with open(root / f"{part}_sent_emo.csv", "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(MELD_HEADER)
                # dev rows stored in reverse: the reader orders them by Utterance_ID
                writer.writerows(rows[::-1] if part == "dev" else rows)
    return {
        "fields": fields,
        "sentiments": sentiments,
        "csv_emotions": csv_emotions,
        "changed": changed,
    }


def sequence_dataset_case(name: str, base: Path) -> tuple[str, dict]:
    """(data_root, options) building every split of ``name`` (mosi, mosei, meld,
    iemocap) from a tiny fixture."""
    root = base / name
    if name in ("mosi", "mosei"):
        write_mmsa(root, aligned=False)
        return str(root), {}
    if name == "meld":
        write_meld(root)
        return str(root), {"val_fraction": 0.3}
    if name == "iemocap":
        write_iemocap_features(root)
        return str(root), {"val_fraction": 0.3}
    raise LookupError(f"no sequence fixture for dataset {name!r}")
