"""Hateful Memes and MM-IMDB read from tiny fixtures in each exact format (jsonl + PNG,
split.json + JSON + JPEG, the release's HDF5 file): shapes, dtypes, tokens, label
conventions (multi-hot order, longest plot, ratings), split sizes and protocols, test
files without labels, tasks refused, bad input named in one line, check_data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from goal_plugin.data import DataError, build_dataset, check_data, collate_batch
from goal_plugin.data.check import reads_files
from goal_plugin.data.frames import IMAGENET_MEAN, IMAGENET_STD
from tests._image_text_fixtures import (
    GENRES,
    MEME_SPLITS,
    MOVIE_GENRES,
    MOVIE_SPLITS,
    RATINGS,
    movie_ids,
    write_hateful_memes,
    write_jsonl,
    write_mmimdb_hdf5,
    write_mmimdb_raw,
    write_tokenizer,
)

SMALL = {"max_length": 8, "image_size": 16}
SPLIT_FILES = {"train": "train", "val": "dev_seen", "test": "test_seen"}
MOVIE_PARTS = {"train": "train", "val": "dev", "test": "test"}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> str:
    return str(write_tokenizer(tmp_path_factory.mktemp("tokenizer")))


def encode(tokenizer: str, text: str, length: int = 8) -> tuple[list[int], list[bool]]:
    from transformers import BertTokenizer

    encoded = BertTokenizer.from_pretrained(tokenizer)(
        text, padding="max_length", truncation=True, max_length=length
    )
    return encoded["input_ids"], [bool(m) for m in encoded["attention_mask"]]


def resized(path: Path, size: int = 16) -> torch.Tensor:
    """The evaluation transform of an image file, computed here from its pixels."""
    from PIL import Image
    from torchvision.transforms import v2

    pixels = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"))).permute(2, 0, 1)
    scaled = v2.Resize((size, size), antialias=True)(pixels).float() / 255
    return (scaled - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[
        :, None, None
    ]


def one_line_error(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message, message
    return message


# ----------------------------------------------------------------------------- Hateful Memes


def test_hateful_memes_reads_the_official_splits_images_and_tokens(tmp_path, tokenizer):
    written = write_hateful_memes(tmp_path)
    for split, name in SPLIT_FILES.items():
        data = build_dataset("hateful_memes", str(tmp_path), split, tokenizer=tokenizer, **SMALL)
        rows = written[name]
        assert [clip.name for clip in data.clips] == [str(row["id"]) for row in rows]
        assert data.modalities == ("image", "text") and data.task == "classification"
        assert data.num_classes == 2 and data.class_names == ["not hateful", "hateful"]
        assert data.labels.dtype == torch.int64 and data.labels.tolist() == MEME_SPLITS[name]
        assert data.sample_shapes == {"image": (3, 16, 16), "text": (8,)}
        assert data.protocol == (
            "train.jsonl / dev_seen.jsonl / test_seen.jsonl as train / val / test (the challenge's splits)"
        )
        sample = data[1]
        ids, mask = encode(tokenizer, rows[1]["text"])
        assert sample["text"].dtype == torch.int64 and sample["text"].tolist() == ids
        assert sample["text_mask"].dtype == torch.bool and sample["text_mask"].tolist() == mask
        assert sample["image"].dtype == torch.float32 and sample["image"].shape == (3, 16, 16)
        if split != "train":
            torch.testing.assert_close(sample["image"], resized(tmp_path / rows[1]["img"]))
    unseen = {
        split: build_dataset(
            "hateful_memes", str(tmp_path), split, tokenizer=tokenizer, version="unseen", **SMALL
        )
        for split in ("val", "test")
    }
    assert [len(unseen["val"]), len(unseen["test"])] == [
        len(MEME_SPLITS["dev_unseen"]),
        len(MEME_SPLITS["test_unseen"]),
    ]
    assert "dev_unseen.jsonl / test_unseen.jsonl" in unseen["val"].protocol


def test_training_images_are_augmented_repeatably_for_a_seed(tmp_path, tokenizer):
    write_hateful_memes(tmp_path)
    train = build_dataset("hateful_memes", str(tmp_path), "train", tokenizer=tokenizer, **SMALL)
    torch.manual_seed(3)
    first = train[0]["image"]
    torch.manual_seed(3)
    assert torch.equal(first, train[0]["image"])
    batch = next(iter(DataLoader(train, batch_size=4, collate_fn=collate_batch)))
    assert batch["image"].shape == (4, 3, 16, 16) and batch["text"].shape == (4, 8)
    assert batch["text_mask"].dtype == torch.bool and batch["label"].dtype == torch.int64


def test_a_test_file_without_labels_is_refused_and_dev_can_be_the_test_split(tmp_path, tokenizer):
    written = write_hateful_memes(tmp_path, test_labels=False)
    options = {"tokenizer": tokenizer, **SMALL}
    assert len(build_dataset("hateful_memes", str(tmp_path), "val", **options)) == 4
    with pytest.raises(DataError) as raised:
        build_dataset("hateful_memes", str(tmp_path), "test", **options)
    message = one_line_error(raised)
    assert message.startswith(
        str(tmp_path / "test_seen.jsonl") + ": expected a label (0 or 1) on every line"
    )
    assert (
        "no 'label' on 5 of 5 lines (first: line 1)" in message
        and "protocol: dev_as_test" in message
    )
    dev = {"protocol": "dev_as_test", "val_fraction": 0.2, "split_seed": 1, **options}
    splits = {
        split: build_dataset("hateful_memes", str(tmp_path), split, **dev)
        for split in ("train", "val", "test")
    }
    names = {split: {clip.name for clip in data.clips} for split, data in splits.items()}
    assert names["test"] == {str(row["id"]) for row in written["dev_seen"]}
    assert names["train"] | names["val"] == {str(row["id"]) for row in written["train"]}
    assert not names["train"] & names["val"] and sorted(splits["val"].labels.tolist()) == [0, 1]
    assert splits["train"].protocol == (
        "test: dev_seen.jsonl; val: 20% of train.jsonl, stratified by class, split_seed 1; "
        "train: the rest of train.jsonl (test_seen.jsonl unused)"
    )
    with pytest.raises(
        ValueError, match=r"^val_fraction / split_seed of hateful_memes .* dev_as_test only"
    ):
        build_dataset("hateful_memes", str(tmp_path), "train", val_fraction=0.2, **options)


# ----------------------------------------------------------------------------- MM-IMDB raw


def expected_multi_hot(index: int) -> list[float]:
    return [1.0 if genre in MOVIE_GENRES[index] else 0.0 for genre in GENRES]


def test_mmimdb_raw_gives_genres_in_the_fixed_order_and_the_longest_plot(tmp_path, tokenizer):
    movies = write_mmimdb_raw(tmp_path)
    parts = movie_ids()
    start = 0
    for split, part in MOVIE_PARTS.items():
        data = build_dataset("mmimdb", str(tmp_path), split, tokenizer=tokenizer, **SMALL)
        assert len(data) == MOVIE_SPLITS[part] and [c.name for c in data.clips] == parts[part]
        assert data.task == "multilabel" and data.layout == "mmimdb_raw"
        assert data.num_classes == 23 and data.class_names == list(GENRES)  # the release's order
        assert data.labels.dtype == torch.float32 and data.labels.shape == (len(data), 23)
        assert data.labels.tolist() == [expected_multi_hot(start + k) for k in range(len(data))]
        assert data.protocol == "split.json train / dev / test as train / val / test (val = dev)"
        for k, movie in enumerate(parts[part]):
            plots = movies[movie]["plot"]
            assert data[k]["text"].tolist() == encode(tokenizer, max(plots, key=len))[0]
        if split == "val":
            torch.testing.assert_close(
                data[0]["image"], resized(tmp_path / "dataset" / f"{parts[part][0]}.jpeg")
            )
        start += len(data)
    assert any(
        max(m["plot"], key=len) != m["plot"][0] for m in movies.values()
    )  # not the first plot
    train = build_dataset("mmimdb", str(tmp_path), "train", tokenizer=tokenizer, **SMALL)
    assert train.notes == ["ignored 1 genre names outside the 23 of GENRES"]  # "News"


def test_mmimdb_rating_regression_drops_and_counts_movies_without_a_rating(
    tmp_path, tokenizer, caplog
):
    write_mmimdb_raw(tmp_path)
    start = 0
    for split, part in MOVIE_PARTS.items():
        data = build_dataset(
            "mmimdb", str(tmp_path), split, task="regression", tokenizer=tokenizer, **SMALL
        )
        ratings = RATINGS[start : start + MOVIE_SPLITS[part]]
        kept = [r for r in ratings if r is not None]
        assert data.labels.dtype == torch.float32 and data.labels.shape == (len(kept),)
        assert data.labels.tolist() == pytest.approx(kept)
        assert data.num_classes == 1 and data.class_names == ["rating"]
        ids = [m for m, r in zip(movie_ids()[part], ratings) if r is not None]
        assert [c.name for c in data.clips] == ids and data[0]["image"].shape == (3, 16, 16)
        dropped = len(ratings) - len(kept)
        assert data.notes == (
            [f"dropped {dropped} of {len(ratings)} movies without a rating"] if dropped else []
        )
        assert data.protocol.endswith("; movies without a rating dropped from every split")
        start += MOVIE_SPLITS[part]
    assert "mmimdb test: dropped 1 of 3 movies without a rating" in caplog.text


# ----------------------------------------------------------------------------- MM-IMDB HDF5


def test_mmimdb_hdf5_reads_rows_train_dev_test_as_vectors(tmp_path):
    stored = write_mmimdb_hdf5(tmp_path)
    start = 0
    for split, part in MOVIE_PARTS.items():
        data = build_dataset("mmimdb", str(tmp_path), split)
        stop = start + MOVIE_SPLITS[part]
        assert data.layout == "mmimdb_hdf5" and [c.name for c in data.clips] == movie_ids()[part]
        assert data.sample_shapes == {"image": (9,), "text": (6,)}  # widths from the file
        assert torch.equal(data[0]["image"], torch.from_numpy(stored["vgg_features"][start]))
        assert torch.equal(data[1]["text"], torch.from_numpy(stored["features"][start + 1]))
        assert data.labels.dtype == torch.float32
        assert data.labels.tolist() == [expected_multi_hot(i) for i in range(start, stop)]
        assert data.protocol == (
            "multimodal_imdb.hdf5 rows train | dev | test as train / val / test "
            "(val = dev; row ranges from the file's Fuel 'split' attribute)"
        )
        start = stop
    # split.json beside the file gives the same rows, and says so.
    (tmp_path / "split.json").write_text(json.dumps(movie_ids()))
    dev = build_dataset("mmimdb", str(tmp_path), "val")
    assert [c.name for c in dev.clips] == movie_ids()[
        "dev"
    ] and "from split.json's list lengths" in dev.protocol


def test_mmimdb_hdf5_genre_columns_follow_the_files_target_names(tmp_path):
    shuffled = list(reversed(GENRES))
    write_mmimdb_hdf5(tmp_path, target_names=shuffled)
    train = build_dataset("mmimdb", str(tmp_path), "train")
    assert train.class_names == list(GENRES)
    assert train.labels.tolist() == [expected_multi_hot(i) for i in range(MOVIE_SPLITS["train"])]


def test_mmimdb_hdf5_posters_are_read_lazily_also_in_loader_workers(tmp_path):
    stored = write_mmimdb_hdf5(tmp_path)
    test = build_dataset("mmimdb", str(tmp_path), "test", image_features="images", image_size=16)
    assert test.sample_shapes == {"image": (3, 16, 16), "text": (6,)}
    first = stored["images"][MOVIE_SPLITS["train"] + MOVIE_SPLITS["dev"]]
    from torchvision.transforms import v2

    scaled = (
        v2.Resize((16, 16), antialias=True)(torch.from_numpy(first.astype(np.uint8))).float() / 255
    )
    expected = (scaled - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[
        :, None, None
    ]
    torch.testing.assert_close(test[0]["image"], expected)
    batch = next(iter(DataLoader(test, batch_size=3, num_workers=1, collate_fn=collate_batch)))
    torch.testing.assert_close(batch["image"][0], expected)
    assert batch["label"].shape == (3, 23)


def test_mmimdb_hdf5_rating_regression_joins_the_raw_json_by_id(tmp_path):
    write_mmimdb_hdf5(tmp_path)
    with pytest.raises(DataError) as raised:
        build_dataset("mmimdb", str(tmp_path), "train", task="regression")
    assert one_line_error(raised).startswith(
        f"{tmp_path / 'dataset'}: expected the raw JSON dataset/<id>.json"
    )
    write_mmimdb_raw(tmp_path)
    train = build_dataset("mmimdb", str(tmp_path), "train", task="regression", layout="hdf5")
    assert train.labels.tolist() == pytest.approx([r for r in RATINGS[:5] if r is not None])
    assert [c.name for c in train.clips] == [
        m for m, r in zip(movie_ids()["train"], RATINGS) if r is not None
    ]
    assert train.notes == ["dropped 1 of 5 movies without a rating"]
    missing = movie_ids()["dev"][1]
    (tmp_path / "dataset" / f"{missing}.json").unlink()
    with pytest.raises(DataError) as raised:
        build_dataset("mmimdb", str(tmp_path), "val", task="regression", layout="hdf5")
    assert one_line_error(raised) == (
        f"{tmp_path / 'dataset' / (missing + '.json')}: expected each movie's JSON for its rating "
        "(1 of 2 ids of the split have none) (mmimdb_hdf5 layout), found the file does not exist"
    )


# ----------------------------------------------------------------------------- options and tasks


def test_loaders_state_and_refuse_tasks_and_options(tmp_path, tokenizer):
    write_hateful_memes(tmp_path / "memes")
    write_mmimdb_raw(tmp_path / "movies")
    memes, movies = str(tmp_path / "memes"), str(tmp_path / "movies")
    options = {"tokenizer": tokenizer, **SMALL}
    assert build_dataset("hateful_memes", memes, "val", **options).supported_tasks == (
        "classification",
    )
    assert build_dataset("mmimdb", movies, "val", **options).supported_tasks == (
        "multilabel",
        "regression",
    )
    with pytest.raises(
        ValueError, match=r"^option task of hateful_memes must be one of classification"
    ):
        build_dataset("hateful_memes", memes, "val", task="regression", **options)
    with pytest.raises(
        ValueError, match=r"^option task of mmimdb must be one of multilabel, regression"
    ):
        build_dataset("mmimdb", movies, "val", task="classification", **options)
    with pytest.raises(
        ValueError, match=r"^option tokenizer of hateful_memes is required: a local folder"
    ):
        build_dataset("hateful_memes", memes, "val")
    with pytest.raises(ValueError, match=r"is not a folder"):
        build_dataset("mmimdb", movies, "val", tokenizer=str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError) as raised:
        build_dataset("mmimdb", movies, "val", tokenizer=str(tmp_path / "empty"))
    assert one_line_error(raised).startswith(
        f"option tokenizer of mmimdb: {str(tmp_path / 'empty')!r} holds no tokenizer saved by save_pretrained"
    )
    with pytest.raises(ValueError, match=r"image_features of mmimdb applies to layout hdf5 only"):
        build_dataset("mmimdb", movies, "val", image_features="images", **options)
    write_mmimdb_hdf5(tmp_path / "movies")
    with pytest.raises(ValueError, match=r"holds both dataset/ \(raw\) and multimodal_imdb.hdf5"):
        build_dataset("mmimdb", movies, "val", **options)
    with pytest.raises(
        ValueError, match=r"tokenizer / max_length of mmimdb apply to layout raw only"
    ):
        build_dataset("mmimdb", movies, "val", layout="hdf5", **options)
    with pytest.raises(ValueError, match=r"image_features"):
        build_dataset("mmimdb", movies, "val", layout="hdf5", image_features="pixels")

    # A split left without samples is an error saying why, never an empty loader.
    with pytest.raises(ValueError, match=r"^val_fraction 0.01 of hateful_memes draws no meme"):
        build_dataset(
            "hateful_memes", memes, "val", protocol="dev_as_test", val_fraction=0.01, **options
        )
    for movie in movie_ids()["dev"]:
        path = tmp_path / "movies" / "dataset" / f"{movie}.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "rating": None}))
    with pytest.raises(ValueError) as raised:
        build_dataset("mmimdb", movies, "val", layout="raw", task="regression", **options)
    assert one_line_error(raised).endswith(
        "(mmimdb_raw layout): the split has no samples (dropped 2 of 2 movies without a rating)"
    )


# ----------------------------------------------------------------------------- bad input


def damage_memes(root: Path, damage: str) -> None:
    rows = [json.loads(line) for line in (root / "dev_seen.jsonl").read_text().splitlines()]
    if damage == "malformed_line":
        (root / "dev_seen.jsonl").write_text(json.dumps(rows[0]) + "\n{not json\n")
    elif damage == "missing_key":
        del rows[1]["text"]
    elif damage == "label_out_of_range":
        rows[1]["label"] = 2
    elif damage == "missing_image":
        (root / rows[1]["img"]).unlink()
    elif damage == "missing_file":
        (root / "dev_seen.jsonl").unlink()
    if damage in ("missing_key", "label_out_of_range"):
        write_jsonl(root / "dev_seen.jsonl", rows)


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        ("malformed_line", ["dev_seen.jsonl, line 2: expected a JSON object", "'{not json'"]),
        (
            "missing_key",
            ["dev_seen.jsonl, line 2: expected key 'text'", "no such key (keys: id, img, label)"],
        ),
        (
            "label_out_of_range",
            ["dev_seen.jsonl, line 2: expected 'label' 0 (not hateful) or 1", "found 2"],
        ),
        (
            "missing_image",
            ["img/01012.png: expected the image of", "dev_seen.jsonl, line 2", "does not exist"],
        ),
        ("missing_file", ["dev_seen.jsonl: expected JSON lines", "found the file does not exist"]),
    ],
)
def test_bad_meme_files_are_named_in_one_line(tmp_path, tokenizer, damage, words):
    write_hateful_memes(tmp_path)
    damage_memes(tmp_path, damage)
    with pytest.raises(DataError) as raised:
        build_dataset("hateful_memes", str(tmp_path), "val", tokenizer=tokenizer, **SMALL)
    message = one_line_error(raised)
    assert all(word in message for word in words), message


def damage_movies(root: Path, damage: str) -> None:
    dev = movie_ids()["dev"][0]
    movie = root / "dataset" / f"{dev}.json"
    data = json.loads(movie.read_text())
    if damage == "no_split_json":
        (root / "split.json").unlink()
    elif damage == "split_without_dev":
        (root / "split.json").write_text(json.dumps({"train": [], "test": []}))
    elif damage == "missing_json":
        movie.unlink()
    elif damage == "malformed_json":
        movie.write_text("{plot: ")
    elif damage == "plot_not_a_list":
        movie.write_text(json.dumps({**data, "plot": 3}))
    elif damage == "genres_not_a_list":
        movie.write_text(json.dumps({**data, "genres": "Drama"}))
    elif damage == "missing_poster":
        (root / "dataset" / f"{dev}.jpeg").unlink()
    elif damage == "rating_out_of_range":
        movie.write_text(json.dumps({**data, "rating": 11}))


@pytest.mark.parametrize(
    ("damage", "task", "words"),
    [
        ("no_split_json", "multilabel", ["split.json: expected", "does not exist"]),
        (
            "split_without_dev",
            "multilabel",
            ["split.json: expected key 'dev'", "keys: test, train"],
        ),
        ("missing_json", "multilabel", ["0001005.json: expected a movie's JSON", "does not exist"]),
        (
            "malformed_json",
            "multilabel",
            ["0001005.json: expected a movie's JSON", "unreadable JSON"],
        ),
        (
            "plot_not_a_list",
            "multilabel",
            ["0001005.json ['plot']: expected a non-empty list", "found a int"],
        ),
        (
            "genres_not_a_list",
            "multilabel",
            ["0001005.json ['genres']: expected a list of genre names"],
        ),
        (
            "missing_poster",
            "multilabel",
            ["0001005.jpeg: expected the poster of movie 0001005", "does not exist"],
        ),
        (
            "rating_out_of_range",
            "regression",
            ["0001005.json ['rating']: expected a rating in [1, 10]", "found 11"],
        ),
    ],
)
def test_bad_raw_movie_files_are_named_in_one_line(tmp_path, tokenizer, damage, task, words):
    write_mmimdb_raw(tmp_path)
    damage_movies(tmp_path, damage)
    with pytest.raises(DataError) as raised:
        build_dataset(
            "mmimdb", str(tmp_path), "val", task=task, tokenizer=tokenizer, layout="raw", **SMALL
        )
    message = one_line_error(raised)
    assert all(word in message for word in words), message


@pytest.mark.parametrize(
    ("replace", "words"),
    [
        (
            {"genres": np.zeros(10, dtype=np.int32)},
            ["['genres']: expected multi-hot genres (N, 23)", "shape (10,)"],
        ),
        (
            {"genres": np.zeros((10, 5), dtype=np.int32)},
            ["['genres']: expected multi-hot genres (N, 23)", "shape (10, 5)"],
        ),
        (
            {"features": None},
            ["expected dataset 'features'", "no such dataset (datasets: genres, images"],
        ),
        (
            {"vgg_features": np.zeros((10, 2, 2), np.float32)},
            ["['vgg_features']: expected VGG features (N, 4096)", "shape (10, 2, 2)"],
        ),
        (
            {"features": np.zeros((9, 6), np.float32)},
            ["['features']: expected word2vec plot features", "shape (9, 6)"],
        ),
        (
            {"genres": np.full((10, 23), 2, np.int32)},
            ["['genres'] row 0: expected multi-hot values 0 / 1", "found 2"],
        ),
    ],
)
def test_bad_hdf5_datasets_are_named_in_one_line(tmp_path, replace, words):
    write_mmimdb_hdf5(tmp_path, **replace)
    with pytest.raises(DataError) as raised:
        build_dataset("mmimdb", str(tmp_path), "train")
    message = one_line_error(raised)
    assert message.startswith(str(tmp_path / "multimodal_imdb.hdf5")) and all(
        w in message for w in words
    ), message


def test_hdf5_rows_that_cannot_be_split_are_named(tmp_path):
    write_mmimdb_hdf5(tmp_path, fuel=False)
    with pytest.raises(
        DataError, match=r"expected split.json beside it, or the file's Fuel 'split' attribute"
    ):
        build_dataset("mmimdb", str(tmp_path), "train")
    parts = movie_ids()
    (tmp_path / "split.json").write_text(json.dumps({**parts, "test": parts["test"][:2]}))
    with pytest.raises(
        DataError, match=r"split.json: expected 10 ids in all .* found 5 \+ 2 \+ 2 ids"
    ):
        build_dataset("mmimdb", str(tmp_path), "train")
    (tmp_path / "split.json").write_text(
        json.dumps({**parts, "dev": parts["test"][:2], "test": parts["dev"] + parts["test"][2:]})
    )
    with pytest.raises(
        DataError, match=r"\['imdb_ids'\] rows 5:7: expected the ids of split.json's 'dev' list"
    ):
        build_dataset("mmimdb", str(tmp_path), "val")
    shutil.rmtree(tmp_path)
    write_mmimdb_hdf5(tmp_path, target_names=[*GENRES[:-1], "News"])
    with pytest.raises(
        DataError, match=r"\['genres'\]\.attrs\['target_names'\]: expected the 23 MM-IMDB genres"
    ):
        build_dataset("mmimdb", str(tmp_path), "train")


# ----------------------------------------------------------------------------- check_data


def test_check_data_covers_both_datasets_and_decodes_every_image(tmp_path, tokenizer):
    assert reads_files("hateful_memes") and reads_files("mmimdb")
    written = write_hateful_memes(tmp_path / "memes", test_labels=False)
    broken = tmp_path / "memes" / written["dev_seen"][2]["img"]
    broken.write_bytes(b"not a png")
    report = {
        r.split: r
        for r in check_data(
            "hateful_memes", str(tmp_path / "memes"), {"tokenizer": tokenizer, **SMALL}
        )
    }
    assert (report["train"].clips, report["train"].ok, report["train"].layout) == (
        10,
        True,
        "hateful_memes",
    )
    assert (report["val"].clips, report["val"].malformed, report["val"].missing) == (4, 1, 0)
    assert report["val"].examples[0].startswith(f"{broken}: expected a readable JPEG or PNG frame")
    assert (
        report["test"].malformed == 1 and "no 'label' on 5 of 5 lines" in report["test"].examples[0]
    )
    # Reading the undecodable image in training is an error too, never a blank image.
    val = build_dataset(
        "hateful_memes", str(tmp_path / "memes"), "val", tokenizer=tokenizer, **SMALL
    )
    with pytest.raises(DataError, match="undecodable"):
        val[2]
    write_mmimdb_raw(tmp_path / "movies")
    (tmp_path / "movies" / "dataset" / f"{movie_ids()['test'][0]}.jpeg").unlink()
    report = {
        r.split: r
        for r in check_data(
            "mmimdb", str(tmp_path / "movies"), {"tokenizer": tokenizer, "task": "regression"}
        )
    }
    assert report["train"].ok and report["train"].notes == [
        "dropped 1 of 5 movies without a rating"
    ]
    assert (report["test"].missing, report["test"].malformed) == (1, 0)
    write_mmimdb_hdf5(tmp_path / "h5", images=np.full((10, 3, 16, 10), 300, np.int32))
    report = {
        r.split: r for r in check_data("mmimdb", str(tmp_path / "h5"), {"image_features": "images"})
    }
    assert (
        report["val"].malformed == 1
        and "row 5: expected pixel values in [0, 255]" in report["val"].examples[0]
    )
