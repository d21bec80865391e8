"""CREMA-D from its official release (github.com/CheyneyComputerScience/CREMA-D).

The release holds ``AudioWAV/<clip>.wav`` (16 kHz mono) and
``VideoFlash/<clip>.flv``; clip names are ``<actor>_<sentence>_<emotion>_<level>``.
The clips and their split are OGM-GE's lists (``definitions/crema_d_train.csv``
and ``crema_d_test.csv``, pinned with their source), written out with the clips
that were prepared, in their own format (no header, CRLF).

- ``ogm_ge``: ``AudioWAV/<clip>.wav`` (the official file, unchanged: OGM-GE's
  loader computes its spectrogram from it), frames ``Image-01-FPS/<clip>/<i>.jpg``
  named by their index ``i`` in the video, zero-padded to 5 (OGM-GE's
  ``video_preprocessing.py``: 00000.jpg, 00030.jpg, ... at 30 fps).
- ``balancebenchmark``: ``audio/<clip>.pt`` (BalanceBenchmark's fbank of the WAV,
  a (1024, 128) float32 tensor), frames ``visual/<clip>/frame_00001.jpg ...``.
"""

from __future__ import annotations

from pathlib import Path

from goal_plugin.data.crema_d import read_list
from goal_plugin.data.files import write_atomic
from goal_plugin.prepare.clip import Job, Recipe
from goal_plugin.prepare.runner import DEFINITIONS, Plan, PrepareError

LISTS = {"train.csv": "crema_d_train.csv", "test.csv": "crema_d_test.csv"}
RECIPES = {
    "ogm_ge": Recipe("Image-01-FPS", "video_index", 2, "AudioWAV", "wav"),
    "balancebenchmark": Recipe("visual", "numbered", 2, "audio", "pt"),
}
RELEASE = "the official CREMA-D release holds AudioWAV/*.wav and VideoFlash/*.flv"


def pinned_rows(name: str) -> list[tuple[str, str]]:
    """(clip, emotion) rows of a pinned list, read by the loader's own reader."""
    return read_list(DEFINITIONS / LISTS[name], "ogm_ge")


def plan(raw: Path, layout: str) -> Plan:
    for folder in ("AudioWAV", "VideoFlash"):
        if not (raw / folder).is_dir():
            raise PrepareError(f"--raw {raw}: no {folder}/ folder ({RELEASE})")
    jobs, unavailable = [], {}
    for list_name in LISTS:
        for clip, _ in pinned_rows(list_name):
            wav, video = raw / "AudioWAV" / f"{clip}.wav", raw / "VideoFlash" / f"{clip}.flv"
            missing = [path.relative_to(raw).as_posix() for path in (wav, video) if not path.is_file()]
            if missing:
                unavailable[clip] = f"missing {' and '.join(missing)}"
            else:
                jobs.append(Job(clip, video, wav))

    def write_lists(out: Path, prepared: set[str]) -> list[str]:
        for list_name in LISTS:
            rows = [f"{clip},{emotion}\r\n" for clip, emotion in pinned_rows(list_name) if clip in prepared]
            write_atomic(out / list_name, "".join(rows).encode())
        return list(LISTS)

    return Plan(
        "crema_d",
        layout,
        RECIPES[layout],
        jobs,
        unavailable,
        write_lists,
        definitions=list(LISTS.values()),
        parameters={"frames_per_second": 1, "audio": _audio_recipe(layout)},
    )


def _audio_recipe(layout: str) -> str:
    if layout == "ogm_ge":
        return "the official WAV, copied (the loader computes OGM-GE's spectrogram)"
    return "BalanceBenchmark fbank of the WAV: 128 mel bins, 10 ms shift, 1024 frames, (x + 4.503877) / (2 * 5.141276)"
