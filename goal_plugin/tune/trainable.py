"""The Ray Tune trainable: one ``engine.fit`` per trial, checkpointed every epoch.

Each epoch is reported with the engine's checkpoint, so a retried trial (its
worker died, or the driver restarted) resumes from its last epoch and ends with
the numbers of an uninterrupted run. The last report carries ``final: True``,
the end-of-training diagnostics and ``trial_time_s`` (the trial's own training
and diagnostics time, for measuring Ray's overhead). It is checkpointed too,
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
from pathlib import Path
from typing import Any

from goal_plugin.engine import fit
from goal_plugin.engine.checkpoint import FILENAME as ENGINE_CHECKPOINT
from goal_plugin.tune.result_log import EPOCHS_FILE

FINAL_FILE = "final.json"
WORKDIR_PREFIX = "goal_plugin_trial_"
_RAY_CHECKPOINT = re.compile(r"checkpoint_(\d+)")


def train_trial(config: dict[str, Any]) -> None:
    from ray import tune

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
                tune.report(json.loads(finished.read_text()), checkpoint=checkpoint)
                return

        def on_epoch_end(metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(checkpoint_dir)))

        results = fit(dict(config), output_dir=workdir / "run", resume_from=resume_from, on_epoch_end=on_epoch_end)
        final = results["final"]
        final = {**final, "final": True, "trial_time_s": final["train_time_s"] + final["diagnostics_time_s"]}
        checkpoint_dir = workdir / "run" / "checkpoint"
        if not checkpoint_dir.is_dir():  # resumed after its last epoch: nothing new was saved
            checkpoint_dir = resume_from
        (checkpoint_dir / FINAL_FILE).write_text(json.dumps(final, default=str))
        (checkpoint_dir / EPOCHS_FILE).write_text(json.dumps(results["history"], default=str))
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(str(checkpoint_dir)))
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
