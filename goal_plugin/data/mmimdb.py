"""MM-IMDB (poster + plot; 23 genres multi-label, or rating regression) in the two
formats of Arevalo et al. (2017)'s release (docs/image_text_datasets.md).

- ``raw``: ``split.json`` ``{"train", "dev", "test": [ids]}`` and per movie
  ``dataset/<id>.json`` (``plot``: a list of plots, the longest is read, as the
  release's make_dataset.py does; ``genres``; ``rating`` 1-10 when present) and
  ``dataset/<id>.jpeg``.
- ``hdf5``: ``multimodal_imdb.hdf5`` with ``features`` (N, 300) word2vec averages of
  the plot, ``vgg_features`` (N, 4096), ``images`` (N, 3, 256, 160), ``genres``
  (N, 23) multi-hot, ``imdb_ids`` (N,); rows ordered train | dev | test. The row
  ranges come from ``split.json`` beside the file (its list lengths) or, without it,
  from the file's own Fuel ``split`` attribute. The file has no rating: regression
  joins ``dataset/<id>.json`` by ``imdb_ids``.

Splits: train / dev / test as train / val / test. Genre columns are ``GENRES``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from goal_plugin import _validation as check
from goal_plugin.data.files import MISSING, MISSING_DIR, DataError, require_root
from goal_plugin.data.image_text import (
    ImageFiles,
    ImageTextDataset,
    StoredImages,
    Vectors,
    check_tokenizer_options,
    read_json,
    register_image_text_dataset,
    require_file,
    tokenize,
)
from goal_plugin.data.sequences import check_task, describe, require_key, warn

# The 23 genres of MM-IMDB in the release's column order: most frequent first
# (Arevalo et al., 2017, Table 1; the HDF5 file's genres.attrs["target_names"]).
GENRES = (
    "Drama", "Comedy", "Romance", "Thriller", "Crime", "Action", "Adventure", "Horror",
    "Documentary", "Mystery", "Sci-Fi", "Fantasy", "Family", "Biography", "War", "History",
    "Music", "Animation", "Musical", "Western", "Sport", "Short", "Film-Noir",
)  # fmt: skip
SUPPORTED_TASKS = ("multilabel", "regression")
RATING_RANGE = (1.0, 10.0)
SPLIT_KEYS = {"train": "train", "val": "dev", "test": "test"}
HDF5_FILE = "multimodal_imdb.hdf5"
RAW, HDF5 = "mmimdb_raw", "mmimdb_hdf5"
IMAGE_FEATURES = ("vgg_features", "images")
# MMBT's max_seq_len (Kiela et al., 2019), which its MM-IMDB runs use.
MAX_LENGTH = 512
ROOT_HELP = f"split.json and dataset/<id>.json|jpeg (raw), or {HDF5_FILE} (hdf5)"


def detect_layout(root: Path, layout: str | None) -> str:
    if layout is not None:
        return check.choice("layout", layout, ("raw", "hdf5"))
    raw, hdf5 = (root / "dataset").is_dir(), (root / HDF5_FILE).is_file()
    if raw and hdf5:
        raise ValueError(
            f"data_root {str(root)!r} of mmimdb holds both dataset/ (raw) and {HDF5_FILE}: "
            "pick one with dataset_options layout: raw or hdf5"
        )
    if raw or hdf5:
        return "raw" if raw else "hdf5"
    raise ValueError(f"data_root {str(root)!r} does not look like mmimdb: expected {ROOT_HELP}")


def read_split_ids(root: Path, layout: str) -> dict[str, list[str]]:
    """The id lists of split.json, keyed train / dev / test."""
    path = root / "split.json"
    data = read_json(path, layout, '{"train", "dev", "test": [IMDb ids]}')
    parts = {}
    for key in ("train", "dev", "test"):
        ids = require_key(data, key, str(path), layout, "a list of IMDb ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise DataError(f"{path} [{key!r}]", "a list of IMDb id strings", layout, describe(ids))
        parts[key] = ids
    return parts


def movie_path(root: Path, movie: str, suffix: str) -> Path:
    return root / "dataset" / f"{movie}{suffix}"


def read_movie(root: Path, movie: str, layout: str) -> dict:
    path = movie_path(root, movie, ".json")
    data = read_json(path, layout, "a movie's JSON (plot, genres, rating)")
    if not isinstance(data, dict):
        raise DataError(path, "a JSON object (plot, genres, rating)", layout, describe(data))
    return data


def longest_plot(data: dict, path: Path) -> str:
    """The longest of the movie's plots (the first of equal length), as make_dataset.py reads it."""
    plots = require_key(data, "plot", str(path), RAW, "a list of plot texts")
    if not isinstance(plots, list) or not plots or not all(isinstance(p, str) for p in plots):
        raise DataError(f"{path} ['plot']", "a non-empty list of plot texts", RAW, describe(plots))
    return max(plots, key=len)


def multi_hot(genres: object, where: str, layout: str) -> tuple[np.ndarray, int]:
    """The (23,) float32 row of ``genres`` in ``GENRES`` order and how many names were
    not among the 23 (ignored, as the release keeps only these)."""
    if not isinstance(genres, list) or not all(isinstance(g, str) for g in genres):
        raise DataError(f"{where} ['genres']", "a list of genre names", layout, describe(genres))
    row = np.zeros(len(GENRES), dtype=np.float32)
    for genre in genres:
        if genre in GENRES:
            row[GENRES.index(genre)] = 1
    return row, sum(genre not in GENRES for genre in genres)


def rating_of(data: dict, where: str, layout: str) -> float | None:
    """The movie's rating in [1, 10], None when it has none."""
    rating = data.get("rating")
    if rating is None:
        return None
    low, high = RATING_RANGE
    if (
        isinstance(rating, bool)
        or not isinstance(rating, (int, float))
        or not low <= rating <= high
    ):
        raise DataError(f"{where} ['rating']", "a rating in [1, 10]", layout, repr(rating))
    return float(rating)


def ratings_by_id(root: Path, ids: Sequence[str], layout: str) -> list[float | None]:
    """The rating of each movie, joined from dataset/<id>.json."""
    folder = root / "dataset"
    if not folder.is_dir():
        raise DataError(
            folder,
            "the raw JSON dataset/<id>.json (the HDF5 file has no rating)",
            layout,
            MISSING_DIR,
        )
    missing = [m for m in ids if not movie_path(root, m, ".json").is_file()]
    if missing:
        raise DataError(
            movie_path(root, missing[0], ".json"),
            f"each movie's JSON for its rating ({len(missing)} of {len(ids)} ids of the split have none)",
            layout,
            MISSING,
        )
    return [
        rating_of(read_movie(root, m, layout), str(movie_path(root, m, ".json")), layout)
        for m in ids
    ]


def regression_labels(ratings: Sequence[float | None]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(kept rows, their ratings float32, notes): movies without a rating are dropped."""
    keep = np.asarray([i for i, r in enumerate(ratings) if r is not None], dtype=np.int64)
    values = np.asarray([ratings[i] for i in keep], dtype=np.float32)
    dropped = len(ratings) - len(keep)
    return (
        keep,
        values,
        [f"dropped {dropped} of {len(ratings)} movies without a rating"] if dropped else [],
    )


# ----------------------------------------------------------------------------- raw


def read_raw(root: Path, split: str, task: str, tokenizer: Path, max_length: int, image_size: int):
    ids = read_split_ids(root, RAW)[SPLIT_KEYS[split]]
    plots, genres, ratings, unknown = [], [], [], 0
    for movie in ids:
        data = read_movie(root, movie, RAW)
        where = str(movie_path(root, movie, ".json"))
        plots.append(longest_plot(data, Path(where)))
        if task == "regression":
            ratings.append(rating_of(data, where, RAW))
        else:
            row, ignored = multi_hot(
                require_key(data, "genres", where, RAW, "a list of genre names"), where, RAW
            )
            genres.append(row)
            unknown += ignored
        require_file(movie_path(root, movie, ".jpeg"), f"the poster of movie {movie}", RAW)
    notes = [f"ignored {unknown} genre names outside the 23 of GENRES"] if unknown else []
    if task == "regression":
        keep, labels, dropped = regression_labels(ratings)
        notes += dropped
    else:
        keep, labels = (
            np.arange(len(ids)),
            np.stack(genres) if genres else np.zeros((0, len(GENRES)), np.float32),
        )
    kept = [ids[i] for i in keep]
    sources = {
        "image": ImageFiles(
            "image", [movie_path(root, m, ".jpeg") for m in kept], image_size, split == "train", RAW
        ),
        "text": tokenize("mmimdb", tokenizer, [plots[i] for i in keep], max_length),
    }
    return (
        kept,
        labels,
        sources,
        notes,
        "split.json train / dev / test as train / val / test (val = dev)",
    )


# ----------------------------------------------------------------------------- hdf5


def hdf5_array(file, key: str, rank: int, path: Path, rows: int | None, expected: str):
    """Dataset ``key`` of the open file with ``rank`` dimensions (and ``rows`` rows)."""
    if key not in file:
        raise DataError(
            path,
            f"dataset {key!r} ({expected})",
            HDF5,
            f"no such dataset (datasets: {', '.join(sorted(file))})",
        )
    array = file[key]
    if array.ndim != rank or (rows is not None and array.shape[0] != rows):
        raise DataError(f"{path} [{key!r}]", expected, HDF5, f"shape {array.shape}")
    return array


def fuel_ranges(file, path: Path) -> dict[str, tuple[int, int]] | None:
    """The train / dev / test row ranges of the Fuel ``split`` attribute, if the file has one."""
    if "split" not in file.attrs:
        return None
    ranges = {}
    for row in file.attrs["split"]:
        name = row["split"].decode() if isinstance(row["split"], bytes) else str(row["split"])
        ranges.setdefault(name, (int(row["start"]), int(row["stop"])))
    if not {"train", "dev", "test"} <= set(ranges):
        raise DataError(
            f"{path} .attrs['split']",
            "Fuel ranges of train, dev and test",
            HDF5,
            f"splits {sorted(ranges)}",
        )
    return ranges


def row_ranges(file, path: Path, root: Path, count: int) -> tuple[dict[str, tuple[int, int]], str]:
    """Row range of each part and where it came from: split.json's list lengths, else Fuel's attribute."""
    if (root / "split.json").is_file():
        parts = read_split_ids(root, HDF5)
        sizes = [len(parts[key]) for key in ("train", "dev", "test")]
        if sum(sizes) != count:
            raise DataError(
                root / "split.json",
                f"{count} ids in all (the rows of {HDF5_FILE})",
                HDF5,
                f"{' + '.join(map(str, sizes))} ids",
            )
        bounds = np.cumsum([0, *sizes])
        ranges = {
            key: (int(bounds[i]), int(bounds[i + 1]))
            for i, key in enumerate(("train", "dev", "test"))
        }
        if "imdb_ids" in file:
            stored = stored_ids(file, path, count, 0, count)
            for key, (start, stop) in ranges.items():
                if set(stored[start:stop]) != set(parts[key]):
                    raise DataError(
                        f"{path} ['imdb_ids'] rows {start}:{stop}",
                        f"the ids of split.json's {key!r} list (rows ordered train | dev | test)",
                        HDF5,
                        "other ids",
                    )
        return ranges, "row ranges from split.json's list lengths"
    ranges = fuel_ranges(file, path)
    if ranges is None:
        raise DataError(
            path,
            "split.json beside it, or the file's Fuel 'split' attribute, to find the train | dev | test rows",
            HDF5,
            "neither",
        )
    for key in ("train", "dev", "test"):
        start, stop = ranges[key]
        if not 0 <= start <= stop <= count:
            raise DataError(
                f"{path} .attrs['split']",
                f"row ranges within [0, {count}]",
                HDF5,
                f"{key} {start}:{stop}",
            )
    return ranges, "row ranges from the file's Fuel 'split' attribute"


def genre_columns(genres, path: Path) -> np.ndarray:
    """Column index of each of ``GENRES`` in the file: its ``target_names`` order when stored."""
    names = genres.attrs.get("target_names")
    if names is None:
        return np.arange(len(GENRES))
    names = json.loads(names)
    if sorted(names) != sorted(GENRES):
        raise DataError(
            f"{path} ['genres'].attrs['target_names']",
            f"the 23 MM-IMDB genres {list(GENRES)}",
            HDF5,
            repr(names),
        )
    return np.asarray([names.index(g) for g in GENRES])


def stored_ids(file, path: Path, count: int, start: int, stop: int) -> list[str]:
    """The ``imdb_ids`` of rows ``start:stop``."""
    ids = hdf5_array(file, "imdb_ids", 1, path, count, "IMDb ids (N,)")
    return [i.decode() for i in ids[start:stop]]


def genre_labels(genres, path: Path, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of ``genres`` as float32 (n, 23) in ``GENRES`` order, values 0 / 1."""
    values = genres[start:stop][:, genre_columns(genres, path)]
    bad = ~np.isin(values, (0, 1))
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"{path} ['genres'] row {start + row}",
            "multi-hot values 0 / 1",
            HDF5,
            repr(values[row, column].item()),
        )
    return values.astype(np.float32)


def read_hdf5(root: Path, split: str, task: str, image_features: str, image_size: int):
    try:
        import h5py
    except ImportError:
        raise ImportError(
            "the mmimdb hdf5 layout needs h5py: pip install 'goal-plugin[text]'"
        ) from None
    path = root / HDF5_FILE
    require_file(path, "the MM-IMDB HDF5 file", HDF5)
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise DataError(path, "an HDF5 file", HDF5, f"unreadable ({error})") from None
    with file:
        genres = hdf5_array(file, "genres", 2, path, None, "multi-hot genres (N, 23)")
        count = genres.shape[0]
        if genres.shape[1] != len(GENRES):
            raise DataError(
                f"{path} ['genres']", "multi-hot genres (N, 23)", HDF5, f"shape {genres.shape}"
            )
        ranges, how = row_ranges(file, path, root, count)
        start, stop = ranges[SPLIT_KEYS[split]]
        text = hdf5_array(file, "features", 2, path, count, "word2vec plot features (N, 300)")
        images = (
            hdf5_array(file, "vgg_features", 2, path, count, "VGG features (N, 4096)")
            if image_features == "vgg_features"
            else hdf5_array(file, "images", 4, path, count, "posters (N, 3, 256, 160)")
        )
        if image_features == "images" and images.shape[1] != 3:
            raise DataError(
                f"{path} ['images']", "posters (N, 3, 256, 160)", HDF5, f"shape {images.shape}"
            )
        notes = []
        # The ids name the samples; regression needs them to join the ratings.
        needs_ids = task == "regression" or "imdb_ids" in file
        ids = stored_ids(file, path, count, start, stop) if needs_ids else None
        if task == "regression":
            keep, labels, notes = regression_labels(ratings_by_id(root, ids, HDF5))
        else:
            keep, labels = np.arange(stop - start), genre_labels(genres, path, start, stop)
        rows = start + keep
        names = [ids[i] for i in keep] if ids is not None else [f"row {r}" for r in rows]
        if image_features == "vgg_features":
            image = Vectors(
                "image", torch.from_numpy(np.asarray(images[start:stop], dtype=np.float32)[keep])
            )
        else:
            image = StoredImages("image", path, "images", rows, image_size, split == "train", HDF5)
        sources = {
            "image": image,
            "text": Vectors(
                "text", torch.from_numpy(np.asarray(text[start:stop], dtype=np.float32)[keep])
            ),
        }
    protocol = f"{HDF5_FILE} rows train | dev | test as train / val / test (val = dev; {how})"
    return names, labels, sources, notes, protocol


@register_image_text_dataset("mmimdb")
def mmimdb(
    root: str | None,
    split: str,
    *,
    task: str = "multilabel",
    layout: str | None = None,
    tokenizer: str | None = None,
    max_length: int | None = None,
    image_size: int = 224,
    image_features: str | None = None,
) -> ImageTextDataset:
    """MM-IMDB from ``root`` (docs/image_text_datasets.md).

    task: multilabel (the 23 ``GENRES``, float32 (N, 23)) or regression (the rating,
    float32 (N,); movies without one dropped). layout: raw or hdf5, detected when
    unset. raw: tokenizer (a local folder saved by save_pretrained, required) and
    max_length (512) tokenise the longest plot; posters are decoded at image_size.
    hdf5: text is ``features`` (N, 300); image_features vgg_features (default, a
    vector) or images (the stored posters at image_size).
    """
    task = check_task("mmimdb", task, SUPPORTED_TASKS)
    check.integer("image_size", image_size, minimum=8)
    root_path = require_root(root, "mmimdb", ROOT_HELP)
    layout = detect_layout(root_path, layout)
    if layout == "raw":
        if image_features is not None:
            raise ValueError(
                "option image_features of mmimdb applies to layout hdf5 only; leave it unset"
            )
        folder, length = check_tokenizer_options(
            "mmimdb", tokenizer, MAX_LENGTH if max_length is None else max_length, root_path
        )
        ids, labels, sources, notes, protocol = read_raw(
            root_path, split, task, folder, length, image_size
        )
    else:
        if tokenizer is not None or max_length is not None:
            raise ValueError(
                "options tokenizer / max_length of mmimdb apply to layout raw only: the HDF5 file holds "
                "no plot text, its text is the word2vec 'features' vectors (backbone mlp)"
            )
        image_features = "vgg_features" if image_features is None else image_features
        check.choice("image_features", image_features, IMAGE_FEATURES)
        ids, labels, sources, notes, protocol = read_hdf5(
            root_path, split, task, image_features, image_size
        )
    if task == "regression":
        protocol += "; movies without a rating dropped from every split"
    warn("mmimdb", split, notes)
    return ImageTextDataset(
        ids,
        torch.from_numpy(labels),
        sources,
        task=task,
        supported_tasks=SUPPORTED_TASKS,
        class_names=list(GENRES) if task == "multilabel" else ["rating"],
        protocol=protocol,
        layout=RAW if layout == "raw" else HDF5,
        source=str(root_path if layout == "raw" else root_path / HDF5_FILE),
        notes=notes,
        text_checkpoint=folder if layout == "raw" else None,
    )
