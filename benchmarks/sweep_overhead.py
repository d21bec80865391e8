"""Ray's overhead per trial on a sweep of small trials (the default sweep).

Starts a private local Ray (timed apart: Ray's start-up, not counted), runs
the space through the sweep runner as ``python runners/sweep.py SPACE`` does
(without the final table), and reports

    per-trial overhead = (sweep wall - ideal packing) / trials

where the ideal packing is the shortest possible wall for the trials' own
times on the sweep's concurrent slots, ``max(sum / slots, longest)``. A
trial's own time is its ``trial_time_s``: everything the trial does but wait
in Ray's report calls (set-up, training, evaluation, diagnostics). The figure
with a narrower own time (training and diagnostics only, so that every
evaluation counts as overhead; the only reading older trainables report) is
given too. Parts: the time Ray counts for the trials beyond their own
(``time_total_s``, which includes persisting checkpoints but not the waits for
the driver) and the rest (the round trips of every report, starting and ending
trials, workers' start-up, the driver, slots left idle), of which the runner's
work outside ``Tuner.fit``. The rest is split further from the trials'
wall-clock spans: time they wait in report calls, gaps between consecutive
trials on one worker, the time before the first trial starts (the runner,
workers' start-up and their imports) and after the last ends; what remains
is slots standing idle while the last trials finish.

    python benchmarks/sweep_overhead.py                  # search_spaces/default.yaml
    python benchmarks/sweep_overhead.py SPACE [--checkpoint-every-s 0] [--tensorboard] [--keep DIR]
        [--ray-env TUNE_SETTING=VALUE]     # e.g. TUNE_RESULT_BUFFER_LENGTH=1: reports unbuffered
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


def read_trials(experiment: Path) -> list[dict]:
    """Per trial: its own time (two readings), Ray's lifetime of it, its reports and checkpoints."""
    trials = []
    for folder in sorted(p for p in experiment.iterdir() if (p / "params.json").is_file()):
        rows = [json.loads(line) for line in (folder / "result.json").read_text().splitlines() if line.strip()]
        final = next(row for row in rows if row.get("final"))
        trials.append({
            "own": final["trial_time_s"],
            "train_diagnostics": final["train_time_s"] + final["diagnostics_time_s"],
            "lifetime": final["time_total_s"],
            "checkpoints": sum(1 for row in rows if row.get("checkpoint_dir_name")),
            "reports": len(rows),
            "report_wait": final["report_wait_s"],
            "span": (final["trial_started_at"], final["trial_ended_at"]),
            "worker": final["pid"],
        })
    return trials


def worker_timeline(trials: list[dict]) -> tuple[float, float, float]:
    """From the trials' wall-clock spans: gaps between consecutive trials on one
    worker (summed), the first start and the last end."""
    by_worker: dict[int, list[tuple[float, float]]] = {}
    for trial in trials:
        by_worker.setdefault(trial["worker"], []).append(trial["span"])
    gaps = 0.0
    for spans in by_worker.values():
        spans.sort()
        gaps += sum(later[0] - earlier[1] for earlier, later in itertools.pairwise(spans))
    return gaps, min(t["span"][0] for t in trials), max(t["span"][1] for t in trials)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("space", nargs="?", default="default", help="search-space file or name (default: default)")
    parser.add_argument("--ray-env", action="append", default=[], metavar="TUNE_SETTING=VALUE",
                        help="set one of Ray Tune's environment settings for this run (repeatable)")
    parser.add_argument("--checkpoint-every-s", type=float,
                        help="the trials' checkpoint interval (default: the trainable's; 0 = every epoch)")
    parser.add_argument("--tensorboard", action="store_true", help="with TensorBoard's logger, as --tensorboard")
    parser.add_argument("--keep", help="write the experiment here instead of a temporary folder")
    args = parser.parse_args()

    from goal_plugin.tune.runner import run_sweep, set_ray_environment
    from goal_plugin.tune.space import load_space

    spec = load_space(args.space)
    for setting in args.ray_env:
        key, _, value = setting.partition("=")
        os.environ[key] = value
    set_ray_environment()
    import ray

    scratch = Path(tempfile.mkdtemp(prefix="gso", dir="/tmp"))  # short: Ray's socket paths live under it
    storage = Path(args.keep) if args.keep else scratch / "results"
    try:
        started = time.perf_counter()
        ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
                 _temp_dir=str(scratch / "ray"))
        ray_start = time.perf_counter() - started
        slots = int(ray.cluster_resources()["CPU"] // spec.resources["cpu"])
        slots = min(slots, spec.total_trials)
        lines: list[str] = []
        started, started_at = time.perf_counter(), time.time()
        every_s = {} if args.checkpoint_every_s is None else {"checkpoint_every_s": args.checkpoint_every_s}
        outcome = run_sweep(spec, name="overhead", storage=str(storage), echo=lines.append,
                            tensorboard=args.tensorboard, **every_s)
        wall = time.perf_counter() - started
        ended_at = time.time()
        ray.shutdown()
        if outcome.finished != spec.total_trials:
            sys.exit("\n".join(lines + [f"only {outcome.finished}/{spec.total_trials} trials finished"]))
        trials = read_trials(Path(outcome.experiment_path))
        report(trials, wall, outcome.wall_time_s, ray_start, slots, (started_at, ended_at))
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)


def report(trials: list[dict], wall: float, fit_wall: float, ray_start: float, slots: int,
           sweep_span: tuple[float, float]) -> None:
    count = len(trials)

    def overhead(own: list[float]) -> tuple[float, float]:
        ideal = max(sum(own) / slots, max(own))
        return ideal, (wall - ideal) / count

    own = [t["own"] for t in trials]
    ideal, per_trial = overhead(own)
    narrow_ideal, narrow = overhead([t["train_diagnostics"] for t in trials])
    in_trials = sum(t["lifetime"] - t["own"] for t in trials) / slots / count
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (1 min) at the end")
    print(f"{count} trials on {slots} slots; own time {sum(own):.1f} s (median {statistics.median(own):.2f} s)")
    print(f"Ray start-up                          {ray_start:7.2f} s (not counted)")
    print(f"sweep wall (run_sweep)                {wall:7.2f} s   of which Tuner.fit {fit_wall:.2f} s")
    print(f"ideal packing of the trials' own time {ideal:7.2f} s")
    print(f"PER-TRIAL OVERHEAD                    {per_trial:7.3f} s/trial")
    print(f"  Ray's trial time beyond own time    {in_trials:7.3f} s/trial  (persisting checkpoints)")
    print(f"  the rest                            {per_trial - in_trials:7.3f} s/trial  (report round trips, "
          "trial start/end, worker start-up, driver, idle slots)")
    gaps, first_start, last_end = worker_timeline(trials)
    waits = sum(t["report_wait"] for t in trials)
    print(f"    trials waiting in report calls    {waits / slots / count:7.3f} s/trial  "
          f"({1000 * waits / count:.0f} ms per trial)")
    print(f"    between trials on one worker      {gaps / slots / count:7.3f} s/trial")
    print(f"    before the first trial starts     {(first_start - sweep_span[0]) / count:7.3f} s/trial  "
          f"({first_start - sweep_span[0]:.2f} s: the runner, workers' start-up and imports)")
    print(f"    after the last trial ends         {(sweep_span[1] - last_end) / count:7.3f} s/trial")
    print(f"  of which outside Tuner.fit          {(wall - fit_wall) / count:7.3f} s/trial")
    print(f"with own time = training + diagnostics only (evaluation, set-up counted as overhead): "
          f"ideal {narrow_ideal:.2f} s, {narrow:.3f} s/trial")
    print(f"checkpoints per trial {statistics.mean(t['checkpoints'] for t in trials):.1f}, "
          f"reports per trial {statistics.mean(t['reports'] for t in trials):.1f}")


if __name__ == "__main__":
    main()
