"""Progress a person can follow: one line per trial that ends or is retried,
a line for a node that leaves the cluster, and a line saying what the sweep
waits for when nothing has ended for a while."""

from __future__ import annotations

import time
from collections.abc import Callable

from ray.tune import Callback

QUIET_S = 30.0  # after this long without news, say what the sweep waits for
NODE_CHECK_S = 5.0


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


def _epoch_of(trial) -> int | None:
    """The last epoch the trial's newest checkpoint holds, or None without one."""
    if trial.checkpoint is None:
        return None
    result = trial.latest_checkpoint_result
    epoch = (result.metrics or {}).get("epoch") if result is not None else None
    return epoch if isinstance(epoch, int) else -1


class ProgressCallback(Callback):
    """Counts (done / running / errored of the total), the best trial so far by
    ``metric``, elapsed time and an estimate of the remaining time. Pickled with
    the experiment; ``setup`` restarts the clock when a sweep is resumed."""

    def __init__(
        self, total: int, metric: str, mode: str, echo: Callable[[str], None] = print, *, train_runs: bool = False
    ):
        self.total, self.metric, self.mode, self.echo = total, metric, mode, echo
        self.train_runs = train_runs  # trials of several workers: Ray Train checkpoints them, not Tune
        self.setup()

    def setup(self, **info) -> None:
        self.started = self.last_news = time.monotonic()
        self.ended_here = 0
        self.nodes: dict[str, str] | None = None  # alive node id -> address
        self.last_node_check = 0.0

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._line(trials, trial, "done")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._line(trials, trial, "FAILED")

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        self.last_news = time.monotonic()
        epoch = _epoch_of(trial)
        if epoch is None and getattr(self, "train_runs", False):  # pickled before train_runs existed: False
            self.echo(f"  retrying {trial_name(trial)}: its Train run continues from its newest checkpoint")
        elif epoch is None:
            self.echo(f"  restarting {trial_name(trial)} from scratch: it failed before its first checkpoint")
        else:
            self.echo(f"  retrying {trial_name(trial)} from its checkpoint after epoch {epoch}")

    def on_step_end(self, iteration, trials, **info) -> None:
        now = time.monotonic()
        if now - self.last_node_check >= NODE_CHECK_S:
            self.last_node_check = now
            self._check_nodes(trials)
        if now - self.last_news >= QUIET_S:
            self.last_news = now
            self._waiting(trials)

    def _check_nodes(self, trials) -> None:
        import ray

        alive = {node["NodeID"]: node["NodeManagerAddress"] for node in ray.nodes() if node["Alive"]}
        if self.nodes is not None:
            for node, address in self.nodes.items():
                if node not in alive:
                    # Results name the node's address, not its id: on a machine running
                    # several nodes, every unfinished trial at that address is listed.
                    moved = [
                        trial_name(t) for t in trials
                        if t.status in ("RUNNING", "PENDING") and t.last_result.get("node_ip") == address
                    ]
                    self.echo(
                        f"  node {node[:12]} ({address}) left the cluster; trials that ran there continue "
                        f"on other nodes from their checkpoints: {', '.join(moved) or 'none'}"
                    )
            for node, address in alive.items():
                if node not in self.nodes:
                    self.echo(f"  node {node[:12]} ({address}) joined the cluster")
        self.nodes = alive

    def _waiting(self, trials) -> None:
        running = [t for t in trials if t.status == "RUNNING"]
        pending = [t for t in trials if t.status == "PENDING"]
        parts = []
        if running:
            now = time.time()
            ages = [
                f"{trial_name(t)} (last report {clock(now - t.last_result['timestamp'])} ago)"
                if "timestamp" in t.last_result
                else f"{trial_name(t)} (no report yet)"
                for t in running
            ]
            parts.append(f"{len(running)} running: {', '.join(ages)}")
        if pending:
            parts.append(f"{len(pending)} waiting for free resources on the cluster")
        if parts:
            self.echo(f"[{clock(time.monotonic() - self.started)}] nothing ended for a while; {'; '.join(parts)}")

    def _line(self, trials, trial, event: str) -> None:
        self.ended_here += 1
        self.last_news = time.monotonic()
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
