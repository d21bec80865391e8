"""Tiny Hateful Memes and MM-IMDB roots in the exact formats of their releases, and a
tokenizer folder, for the tests of the image + text loaders:

* Hateful Memes: ``img/<id>.png`` (written with Pillow) and ``train.jsonl``,
  ``dev_seen.jsonl``, ``test_seen.jsonl``, ``dev_unseen.jsonl``, ``test_unseen.jsonl``
  with one ``{"id", "img", "label", "text"}`` object per line (test labels optional);
* MM-IMDB raw: ``split.json`` and ``dataset/<id>.json`` (plot: a list of plots of
  different lengths, genres, rating when present) + ``dataset/<id>.jpeg``;
* MM-IMDB HDF5 ``multimodal_imdb.hdf5`` as the release's make_dataset.py writes it
  (features, vgg_features, images int32 (N, 3, H, W), genres int32 with
  ``attrs["target_names"]``, imdb_ids S7, the Fuel ``split`` attribute), small widths;
* a BERT WordPiece tokenizer saved by ``save_pretrained``.

Writers return what they wrote, so that tests compare against the stored values.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# The release's 23 genres in its column order (Arevalo et al., 2017, Table 1: most frequent first).
GENRES = (
    "Drama", "Comedy", "Romance", "Thriller", "Crime", "Action", "Adventure", "Horror",
    "Documentary", "Mystery", "Sci-Fi", "Fantasy", "Family", "Biography", "War", "History",
    "Music", "Animation", "Musical", "Western", "Sport", "Short", "Film-Noir",
)  # fmt: skip
WORDS = ["a", "cat", "dog", "hates", "loves", "the", "movie", "plot", "long", "short", "man", "war"]
MEME_SPLITS = {  # file: labels (None: the file has no labels)
    "train": [0, 1, 0, 1, 0, 1, 0, 1, 0, 1],
    "dev_seen": [1, 0, 1, 0],
    "test_seen": [0, 0, 1, 1, 1],
    "dev_unseen": [0, 1, 1],
    "test_unseen": [1, 0],
}
MOVIE_SPLITS = {"train": 5, "dev": 2, "test": 3}
# Ratings per movie in split.json order (None: no rating key), and the movies' genres.
RATINGS = [7.5, None, 3.0, 9.1, 1.0, 5.5, None, 8.0, 10.0, None]
MOVIE_GENRES = [
    ["Drama"],
    ["Comedy", "Romance"],
    ["Film-Noir", "News"],  # News is not among the 23
    ["Action", "Sci-Fi", "Drama"],
    ["Horror"],
    ["Short", "Animation"],
    ["Western"],
    ["Documentary", "Music"],
    ["Family", "Fantasy"],
    ["War", "History", "Biography"],
]


def write_tokenizer(folder: Path) -> Path:
    from transformers import BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizer(str(vocab)).save_pretrained(str(folder))
    return folder


def write_image(path: Path, seed: int, size=(12, 10)) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_hateful_memes(root: Path, test_labels: bool = True) -> dict[str, list[dict]]:
    """A root with every file of the release; ids run on across the files."""
    written, number = {}, 1000
    for name, labels in MEME_SPLITS.items():
        rows = []
        for k, label in enumerate(labels):
            number += 1
            image = f"img/{number:05d}.png"
            write_image(root / image, number)
            text = " ".join(WORDS[(number + j) % len(WORDS)] for j in range(2 + k % 4))
            row = {"id": number, "img": image, "label": label, "text": text}
            if name.startswith("test") and not test_labels:
                del row["label"]
            rows.append(row)
        write_jsonl(root / f"{name}.jsonl", rows)
        written[name] = rows
    return written


def movie_ids() -> dict[str, list[str]]:
    ids, start = {}, 0
    for part, size in MOVIE_SPLITS.items():
        ids[part] = [f"{1000 + k:07d}" for k in range(start, start + size)]
        start += size
    return ids


def write_mmimdb_raw(root: Path) -> dict[str, dict]:
    """split.json and dataset/<id>.json|jpeg; returns each movie's JSON by id."""
    parts = movie_ids()
    (root / "dataset").mkdir(parents=True, exist_ok=True)
    (root / "split.json").write_text(json.dumps(parts))
    movies = {}
    for k, movie in enumerate(movie for ids in parts.values() for movie in ids):
        data = {
            "title": f"movie {k}",
            "plot": [" ".join(WORDS[: 2 + (k + j) % 5]) for j in range(3)],
            "genres": MOVIE_GENRES[k],
        }
        if RATINGS[k] is not None:
            data["rating"] = RATINGS[k]
        (root / "dataset" / f"{movie}.json").write_text(json.dumps(data))
        write_image(root / "dataset" / f"{movie}.jpeg", k, size=(10, 16))
        movies[movie] = data
    return movies


def genre_matrix(target_names=GENRES) -> np.ndarray:
    """The (10, 23) int32 multi-hot rows of ``MOVIE_GENRES`` with columns ``target_names``."""
    rows = np.zeros((len(MOVIE_GENRES), len(target_names)), dtype=np.int32)
    for i, genres in enumerate(MOVIE_GENRES):
        for genre in genres:
            if genre in target_names:
                rows[i, list(target_names).index(genre)] = 1
    return rows


def fuel_split(sizes: dict[str, int], sources: list[str]) -> np.ndarray:
    """Fuel's H5PYDataset.create_split_array for contiguous train | dev | test rows."""
    import h5py

    dtype = np.dtype(
        [
            ("split", "S5"),
            ("source", "S12"),
            ("start", np.int64),
            ("stop", np.int64),
            ("indices", h5py.ref_dtype),
            ("available", np.bool_),
            ("comment", "S1"),
        ]
    )
    rows, start = [], 0
    for part, size in sizes.items():
        rows += [
            (part, source, start, start + size, h5py.Reference(), True, ".") for source in sources
        ]
        start += size
    return np.array(rows, dtype=dtype)


def write_mmimdb_hdf5(
    root: Path, target_names=GENRES, fuel: bool = True, **replace
) -> dict[str, np.ndarray]:
    """multimodal_imdb.hdf5 of the 10 movies (rows train | dev | test); ``replace`` swaps a
    dataset's array (None leaves it out). Returns the arrays written."""
    import h5py

    rng = np.random.default_rng(0)
    count = len(MOVIE_GENRES)
    arrays = {
        "features": rng.standard_normal((count, 6)).astype(np.float32),
        "vgg_features": rng.standard_normal((count, 9)).astype(np.float32),
        "images": rng.integers(0, 256, (count, 3, 16, 10)).astype(np.int32),
        "genres": genre_matrix(target_names),
        "imdb_ids": np.asarray([m for ids in movie_ids().values() for m in ids], dtype="S7"),
    }
    arrays.update(replace)
    root.mkdir(parents=True, exist_ok=True)
    with h5py.File(root / "multimodal_imdb.hdf5", "w") as file:
        for key, value in arrays.items():
            if value is not None:
                file.create_dataset(key, data=value)
        if "genres" in file:
            file["genres"].attrs["target_names"] = json.dumps(list(target_names))
        if fuel:
            file.attrs["split"] = fuel_split(
                MOVIE_SPLITS, [k for k, v in arrays.items() if v is not None]
            )
    return arrays


def image_text_dataset_case(name: str, base: Path) -> tuple[str, dict]:
    """(data_root, options) building every split of ``name`` (hateful_memes, mmimdb)."""
    tokenizer = str(write_tokenizer(base / "tokenizer"))
    if name == "hateful_memes":
        write_hateful_memes(base / name)
        return str(base / name), {"tokenizer": tokenizer, "max_length": 8, "image_size": 16}
    if name == "mmimdb":
        write_mmimdb_raw(base / name)
        return str(base / name), {"tokenizer": tokenizer, "max_length": 8, "image_size": 16}
    raise LookupError(f"no image + text fixture for dataset {name!r}")
