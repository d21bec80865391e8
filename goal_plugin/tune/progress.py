"""Progress a person can follow: one line per trial that ends, nothing else."""

from __future__ import annotations

import time
from collections.abc import Callable

from ray.tune import Callback


def trial_name(trial) -> str:
    config = trial.config
    parts = [config.get("strategy", "?"), config.get("dataset", "?"), f"s{config.get('seed', 0)}"]
    if "temperature" in config:
        parts.append(f"T{config['temperature']:.3g}")
    return "_".join(str(p) for p in parts)


def trial_dirname(trial) -> str:
    return f"{trial_name(trial)}_{trial.trial_id}"


def clock(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s"


class ProgressCallback(Callback):
    """Counts (done / running / errored of the total), the best trial so far by
    ``metric``, elapsed time and an estimate of the remaining time. Pickled with
    the experiment; ``setup`` restarts the clock when a sweep is resumed."""

    def __init__(self, total: int, metric: str, mode: str, echo: Callable[[str], None] = print):
        self.total, self.metric, self.mode, self.echo = total, metric, mode, echo
        self.started = time.monotonic()
        self.ended_here = 0

    def setup(self, **info) -> None:
        self.started = time.monotonic()
        self.ended_here = 0

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._line(trials, trial, "done")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._line(trials, trial, "FAILED")

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        self.echo(f"  retrying {trial_name(trial)} from its last checkpoint")

    def _line(self, trials, trial, event: str) -> None:
        self.ended_here += 1
        # Ray calls back before it updates ``trial.status``: count this trial as ended.
        statuses = [t.status for t in trials if t is not trial]
        statuses.append("TERMINATED" if event == "done" else "ERROR")
        done, errored, running = (statuses.count(s) for s in ("TERMINATED", "ERROR", "RUNNING"))
        elapsed = time.monotonic() - self.started
        remaining = self.total - done - errored
        eta = elapsed / self.ended_here * remaining
        self.echo(
            f"[{clock(elapsed)}] {event:<6} {trial_name(trial):<28} done {done}/{self.total}  "
            f"running {running}  errored {errored}  {self._best(trials)}  remaining ~{clock(eta)}"
        )

    def _best(self, trials) -> str:
        scored = [
            (t.last_result.get(self.metric), t)
            for t in trials
            if t.last_result.get("final") and isinstance(t.last_result.get(self.metric), (int, float))
        ]
        if not scored:
            return f"best {self.metric} -"
        pick = max if self.mode == "max" else min
        value, trial = pick(scored, key=lambda pair: pair[0])
        return f"best {self.metric} {value:.4f} ({trial_name(trial)})"
