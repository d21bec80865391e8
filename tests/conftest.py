"""One Ray instance for the whole test session, started only if a test needs it.

It is a real local cluster (``ray start --head``): in-process tests connect to it
and the sweep command lines join it with ``--address``, as a user would join a
cluster. It is stopped at the end of the session, and the session fails if a
Ray process or an authentication token is left behind.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
os.environ.update(RAY_ENV)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ray_processes() -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(tag in cmdline for tag in ("raylet", "gcs_server", "ray::", "ray/_private")):
            found.append(f"{entry.name}: {cmdline[:120]}")
    return found


@pytest.fixture(scope="session")
def ray_address(tmp_path_factory):
    ray_bin = Path(sys.executable).with_name("ray")
    temp_dir = tmp_path_factory.mktemp("ray")
    port = _free_port()
    start = [
        str(ray_bin), "start", "--head", f"--port={port}", "--num-cpus=2", "--num-gpus=0",
        "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir}",
    ]
    subprocess.run(start, check=True, capture_output=True, env={**os.environ, **RAY_ENV}, timeout=120)
    address = f"127.0.0.1:{port}"
    import ray

    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    yield address
    ray.shutdown()
    subprocess.run([str(ray_bin), "stop", "--force"], capture_output=True, timeout=120)
    deadline = time.monotonic() + 30
    while _ray_processes() and time.monotonic() < deadline:
        time.sleep(0.5)
    leftovers = _ray_processes()
    shutil.rmtree(temp_dir, ignore_errors=True)
    assert not leftovers, f"Ray processes left behind: {leftovers}"
    token = Path.home() / ".ray" / "auth_token"
    assert not token.exists(), f"Ray wrote an authentication token to {token}"
