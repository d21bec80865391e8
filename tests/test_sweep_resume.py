"""A sweep driver killed at any moment, with the local Ray it started itself
(the users' path: no --address), then --resume: every grid cell runs exactly
once and the table equals that of an uninterrupted sweep."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SWEEP = [sys.executable, str(ROOT / "runners" / "sweep.py")]
GRID = {
    "name": "rek",
    "base": {"dataset": "mfeat", "backbone": "mlp", "epochs": 8, "batch_size": 64},
    "grid": {"strategy": ["none", "goal"], "seed": [0, 1]},
}
SEARCHED = {
    "name": "searched",
    "base": {"dataset": "mfeat", "backbone": "mlp", "epochs": 4, "batch_size": 64, "diagnostics": False},
    "grid": {"strategy": ["none", "goal"], "seed": [0]},
    "search": {"temperature": {"distribution": "loguniform", "low": 0.1, "high": 10.0}, "num_samples": 3},
}
TIMEOUT = 600


class PrivateRay:
    """Environment for sweeps that start their own local Ray in a private temp dir
    (so that they neither join nor disturb any other Ray on the machine), and the
    means to end every process of it by PID."""

    def __init__(self):
        # Short: Ray's socket paths under it must stay below the 107-byte limit.
        self.temp_dir = tempfile.mkdtemp(prefix="gpt", dir="/tmp")
        self.env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
        self.env.update(RAY_TMPDIR=self.temp_dir, RAY_AUTH_MODE="disabled", PYTHONUNBUFFERED="1")

    def start(self, args: list[str], log: Path) -> subprocess.Popen:
        """The sweep command in its own process group (session), output to ``log``."""
        with open(log, "w") as out:
            return subprocess.Popen(SWEEP + args, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                    start_new_session=True)

    def run(self, args: list[str], log: Path) -> int:
        process = self.start(args, log)
        try:
            return process.wait(timeout=TIMEOUT)
        finally:
            self.kill_group(process)

    def kill_group(self, process: subprocess.Popen) -> None:
        """SIGKILL the process group we created, then any process of this Ray left outside it."""
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=60)
        deadline = time.monotonic() + 30
        while (left := self.processes()) and time.monotonic() < deadline:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)

    def processes(self) -> list[int]:
        """PIDs of processes whose command line names this private temp dir."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if self.temp_dir.encode() in (entry / "cmdline").read_bytes():
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found


def wait_for(condition, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def trial_dirs(experiment: Path) -> list[Path]:
    return sorted(p for p in experiment.iterdir() if (p / "params.json").is_file()) if experiment.is_dir() else []


def final_rows(trial_dir: Path) -> list[dict]:
    file = trial_dir / "result.json"
    if not file.is_file():
        return []
    rows = []
    for line in file.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:  # a line being written
            continue
        if row.get("final"):
            rows.append(row)
    return rows


def epoch_rows(trial_dir: Path) -> int:
    file = trial_dir / "result.json"
    return sum(1 for line in file.read_text().splitlines() if line.strip() and not json.loads(line).get("final"))


def accuracy_rows(experiment: Path) -> pd.DataFrame:
    """The table's accuracy rows (time per sample and memory differ between any two runs)."""
    table = pd.read_csv(experiment / "analysis" / "summary.csv")
    return table[table["metric"].isin(["test_acc", "test_macro_f1"])].reset_index(drop=True)


def trial_configs(experiment: Path) -> list[dict]:
    return sorted(
        (json.loads((d / "params.json").read_text()) for d in trial_dirs(experiment)),
        key=lambda c: json.dumps(c, sort_keys=True),
    )


@pytest.fixture(scope="module")
def ray_env():
    ray = PrivateRay()
    yield ray
    left = ray.processes()
    shutil.rmtree(ray.temp_dir, ignore_errors=True)
    assert not left, "a sweep left Ray processes behind"


@pytest.fixture(scope="module")
def grid_reference(tmp_path_factory, ray_env):
    tmp = tmp_path_factory.mktemp("reference")
    space = tmp / "rek.yaml"
    space.write_text(yaml.safe_dump(GRID))
    # With TensorBoard's logger, which the experiments the tests kill (started without) must not get.
    rc = ray_env.run([str(space), "--name", "rek", "--storage", str(tmp / "results"), "--tensorboard"], tmp / "log")
    assert rc == 0, (tmp / "log").read_text()
    experiment = tmp / "results" / "rek"
    assert all(list(trial.glob("events.out.tfevents.*")) for trial in trial_dirs(experiment))
    return space, experiment


def first_state(experiment: Path) -> bool:
    return any(experiment.glob("experiment_state-*.json"))


def all_finished(experiment: Path, total: int) -> bool:
    dirs = trial_dirs(experiment)
    return len(dirs) == total and all(final_rows(d) for d in dirs)


MOMENTS = {
    # Ray has started, no experiment state yet.
    "before_first_state": lambda experiment: (experiment / "space.json").is_file(),
    # The scenario: 1 s after the first experiment state appeared.
    "just_after_first_state": lambda experiment: first_state(experiment) and (time.sleep(1) or True),
    "mid_sweep": lambda experiment: any(final_rows(d) for d in trial_dirs(experiment)),
    "after_last_trial": lambda experiment: all_finished(experiment, 4),
}


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_driver_killed_then_resumed_runs_every_cell_once(tmp_path, ray_env, grid_reference, moment):
    space, reference = grid_reference
    storage = tmp_path / "results"
    experiment = storage / "rek"
    driver = ray_env.start([str(space), "--name", "rek", "--storage", str(storage)], tmp_path / "first.log")
    try:
        wait_for(lambda: MOMENTS[moment](experiment) or driver.poll() is not None, moment)
        assert driver.poll() is None, "the sweep ended before the kill:\n" + (tmp_path / "first.log").read_text()
    finally:
        ray_env.kill_group(driver)
    epochs_before = {d.name: epoch_rows(d) for d in trial_dirs(experiment) if final_rows(d)}

    log = tmp_path / "resumed.log"
    rc = ray_env.run([str(space), "--name", "rek", "--storage", str(storage), "--resume"], log)
    output = log.read_text()
    assert rc == 0, output
    assert "4/4 trials finished" in output
    dirs = trial_dirs(experiment)
    assert len(dirs) == 4 and all(final_rows(d) for d in dirs), output
    assert trial_configs(experiment) == trial_configs(reference)  # every cell exactly once
    for name, rows in epochs_before.items():  # no epoch of a trial finished before the kill trained again
        assert epoch_rows(experiment / name) == rows
    for trial in dirs:  # the resumed experiment keeps the loggers it started with
        assert (trial / "progress.csv").is_file() and not list(trial.glob("events.out.tfevents.*")), trial.name
    pd.testing.assert_frame_equal(accuracy_rows(experiment), accuracy_rows(reference))


def keep_first_epochs(trial_dir: Path, epochs: int) -> None:
    """Cut ``result.json`` to its first ``epochs`` epoch reports (no final report)."""
    file = trial_dir / "result.json"
    rows = [line for line in file.read_text().splitlines() if line.strip()]
    file.write_text("".join(line + "\n" for line in rows[:epochs]))
    assert final_rows(trial_dir) == [] and epoch_rows(trial_dir) == epochs


def test_logs_a_killed_upload_left_short_are_completed_on_resume(tmp_path, ray_env, grid_reference):
    """Ray copies its state and the trials' logs into storage file by file: a driver
    killed in between leaves a state saying a trial finished beside a ``result.json``
    without its last reports, or without its ``params.json`` (Ray then never writes
    them again). Made here by cutting the files of a finished sweep; the resume adds
    the reports and the configuration back."""
    space, reference = grid_reference
    experiment = tmp_path / "results" / "rek"
    shutil.copytree(reference, experiment)
    shutil.rmtree(experiment / "analysis")
    no_final, short, no_params = trial_dirs(experiment)[:3]
    keep_first_epochs(no_final, GRID["base"]["epochs"])
    keep_first_epochs(short, 3)
    # The copy of params.json cut before its rename (the store writes complete files only).
    (no_params / "params.json").rename(no_params / ".params.json.x1y2z3")

    log = tmp_path / "resumed.log"
    rc = ray_env.run([str(space), "--name", "rek", "--storage", str(tmp_path / "results"), "--resume"], log)
    output = log.read_text()
    assert rc == 0, output
    assert "4/4 trials finished" in output
    assert f"{no_final.name}: added 1 report(s)" in output and f"{short.name}: added 6 report(s)" in output
    assert f"{no_params.name}: wrote its params.json" in output
    assert json.loads((no_params / "params.json").read_text()) == json.loads(
        (reference / no_params.name / "params.json").read_text()
    )
    assert trial_configs(experiment) == trial_configs(reference)
    for trial in trial_dirs(experiment):
        assert len(final_rows(trial)) == 1 and epoch_rows(trial) == GRID["base"]["epochs"], trial.name
    pd.testing.assert_frame_equal(accuracy_rows(experiment), accuracy_rows(reference))


def test_searched_sweep_killed_mid_sweep_resumes_every_sample(tmp_path, ray_env):
    """The searcher's state comes back from the trials Ray restores: after the resume
    every cell has its samples, the same ones an uninterrupted search draws."""
    space = tmp_path / "searched.yaml"
    space.write_text(yaml.safe_dump(SEARCHED))
    storage = tmp_path / "results"
    experiment = storage / "searched"
    driver = ray_env.start([str(space), "--name", "searched", "--storage", str(storage)], tmp_path / "first.log")
    try:
        wait_for(lambda: MOMENTS["mid_sweep"](experiment) or driver.poll() is not None, "a finished trial")
        assert driver.poll() is None, (tmp_path / "first.log").read_text()
    finally:
        ray_env.kill_group(driver)
    for attempt in ("resumed", "resumed_again"):  # a second resume of a finished search adds nothing
        log = tmp_path / f"{attempt}.log"
        rc = ray_env.run([str(space), "--name", "searched", "--storage", str(storage), "--resume"], log)
        assert rc == 0, log.read_text()
        assert "4/4 trials finished" in log.read_text()
    dirs = trial_dirs(experiment)
    assert len(dirs) == 4 and all(final_rows(d) for d in dirs)

    reference = tmp_path / "reference"
    rc = ray_env.run([str(space), "--name", "searched", "--storage", str(reference)], tmp_path / "reference.log")
    assert rc == 0, (tmp_path / "reference.log").read_text()
    configs = trial_configs(experiment)
    assert [c["strategy"] for c in configs].count("goal") == 3
    assert len({c.get("temperature") for c in configs if c["strategy"] == "goal"}) == 3
    assert configs == trial_configs(reference / "searched")
