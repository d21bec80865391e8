"""Hateful Memes (image + text, binary) from the challenge release (docs/image_text_datasets.md).

``data_root`` holds ``img/<id>.png`` and the JSON-lines files ``train.jsonl``,
``dev_seen.jsonl``, ``test_seen.jsonl`` (``dev_unseen`` / ``test_unseen`` in the
phase-2 release), one object per line ``{"id", "img": "img/01235.png", "label": 0|1,
"text"}``; the first release withholds the test files' labels.

Two protocols (``protocol``):

- ``official`` (default): train.jsonl / dev_<version>.jsonl / test_<version>.jsonl as
  train / val / test, as the challenge paper (Kiela et al., 2020) and MMF's
  configurations read them. A test file without labels cannot be scored: building
  the test split is then an error naming the file.
- ``dev_as_test``: test is dev_<version>.jsonl, val a stratified ``val_fraction`` of
  train.jsonl drawn by ``split_seed``, train the rest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from goal_plugin import _validation as check
from goal_plugin.data.files import DataError, require_root
from goal_plugin.data.image_text import (
    ImageFiles,
    ImageTextDataset,
    check_tokenizer_options,
    read_jsonl,
    register_image_text_dataset,
    require_file,
    tokenize,
)
from goal_plugin.data.sequences import check_task, check_val_draw, require_key, val_part

LAYOUT = "hateful_memes"
VERSIONS = ("seen", "unseen")
PROTOCOLS = ("official", "dev_as_test")
CLASS_NAMES = ["not hateful", "hateful"]
SUPPORTED_TASKS = ("classification",)
VAL_FRACTION, SPLIT_SEED = 0.1, 0
LINE = 'a JSON object {"id", "img": "img/<id>.png", "label": 0 or 1, "text"}'


def split_file(split: str, protocol: str, version: str) -> str:
    """The jsonl file the ``split`` is read from."""
    if protocol == "official":
        return {
            "train": "train.jsonl",
            "val": f"dev_{version}.jsonl",
            "test": f"test_{version}.jsonl",
        }[split]
    return f"dev_{version}.jsonl" if split == "test" else "train.jsonl"


def read_memes(
    path: Path, root: Path, scored: bool
) -> tuple[list[str], list[Path], list[str], np.ndarray]:
    """(ids, image paths, texts, labels) of a jsonl file; every line needs a label 0 / 1."""
    ids, images, texts, labels = [], [], [], []
    rows = read_jsonl(path, LAYOUT, f"JSON lines, each {LINE}")
    unlabelled = [number for number, row in rows if "label" not in row]
    if unlabelled and scored:
        raise DataError(
            path,
            "a label (0 or 1) on every line of the file scored as the test split",
            LAYOUT,
            f"no 'label' on {len(unlabelled)} of {len(rows)} lines (first: line {unlabelled[0]}); "
            "read dev as test with dataset_options protocol: dev_as_test",
        )
    for number, row in rows:
        where = f"{path}, line {number}"
        identifier = require_key(row, "id", where, LAYOUT, "the meme's id")
        image = require_key(row, "img", where, LAYOUT, "the image path, e.g. img/01235.png")
        text = require_key(row, "text", where, LAYOUT, "the meme's text")
        label = require_key(row, "label", where, LAYOUT, "0 (not hateful) or 1 (hateful)")
        if not isinstance(image, str) or not isinstance(text, str):
            raise DataError(
                where, "'img' and 'text' strings", LAYOUT, f"img {image!r}, text {text!r}"
            )
        if isinstance(label, bool) or label not in (0, 1):
            raise DataError(where, "'label' 0 (not hateful) or 1 (hateful)", LAYOUT, repr(label))
        ids.append(str(identifier))
        images.append(require_file(root / image, f"the image of {where}", LAYOUT))
        texts.append(text)
        labels.append(int(label))
    if not rows:
        raise DataError(path, f"JSON lines, each {LINE}", LAYOUT, "no line")
    return ids, images, texts, np.asarray(labels, dtype=np.int64)


def describe_protocol(protocol: str, version: str, val_fraction: float, split_seed: int) -> str:
    if protocol == "official":
        return (
            f"train.jsonl / dev_{version}.jsonl / test_{version}.jsonl as train / val / test "
            "(the challenge's splits)"
        )
    return (
        f"test: dev_{version}.jsonl; val: {100 * val_fraction:g}% of train.jsonl, stratified by "
        f"class, split_seed {split_seed}; train: the rest of train.jsonl (test_{version}.jsonl unused)"
    )


@register_image_text_dataset("hateful_memes")
def hateful_memes(
    root: str | None,
    split: str,
    *,
    tokenizer: str | None = None,
    max_length: int = 128,
    image_size: int = 224,
    version: str = "seen",
    protocol: str = "official",
    val_fraction: float | None = None,
    split_seed: int | None = None,
    task: str = "classification",
) -> ImageTextDataset:
    """Hateful Memes from ``root`` (docs/image_text_datasets.md).

    tokenizer: a local folder holding a tokenizer saved by save_pretrained (required).
    max_length: tokens per text, special tokens included (128, MMF's BERT text
    processor for Hateful Memes). image_size: the side of the square image (224).
    version: seen (dev_seen / test_seen, default) or unseen. protocol: official or
    dev_as_test; val_fraction (0.1) and split_seed (0) apply to dev_as_test only.
    task: classification (hateful = 1).
    """
    check_task("hateful_memes", task, SUPPORTED_TASKS)
    check.choice("version", version, VERSIONS)
    check.choice("protocol", protocol, PROTOCOLS)
    if protocol == "official" and (val_fraction, split_seed) != (None, None):
        raise ValueError(
            "val_fraction / split_seed of hateful_memes hold val out of train.jsonl under protocol "
            "dev_as_test only; protocol official reads val from the dev file: leave them unset"
        )
    fraction, seed = check_val_draw(
        VAL_FRACTION if val_fraction is None else val_fraction,
        SPLIT_SEED if split_seed is None else split_seed,
    )
    check.integer("image_size", image_size, minimum=8)
    root_path = require_root(
        root, "hateful_memes", "img/ and train.jsonl, dev_seen.jsonl, test_seen.jsonl"
    )
    folder, length = check_tokenizer_options("hateful_memes", tokenizer, max_length, root_path)
    name = split_file(split, protocol, version)
    ids, images, texts, labels = read_memes(root_path / name, root_path, scored=split == "test")
    if protocol == "dev_as_test" and split != "test":
        keep = val_part(labels, split, fraction, seed)
        if not len(keep):
            raise ValueError(
                f"val_fraction {fraction:g} of hateful_memes draws no meme of train.jsonl for {split}"
            )
        ids, images, texts = (
            [ids[i] for i in keep],
            [images[i] for i in keep],
            [texts[i] for i in keep],
        )
        labels = labels[keep]
    sources = {
        "image": ImageFiles("image", images, image_size, split == "train", LAYOUT),
        "text": tokenize("hateful_memes", folder, texts, length),
    }
    return ImageTextDataset(
        ids,
        torch.from_numpy(labels),
        sources,
        task=task,
        supported_tasks=SUPPORTED_TASKS,
        class_names=CLASS_NAMES,
        protocol=describe_protocol(protocol, version, fraction, seed),
        layout=LAYOUT,
        source=str(root_path / name),
        text_checkpoint=folder,
    )
