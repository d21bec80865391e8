"""One private Ray instance for the whole test session, started only if a test needs it.

It is a real local cluster (``ray start --head``) in its own temp dir on free
ports: in-process tests connect to it and the sweep command lines join it with
``--address``, as a user would join a cluster. At the end of the session only
its own processes are ended, by PID (never the stop command of Ray's CLI, which ends every Ray on
the machine, a user's running sweep included), and the session fails if one of
them is left behind or an authentication token was written.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
os.environ.update(RAY_ENV)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ray_processes(temp_dir: str | Path) -> list[int]:
    """PIDs of the Ray processes of the cluster in ``temp_dir``: those whose command
    line names it (GCS, raylet, monitors) and their descendants (the workers)."""
    parents: dict[int, int] = {}
    roots = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if str(temp_dir).encode() in cmdline:
            roots.add(int(entry.name))
    found, grown = set(roots), True
    while grown:
        children = {pid for pid, parent in parents.items() if parent in found} - found
        found |= children
        grown = bool(children)
    return sorted(found)


def end_processes(pids: list[int], timeout: float = 5) -> list[int]:
    """SIGTERM, then SIGKILL after ``timeout``; returns the PIDs still alive."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while (pids := [pid for pid in pids if Path(f"/proc/{pid}").exists() and not _zombie(pid)]):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if not pids:
            return []
    return pids


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def start_private_ray(temp_dir: Path, num_cpus: int = 2) -> str:
    """``ray start --head`` in ``temp_dir`` on a free port; returns its address."""
    ray_bin = Path(sys.executable).with_name("ray")
    port = free_port()
    start = [
        str(ray_bin), "start", "--head", f"--port={port}", f"--num-cpus={num_cpus}", "--num-gpus=0",
        "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir}",
    ]  # Ray's other ports are chosen free by Ray
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    subprocess.run(start, check=True, capture_output=True, env={**env, **RAY_ENV}, timeout=180)
    return f"127.0.0.1:{port}"


@pytest.fixture(scope="session")
def ray_temp_dir():
    """The temp dir of the test cluster (``ray_address``): its processes name it."""
    # Short and private: Ray's socket paths under it must stay below 107 bytes.
    temp_dir = Path(tempfile.mkdtemp(prefix="goal_plugin_tests_ray_", dir="/tmp"))
    yield temp_dir
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_address(ray_temp_dir):
    address = start_private_ray(ray_temp_dir)
    import ray

    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    yield address
    ray.shutdown()
    left = end_processes(ray_processes(ray_temp_dir))
    assert not left, f"Ray processes of the test cluster left behind: {left}"
    token = Path.home() / ".ray" / "auth_token"
    assert not token.exists(), f"Ray wrote an authentication token to {token}"


@pytest.fixture
def drawn(monkeypatch):
    """The figures the analysis plots save, by file stem (saved as usual as well)."""
    from goal_plugin.analysis import plots

    figures = {}
    save = plots._save

    def recording_save(figure, stem):
        figures[stem.name] = figure
        return save(figure, stem)

    monkeypatch.setattr(plots, "_save", recording_save)
    return figures
