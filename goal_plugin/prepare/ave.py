"""AVE from its release archive (Tian et al., ECCV 2018).

The archive holds the videos (``AVE/<VideoID>.mp4``, 10 s) and ``Annotations.txt``,
``trainSet.txt``, ``valSet.txt``, ``testSet.txt`` (a header line, then rows
``Category&VideoID&Quality&StartTime&EndTime``). The annotation files are found
in the raw folder or one folder below it, the videos anywhere under it.

A clip whose category is not one of the 28 pinned ones
(``definitions/ave_categories.txt``) is reported and skipped. ``Annotations.txt``
is written with every line of a pinned category (the loader takes the
categories from it, so label indices never depend on which clips were
prepared); the split files with the lines of the prepared clips only.

Audio and frames as for Kinetics-Sounds (``kinetics_sounds.py``): the video's
track at 16 kHz, then ``audio_spec/<VideoID>.pkl`` (``ogm_ge``) or
``audio/<VideoID>.npy`` (``balancebenchmark``); frames
``visual/<VideoID>/frame_00001.jpg ...`` at 1 fps.
"""

from __future__ import annotations

from pathlib import Path

from goal_plugin.data.files import write_atomic
from goal_plugin.prepare.clip import Job
from goal_plugin.prepare.kinetics_sounds import RECIPES
from goal_plugin.prepare.media import find_videos
from goal_plugin.prepare.runner import DEFINITIONS, Plan, PrepareError

ANNOTATIONS = "Annotations.txt"
SPLIT_FILES = ("trainSet.txt", "valSet.txt", "testSet.txt")
CATEGORIES = "ave_categories.txt"


def pinned_categories() -> list[str]:
    return [line for line in (DEFINITIONS / CATEGORIES).read_text().splitlines() if line]


def _find(raw: Path, name: str) -> Path:
    candidates = [raw / name, *sorted(raw.glob(f"*/{name}"))]
    for path in candidates:
        if path.is_file():
            return path
    raise PrepareError(f"--raw {raw}: no {name} in it or one folder below (the AVE release holds {ANNOTATIONS} and {', '.join(SPLIT_FILES)})")


def _rows(path: Path) -> list[tuple[str, str, str]]:
    """(line, category, VideoID) of an AVE annotation file, header skipped."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        fields = line.strip().split("&")
        if not line.strip():
            continue
        if len(fields) != 5:
            raise PrepareError(f"{path}, line {number}: expected Category&VideoID&Quality&StartTime&EndTime, found {line!r}")
        if number == 1 and fields[:2] == ["Category", "VideoID"]:
            continue
        rows.append((line.rstrip("\r\n"), fields[0], fields[1]))
    return rows


def _write_rows(target: Path, source: Path, keep) -> None:
    """``source``'s header and the rows ``keep(category, video_id)`` selects, to ``target``."""
    first = source.read_text(encoding="utf-8-sig").splitlines()[:1]
    header = first if first and first[0].startswith("Category&VideoID") else []
    lines = header + [line for line, category, video_id in _rows(source) if keep(category, video_id)]
    write_atomic(target, "".join(f"{line}\n" for line in lines).encode())


def plan(raw: Path, layout: str) -> Plan:
    annotations = _find(raw, ANNOTATIONS)
    splits = {name: _find(raw, name) for name in SPLIT_FILES}
    videos = find_videos(raw)
    categories = set(pinned_categories())
    jobs, unavailable, seen = [], {}, set()
    for path in splits.values():
        for _, category, video_id in _rows(path):
            if video_id in seen:
                continue
            seen.add(video_id)
            paths = videos.get(video_id)
            if category not in categories:
                unavailable[video_id] = f"category {category!r} is not one of AVE's 28 pinned categories"
            elif not paths:
                unavailable[video_id] = "missing video (no file of this name under --raw)"
            elif len(paths) > 1:
                unavailable[video_id] = f"{len(paths)} videos of this name"
            else:
                jobs.append(Job(video_id, paths[0]))

    def write_lists(out: Path, prepared: set[str]) -> list[str]:
        _write_rows(out / ANNOTATIONS, annotations, lambda category, _: category in categories)
        for name, path in splits.items():
            _write_rows(out / name, path, lambda _, video_id: video_id in prepared)
        return [ANNOTATIONS, *SPLIT_FILES]

    return Plan(
        "ave",
        layout,
        RECIPES[layout],
        jobs,
        unavailable,
        write_lists,
        definitions=[CATEGORIES],
        parameters={"frames_per_second": 1, "audio": "as kinetics_sounds"},
    )
