"""CMU-MOSI / MOSEI, MELD and IEMOCAP read from tiny fixtures in each exact format
(MMSA, MulT / MultiBench, the conversation pickles, MELD's CSVs): shapes, dtypes,
masks, label conventions, split sizes, non-finite values replaced and counted, tasks
refused, bad input named in one line, check_data and collation."""

from __future__ import annotations

import csv
import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from goal_plugin.data import DataError, build_dataset, check_data, collate_batch, format_check
from goal_plugin.data.check import reads_files
from tests._sequence_fixtures import (
    IEMOCAP_DIMS,
    MELD_DIMS,
    MELD_EMOTIONS,
    MELD_SENTIMENTS,
    SCORES,
    SPLIT_SIZES,
    write_iemocap_features,
    write_meld,
    write_mmsa,
    write_mult,
    write_pickle,
)

SPLIT_KEYS = {"train": "train", "val": "valid", "test": "test"}
MULT_FILE_KEYS = {"audio": "audio", "visual": "vision", "text": "text"}


def real_lengths_mmsa(part: dict, modality: str) -> np.ndarray:
    text = part["text_bert"][:, 1].sum(axis=1).astype(int)
    if modality == "text" or "audio_lengths" not in part:
        return text
    return np.asarray(part[f"{MULT_FILE_KEYS[modality]}_lengths"])


# ----------------------------------------------------------------------------- MOSI / MOSEI


@pytest.mark.parametrize("dataset", ["mosi", "mosei"])
@pytest.mark.parametrize("aligned", [True, False])
def test_mmsa_pickles_give_real_steps_first_masks_from_lengths_and_scores(
    tmp_path, dataset, aligned
):
    stored = write_mmsa(tmp_path, aligned=aligned)
    for split, key in SPLIT_KEYS.items():
        data = build_dataset(dataset, str(tmp_path), split)
        part = stored[key]
        assert data.layout == ("mmsa_aligned" if aligned else "mmsa_unaligned")
        assert data.modalities == ("audio", "visual", "text") and data.task == "regression"
        assert len(data) == SPLIT_SIZES[key] and data.num_classes == 1
        assert data.labels.dtype == torch.float32 and data.labels.shape == (len(data),)
        assert data.labels.tolist() == pytest.approx(SCORES[key])
        for modality, name in MULT_FILE_KEYS.items():
            lengths = real_lengths_mmsa(part, modality)
            dim = part[name].shape[2]
            # padded to the longest sequence of this split, the feature size read from the array
            assert data.sample_shapes[modality] == (lengths.max(), dim)
            sample = data[1]
            assert (
                sample[modality].dtype == torch.float32
                and sample[f"{modality}_mask"].dtype == torch.bool
            )
            masks = torch.stack([data[i][f"{modality}_mask"] for i in range(len(data))])
            assert masks.sum(dim=1).tolist() == lengths.tolist()
            values = data.data[modality].numpy()
            expected = np.nan_to_num(part[name][:, : lengths.max()], nan=0.0, neginf=0.0)
            expected[~masks.numpy()] = 0
            np.testing.assert_array_equal(values, expected)
    if not aligned:  # unaligned splits differ in T: each is padded to its own longest
        shapes = {
            split: build_dataset(dataset, str(tmp_path), split).sample_shapes["audio"]
            for split in SPLIT_KEYS
        }
        assert shapes["train"] == (max(stored["train"]["audio_lengths"]), 5)
        assert shapes["train"][0] < stored["train"]["audio"].shape[1]


@pytest.mark.parametrize("aligned", [True, False])
def test_mult_pickles_move_front_padded_steps_to_the_front(tmp_path, aligned):
    name = "mosi_data.pkl" if aligned else "mosi_data_noalign.pkl"
    written = write_mult(tmp_path, name, aligned=aligned)
    for split, key in SPLIT_KEYS.items():
        data = build_dataset("mosi", str(tmp_path), split)
        assert data.layout == ("mult_aligned" if aligned else "mult_unaligned")
        assert data.labels.tolist() == pytest.approx(SCORES[key])  # (N, 1, 1) -> (N,)
        part = written["data"][key]
        for modality, file_key in MULT_FILE_KEYS.items():
            lengths = written["lengths"][key]["text" if aligned else file_key]
            assert data.sample_shapes[modality] == (max(lengths), part[file_key].shape[2])
            stored = np.nan_to_num(part[file_key], neginf=0.0)
            steps = stored.shape[1]
            for i, n in enumerate(lengths):
                sample = data[i]
                assert sample[f"{modality}_mask"].sum() == n
                np.testing.assert_array_equal(sample[modality][:n].numpy(), stored[i, steps - n :])
                assert not sample[modality][n:].any()


def test_mosi_classification_offers_both_acc2_conventions_and_seven_classes(tmp_path):
    write_mmsa(tmp_path)
    root = str(tmp_path)
    scores = {key: np.asarray(values) for key, values in SCORES.items()}
    for split, key in SPLIT_KEYS.items():
        has_zero = build_dataset(
            "mosi", root, split, task="classification", label_scheme="has_zero"
        )
        assert has_zero.labels.dtype == torch.int64 and has_zero.task == "classification"
        assert has_zero.labels.tolist() == (scores[key] >= 0).astype(int).tolist()
        assert has_zero.class_names == ["negative", "non-negative"] and len(has_zero) == len(
            scores[key]
        )

        non_zero = build_dataset(
            "mosi", root, split, task="classification", label_scheme="non_zero"
        )
        kept = scores[key][scores[key] != 0]
        assert len(non_zero) == len(kept) < len(scores[key])  # every split has a 0 score
        assert non_zero.labels.tolist() == (kept > 0).astype(int).tolist()
        assert non_zero.class_names == ["negative", "positive"]
        assert "scored 0 dropped from every split" in non_zero.protocol
        assert any("dropped 1 samples scored 0" in note for note in non_zero.notes)
        lengths = real_lengths_mmsa(_stored(tmp_path)[key], "text")
        assert non_zero.masks["text"].sum(dim=1).tolist() == lengths[scores[key] != 0].tolist()

        seven = build_dataset(
            "mosi", root, split, task="classification", label_scheme="seven_class"
        )
        assert seven.num_classes == 7 and seven.class_names[0] == "-3"
    seven = build_dataset("mosi", root, "train", task="classification", label_scheme="seven_class")
    # -3, -1.4, 0, 0.5, 1.5, 2.6, 3 -> round half to even -> -3, -1, 0, 0, 2, 3, 3 -> +3
    assert seven.labels.tolist() == [0, 2, 3, 3, 5, 6, 6]
    test = build_dataset("mosi", root, "test", task="classification", label_scheme="seven_class")
    assert test.labels.tolist() == [1, 3, 3, 5]  # -2.5 -> -2, -0.2 -> 0, 0, 2.2 -> 2


def _stored(root: Path) -> dict:
    return pickle.loads((root / "aligned_50.pkl").read_bytes())


def test_the_file_and_format_options_pick_among_several_pickles(tmp_path):
    write_mmsa(tmp_path)
    write_mult(tmp_path, "mosi_data.pkl")
    with pytest.raises(
        ValueError, match="holds aligned_50.pkl, mosi_data.pkl: pick one with option file"
    ):
        build_dataset("mosi", str(tmp_path), "train")
    assert (
        build_dataset("mosi", str(tmp_path), "train", file="mosi_data.pkl").layout == "mult_aligned"
    )
    assert build_dataset("mosi", str(tmp_path), "train", format="mmsa").layout == "mmsa_aligned"
    with pytest.raises(DataError, match=r"aligned_50.pkl \['train'\]: expected key 'labels'"):
        build_dataset("mosi", str(tmp_path), "train", file="aligned_50.pkl", format="mult")
    with pytest.raises(ValueError, match="option format of mosi must be mmsa or mult"):
        build_dataset("mosi", str(tmp_path), "train", format="mmsa_aligned")


# ----------------------------------------------------------------------------- IEMOCAP


def test_iemocap_conversation_pickle_is_read_as_python_2_wrote_it_and_flattened(tmp_path):
    written = write_iemocap_features(tmp_path)
    raw = (tmp_path / "IEMOCAP_features.pkl").read_bytes()
    with pytest.raises(UnicodeDecodeError):  # the fixture is a Python 2 pickle: latin1 needed
        pickle.loads(raw)
    fields = written["fields"]
    test = build_dataset("iemocap", str(tmp_path), "test")
    assert test.layout == "conversation" and test.task == "classification"
    assert test.class_names == ["hap", "sad", "neu", "ang", "exc", "fru"]
    expected = [label for key in written["test"] for label in fields["labels"][key]]
    assert test.labels.dtype == torch.int64 and test.labels.tolist() == expected
    assert test.sample_shapes == {m: (1, IEMOCAP_DIMS[m]) for m in ("audio", "visual", "text")}
    first = fields["audio"][written["test"][0]][0]
    np.testing.assert_array_equal(test[0]["audio"][0].numpy(), np.nan_to_num(first, nan=0.0))
    assert test[0]["audio_mask"].tolist() == [True]
    assert test.nonfinite == {"audio": 1, "visual": 0, "text": 0}
    train = build_dataset("iemocap", str(tmp_path), "train", val_fraction=0.3)
    val = build_dataset("iemocap", str(tmp_path), "val", val_fraction=0.3)
    assert len(train) + len(val) == 30 and len(test) == 9 and 6 <= len(val) <= 12
    texts = lambda d: {row.numpy().tobytes() for row in d.data["text"]}
    assert not texts(train) & texts(val) and not texts(val) & texts(test)
    assert "trainVid / testVid" in val.protocol and "split_seed 0" in val.protocol
    again = build_dataset("iemocap", str(tmp_path), "val", val_fraction=0.3)
    other = build_dataset("iemocap", str(tmp_path), "val", val_fraction=0.3, split_seed=1)
    assert torch.equal(again.data["text"], val.data["text"])
    assert not torch.equal(other.data["text"], val.data["text"])


def test_iemocap_mult_labels_give_one_binary_task_per_emotion_or_all_four(tmp_path):
    written = write_mult(tmp_path, "iemocap_data.pkl", labels="iemocap")
    stored = written["data"]["test"]["labels"]
    multi = build_dataset("iemocap", str(tmp_path), "test", task="multilabel")
    assert multi.task == "multilabel" and multi.class_names == ["neutral", "happy", "sad", "angry"]
    assert multi.labels.dtype == torch.float32 and multi.labels.shape == (SPLIT_SIZES["test"], 4)
    assert multi.labels.tolist() == stored.argmax(axis=2).tolist()  # MulT's argmax
    angry = build_dataset("iemocap", str(tmp_path), "test", emotion="angry")
    assert angry.class_names == ["not angry", "angry"] and angry.labels.dtype == torch.int64
    assert angry.labels.tolist() == stored[:, 3, 1].astype(int).tolist()
    assert "valid" in angry.protocol
    with pytest.raises(
        ValueError, match="option emotion of iemocap .* must be one of neutral, happy, sad, angry"
    ):
        build_dataset("iemocap", str(tmp_path), "test")
    with pytest.raises(ValueError, match="has its own valid split: leave them unset"):
        build_dataset("iemocap", str(tmp_path), "test", emotion="sad", val_fraction=0.2)


# ----------------------------------------------------------------------------- MELD


def test_meld_takes_the_official_csv_labels_and_reports_disagreements(tmp_path, caplog):
    written = write_meld(tmp_path)
    with caplog.at_level(logging.WARNING, logger="goal_plugin.data"):
        train = build_dataset("meld", str(tmp_path), "train", val_fraction=0.3)
        val = build_dataset("meld", str(tmp_path), "val", val_fraction=0.3)
        test = build_dataset("meld", str(tmp_path), "test", val_fraction=0.3)
    assert train.class_names == MELD_EMOTIONS and train.layout == "conversation"
    assert train.sample_shapes == {m: (1, MELD_DIMS[m]) for m in ("audio", "visual", "text")}
    assert len(train) + len(val) == 22 and len(test) == 8  # trainVid: train + dev dialogues
    # trainVid labels as the CSVs give them (one changed there), sorted dialogue keys
    pooled = [label for key in range(5) for label in written["csv_emotions"][key]]
    assert sorted(train.labels.tolist() + val.labels.tolist()) == sorted(pooled)
    assert written["changed"] in train.labels.tolist() + val.labels.tolist()
    assert train.label_check == {"from_csv": 22, "not_in_csv": 0, "disagreements": 1}
    assert "dialogue 1 utterance 2 (train_sent_emo.csv Dialogue_ID 1)" in train.notes[0]
    # the test CSV lacks a row of dialogue 1: that dialogue keeps the pickle's labels
    assert test.label_check == {"from_csv": 5, "not_in_csv": 3, "disagreements": 0}
    assert test.labels.tolist() == written["fields"]["labels"][5] + written["fields"]["labels"][6]
    assert (
        "1 of 22 CSV labels disagree" in caplog.text
        and "3 utterances have no matching CSV" in caplog.text
    )
    assert "labels from the official CSVs" in test.protocol


def test_meld_label_options_sentiment_pickle_source_and_order(tmp_path):
    written = write_meld(tmp_path)
    fields = written["fields"]
    from_pickle = build_dataset("meld", str(tmp_path), "test", label_source="pickle")
    assert from_pickle.labels.tolist() == fields["labels"][5] + fields["labels"][6]
    assert from_pickle.label_check is None and "labels from the pickle" in from_pickle.protocol
    sentiment = build_dataset("meld", str(tmp_path), "test", labels="sentiment")
    assert sentiment.class_names == MELD_SENTIMENTS
    assert sentiment.labels.tolist() == written["sentiments"][5] + written["sentiments"][6]
    ordered = build_dataset(
        "meld", str(tmp_path), "test", label_source="pickle", label_order="sorted"
    )
    assert ordered.class_names == sorted(MELD_EMOTIONS)
    names = [MELD_EMOTIONS[v] for v in from_pickle.labels.tolist()]
    assert [ordered.class_names[v] for v in ordered.labels.tolist()] == names
    with pytest.raises(ValueError, match="label_order of meld must be"):
        build_dataset("meld", str(tmp_path), "test", label_order=["joy"])


def test_meld_without_csvs_uses_the_pickle_labels_and_says_so(tmp_path):
    written = write_meld(tmp_path, csvs=False)
    test = build_dataset("meld", str(tmp_path), "test")
    assert test.labels.tolist() == written["fields"]["labels"][5] + written["fields"]["labels"][6]
    assert any("no official CSVs" in note for note in test.notes)


@pytest.mark.parametrize(
    "damage, words",
    [
        ("one_csv_missing", "dev_sent_emo.csv: expected all three official CSVs"),
        ("bad_header", "train_sent_emo.csv: expected the official header Sr No.,Utterance"),
        ("bad_emotion", "train_sent_emo.csv, line 3: expected Emotion one of neutral"),
    ],
)
def test_meld_csv_problems_are_named(tmp_path, damage, words):
    write_meld(tmp_path)
    path = tmp_path / ("dev_sent_emo.csv" if damage == "one_csv_missing" else "train_sent_emo.csv")
    if damage == "one_csv_missing":
        path.unlink()
    elif damage == "bad_header":
        lines = path.read_text().splitlines()
        path.write_text("\n".join(["Sr No.,Utterance,Speaker,Label", *lines[1:]]) + "\n")
    else:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        rows[2][3] = "happiness-ish"  # line 3: the second utterance's Emotion
        with open(path, "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(rows)
    with pytest.raises(DataError, match=words.replace(".", r"\.")):
        build_dataset("meld", str(tmp_path), "train")


# ----------------------------------------------------------------------------- tasks


@pytest.mark.parametrize(
    "dataset, writer, options, words",
    [
        (
            "mosi",
            "mmsa",
            {"task": "multilabel"},
            "option task of mosi must be one of regression, classification",
        ),
        (
            "mosei",
            "mmsa",
            {"task": "classification"},
            "option label_scheme of mosei .* must be one of has_zero, non_zero, seven_class",
        ),
        (
            "mosi",
            "mmsa",
            {"label_scheme": "has_zero"},
            "label_scheme of mosi applies to task classification only",
        ),
        (
            "meld",
            "meld",
            {"task": "regression"},
            "option task of meld must be one of classification",
        ),
        (
            "iemocap",
            "iemocap",
            {"task": "multilabel"},
            r"option task of iemocap \(IEMOCAP_features.pkl, conversation format\) must be one of classification",
        ),
        (
            "iemocap",
            "iemocap_mult",
            {"task": "regression"},
            "must be one of classification, multilabel",
        ),
        (
            "iemocap",
            "iemocap",
            {"emotion": "happy"},
            "option emotion of iemocap selects a MulT task",
        ),
        (
            "mosi",
            "mmsa",
            {"modalities": ["audio", "video"]},
            "unknown value for modalities: 'video'",
        ),
    ],
)
def test_each_loader_refuses_tasks_its_labels_do_not_support(
    tmp_path, dataset, writer, options, words
):
    {
        "mmsa": lambda: write_mmsa(tmp_path),
        "meld": lambda: write_meld(tmp_path),
        "iemocap": lambda: write_iemocap_features(tmp_path),
        "iemocap_mult": lambda: write_mult(tmp_path, "iemocap_data.pkl", labels="iemocap"),
    }[writer]()
    with pytest.raises(ValueError, match=words) as error:
        build_dataset(dataset, str(tmp_path), "train", **options)
    assert "\n" not in str(error.value)


def test_modalities_option_selects_and_orders_the_modalities(tmp_path):
    write_mmsa(tmp_path)
    data = build_dataset("mosi", str(tmp_path), "train", modalities=["text", "audio"])
    assert data.modalities == ("text", "audio") and set(data[0]) == {
        "text",
        "text_mask",
        "audio",
        "audio_mask",
        "label",
    }


def test_a_sequence_with_no_real_step_gets_one_masked_zero_step_and_is_counted(tmp_path):
    write_mmsa(tmp_path, aligned=False)
    damage_pickle(
        tmp_path / "unaligned_50.pkl",
        lambda d: (d["test"]["vision_lengths"].__setitem__(2, 0), d)[1],
    )
    write_mult(tmp_path / "mult", "mosi_data_noalign.pkl", aligned=False)
    damage_pickle(
        tmp_path / "mult" / "mosi_data_noalign.pkl",
        lambda d: (d["test"]["audio"].__setitem__(1, 0.0), d)[1],  # all zero: no real step
    )
    for root, modality, index in ((tmp_path, "visual", 2), (tmp_path / "mult", "audio", 1)):
        data = build_dataset("mosi", str(root), "test")
        assert data.empty[modality] == 1 and sum(data.empty.values()) == 1
        steps = data.sample_shapes[modality][0]
        assert data[index][f"{modality}_mask"].tolist() == [True] + [False] * (steps - 1)
        assert not data[index][modality].any()
        assert any("no real step" in note for note in data.notes)


def test_datasets_state_the_tasks_their_labels_support(tmp_path):
    write_mmsa(tmp_path / "mmsa")
    write_meld(tmp_path / "meld")
    write_iemocap_features(tmp_path / "iemocap")
    write_mult(tmp_path / "mult", "iemocap_data.pkl", labels="iemocap")
    mosi = build_dataset("mosi", str(tmp_path / "mmsa"), "val")
    assert mosi.supported_tasks == ("regression", "classification")
    assert build_dataset("meld", str(tmp_path / "meld"), "test").supported_tasks == (
        "classification",
    )
    conversation = build_dataset("iemocap", str(tmp_path / "iemocap"), "test")
    assert conversation.supported_tasks == ("classification",)
    mult = build_dataset("iemocap", str(tmp_path / "mult"), "test", task="multilabel")
    assert mult.supported_tasks == ("classification", "multilabel")


# ----------------------------------------------------------------------------- non-finite values


@pytest.mark.parametrize(
    "dataset, write, split, counts",
    [
        ("mosi", lambda root: write_mmsa(root), "train", {"audio": 4, "visual": 0, "text": 0}),
        (
            "mosei",
            lambda root: write_mult(root, "mosei_senti_data_noalign.pkl", aligned=False),
            "train",
            {"audio": 2, "visual": 0, "text": 0},
        ),
        (
            "iemocap",
            lambda root: write_iemocap_features(root),
            "test",
            {"audio": 1, "visual": 0, "text": 0},
        ),
    ],
)
def test_nonfinite_features_become_zero_and_are_counted_and_logged(
    tmp_path, caplog, dataset, write, split, counts
):
    write(tmp_path)
    with caplog.at_level(logging.WARNING, logger="goal_plugin.data"):
        data = build_dataset(dataset, str(tmp_path), split)
    assert data.nonfinite == counts
    assert all(torch.isfinite(x).all() for x in data.data.values())
    assert f"replaced {counts['audio']} non-finite feature values (NaN / inf) by 0" in caplog.text
    assert f"audio {counts['audio']}" in data.notes[0]
    clean = build_dataset(dataset, str(tmp_path), "val")
    assert sum(clean.nonfinite.values()) == 0 and not clean.notes


# ----------------------------------------------------------------------------- bad input


def damage_pickle(path: Path, change) -> None:
    data = pickle.loads(path.read_bytes(), encoding="latin1")
    data = change(data)
    write_pickle(path, data)


def _drop(mapping: dict, key: str) -> dict:
    del mapping[key]
    return mapping


def _set(mapping: dict, key: str, value) -> dict:
    mapping[key] = value
    return mapping


BAD_INPUT = [
    # (writer, file, change, dataset, options, split, message pieces)
    (
        "mmsa",
        "aligned_50.pkl",
        lambda d: (_drop(d["train"], "text_bert"), d)[1],
        "mosi",
        {},
        "train",
        ["aligned_50.pkl ['train']: expected key 'text_bert'", "no such key"],
    ),
    (
        "mmsa",
        "unaligned_50.pkl",
        lambda d: (_drop(d["test"], "vision_lengths"), d)[1],
        "mosi",
        {},
        "test",
        ["unaligned_50.pkl ['test']: expected key 'vision_lengths'"],
    ),
    (
        "mmsa",
        "aligned_50.pkl",
        lambda d: (_set(d["train"], "audio", d["train"]["audio"][:, :, 0]), d)[1],
        "mosi",
        {},
        "train",
        ["aligned_50.pkl ['train']['audio']: expected features (N, L, D)", "found rank 2"],
    ),
    (
        "mmsa",
        "aligned_50.pkl",
        lambda d: (d["valid"]["regression_labels"].__setitem__(1, 3.5), d)[1],
        "mosei",
        {},
        "val",
        [
            "aligned_50.pkl ['valid']['regression_labels']: expected sentiment scores in [-3, 3]",
            "3.5 at index 1",
        ],
    ),
    (
        "mmsa",
        "unaligned_50.pkl",
        lambda d: (_set(d["train"], "audio_lengths", [99] * 7), d)[1],
        "mosi",
        {},
        "train",
        ["['train']['audio_lengths']: expected integer lengths in [0, 12]", "found 99 at index 0"],
    ),
    (
        "mmsa",
        "aligned_50.pkl",
        lambda d: _drop(d, "valid"),
        "mosi",
        {},
        "val",
        ["aligned_50.pkl: expected key 'valid'", "keys: test, train"],
    ),
    (
        "mult",
        "mosi_data.pkl",
        lambda d: (_set(d["valid"], "text", d["valid"]["text"][:2]), d)[1],
        "mosi",
        {},
        "val",
        ["mosi_data.pkl ['valid']['text']: expected 3 samples (as many as labels)", "found 2"],
    ),
    (
        "mult",
        "mosi_data.pkl",
        lambda d: (_drop(d["train"], "vision"), d)[1],
        "mosi",
        {},
        "train",
        ["mosi_data.pkl ['train']: expected key 'vision'"],
    ),
    (
        "mult",
        "mosi_data.pkl",
        lambda d: (_set(d["test"], "labels", d["test"]["labels"][:, :, 0]), d)[1],
        "mosi",
        {},
        "test",
        ["mosi_data.pkl ['test']['labels']: expected labels of rank 3", "found rank 2"],
    ),
    (
        "iemocap_mult",
        "iemocap_data.pkl",
        lambda d: (d["train"]["labels"].__setitem__((2, 1), [1, 1]), d)[1],
        "iemocap",
        {"task": "multilabel"},
        "train",
        [
            "iemocap_data.pkl ['train']['labels']: expected one-hot pairs",
            "[1.0, 1.0] at index 2, emotion happy",
        ],
    ),
    (
        "iemocap",
        "IEMOCAP_features.pkl",
        lambda d: d[:8],
        "iemocap",
        {},
        "train",
        [
            "IEMOCAP_features.pkl: expected a 9-tuple (videoIDs, videoSpeakers, videoLabels",
            "found a tuple of 8 items",
        ],
    ),
    (
        "iemocap",
        "IEMOCAP_features.pkl",
        lambda d: (d[2]["Ses05M_script01"].__setitem__(1, 6), d)[1],
        "iemocap",
        {},
        "test",
        [
            "IEMOCAP_features.pkl videoLabels['Ses05M_script01']: expected integer labels in [0, 5]",
            "6 at utterance 1",
        ],
    ),
    (
        "iemocap",
        "IEMOCAP_features.pkl",
        lambda d: (_set(d[4], "Ses01F_impro01", np.zeros((8, 2, 3))), d)[1],
        "iemocap",
        {},
        "train",
        ["videoAudio['Ses01F_impro01']: expected per-utterance vectors (n, D)", "rank 3"],
    ),
    (
        "iemocap",
        "IEMOCAP_features.pkl",
        lambda d: (*d[:7], d[7], [*d[8], d[7][0]]),
        "iemocap",
        {},
        "test",
        ["trainVid / testVid: expected disjoint lists of dialogues"],
    ),
    (
        "meld",
        "MELD_features_raw1.pkl",
        lambda d: (*d[:3], _drop(dict(d[3]), 6), *d[4:]),
        "meld",
        {},
        "test",
        ["MELD_features_raw1.pkl videoText: expected an entry for dialogue 6 (listed in testVid)"],
    ),
    (
        "meld",
        "MELD_features_raw1.pkl",
        lambda d: (d[9].__setitem__(0, [0, 3, 0, 1, 2]), d)[1],
        "meld",
        {"labels": "sentiment", "label_source": "pickle"},
        "train",
        ["videoLabelsSentiment[0]: expected integer labels in [0, 2]", "3 at utterance 1"],
    ),
]


@pytest.mark.parametrize(
    "writer, file, change, dataset, options, split, words",
    BAD_INPUT,
    ids=[f"{case[3]}-{case[1]}-{i}" for i, case in enumerate(BAD_INPUT)],
)
def test_bad_pickles_are_named_in_one_line(
    tmp_path, writer, file, change, dataset, options, split, words
):
    {
        "mmsa": lambda: write_mmsa(tmp_path, aligned=file == "aligned_50.pkl"),
        "mult": lambda: write_mult(tmp_path, file),
        "iemocap_mult": lambda: write_mult(tmp_path, file, labels="iemocap"),
        "iemocap": lambda: write_iemocap_features(tmp_path),
        "meld": lambda: write_meld(tmp_path),
    }[writer]()
    damage_pickle(tmp_path / file, change)
    with pytest.raises(DataError) as error:
        build_dataset(dataset, str(tmp_path), split, **options)
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / file) in message
    for piece in words:
        assert piece in message


@pytest.mark.parametrize("dataset", ["mosi", "mosei", "meld", "iemocap"])
def test_missing_and_unreadable_pickles_are_named(tmp_path, dataset):
    with pytest.raises(DataError, match="expected one of .* found the file does not exist"):
        build_dataset(dataset, str(tmp_path), "train")
    name = {
        "mosi": "aligned_50.pkl",
        "mosei": "unaligned_50.pkl",
        "meld": "MELD_features_raw1.pkl",
        "iemocap": "IEMOCAP_features.pkl",
    }[dataset]
    (tmp_path / name).write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(
        DataError, match=f"{name}: expected a feature pickle .* found an unreadable pickle"
    ):
        build_dataset(dataset, str(tmp_path), "train")
    with pytest.raises(DataError, match="expected the feature pickle named by option file"):
        build_dataset(dataset, str(tmp_path), "train", file="absent.pkl")
    with pytest.raises(ValueError, match=f"dataset '{dataset}' reads files: set data_root"):
        build_dataset(dataset, None, "train")


# ----------------------------------------------------------------------------- check_data, collation


def test_check_data_reports_each_split_its_layout_notes_and_bad_splits(tmp_path):
    write_mmsa(tmp_path, aligned=False)
    report = {r.split: r for r in check_data("mosi", str(tmp_path))}
    assert [(r.layout, r.clips, r.ok) for r in report.values()] == [
        ("mmsa_unaligned", n, True) for n in (7, 3, 4)
    ]
    assert "replaced 4 non-finite" in report["train"].notes[0] and not report["val"].notes
    table = format_check(report.values())
    assert "mosi             train  mmsa_unaligned          7        0         0" in table
    assert "mosi train (note): replaced 4 non-finite feature values" in table
    damage_pickle(tmp_path / "unaligned_50.pkl", lambda d: (_drop(d["test"], "audio"), d)[1])
    report = {r.split: r for r in check_data("mosi", str(tmp_path))}
    assert report["train"].ok and not report["test"].ok
    assert (report["test"].clips, report["test"].missing, report["test"].malformed) == (0, 0, 1)
    assert "['test']: expected key 'audio'" in report["test"].examples[0]
    missing = check_data("iemocap", str(tmp_path))  # the root holds no IEMOCAP pickle
    assert [(r.missing, r.malformed) for r in missing] == [(1, 0)] * 3
    with pytest.raises(ValueError, match="option task of mosi"):
        check_data("mosi", str(tmp_path), {"task": "multilabel"})
    # what a sweep uses to ask for a data_root before starting trials
    assert [reads_files(name) for name in ("mosi", "mosei", "meld", "iemocap")] == [True] * 4
    assert reads_files("crema_d") and not reads_files("mfeat")


@pytest.mark.parametrize(
    "task_options", [{}, {"task": "classification", "label_scheme": "has_zero"}]
)
def test_batches_collate_with_the_shared_collate_function(tmp_path, task_options):
    write_mmsa(tmp_path, aligned=False)
    data = build_dataset("mosi", str(tmp_path), "train", **task_options)
    loader = DataLoader(data, batch_size=3, shuffle=False, collate_fn=collate_batch)
    batches = list(loader)
    assert [len(b["label"]) for b in batches] == [3, 3, 1]
    first = batches[0]
    for modality, (steps, dim) in data.sample_shapes.items():
        assert first[modality].shape == (3, steps, dim)
        assert (
            first[f"{modality}_mask"].shape == (3, steps)
            and first[f"{modality}_mask"].dtype == torch.bool
        )
        assert torch.equal(first[modality], torch.stack([data[i][modality] for i in range(3)]))
    assert batches[-1]["audio"].shape[0] == 1 and batches[-1]["label"].shape == (1,)


def test_multilabel_batches_keep_their_shape(tmp_path):
    write_mult(tmp_path, "iemocap_data.pkl", labels="iemocap")
    data = build_dataset("iemocap", str(tmp_path), "train", task="multilabel")
    batch = next(iter(DataLoader(data, batch_size=2, shuffle=False, collate_fn=collate_batch)))
    assert batch["label"].shape == (2, 4) and batch["label"].dtype == torch.float32
    steps, dim = data.sample_shapes["audio"]
    assert batch["audio"].shape == (2, steps, dim)
