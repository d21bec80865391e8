"""Prepare every clip of a plan, resumably, and record what was produced.

State lives in ``<out>/.prepare/``: a record per finished clip
(``done/<clip>.json``, the SHA-256 of each file it wrote; written last, so a clip
without one is prepared again) and per failed clip (``failed/<clip>.json``, the
reason; retried by the next run). A run killed at any moment leaves only
complete files under final names; the next run removes the hidden partial ones
and continues with the clips that have no record.

At the end of every run the lists are written for the prepared clips, then
``SHA256SUMS`` (every file of the prepared dataset, ``sha256sum -c`` checks it)
and ``manifest.json`` (dataset, layout, recipe, the pinned definitions used with
their checksums, software versions, clips prepared, failed and missing, and the
``fingerprint``: the SHA-256 of ``SHA256SUMS``). Two copies with equal
fingerprints hold identical files. The run's summary is printed and kept in
``.prepare/summary.json``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from goal_plugin.data.files import write_atomic
from goal_plugin.prepare.clip import PARTIAL, Job, Recipe, prepare_clip
from goal_plugin.prepare.media import ClipError

STATE = ".prepare"
SUMS = "SHA256SUMS"
MANIFEST = "manifest.json"
DEFINITIONS = Path(__file__).with_name("definitions")


class PrepareError(ValueError):
    """A raw folder or output folder that cannot be prepared at all (one-line message)."""


@dataclass
class Plan:
    """What a dataset's raw release becomes; made by the dataset's ``plan`` function."""

    dataset: str
    layout: str
    recipe: Recipe
    jobs: list[Job]
    unavailable: dict[str, str]  # clip -> why it cannot be prepared (missing file, class not pinned)
    write_lists: Callable[[Path, set[str]], list[str]]  # (out, prepared clips) -> files written
    definitions: list[str] = field(default_factory=list)  # files of definitions/ the plan used
    parameters: dict[str, Any] = field(default_factory=dict)  # recipe facts for the manifest


@dataclass
class Summary:
    written: int
    already_done: int
    failed: dict[str, str]  # clip -> reason, this run's and the plan's unavailable ones
    prepared: int
    seconds: float
    fingerprint: str

    def lines(self, examples: int = 3) -> list[str]:
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        lines = [
            (
                f"prepared {self.prepared} clips: {self.written} written in this run ({rate:.2f} clips/s), "
                f"{self.already_done} already done; {len(self.failed)} failed or missing"
            )
        ]
        groups: dict[str, list[str]] = {}
        for clip, reason in sorted(self.failed.items()):
            groups.setdefault(reason.replace(clip, "<clip>"), []).append(clip)
        for reason, clips in sorted(groups.items(), key=lambda item: -len(item[1])):
            shown = ", ".join(clips[:examples]) + (", ..." if len(clips) > examples else "")
            lines.append(f"  {len(clips)} x {reason}  ({shown})")
        lines.append(f"fingerprint {self.fingerprint} (manifest.json, SHA256SUMS)")
        return lines


def run_plan(
    plan: Plan, out: Path, *, workers: int = 1, echo: Callable[[str], None] = print, progress: bool = True
) -> Summary:
    started = time.monotonic()
    state = out / STATE
    _claim(out, plan)
    _remove_partials(out, plan.recipe)
    done_dir, failed_dir = state / "done", state / "failed"
    done_dir.mkdir(parents=True, exist_ok=True)
    failed_dir.mkdir(parents=True, exist_ok=True)
    pending = [job for job in plan.jobs if _done_files(out, job.clip) is None]
    already_done = len(plan.jobs) - len(pending)
    echo(
        f"{plan.dataset} ({plan.layout} layout): {len(plan.jobs)} clips to prepare, {already_done} already "
        f"done, {len(plan.unavailable)} missing or not in the pinned lists; {workers} worker(s)"
    )
    failed: dict[str, str] = {}
    written = 0
    for job, outcome in _outcomes(pending, plan.recipe, out, workers, progress):
        (failed_dir / f"{job.clip}.json").unlink(missing_ok=True)
        if isinstance(outcome, str):
            failed[job.clip] = outcome
            _write_json(failed_dir / f"{job.clip}.json", {"reason": outcome})
        else:
            _write_json(done_dir / f"{job.clip}.json", {"files": outcome})
            written += 1
    prepared = {job.clip: files for job in plan.jobs if (files := _done_files(out, job.clip)) is not None}
    failed.update(plan.unavailable)
    fingerprint = _write_manifest(plan, out, prepared, failed)
    summary = Summary(written, already_done, failed, len(prepared), time.monotonic() - started, fingerprint)
    _write_json(
        state / "summary.json",
        {
            "written": written,
            "already_done": already_done,
            "prepared": len(prepared),
            "failed": failed,
            "seconds": round(summary.seconds, 3),
            "workers": workers,
        },
    )
    for line in summary.lines():
        echo(line)
    return summary


def _outcomes(pending: list[Job], recipe: Recipe, out: Path, workers: int, progress: bool):
    """(job, files or the reason it failed), as the clips finish, with a progress bar."""
    from tqdm import tqdm

    bar = tqdm(total=len(pending), unit="clip", disable=not progress or not pending, dynamic_ncols=True)
    try:
        if workers == 1:
            for job in pending:
                yield job, _attempt(job, recipe, out)
                bar.update()
            return
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # torch and FFmpeg threads do not survive fork
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread) as pool:
            futures = {pool.submit(_attempt, job, recipe, out): job for job in pending}
            for future in as_completed(futures):
                yield futures[future], future.result()
                bar.update()
    finally:
        bar.close()


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)  # the workers share the cores


def _attempt(job: Job, recipe: Recipe, out: Path) -> dict[str, str] | str:
    try:
        return prepare_clip(job, recipe, out)
    except ClipError as error:
        return str(error)
    except Exception as error:  # an unforeseen problem with one file must not stop the other clips
        return f"{job.video.name}: {type(error).__name__}: {error}"


def _claim(out: Path, plan: Plan) -> None:
    """``out`` is new, empty, or a preparation of the same dataset and layout."""
    record = out / STATE / "plan.json"
    wanted = {"dataset": plan.dataset, "layout": plan.layout}
    if record.is_file():
        found = json.loads(record.read_text())
        if found != wanted:
            raise PrepareError(
                f"--out {out} holds a {found['dataset']} preparation in the {found['layout']} layout; "
                f"give another --out for {plan.dataset} in the {plan.layout} layout"
            )
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PrepareError(f"--out {out} exists and is not a folder this command prepared; give a new or empty folder")
    _write_json(record, wanted)


def _remove_partials(out: Path, recipe: Recipe) -> None:
    frames = out / recipe.frames_dir
    if frames.is_dir():
        for partial in frames.glob(f".*{PARTIAL}"):
            shutil.rmtree(partial, ignore_errors=True)
    for folder in (frames, out / recipe.audio_dir, out, out / STATE, out / STATE / "done", out / STATE / "failed"):
        if folder.is_dir():
            for temporary in folder.glob(".*.tmp"):
                temporary.unlink(missing_ok=True)


def _done_files(out: Path, clip: str) -> dict[str, str] | None:
    """The files (path -> SHA-256) of a clip recorded as done whose files all exist, or None."""
    record = out / STATE / "done" / f"{clip}.json"
    if not record.is_file():
        return None
    try:
        files = json.loads(record.read_text())["files"]
    except (ValueError, KeyError):
        return None
    return files if all((out / path).is_file() for path in files) else None


def _write_manifest(plan: Plan, out: Path, prepared: dict[str, dict[str, str]], failed: dict[str, str]) -> str:
    sums: dict[str, str] = {}
    for files in prepared.values():
        sums.update(files)
    for name in plan.write_lists(out, set(prepared)):
        sums[name] = hashlib.sha256((out / name).read_bytes()).hexdigest()
    text = "".join(f"{digest}  {path}\n" for path, digest in sorted(sums.items()))
    _write_text(out / SUMS, text)
    fingerprint = hashlib.sha256(text.encode()).hexdigest()
    sources = json.loads((DEFINITIONS / "SOURCES.json").read_text())
    manifest = {
        "dataset": plan.dataset,
        "layout": plan.layout,
        "fingerprint": fingerprint,
        "files": len(sums),
        "clips": {"prepared": len(prepared), "failed_or_missing": dict(sorted(failed.items()))},
        "recipe": {**plan.parameters, "outputs": vars(plan.recipe)},
        "definitions": {name: sources[name] for name in plan.definitions},
        "software": _software(),
    }
    _write_text(out / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True, default=str) + "\n")
    return fingerprint


def _software() -> dict[str, str]:
    import platform

    import av
    import numpy
    import PIL
    import scipy
    import torch
    import torchaudio

    return {
        "python": platform.python_version(),
        "pyav": av.__version__,
        "ffmpeg_libavcodec": ".".join(map(str, av.library_versions["libavcodec"])),
        "pillow": PIL.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "torch": torch.__version__,
        "torchaudio": torchaudio.__version__,
    }


def _write_json(path: Path, value: Any) -> None:
    _write_text(path, json.dumps(value, indent=1, sort_keys=True) + "\n")


def _write_text(path: Path, text: str) -> None:
    write_atomic(path, text.encode())
