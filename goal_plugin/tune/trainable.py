"""The Ray Tune trainable: one ``engine.fit`` per trial, reported every epoch.

Every epoch is reported; the engine's checkpoint goes with the report when the
checkpoint policy says so (``CheckpointPolicy``: at most ``checkpoint_every_s``
seconds of the trial's work stay unsaved, so a short trial uploads only its
final checkpoint instead of one per epoch). A retried trial (its worker died,
or the driver restarted) resumes from its newest checkpoint, trains the epochs
after it again and ends with the numbers of an uninterrupted run; the epochs
it trains again are reported again with the same numbers (the analysis keeps
one row per epoch). The last report carries ``final: True``,
the end-of-training diagnostics, ``trial_time_s`` (the trial's own time in this
attempt: set-up, training, evaluation, diagnostics, everything but the time
spent in Ray's report calls, for measuring Ray's overhead), ``report_wait_s``
(that time in Ray's report calls) and the attempt's wall-clock start and end
(``trial_started_at``, ``trial_ended_at``). It is checkpointed too,
with ``final.json`` (so a finished trial that Ray restores only repeats that
report) and ``epochs.json`` (every epoch's report, from which ``result_log.py``
completes a log that a killed driver left short).

Ray saves the experiment state every few seconds and at least once every
``num_to_keep`` checkpoints of a trial, not after every report, so after a driver
restart the state may name a checkpoint one or two reports older than the
trial's newest in storage. Every checkpoint of a trial continues the same
deterministic run, so the trial resumes from the newest one it finds next to
the one Ray names (the highest index), and the epochs it had checkpointed are
not trained again. (Ray numbers the checkpoints of the resumed trial from the
index it knew, overwriting the folders after it; should the driver die again
before those numbers pass the old ones, the highest index may hold an epoch
less than the newest: that epoch is then trained again, to the same numbers.)
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from goal_plugin.engine import fit
from goal_plugin.engine.checkpoint import FILENAME as ENGINE_CHECKPOINT
from goal_plugin.tune.result_log import EPOCHS_FILE

FINAL_FILE = "final.json"
WORKDIR_PREFIX = "goal_plugin_trial_"
# The final report's timings of the attempt, which differ between two runs of the same trial.
TRIAL_TIMINGS = frozenset({"trial_time_s", "report_wait_s", "trial_started_at", "trial_ended_at"})
CHECKPOINT_EVERY_S = 60.0  # default: a trial that dies loses at most a minute of work
_RAY_CHECKPOINT = re.compile(r"checkpoint_(\d+)")


class CheckpointPolicy:
    """Which epoch ends send the engine's checkpoint to storage.

    An epoch's end is checkpointed when skipping it would let the unsaved work
    (since the trial started or its newest checkpoint, until the end of the
    next epoch, estimated by the one just finished) exceed ``every_s`` seconds;
    the final report is always checkpointed (by the trainable). So a trial that
    dies loses at most about ``every_s`` seconds of work, or one epoch when an
    epoch takes longer; ``every_s=0`` checkpoints every epoch, ``inf`` only the
    end. ``clock`` returns seconds (monotonic).
    """

    def __init__(self, every_s: float, clock: Callable[[], float] = time.monotonic):
        self.every_s = check_checkpoint_every_s(every_s)
        self.clock = clock
        self.saved_at = self.epoch_started = clock()

    def due(self) -> bool:
        """Called at an epoch's end: whether to checkpoint it (then counted as saved)."""
        now = self.clock()
        next_epoch_s = now - self.epoch_started
        self.epoch_started = now
        if now - self.saved_at + next_epoch_s <= self.every_s:
            return False
        self.saved_at = now
        return True


def check_checkpoint_every_s(value: float) -> float:
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and value >= 0):  # NaN fails too
        raise ValueError(f"checkpoint_every_s must be a number of seconds >= 0, got {value!r}")
    return float(value)


def train_trial(config: dict[str, Any], checkpoint_every_s: float = CHECKPOINT_EVERY_S) -> None:
    from ray import tune

    started, started_at = time.perf_counter(), time.time()
    policy = CheckpointPolicy(checkpoint_every_s)
    in_ray_s = 0.0  # time spent inside tune.report: Ray's, not the trial's own

    def report(metrics: dict[str, Any], checkpoint=None) -> None:
        nonlocal in_ray_s
        reported = time.perf_counter()
        tune.report(metrics, checkpoint=checkpoint)
        in_ray_s += time.perf_counter() - reported

    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        checkpoint = newest_sibling(checkpoint)
    workdir = _workdir()
    try:
        resume_from = None
        if checkpoint is not None:
            resume_from = Path(checkpoint.to_directory(str(workdir / "restored")))
            finished = resume_from / FINAL_FILE
            if finished.is_file():
                report(json.loads(finished.read_text()), checkpoint=checkpoint)
                return

        def on_epoch_end(metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
            due = policy.due()
            report(metrics, tune.Checkpoint.from_directory(str(checkpoint_dir)) if due else None)

        results = fit(dict(config), output_dir=workdir / "run", resume_from=resume_from, on_epoch_end=on_epoch_end)
        checkpoint_dir = workdir / "run" / "checkpoint"
        if not checkpoint_dir.is_dir():  # resumed after its last epoch: nothing new was saved
            checkpoint_dir = resume_from
        (checkpoint_dir / EPOCHS_FILE).write_text(json.dumps(results["history"], default=str))
        own_s = time.perf_counter() - started - in_ray_s
        final = {
            **results["final"],
            "final": True,
            "trial_time_s": own_s,
            "report_wait_s": in_ray_s,
            "trial_started_at": started_at,
            "trial_ended_at": time.time(),
            "done": True,  # Ray stops the trial on this report instead of asking for another
        }
        (checkpoint_dir / FINAL_FILE).write_text(json.dumps(final, default=str))
        report(final, tune.Checkpoint.from_directory(str(checkpoint_dir)))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _workdir() -> Path:
    """A fresh local folder for the trial, named after its process.

    A killed trial never reaches its ``finally``; the next trial on the machine
    removes the folders whose process is gone.
    """
    root = Path(tempfile.gettempdir())
    for folder in root.glob(f"{WORKDIR_PREFIX}*_*"):
        pid = folder.name[len(WORKDIR_PREFIX):].split("_", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}_", dir=root))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def newest_sibling(checkpoint):
    """The newest checkpoint of the trial that holds an engine checkpoint, at least ``checkpoint``.

    Ray names its checkpoint folders ``checkpoint_<index>`` inside the trial's
    folder; this looks through that folder on the checkpoint's own filesystem,
    so it works for local and remote storage alike.
    """
    import pyarrow.fs as pafs
    from ray import tune

    filesystem, path = checkpoint.filesystem, checkpoint.path.rstrip("/")
    named = _RAY_CHECKPOINT.fullmatch(posixpath.basename(path))
    if named is None:
        return checkpoint
    siblings = []
    for info in filesystem.get_file_info(pafs.FileSelector(posixpath.dirname(path))):
        match = _RAY_CHECKPOINT.fullmatch(info.base_name)
        if info.type == pafs.FileType.Directory and match and int(match[1]) > int(named[1]):
            siblings.append((int(match[1]), info.path))
    for _, sibling in sorted(siblings, reverse=True):
        if filesystem.get_file_info(f"{sibling}/{ENGINE_CHECKPOINT}").type == pafs.FileType.File:
            return tune.Checkpoint(sibling, filesystem=filesystem)
    return checkpoint
