"""The repair of trial files that a killed driver left short (``goal_plugin.tune.result_log``),
on real folders and Ray's own ``Result``."""

from __future__ import annotations

import json
from pathlib import Path

from ray.tune import Result

from goal_plugin.tune.result_log import EPOCHS_FILE, complete_result_logs

CONFIG = {"dataset": "mfeat", "strategy": "al", "seed": 0}
HISTORY = [{"epoch": epoch, "val_acc": 0.5 + 0.1 * epoch} for epoch in range(4)]
FINAL = {**HISTORY[-1], "final": True, "config": CONFIG}


def _trial(tmp_path: Path, logged: list[dict]) -> Path:
    trial = tmp_path / "al_mfeat_s0"
    trial.mkdir()
    (trial / "result.json").write_text("".join(json.dumps(row) + "\n" for row in logged))
    return trial


def _checkpoint(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / EPOCHS_FILE).write_text(json.dumps(HISTORY))
    return folder


def _rows(trial: Path) -> list[dict]:
    return [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]


def test_a_trial_of_several_workers_is_completed_from_its_train_run_s_checkpoint(tmp_path):
    """Its final report names the Train run's checkpoint (no Tune checkpoint); an epoch the
    kill kept from the log and the final report come back, and its params.json."""
    trial = _trial(tmp_path, [HISTORY[0], HISTORY[1], HISTORY[3]])
    train_checkpoint = _checkpoint(trial / "ddp" / "checkpoint_2026-11-28_09-35-27.000000")
    lines: list[str] = []
    final = {**FINAL, "checkpoint_path": str(train_checkpoint)}
    result = Result(metrics=final, checkpoint=None, error=None, path=str(trial))
    complete_result_logs([result], lines.append)
    rows = _rows(trial)
    assert sorted(row["epoch"] for row in rows if not row.get("final")) == [0, 1, 2, 3]
    assert [row for row in rows if row.get("restored_from_checkpoint")] == [{**HISTORY[2], "restored_from_checkpoint": True}]
    assert rows[-1] == final
    assert json.loads((trial / "params.json").read_text()) == CONFIG
    assert lines == [
        (
            "al_mfeat_s0: wrote its params.json, which the stopped driver had not saved (from the trial's "
            "configuration in Ray's state)"
        ),
        (
            "al_mfeat_s0: added 2 report(s) to its result.json that the stopped driver had not saved (from the "
            "trial's last checkpoint)"
        ),
    ]
    complete_result_logs([result], lines.append)  # complete files are left alone
    assert len(lines) == 2 and _rows(trial) == rows
