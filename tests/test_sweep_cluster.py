"""The test suite's Ray leaves other Rays alone, and a sweep uses nodes that join
its cluster while it runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from tests.conftest import end_processes, ray_processes, start_private_ray

ROOT = Path(__file__).resolve().parents[1]
SWEEP = [sys.executable, str(ROOT / "runners" / "sweep.py")]


def _environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    return {**env, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}


def test_fixture_cluster_runs_a_task(ray_address):
    import ray

    assert ray.get(ray.remote(lambda: 2 + 2).remote()) == 4


def test_suite_teardown_leaves_a_users_ray_running(tmp_path):
    """A user runs pytest while a sweep of theirs runs on their own Ray."""
    users = tempfile.mkdtemp(prefix="goal_plugin_users_ray_", dir="/tmp")
    try:
        address = start_private_ray(Path(users), num_cpus=1)
        before = ray_processes(users)
        assert before
        suite = subprocess.run(
            [sys.executable, "-m", "pytest", f"{__file__}::test_fixture_cluster_runs_a_task", "-q",
             "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "inner"), "-W", "ignore"],
            check=False, cwd=ROOT, capture_output=True, text=True, env=_environment(), timeout=600,
        )
        assert suite.returncode == 0, suite.stdout + suite.stderr
        alive = [pid for pid in before if Path(f"/proc/{pid}").exists()]
        assert alive == before, f"the suite ended processes of the user's Ray: {set(before) - set(alive)}"
        status = subprocess.run(
            [str(Path(sys.executable).with_name("ray")), "status", f"--address={address}"],
            check=False, capture_output=True, text=True, env=_environment(), timeout=120,
        )
        assert status.returncode == 0, status.stdout + status.stderr
    finally:
        assert not end_processes(ray_processes(users))
        shutil.rmtree(users, ignore_errors=True)


def _raylets(temp_dir: str) -> set[int]:
    return {
        pid for pid in ray_processes(temp_dir)
        if b"raylet/raylet" in Path(f"/proc/{pid}/cmdline").read_bytes()
    }


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _add_node(address: str) -> None:
    """``ray start --address``: a 1-CPU node on this machine joins the cluster."""
    subprocess.run(
        [str(Path(sys.executable).with_name("ray")), "start", f"--address={address}",
         "--num-cpus=1", "--num-gpus=0", "--disable-usage-stats"],
        check=True, capture_output=True, env=_environment(), timeout=180,
    )


def _start_sweep(tmp_path: Path, space: dict, address: str) -> tuple[subprocess.Popen, Path, Path]:
    """The sweep command on ``space`` in its own session: (driver, experiment folder, log)."""
    name = space["name"]
    space_file = tmp_path / f"{name}.yaml"
    space_file.write_text(yaml.safe_dump(space))
    log = tmp_path / "sweep.log"
    with open(log, "w") as out:
        driver = subprocess.Popen(
            SWEEP + [str(space_file), "--name", name, "--storage", str(tmp_path / "results"), "--address", address],
            stdout=out, stderr=subprocess.STDOUT, env=_environment(), start_new_session=True,
        )
    return driver, tmp_path / "results" / name, log


def test_a_node_that_joins_during_the_sweep_gets_trials(tmp_path):
    temp_dir = tempfile.mkdtemp(prefix="goal_plugin_grow_ray_", dir="/tmp")
    try:
        address = start_private_ray(Path(temp_dir), num_cpus=1)
        head_raylets = _raylets(temp_dir)
        driver, experiment, log = _start_sweep(tmp_path, {
            "name": "grow",
            # Enough trials that the head alone is still busy when the new node's first
            # worker has imported torch, even on a loaded 2-core machine.
            "base": {"dataset": "mfeat", "backbone": "mlp", "epochs": 40, "diagnostics": False},
            "grid": {"strategy": ["none", "goal"], "seed": [0, 1, 2, 3, 4, 5]},
        }, address)
        worker_parents: dict[int, int] = {}  # trial worker pid -> its raylet
        added = False
        deadline = time.monotonic() + 600
        while driver.poll() is None and time.monotonic() < deadline:
            for result in experiment.glob("*/result.json") if experiment.is_dir() else []:
                for line in result.read_text().splitlines():
                    try:
                        pid = json.loads(line)["pid"]
                    except (ValueError, KeyError):
                        continue
                    if pid not in worker_parents and (parent := _parent(pid)) is not None:
                        worker_parents[pid] = parent
            if not added and worker_parents:  # the sweep is under way: add a node
                _add_node(address)
                added = True
            time.sleep(0.1)
        assert driver.wait(timeout=60) == 0, log.read_text()
        new_raylets = _raylets(temp_dir) - head_raylets
        assert len(new_raylets) == 1, log.read_text()
        on_new_node = [pid for pid, parent in worker_parents.items() if parent in new_raylets]
        assert on_new_node, f"no trial ran on the added node; workers and their raylets: {worker_parents}"
        assert "joined the cluster" in log.read_text()
    finally:
        assert not end_processes(ray_processes(temp_dir))
        shutil.rmtree(temp_dir, ignore_errors=True)


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (parent := _parent(int(entry.name))) is not None:
            children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def test_a_node_that_dies_is_named_and_its_trial_continues_elsewhere(tmp_path, monkeypatch):
    # Ray's health check declares the killed node dead within seconds, not half a minute.
    for key, value in {"RAY_health_check_initial_delay_ms": "0", "RAY_health_check_period_ms": "1000",
                       "RAY_health_check_timeout_ms": "1000", "RAY_health_check_failure_threshold": "3"}.items():
        monkeypatch.setenv(key, value)
    temp_dir = tempfile.mkdtemp(prefix="goal_plugin_die_ray_", dir="/tmp")
    try:
        address = start_private_ray(Path(temp_dir), num_cpus=1)
        head_raylets = _raylets(temp_dir)
        _add_node(address)
        (doomed_raylet,) = _raylets(temp_dir) - head_raylets
        driver, experiment, log = _start_sweep(tmp_path, {
            "name": "die",
            "base": {"dataset": "mfeat", "backbone": "mlp", "epochs": 30, "batch_size": 8, "diagnostics": False},
            "grid": {"strategy": ["none", "goal"], "seed": [0, 1]},
        }, address)
        victim = None
        deadline = time.monotonic() + 300
        while victim is None and driver.poll() is None and time.monotonic() < deadline:
            for result in experiment.glob("*/result.json") if experiment.is_dir() else []:
                rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
                if len(rows) >= 2 and _parent(rows[-1]["pid"]) == doomed_raylet:
                    victim = json.loads((result.parent / "params.json").read_text())
                    break
            time.sleep(0.2)
        assert victim is not None, f"no trial trained two epochs on the added node:\n{log.read_text()}"
        end_processes(_descendants(doomed_raylet), timeout=0)  # the node dies: raylet and workers
        assert driver.wait(timeout=300) == 0, log.read_text()
        text = log.read_text()
        left = [line for line in text.splitlines() if "left the cluster" in line]
        assert len(left) == 1, text
        victim_name = f"{victim['strategy']}_mfeat_s{victim['seed']}"
        assert victim_name in left[0], text
        assert "4/4 trials finished" in text
    finally:
        assert not end_processes(ray_processes(temp_dir))
        shutil.rmtree(temp_dir, ignore_errors=True)
