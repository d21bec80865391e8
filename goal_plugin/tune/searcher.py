"""A Ray Tune searcher: an exhaustive grid, with an Optuna study inside each cell.

Ray's OptunaSearch refuses ``grid_search``; this searcher plays both roles. It
hands out the grid cells round by round (sample k of every cell before sample
k + 1 of any), so a cell's Optuna study has results from earlier rounds when
it is asked again. Cells without searchable parameters get one trial.

The state (per-cell counts, pending trials, every study) is saved with the
experiment. Ray saves the experiment state and the searcher state as separate
files, so a driver killed between the two leaves them out of step; on restore
the searcher therefore reconciles itself with the trials of the experiment
state that Ray restores (``experiment_state-*.json``): every trial Ray knows
counts for its cell (so no cell runs twice), a trial only the searcher knew is
forgotten (so its cell runs again), and results Ray recorded but the studies
missed are told to them.

The searcher also enforces the sweep's concurrency limit itself (Ray's
``ConcurrencyLimiter`` then passes everything through): the limiter's own
record of live trials is saved apart and never reconciled, so after a restart
it could count trials that had finished, refuse every suggestion and stall the
sweep. Here the live trials are ``pending``, which the reconciliation keeps
true.
"""

from __future__ import annotations

import glob
import json
import math
import os
import pickle
import warnings
from typing import Any

from ray.tune.search import Searcher

from goal_plugin.tune.space import SweepSpec

FINISHED_STATUSES = ("TERMINATED", "ERROR")


class GridOptunaSearcher(Searcher):
    def __init__(self, spec: SweepSpec, seed: int = 0):
        search = spec.search
        super().__init__(metric=search.metric if search else None, mode=search.mode if search else None)
        self.spec = spec
        self.seed = seed
        self.cells = list(spec.cells)
        self.budgets = [spec.trials_in(cell) for cell in self.cells]
        self.issued = [0] * len(self.cells)
        self.studies: dict[int, Any] = {}
        self.pending: dict[str, tuple[int, int | None]] = {}
        self.max_concurrent = 0  # 0: no limit

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        self.max_concurrent = max_concurrent
        return True

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True

    def _study(self, index: int):
        import optuna

        if index not in self.studies:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            direction = "maximize" if self.spec.search.mode == "max" else "minimize"
            sampler = optuna.samplers.TPESampler(seed=self.seed * 100_003 + index)
            self.studies[index] = optuna.create_study(direction=direction, sampler=sampler)
        return self.studies[index]

    def _distributions(self, index: int) -> dict[str, Any]:
        params = self.spec.search.params
        return {name: params[name].optuna_distribution() for name in self.cells[index].search_params}

    def _next_cell(self) -> int | None:
        open_cells = [i for i, (n, budget) in enumerate(zip(self.issued, self.budgets)) if n < budget]
        return min(open_cells, key=lambda i: (self.issued[i], i)) if open_cells else None

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        index = self._next_cell()
        if index is None:
            return Searcher.FINISHED
        if self.max_concurrent and len(self.pending) >= self.max_concurrent:
            return None  # asked again when a trial completes
        config = dict(self.cells[index].config)
        number = None
        if self.cells[index].search_params:
            trial = self._study(index).ask(self._distributions(index))
            config.update(trial.params)
            number = trial.number
        self.issued[index] += 1
        self.pending[trial_id] = (index, number)
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        index, number = self.pending.pop(trial_id, (None, None))
        if index is not None and self.cells[index].search_params:
            self._tell(index, number, None if error else result)

    def _tell(self, index: int, number: int | None, result: dict | None) -> None:
        """Report a finished trial to its cell's study (``number`` None: not asked by it)."""
        import optuna

        value = None if result is None else result.get(self.spec.search.metric)
        finite = isinstance(value, (int, float)) and math.isfinite(value)
        study = self._study(index)
        if number is not None:
            if finite:
                study.tell(number, float(value))
            else:
                study.tell(number, state=optuna.trial.TrialState.FAIL)
        elif finite:
            config = (result or {}).get("config") or {}
            params = {name: config[name] for name in self.cells[index].search_params if name in config}
            if len(params) == len(self.cells[index].search_params):
                study.add_trial(
                    optuna.trial.create_trial(
                        params=params, distributions=self._distributions(index), value=float(value)
                    )
                )

    def best_per_cell(self) -> list[tuple[str, dict[str, Any], float]]:
        """(cell label, best parameters, best value) of every searched cell."""
        rows = []
        for index, study in sorted(self.studies.items()):
            completed = [t for t in study.trials if t.state.name == "COMPLETE"]
            if completed:
                rows.append((self.cells[index].label(), study.best_params, study.best_value))
        return rows

    # ----------------------------------------------------------- save / restore
    def get_state(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in ("issued", "studies", "pending")}

    def set_state(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as handle:
            pickle.dump(self.get_state(), handle)

    def restore(self, checkpoint_path: str) -> None:
        # Written by ``save`` of this experiment's own driver (Ray's searcher-state file).
        with open(checkpoint_path, "rb") as handle:
            self.set_state(pickle.load(handle))
        known = ray_trials(os.path.dirname(checkpoint_path))
        if known is None:
            warnings.warn("no readable experiment state next to the searcher state: not reconciled")
            return
        self.reconcile(known)

    def reconcile(self, known: list[dict[str, Any]]) -> None:
        """Make the counts and pending trials agree with the trials Ray restores.

        ``known``: dicts with ``trial_id``, ``config``, ``status`` and ``last_result``.
        """
        issued = [0] * len(self.cells)
        pending: dict[str, tuple[int, int | None]] = {}
        for trial in known:
            index = self._cell_of(trial["config"])
            if index is None:
                continue
            issued[index] += 1
            _, number = self.pending.get(trial["trial_id"], (index, None))
            if trial["status"] not in FINISHED_STATUSES:
                pending[trial["trial_id"]] = (index, number)
            elif self.cells[index].search_params and (
                trial["trial_id"] in self.pending or not self._study_has(index, trial["config"])
            ):
                # Finished after the searcher state was saved: its result never reached the study.
                result = None if trial["status"] == "ERROR" else trial["last_result"]
                self._tell(index, number, {**(result or {}), "config": trial["config"]})
        known_ids = {trial["trial_id"] for trial in known}
        for trial_id, (index, number) in self.pending.items():
            if trial_id not in known_ids and number is not None:
                self._tell(index, number, None)  # asked, but Ray never kept the trial
        self.issued = [min(n, budget) for n, budget in zip(issued, self.budgets)]
        self.pending = pending

    def _study_has(self, index: int, config: dict[str, Any]) -> bool:
        names = self.cells[index].search_params
        wanted = {name: config.get(name) for name in names}
        return any(trial.params == wanted for trial in self._study(index).trials)

    def _cell_of(self, config: dict[str, Any]) -> int | None:
        def canonical(mapping):
            return json.dumps(mapping, sort_keys=True, default=str)

        for index, cell in enumerate(self.cells):
            fixed = {k: v for k, v in cell.config.items() if k not in cell.search_params}
            if canonical({k: config.get(k) for k in fixed}) == canonical(fixed):
                return index
        return None


def ray_trials(experiment_dir: str) -> list[dict[str, Any]] | None:
    """The trials of the newest experiment state Ray will restore, or None if unreadable."""
    files = sorted(glob.glob(os.path.join(experiment_dir, "experiment_state-*.json")))
    if not files:
        return None
    try:
        with open(files[-1]) as handle:
            state = json.load(handle)
        trials = []
        for trial_json, metadata_json in state["trial_data"]:
            trial, metadata = json.loads(trial_json), json.loads(metadata_json)
            trials.append(
                {
                    "trial_id": trial["trial_id"],
                    "config": trial["config"],
                    "status": trial["status"],
                    "last_result": metadata.get("last_result") or {},
                }
            )
        return trials
    except (OSError, ValueError, KeyError, TypeError):
        return None
