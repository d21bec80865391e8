"""The Ray Tune trainable: one ``engine.fit`` per trial, checkpointed every epoch.

Each epoch is reported with the engine's checkpoint, so a retried trial (its
worker died, or the driver restarted) resumes from its last epoch and ends with
the numbers of an uninterrupted run. The last report carries ``final: True``,
the end-of-training diagnostics and ``trial_time_s`` (the trial's own training
and diagnostics time, for measuring Ray's overhead). It is checkpointed too
(with ``final.json``), so a finished trial that Ray restores only repeats that
report.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from goal_plugin.engine import fit

FINAL_FILE = "final.json"


def train_trial(config: dict[str, Any]) -> None:
    from ray import tune

    checkpoint = tune.get_checkpoint()
    workdir = Path(tempfile.mkdtemp(prefix="goal_plugin_trial_"))
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
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(str(checkpoint_dir)))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

