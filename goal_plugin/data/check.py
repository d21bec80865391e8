"""``check_data``: open every file a configuration would read, without training.

For each split of a dataset it builds the split as training would, opens every
listed file (audio features, and every frame the sampler may pick) and reports
the clips counted, how many have a missing or a malformed file, and the first
problems found. Errors that concern the whole dataset (no root, no list file, a
malformed list line, an unknown option) are raised as ``ValueError`` as training
would raise them. Embedded datasets have no files and report their sample counts.

The feature-pickle datasets (``SEQUENCE_DATASETS``: MOSI, MOSEI, MELD, IEMOCAP) read
and check every array of a split when it is built: a pickle that is missing counts
as a missing file of each split, one that is unreadable or lacks a key, an array of
the wrong rank or a label out of range as a malformed one (the example says which
file and key); their ``notes`` (non-finite values replaced by 0, label disagreements
with the MELD CSVs, dropped samples) are listed without making the split fail.

The image + text datasets (``IMAGE_TEXT_DATASETS``: Hateful Memes, MM-IMDB) check
their JSON and HDF5 files, and that every listed image exists, when a split is built
(a problem there is reported as for the pickles); ``check_data`` then decodes every
image of the split and counts those that cannot be decoded as malformed.

The ``files`` dataset (a manifest) opens every file of every row with ``skip_missing``
and reports each row it would skip, by manifest line and column. The ``tensors``
dataset (``ARRAY_DATASETS``) reads whole-split arrays: a bad file is reported as for
the pickles.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from goal_plugin.data.av import LOG, AudioVisualDataset, EmptySplitError
from goal_plugin.data.base import DATASETS, SPLITS, build_dataset
from goal_plugin.data.files import DataError
from goal_plugin.data.image_text import IMAGE_TEXT_DATASETS, ImageTextDataset
from goal_plugin.data.manifest import EmptyManifestSplit, ManifestDataset
from goal_plugin.data.sequences import SEQUENCE_DATASETS, SequenceDataset
from goal_plugin.data.tensors import ARRAY_DATASETS

EXAMPLES = 5


@dataclass
class SplitCheck:
    dataset: str
    split: str
    layout: str | None
    clips: int
    missing: int = 0
    malformed: int = 0
    examples: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was read but changed or counted

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.malformed == 0


def check_data(
    dataset: str,
    root: str | None = None,
    options: Mapping[str, object] | None = None,
    splits: Iterable[str] = SPLITS,
) -> list[SplitCheck]:
    """One ``SplitCheck`` per split of ``dataset`` read from ``root`` with ``options``
    (the trial's ``dataset_options``; ``skip_missing`` is implied)."""
    options = {key: value for key, value in (options or {}).items() if key != "skip_missing"}
    file_backed = "skip_missing" in DATASETS.options(dataset)
    results = []
    for split in splits:
        extra = {"skip_missing": True} if file_backed else {}
        try:
            with _quiet(LOG):  # the report gives the counts that skip_missing would log
                data = build_dataset(dataset, root, split, **options, **extra)
        except EmptySplitError as error:
            every = isinstance(error, EmptyManifestSplit)  # a manifest's rows: all of them, by line
            results.append(
                _from_problems(dataset, split, error.problems, 0, examples=None if every else EXAMPLES)
            )
            continue
        except DataError as error:
            if dataset not in SEQUENCE_DATASETS | IMAGE_TEXT_DATASETS | ARRAY_DATASETS:
                raise
            missing = int(error.missing)
            results.append(
                SplitCheck(dataset, split, error.layout, 0, missing, 1 - missing, [error.one_line()])
            )
            continue
        if isinstance(data, SequenceDataset):
            results.append(SplitCheck(dataset, split, data.layout, len(data), notes=data.notes))
        elif isinstance(data, ImageTextDataset):
            problems = data.inspect()
            kept = len(data) - len(problems)
            result = _from_problems(dataset, split, problems, kept, data.layout)
            result.notes = data.notes
            results.append(result)
        elif isinstance(data, AudioVisualDataset):
            results.append(
                _from_problems(dataset, split, data.problems, kept=len(data), layout=data.layout)
            )
        elif isinstance(data, ManifestDataset):  # every row it skips, by line: the user fixes them all
            results.append(
                _from_problems(dataset, split, data.problems, len(data), data.layout, examples=None)
            )
        else:
            results.append(SplitCheck(dataset, split, None, len(data)))
    return results


@contextlib.contextmanager
def _quiet(logger: logging.Logger):
    disabled, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = disabled


def _from_problems(dataset, split, problems, kept, layout=None, examples=EXAMPLES) -> SplitCheck:
    layout = layout or (problems[0].layout if problems else None)
    missing = sum(problem.missing for problem in problems)
    return SplitCheck(
        dataset,
        split,
        layout,
        kept + len(problems),
        missing,
        len(problems) - missing,
        [str(problem) for problem in problems[:examples]],
    )


def format_check(results: Iterable[SplitCheck]) -> str:
    """A table of the checks, then the first problems of each split."""
    results = list(results)
    lines = [
        f"{'dataset':<16} {'split':<6} {'layout':<17} {'clips':>7} {'missing':>8} {'malformed':>9}"
    ]
    for r in results:
        lines.append(
            f"{r.dataset:<16} {r.split:<6} {r.layout or '-':<17} {r.clips:>7} {r.missing:>8} {r.malformed:>9}"
        )
    for r in results:
        lines.extend(f"  {r.dataset} {r.split}: {example}" for example in r.examples)
        lines.extend(f"  {r.dataset} {r.split} (note): {note}" for note in r.notes)
    return "\n".join(lines)


def reads_files(dataset: str) -> bool:
    """Whether registered ``dataset`` reads its data from files under a data_root."""
    return (
        dataset in SEQUENCE_DATASETS
        or dataset in IMAGE_TEXT_DATASETS
        or dataset in ARRAY_DATASETS
        or "skip_missing" in DATASETS.options(dataset)
    )
