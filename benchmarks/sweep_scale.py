"""What a sweep of many trials costs its driver: peak memory, CPU time per trial,
size of the experiment state, and the time to resume it.

Each sweep runs in a fresh driver process through the sweep runner (the same
searcher, callbacks, state and log handling as ``runners/sweep.py``), with its
own private local Ray; a second fresh driver then resumes the finished
experiment (restores the state of every trial and checks every trial's log).
The trials are one grid cell per seed of ``none`` on mfeat:

* ``--trainable real``: the project's trainable, 1 epoch without diagnostics;
* ``--trainable trivial`` (default): a stand-in that makes the same reports as
  the real one (``--epochs`` epoch reports, then a final report with a small
  checkpoint holding epochs.json) without training, so that the
  driver's own costs dominate and thousands of trials fit in minutes.

``--slots`` trials run at once (the trials ask for 2 / slots CPUs each).

    python benchmarks/sweep_scale.py                          # 100, 1000, 5000 trivial trials
    python benchmarks/sweep_scale.py --trials 100 1000 --trainable real
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from goal_plugin.tune.result_log import EPOCHS_FILE

CPUS = 2  # the private Ray's CPUs, shared by --slots trials


def trivial_trial(config: dict, epochs: int = 3) -> None:
    """The real trainable's reports (epochs without a checkpoint, a checkpointed final) without training.

    Pickled by value with the constants it names, so its workers import neither
    goal_plugin nor torch."""
    from ray import tune

    started = time.perf_counter()
    history = []
    for epoch in range(epochs):
        metrics = {"epoch": epoch, "train_loss": 1.0 / (epoch + 1), "val_acc": 0.5 + 0.01 * epoch,
                   "test_acc": 0.5 + 0.01 * epoch, "epoch_time_s": 0.0}
        history.append(metrics)
        tune.report(metrics)
    final = {**history[-1], "final": True, "task": "classification", "train_time_s": 0.0,
             "diagnostics_time_s": 0.0, "trial_time_s": time.perf_counter() - started, "done": True}
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, EPOCHS_FILE).write_text(json.dumps(history))
        Path(folder, "checkpoint.pt").write_bytes(os.urandom(4096))
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(folder))


def space(trials: int, slots: int, trainable: str):
    from goal_plugin.tune import parse_space

    base = {"dataset": "mfeat", "backbone": "mlp", "strategy": "none", "epochs": 1, "diagnostics": False}
    return parse_space(
        {"name": f"scale{trials}", "base": base, "grid": {"seed": list(range(trials))},
         "resources": {"cpu": CPUS / slots, "gpu": 0}},
        source=f"<{trials} {trainable} trials>",
    )


def peak_rss_mb(pid: int | str) -> float:
    """Peak resident memory (VmHWM) of a live process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ray_processes_peak_mb(temp_dir: Path) -> dict[str, float]:
    """Peak memory of this Ray's GCS and raylet (the head node's own processes)."""
    peaks = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if str(temp_dir).encode() not in cmdline:
            continue
        for name in ("gcs_server", "raylet"):
            if name.encode() in cmdline.split(b"\0")[0]:
                peaks[name] = peak_rss_mb(entry.name)
    return peaks


def one_driver(trials: int, slots: int, trainable: str, epochs: int, storage: Path, resume: bool) -> dict:
    """Run (or resume) one sweep in this process; what it cost the driver."""
    from goal_plugin.tune import runner

    runner.set_ray_environment()
    import ray
    from ray import tune

    if trainable == "trivial":  # the runner's trainable, replaced by the stand-in
        runner._trainable = lambda checkpoint_every_s: tune.with_parameters(trivial_trial, epochs=epochs)
    temp_dir = Path(tempfile.mkdtemp(prefix="gss", dir="/tmp"))
    started = time.perf_counter()
    try:
        ray.init(num_cpus=CPUS, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
                 _temp_dir=str(temp_dir))
        cpu_before = time.process_time()
        lines: list[str] = []
        swept = time.perf_counter()
        outcome = runner.run_sweep(space(trials, slots, trainable), name="scale", storage=str(storage),
                                   resume=resume, echo=lines.append)
        sweep_s = time.perf_counter() - swept
        cpu_s = time.process_time() - cpu_before
        head = ray_processes_peak_mb(temp_dir)
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
    return {
        "trials": trials, "finished": outcome.finished, "resume": resume, "sweep_s": sweep_s,
        "total_s": time.perf_counter() - started, "driver_cpu_s": cpu_s,
        "driver_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **{f"{name}_peak_mb": value for name, value in head.items()},
    }


def state_size_mb(experiment: Path) -> tuple[float, float]:
    """(Ray's experiment state: the newest file of each kind at the top, the whole folder) in MB.

    Each driver session writes its own ``experiment_state-<date>.json``; the
    newest one is what a resume reads."""
    newest: dict[str, Path] = {}
    for file in sorted(f for f in experiment.iterdir() if f.is_file() and f.suffix in (".json", ".pkl")):
        newest[re.sub(r"-\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", "", file.name)] = file  # names sort by date
    state = sum(file.stat().st_size for file in newest.values())
    total = sum(f.stat().st_size for f in experiment.rglob("*") if f.is_file())
    return state / 2**20, total / 2**20


def measure(trials: int, args, storage: Path) -> None:
    runs = []
    for resume in (False, True):
        command = [sys.executable, __file__, "--one", str(trials), "--slots", str(args.slots),
                   "--trainable", args.trainable, "--epochs", str(args.epochs), "--storage", str(storage)]
        if resume:
            command.append("--resume")
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            sys.exit(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    sweep, resumed = runs
    if sweep["finished"] != trials or resumed["finished"] != trials:
        sys.exit(f"not every trial finished: {sweep['finished']}, then {resumed['finished']} of {trials}")
    state_mb, folder_mb = state_size_mb(storage / "scale")
    print(
        f"{trials:>6} | {sweep['sweep_s']:8.1f} | {trials / sweep['sweep_s']:7.1f} | "
        f"{1e3 * sweep['driver_cpu_s'] / trials:9.1f} | {sweep['driver_peak_mb']:8.0f} | "
        f"{sweep.get('gcs_server_peak_mb', float('nan')):6.0f} | {state_mb:7.2f} | {folder_mb:8.1f} | "
        f"{resumed['sweep_s']:8.1f} | {resumed['driver_peak_mb']:8.0f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--trainable", choices=("trivial", "real"), default="trivial")
    parser.add_argument("--slots", type=int, default=8, help="trials at once (default 8)")
    parser.add_argument("--epochs", type=int, default=3, help="epoch reports of a trivial trial (default 3)")
    parser.add_argument("--keep", help="write the experiments here instead of a temporary folder")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: one driver, JSON out
    parser.add_argument("--storage", help=argparse.SUPPRESS)
    parser.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        result = one_driver(args.one, args.slots, args.trainable, args.epochs, Path(args.storage), args.resume)
        print(json.dumps(result))
        return
    print(f"machine: {os.cpu_count()} CPUs; {args.trainable} trials, {args.slots} at once; "
          f"load average {os.getloadavg()[0]:.2f} (1 min) at the start")
    print("trials | sweep s | trials/s | driver CPU | driver | GCS    | state   | folder   | resume   | resume")
    print("       |         |          | ms/trial   | peak MB| peak MB| MB      | MB       | s        | peak MB")
    scratch = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="sweep_scale_"))
    try:
        for trials in args.trials:
            measure(trials, args, scratch / str(trials))
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) at the end")


if __name__ == "__main__":
    main()
