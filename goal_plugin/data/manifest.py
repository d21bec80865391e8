"""The ``files`` dataset: your own data listed in a manifest (docs/your_data.md).

A manifest is a CSV file (with a header) or a JSON-lines file, one sample per row:
``split`` (train, val or test), ``label`` and one column per modality; an optional
``id`` column names the sample. A modality cell holds a path (relative paths resolve
against the manifest's folder) or a text string. Each modality column has a kind:

- ``audio``: a WAV (or FLAC / OGG) file, turned into features by a recipe of
  ``goal_plugin.data.audio`` (``audio_features``: OGM-GE's spectrogram or
  BalanceBenchmark's fbank), optionally cached on disk (``cache_dir``): (1, F, T);
- ``image``: a JPEG or PNG file, decoded and transformed like the video frames
  (``frames.FrameReader``'s transform): (3, S, S);
- ``frames``: a folder of frame images, sampled and augmented by
  ``frames.FrameReader``: (3, num_frames, S, S);
- ``array``: a ``.npy`` or ``.pt`` array, every row of one shape: that shape;
- ``text``: the text itself, tokenised by a tokenizer from a local folder
  (``tokenizer``): token ids (L,) and a mask ``<column>_mask``.

Kinds are declared (``modalities: {column: kind}``) or inferred from the values:
the file suffix, an existing folder for frames, text otherwise.

A label is a class name, a class index, a number (regression) or several class
names (multi-label: a JSON list, or names joined by ``;`` in a CSV cell); the task
follows from the labels unless ``task`` says it. ``classes`` declares the class
names in label-index order (otherwise: the sorted names of the whole manifest, or
the indices 0 .. max).

Rows are checked when a split is built: a missing file, an empty modality cell or
a label outside the declared classes is a ``DataError`` naming the manifest line and
column; with ``skip_missing`` every file is opened and such rows are dropped and
counted per split (``skipped``, ``problems``). A split name other than train, val or
test and a label column mixing kinds are errors in any case. A manifest without
``val`` rows gets a validation split drawn from its train rows by ``split_seed``
(stratified by class for classification), stated in ``protocol``.
"""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from goal_plugin import _validation as check
from goal_plugin.data.audio import STFT_PADDINGS, WAV_RECIPES
from goal_plugin.data.av import LOG, EmptySplitError, WavAudio, check_flag, frame_reader
from goal_plugin.data.base import DATASETS, SPLITS, stratified_split
from goal_plugin.data.files import MISSING, MISSING_DIR, DataError, read_text
from goal_plugin.data.frames import IMAGE_SUFFIXES, SAMPLINGS, decode_frame
from goal_plugin.data.image_text import (
    check_tokenizer_options,
    image_transform,
    read_jsonl,
    tokenize,
)
from goal_plugin.data.tensors import ARRAY_SUFFIXES, load_array

LAYOUT = "files"
MANIFEST_NAMES = ("manifest.csv", "manifest.jsonl")
RESERVED = ("split", "label", "id")
KINDS = ("audio", "image", "frames", "array", "text")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
TASKS = ("classification", "multilabel", "regression")
VAL_FRACTION, SPLIT_SEED = 0.1, 0
_COLUMN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
EXPECTED = {
    "audio": "an audio file (WAV, FLAC or OGG)",
    "image": "a JPEG or PNG image",
    "frames": "a folder of frame images (.jpg, .jpeg or .png)",
    "array": "a .npy or .pt array",
    "text": "a non-empty text",
}


@dataclass(frozen=True)
class Row:
    line: int
    split: str
    label: object  # as written: a string (CSV) or a JSON value
    cells: dict[str, object]
    name: str


# ----------------------------------------------------------------------------- manifest


def locate_manifest(root: str | None, manifest: str | None) -> Path:
    """The manifest file: ``manifest`` (relative to ``root``, or to the current folder
    without one), or the manifest.csv / manifest.jsonl in ``root``."""
    if manifest is not None and (not isinstance(manifest, str) or not manifest):
        raise ValueError(f"option manifest of files must be a file path, got {manifest!r}")
    if root is None and manifest is None:
        raise ValueError(
            "dataset 'files' reads a manifest: set data_root to the folder holding manifest.csv "
            "or manifest.jsonl, or dataset_options.manifest to the file"
        )
    base = Path(root).expanduser() if root is not None else Path.cwd()
    if root is not None and not base.is_dir():
        raise ValueError(f"data_root {str(base)!r} of dataset 'files' is not a folder")
    if manifest is not None:
        path = base / Path(manifest).expanduser()
        if not path.is_file():
            raise DataError(path, "the manifest named by option manifest", LAYOUT, MISSING)
        return path
    present = [base / name for name in MANIFEST_NAMES if (base / name).is_file()]
    if len(present) != 1:
        found = "both" if present else "neither"
        raise DataError(
            base,
            "one of manifest.csv or manifest.jsonl (or option manifest naming the file)",
            LAYOUT,
            found,
        )
    return present[0]


def read_manifest(path: Path) -> tuple[list[str], list[tuple[int, dict[str, object]]]]:
    """(columns, (line number, {column: value}) per row) of a CSV or JSON-lines manifest."""
    if path.suffix.lower() in (".jsonl", ".json"):
        rows = read_jsonl(path, LAYOUT, "JSON lines, one object per sample")
        columns = list(dict.fromkeys(key for _, row in rows for key in row))
        return columns, rows
    if path.suffix.lower() != ".csv":
        raise DataError(
            path, "a manifest ending in .csv or .jsonl", LAYOUT, f"suffix {path.suffix!r}"
        )
    reader = csv.DictReader(read_text(path, LAYOUT, "a CSV manifest with a header").splitlines())
    columns = [name.strip() for name in reader.fieldnames or ()]
    if len(set(columns)) != len(columns):
        raise DataError(f"{path}, line 1", "distinct column names", LAYOUT, repr(columns))
    rows = []
    for record in reader:
        if None in record or None in record.values():  # extra fields, or too few
            found = "more fields" if None in record else "fewer fields"
            raise DataError(
                f"{path}, line {reader.line_num}",
                f"{len(columns)} fields (the header's columns)",
                LAYOUT,
                found,
            )
        if not any(str(value).strip() for value in record.values()):
            continue  # a blank line
        rows.append((reader.line_num, {key.strip(): value for key, value in record.items()}))
    return columns, rows


def where(manifest: Path, line: int, column: str) -> str:
    return f"{manifest}, line {line}, column {column!r}"


def parse_rows(
    manifest: Path, columns: list[str], records, modality_columns: Sequence[str]
) -> list[Row]:
    for required in ("split", "label"):
        if required not in columns:
            raise DataError(manifest, f"a column {required!r}", LAYOUT, f"columns {columns}")
    rows = []
    for line, record in records:
        split = record.get("split")
        split = split.strip() if isinstance(split, str) else split
        if split not in SPLITS:
            raise DataError(
                where(manifest, line, "split"), "train, val or test", LAYOUT, repr(split)
            )
        cells = {}
        for column in modality_columns:
            value = record.get(column)
            if value is not None and not isinstance(value, str):
                raise DataError(
                    where(manifest, line, column), "a path or a text string", LAYOUT, repr(value)
                )
            cells[column] = (value or "").strip()
        name = str(record.get("id") or f"line {line}")
        rows.append(Row(line, split, record.get("label"), cells, name))
    if not rows:
        raise DataError(manifest, "at least one row", LAYOUT, "no row")
    return rows


# ----------------------------------------------------------------------------- labels


def label_kind(value: object, separator: str) -> tuple[str, object]:
    """(kind, parsed value) of one label: index, number, name, names or empty."""
    if isinstance(value, bool):
        return "invalid", value
    if isinstance(value, int):
        return "index", value
    if isinstance(value, float):
        return "number", value
    if isinstance(value, list):
        if all(isinstance(v, str) and v.strip() for v in value):
            return "names", [v.strip() for v in value]
        return "invalid", value
    if not isinstance(value, str):
        return "invalid" if value is not None else "empty", value
    text = value.strip()
    if not text:
        return "empty", text
    if separator in text:
        return "names", [part.strip() for part in text.split(separator) if part.strip()]
    try:
        return "index", int(text)
    except ValueError:
        pass
    try:
        return "number", float(text)
    except ValueError:
        return "name", text


# The task each combination of label kinds reads as.
KIND_TASKS = {
    frozenset({"index"}): "classification",
    frozenset({"name"}): "classification",
    frozenset({"number"}): "regression",
    frozenset({"index", "number"}): "regression",
    frozenset({"names"}): "multilabel",
    frozenset({"name", "names"}): "multilabel",
}
KIND_WORDS = {
    "index": "a class index",
    "number": "a number",
    "name": "a class name",
    "names": "several class names",
}
TASK_KINDS = {
    "classification": ({"index"}, {"name"}),
    "regression": ({"index", "number"},),
    "multilabel": ({"name", "names"},),
}


@dataclass(frozen=True)
class LabelSpace:
    task: str
    class_names: list[str]
    by_name: bool  # classification labels are names (else indices)


def label_space(
    manifest: Path, rows: list[Row], task: str | None, classes: Sequence[str] | None, separator: str
) -> LabelSpace:
    """The task and class names of the whole manifest (every split, so that indices agree)."""
    allowed = TASK_KINDS[task] if task is not None else tuple(map(set, KIND_TASKS))
    kinds: dict[str, int] = {}  # kind -> its first line
    for row in rows:
        kind, value = label_kind(row.label, separator)
        if kind in ("empty", "invalid"):
            expected = "a class name, a class index, a number or several class names"
            raise DataError(where(manifest, row.line, "label"), expected, LAYOUT, repr(value))
        if not any({*kinds, kind} <= group for group in allowed):  # the first row that breaks it
            if task is not None and not kinds:
                expected = f"labels of task {task} ({' or '.join(KIND_WORDS[k] for k in sorted(allowed[0]))})"
            else:
                first = min(kinds, key=kinds.get)
                expected = f"labels of one kind (line {kinds[first]} holds {KIND_WORDS[first]})"
            raise DataError(where(manifest, row.line, "label"), expected, LAYOUT, KIND_WORDS[kind])
        kinds.setdefault(kind, row.line)
    task = task or KIND_TASKS[frozenset(kinds)]
    if task == "regression":
        if classes is not None:
            raise ValueError("option classes of files: regression labels have no classes")
        return LabelSpace(task, ["label"], False)
    if classes is not None:
        return LabelSpace(task, list(classes), "index" not in kinds)
    if "index" in kinds:
        top = max(label_kind(row.label, separator)[1] for row in rows)
        return LabelSpace(task, [str(i) for i in range(top + 1)], False)
    names = set()
    for row in rows:
        value = label_kind(row.label, separator)[1]
        names.update(value if isinstance(value, list) else [value])
    return LabelSpace(task, sorted(names), True)


def encode_label(row: Row, space: LabelSpace, manifest: Path, separator: str):
    """The label as the engine reads it: a class index, a multi-hot row or a number."""
    value = label_kind(row.label, separator)[1]
    if space.task == "regression":
        return float(value)
    names = value if isinstance(value, list) else [value]
    known = space.class_names
    for name in names:
        if (space.by_name and name not in known) or (
            not space.by_name and not (isinstance(name, int) and 0 <= name < len(known))
        ):
            described = ", ".join(known) if space.by_name else f"0 to {len(known) - 1}"
            raise DataError(
                where(manifest, row.line, "label"),
                f"a declared class ({described})",
                LAYOUT,
                repr(name),
            )
    indices = [known.index(n) if space.by_name else n for n in names]
    if space.task == "multilabel":
        hot = np.zeros(len(known), dtype=np.float32)
        hot[indices] = 1
        return hot
    return indices[0]


def check_classes(classes: object) -> list[str] | None:
    if classes is None:
        return None
    if isinstance(classes, str) or not isinstance(classes, Sequence) or not classes:
        raise ValueError(f"option classes of files must be a list of class names, got {classes!r}")
    names = [str(name) for name in classes]
    if len(set(names)) != len(names):
        raise ValueError(f"option classes of files names a class twice: {names}")
    return names


# ----------------------------------------------------------------------------- modality kinds


def infer_kind(value: str, folder: Path) -> str:
    suffix = Path(value).suffix.lower()
    if suffix in AUDIO_SUFFIXES:
        return "audio"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in ARRAY_SUFFIXES:
        return "array"
    if "\n" not in value and len(value) < 4096 and (folder / value).is_dir():
        return "frames"
    return "text"


def modality_kinds(
    manifest: Path, columns: list[str], records, modalities: object
) -> dict[str, str]:
    """{column: kind} of the modality columns: declared (a mapping), or inferred for the
    listed columns (a list) or for every column but split, label and id."""
    if isinstance(modalities, Mapping):
        declared = {str(c): k for c, k in modalities.items()}
        for column, kind in declared.items():
            check.choice(f"kind of modality column {column!r}", kind, KINDS)
    elif modalities is None:
        declared = dict.fromkeys(c for c in columns if c not in RESERVED)
    elif isinstance(modalities, Sequence) and not isinstance(modalities, str) and modalities:
        declared = dict.fromkeys(map(str, modalities))
    else:
        raise ValueError(
            f"option modalities of files must map columns to kinds ({', '.join(KINDS)}) or "
            f"list columns, got {modalities!r}"
        )
    if not declared:
        raise DataError(
            manifest,
            "at least one modality column besides split, label and id",
            LAYOUT,
            f"columns {columns}",
        )
    for column in declared:
        if column not in columns:
            raise ValueError(
                f"option modalities of files: the manifest has no column {column!r} (columns: {columns})"
            )
        if column in RESERVED or not _COLUMN_NAME.match(column) or column.endswith("_mask"):
            raise ValueError(
                f"modality column {column!r} of {manifest}: a modality name is letters, digits and "
                "underscores, starts with a letter, is not split / label / id and does not end in _mask"
            )
    kinds = {}
    for column, kind in declared.items():
        if kind is not None:
            kinds[column] = kind
            continue
        seen: dict[str, int] = {}
        for line, record in records:
            value = record.get(column)
            if isinstance(value, str) and value.strip():
                seen.setdefault(infer_kind(value.strip(), manifest.parent), line)
        files = {k: line for k, line in seen.items() if k != "text"}
        if len(files) > 1:
            (a, line_a), (b, line_b) = sorted(files.items(), key=lambda item: item[1])[:2]
            raise DataError(
                where(manifest, line_b, column),
                f"one kind per column (line {line_a} holds {EXPECTED[a]}); declare the kind in "
                "dataset_options.modalities",
                LAYOUT,
                EXPECTED[b],
            )
        kinds[column] = next(iter(files), "text")
    return kinds


# ----------------------------------------------------------------------------- readers


def file_readers(kinds: Mapping[str, str], split: str, options: Mapping[str, object]) -> dict:
    """A reader (path -> Tensor) per file kind in ``kinds``, with the split's augmentation:
    the audio-visual datasets' WAV recipes and frame sampler, the image + text datasets'
    image transform, ``tensors.load_array``."""
    train, used, made = split == "train", set(kinds.values()), {}
    if "audio" in used:
        recipe, params, cache_dir = options["audio"]
        made["audio"] = WavAudio(recipe, params, LAYOUT, cache_dir)
    if "image" in used:
        made["image"] = functools.partial(read_image, image_transform(options["image_size"], train))
    if "frames" in used:
        count, sampling = options["frames"]
        made["frames"] = frame_reader(
            split, count, options["image_size"], sampling, LAYOUT, "(numbered image files)"
        )
    if "array" in used:
        made["array"] = functools.partial(load_array, layout=LAYOUT)
    return made  # picklable: DataLoader workers may receive the dataset


def read_image(transform, path: Path) -> Tensor:
    return transform(decode_frame(path, LAYOUT))


def open_every_file(kind: str, reader, path: Path) -> Tensor | None:
    """Reads ``path`` as training may (every frame a sampler may pick); the array read, if any."""
    if kind == "frames":
        for frame in reader.candidates(path):
            decode_frame(frame, LAYOUT)
        return None
    return reader(path)


# ----------------------------------------------------------------------------- dataset


class EmptyManifestSplit(EmptySplitError):
    """Every row of a split of a manifest was skipped; ``problems`` says why, row by row."""


class ManifestDataset(Dataset):
    """The rows of one split of a manifest, files read lazily.

    ``modalities`` (the modality columns), ``sample_shapes``, ``num_classes``,
    ``class_names``, ``task``, ``supported_tasks``, ``protocol`` as the other datasets;
    ``kinds`` the kind of each modality column, ``clips`` the rows' ids, ``skipped``
    (``{"missing": n, "malformed": m}``) and ``problems`` the rows dropped by
    ``skip_missing`` and why. Every error names the manifest line and column.
    """

    def __init__(
        self,
        manifest: Path,
        rows: list[Row],
        labels: list[object],
        kinds: Mapping[str, str],
        space: LabelSpace,
        *,
        split: str,
        protocol: str,
        options: Mapping[str, object],
        skip_missing: bool,
        text: tuple[Path, int] | None,
    ):
        self.manifest, self.split, self.layout, self.protocol = manifest, split, LAYOUT, protocol
        self.source = str(manifest)
        self.kinds = dict(kinds)
        self.modalities = tuple(kinds)
        self.task, self.supported_tasks = space.task, (space.task,)
        self.class_names = list(space.class_names)
        self.num_classes = len(self.class_names)
        self.readers = file_readers(kinds, split, options)
        self.skipped = {"missing": 0, "malformed": 0}
        self.problems: list[DataError] = []
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._array_shapes: dict[str, tuple[tuple[int, ...], int]] = {}  # (shape, line) seen first
        kept = []
        for row, label in zip(rows, labels):
            problem = label if isinstance(label, DataError) else self._cell_problem(row)
            if problem is None and skip_missing:
                problem = self._open_problem(row)
            if problem is None:
                kept.append((row, label))
            elif not skip_missing:
                raise problem
            else:
                self.skipped["missing" if problem.missing else "malformed"] += 1
                self.problems.append(problem)
        if any(self.skipped.values()):
            LOG.warning(
                "%s %s split: skipped %d rows with a missing file and %d malformed of %d",
                manifest,
                split,
                self.skipped["missing"],
                self.skipped["malformed"],
                len(rows),
            )
        if not kept:
            raise EmptyManifestSplit(
                f"{manifest}: the {split} split has no readable row ({self.skipped['missing']} "
                f"missing, {self.skipped['malformed']} malformed)",
                self.problems,
            )
        self.rows = [row for row, _ in kept]
        self.clips = [row.name for row in self.rows]
        dtype = torch.int64 if space.task == "classification" else torch.float32
        self.labels = torch.as_tensor(np.asarray([label for _, label in kept]), dtype=dtype)
        self.tokens = {}
        self.text_checkpoint = None
        if text is not None:
            self.text_checkpoint, length = text
            for column in (c for c, kind in kinds.items() if kind == "text"):
                values = [row.cells[column] for row in self.rows]
                self.tokens[column] = tokenize(
                    "files", self.text_checkpoint, values, length, column
                )
        first = self[0]  # shapes from the data, never assumed
        self._shapes = {m: tuple(first[m].shape) for m in self.modalities}

    def path(self, row: Row, column: str) -> Path:
        return self.manifest.parent / Path(row.cells[column]).expanduser()

    def _at(self, row: Row, column: str, error: DataError | None = None, **fields) -> DataError:
        """A problem of ``row``'s ``column``: its line and column first, the file named after."""
        at = where(self.manifest, row.line, column)
        if error is not None:
            if error.expected is None:  # a finished message
                return DataError(f"{at}: {error.one_line()}")
            fields = {"expected": error.expected, "found": error.found}
        file = f" ({self.path(row, column)})" if self.kinds[column] != "text" else ""
        return DataError(f"{at}{file}", fields["expected"], LAYOUT, fields["found"])

    def _cell_problem(self, row: Row) -> DataError | None:
        """An empty cell or a file that does not exist (cheap: nothing is opened)."""
        for column, kind in self.kinds.items():
            if not row.cells[column]:
                return self._at(row, column, expected=EXPECTED[kind], found="an empty cell")
            if kind == "frames" and not self.path(row, column).is_dir():
                return self._at(row, column, expected=EXPECTED[kind], found=MISSING_DIR)
            if kind not in ("frames", "text") and not self.path(row, column).is_file():
                return self._at(row, column, expected=EXPECTED[kind], found=MISSING)
        return None

    def _open_problem(self, row: Row) -> DataError | None:
        """The first file of ``row`` that cannot be read as training would read it, or
        an array whose shape differs from the first readable row's."""
        for column, kind in self.kinds.items():
            if kind == "text":
                continue
            try:
                value = open_every_file(kind, self.readers[kind], self.path(row, column))
            except DataError as error:
                return self._at(row, column, error)
            if kind == "array":
                first = self._array_shapes.setdefault(column, (tuple(value.shape), row.line))
                if tuple(value.shape) != first[0]:
                    expected = f"an array of shape {first[0]} like line {first[1]}"
                    return self._at(
                        row, column, expected=expected, found=f"shape {tuple(value.shape)}"
                    )
        return None

    @property
    def sample_shapes(self) -> dict[str, tuple[int, ...]]:
        return dict(self._shapes)

    def __len__(self) -> int:
        return len(self.rows)

    def _read(self, index: int, column: str) -> dict[str, Tensor]:
        kind, row = self.kinds[column], self.rows[index]
        if kind == "text":
            return self.tokens[column].sample(index)
        try:
            value = self.readers[kind](self.path(row, column))
        except DataError as error:
            raise self._at(row, column, error) from None
        value = value.unsqueeze(0) if kind == "audio" else value  # (1, F, T), as the AV datasets
        shape = self._shapes.get(column)
        if shape is not None and tuple(value.shape) != shape:
            expected = f"features of shape {shape} like the split's first row"
            raise self._at(row, column, expected=expected, found=f"shape {tuple(value.shape)}")
        return {column: value}

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        sample = {}
        for column in self.modalities:
            sample.update(self._read(index, column))
        sample["label"] = self.labels[index]
        return sample


def describe_protocol(
    manifest: Path, has_val: bool, task: str, val_fraction: float, split_seed: int
) -> str:
    """Where train, val and test come from, in words (recorded with every run)."""
    if has_val:
        return f"manifest {manifest.name}: train / val / test rows as its split column gives them"
    how = "stratified by class" if task == "classification" else "drawn at random"
    return (
        f"manifest {manifest.name}: train / test rows as its split column gives them; it has no val "
        f"rows, so val is {100 * val_fraction:g}% of its train rows, {how}, split_seed {split_seed}"
    )


def split_rows(
    rows: list[Row], labels: list[object], split: str, task: str, fraction: float, seed: int
) -> list[int]:
    """Indices of the rows of ``split``; without val rows, val is a ``fraction`` of the
    train rows drawn by ``seed`` (stratified by class for classification) and train the rest."""
    if split == "test" or any(row.split == "val" for row in rows):
        return [i for i, row in enumerate(rows) if row.split == split]
    train = [i for i, row in enumerate(rows) if row.split == "train"]
    strata = [
        labels[i] if task == "classification" and not isinstance(labels[i], DataError) else -1
        for i in train
    ]
    part = stratified_split(np.asarray(strata), (1 - fraction, fraction), seed)[split == "val"]
    return [train[i] for i in part]


@DATASETS.register("files")
def files(
    root: str | None,
    split: str,
    *,
    manifest: str | None = None,
    modalities: Mapping[str, str] | Sequence[str] | None = None,
    task: str | None = None,
    classes: Sequence[str] | None = None,
    label_separator: str = ";",
    val_fraction: float = VAL_FRACTION,
    split_seed: int = SPLIT_SEED,
    image_size: int = 224,
    num_frames: int = 2,
    frame_sampling: str = "segment_start",
    audio_features: str = "spectrogram",
    stft_padding: str = "reflect",
    cache_dir: str | None = None,
    tokenizer: str | None = None,
    max_length: int = 128,
    skip_missing: bool = False,
) -> ManifestDataset:
    """Your own data listed in a manifest (docs/your_data.md).

    manifest: the file (relative to data_root; default: data_root's manifest.csv or
    manifest.jsonl). modalities: {column: kind} with kinds audio, image, frames, array,
    text, or a list of columns whose kinds are inferred (default: every column but
    split, label and id). task: classification, multilabel or regression (default:
    inferred from the labels). classes: class names in label-index order.
    label_separator: joins the names of a multi-label CSV cell (;). val_fraction /
    split_seed: the validation part of the train rows when the manifest has no val
    rows (0.1, 0). image_size: side of images and frames (224). num_frames /
    frame_sampling: frames per folder and how they are picked (2, segment_start).
    audio_features: spectrogram (OGM-GE) or fbank (BalanceBenchmark); stft_padding:
    reflect or constant; cache_dir: cache of the audio features. tokenizer: a local
    folder holding a tokenizer saved by save_pretrained (text columns; relative to the
    manifest's folder); max_length: tokens per text (128). skip_missing: drop rows
    whose files are missing or unreadable, whose cells are empty or whose labels are
    not declared (counted per split) instead of failing.
    """
    check_flag("skip_missing", skip_missing)
    if task is not None:
        check.choice("task", task, TASKS)
    classes = check_classes(classes)
    if not isinstance(label_separator, str) or len(label_separator) != 1:
        raise ValueError(f"label_separator must be one character, got {label_separator!r}")
    fraction = check.positive("val_fraction", val_fraction)
    if fraction >= 1:
        raise ValueError(f"val_fraction must be < 1, got {val_fraction!r}")
    check.integer("split_seed", split_seed, minimum=0)
    check.integer("image_size", image_size, minimum=8)
    check.integer("num_frames", num_frames, minimum=1)
    check.choice("frame_sampling", frame_sampling, SAMPLINGS)
    recipe = check.choice("audio_features", audio_features, WAV_RECIPES)
    padding = check.choice("stft_padding", stft_padding, STFT_PADDINGS)
    if cache_dir is not None and not isinstance(cache_dir, str):
        raise ValueError(f"cache_dir must be a folder path or null, got {cache_dir!r}")
    path = locate_manifest(root, manifest)
    columns, records = read_manifest(path)
    kinds = modality_kinds(path, columns, records, modalities)
    rows = parse_rows(path, columns, records, list(kinds))
    for needed in ("train", "test"):
        if not any(row.split == needed for row in rows):
            raise DataError(path, f"rows of split {needed} (column 'split')", LAYOUT, "none")
    space = label_space(path, rows, task, classes, label_separator)
    labels: list[object] = []
    for row in rows:  # a label outside the classes is a problem of its row (skip_missing drops it)
        try:
            labels.append(encode_label(row, space, path, label_separator))
        except DataError as problem:
            labels.append(problem)
    text = None
    if "text" in kinds.values():
        text = check_tokenizer_options("files", tokenizer, max_length, path.parent)
    chosen = split_rows(rows, labels, split, space.task, fraction, split_seed)
    options = {
        "audio": (recipe, {"padding": padding} if recipe == "spectrogram" else {}, cache_dir),
        "image_size": image_size,
        "frames": (num_frames, frame_sampling),
    }
    return ManifestDataset(
        path,
        [rows[i] for i in chosen],
        [labels[i] for i in chosen],
        kinds,
        space,
        split=split,
        protocol=describe_protocol(
            path, any(r.split == "val" for r in rows), space.task, fraction, split_seed
        ),
        options=options,
        skip_missing=skip_missing,
        text=text,
    )
