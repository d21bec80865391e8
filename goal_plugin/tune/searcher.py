"""A Ray Tune searcher: an exhaustive grid, with an Optuna study inside each cell.

Ray's OptunaSearch refuses ``grid_search``; this searcher plays both roles. It
hands out the grid cells round by round (sample k of every cell before sample
k + 1 of any), so a cell's Optuna study has results from earlier rounds when
it is asked again. Cells without searchable parameters get one trial. The
state (cursor, pending trials, every study) is saved with the experiment and
restored with it, so a resumed sweep continues the same studies.
"""

from __future__ import annotations

import math
import pickle
from typing import Any

from ray.tune.search import Searcher

from goal_plugin.tune.space import SweepSpec


class GridOptunaSearcher(Searcher):
    def __init__(self, spec: SweepSpec, seed: int = 0):
        search = spec.search
        super().__init__(metric=search.metric if search else None, mode=search.mode if search else None)
        self.spec = spec
        self.seed = seed
        self.cells = list(spec.cells)
        self.budgets = [spec.trials_in(cell) for cell in self.cells]
        self.round = 0
        self.cursor = 0
        self.studies: dict[int, Any] = {}
        self.pending: dict[str, tuple[int, int | None]] = {}

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

    def _next_cell(self) -> int | None:
        rounds = max(self.budgets, default=0)
        while self.round < rounds:
            while self.cursor < len(self.cells):
                index = self.cursor
                self.cursor += 1
                if self.round < self.budgets[index]:
                    return index
            self.round += 1
            self.cursor = 0
        return None

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        index = self._next_cell()
        if index is None:
            return Searcher.FINISHED
        cell = self.cells[index]
        config = dict(cell.config)
        number = None
        if cell.search_params:
            params = {name: self.spec.search.params[name] for name in cell.search_params}
            trial = self._study(index).ask({n: p.optuna_distribution() for n, p in params.items()})
            config.update(trial.params)
            number = trial.number
        self.pending[trial_id] = (index, number)
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        index, number = self.pending.pop(trial_id, (None, None))
        if number is None:
            return
        import optuna

        value = None if (error or result is None) else result.get(self.spec.search.metric)
        if isinstance(value, (int, float)) and math.isfinite(value):
            self._study(index).tell(number, float(value))
        else:
            self._study(index).tell(number, state=optuna.trial.TrialState.FAIL)

    def best_per_cell(self) -> list[tuple[str, dict[str, Any], float]]:
        """(cell label, best parameters, best value) of every searched cell."""
        rows = []
        for index, study in sorted(self.studies.items()):
            completed = [t for t in study.trials if t.state.name == "COMPLETE"]
            if completed:
                rows.append((self.cells[index].label(), study.best_params, study.best_value))
        return rows

    def get_state(self) -> dict[str, Any]:
        keys = ("round", "cursor", "studies", "pending")
        return {key: getattr(self, key) for key in keys}

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
