"""From the official downloads to the layouts the audio-visual loaders read.

``prepare(dataset, raw, out, layout=..., workers=...)`` (and ``runners/prepare.py``)
turns CREMA-D, Kinetics-Sounds or AVE as released into the OGM-GE or
BalanceBenchmark layout, resumably, with pinned lists and a manifest of
checksums (docs/datasets.md). Each dataset module makes a ``Plan`` from the raw
folder; ``runner.run_plan`` prepares its clips.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from goal_plugin.prepare.runner import PrepareError, Summary, run_plan

DATASETS = ("crema_d", "kinetics_sounds", "ave")
LAYOUTS = ("ogm_ge", "balancebenchmark")

__all__ = ["DATASETS", "LAYOUTS", "PrepareError", "Summary", "prepare"]


def prepare(
    dataset: str,
    raw: str | Path,
    out: str | Path,
    *,
    layout: str = "ogm_ge",
    workers: int = 1,
    echo: Callable[[str], None] = print,
    progress: bool = True,
) -> Summary:
    """Prepare ``dataset`` from the release in ``raw`` into ``out`` (see the module docstring)."""
    import importlib

    if dataset not in DATASETS:
        raise PrepareError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if layout not in LAYOUTS:
        raise PrepareError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise PrepareError(f"--workers must be a whole number >= 1, got {workers!r}")
    raw, out = Path(raw).expanduser(), Path(out).expanduser()
    if not raw.is_dir():
        raise PrepareError(f"--raw {raw}: not a folder")
    if out.resolve() == raw.resolve() or raw.resolve() in out.resolve().parents:
        raise PrepareError(f"--out {out} is inside --raw {raw}; give a folder outside the release")
    plan = importlib.import_module(f"goal_plugin.prepare.{dataset}").plan(raw, layout)
    return run_plan(plan, out, workers=workers, echo=echo, progress=progress)
