"""The sweep's trials: every grid cell, with an Optuna study inside each cell of
a space that has a ``search`` block.

Ray's own generators cannot express the grid: ``grid_search`` builds full cross
products, while a cell only holds the strategy hyperparameters its strategy
takes (``none`` is not repeated for every temperature); and ``OptunaSearch``
refuses ``grid_search``. The searcher hands out the cells round by round
(sample k of every cell before sample k + 1 of any), so a cell's study has
results from earlier rounds when it is asked again. Cells without searchable
parameters get one trial. It enforces ``--max-concurrent`` from its own pending
trials; without it Ray's resource scheduling decides.

Nothing of its state is saved apart from the trials: Ray writes the trial list
and the searcher state as separate files, and a driver killed between the two
(or before the searcher's file reached storage) left a searcher that had
forgotten what it handed out, so grid cells never ran. Here the per-cell counts,
the pending trials and every study are rebuilt from the trial list that Ray
itself restores (``experiment_state-*.json``): a trial Ray knows counts for its
cell, a trial only the lost driver knew runs again. Each sample is drawn by a
sampler seeded from (seed, cell, sample number), so a resumed search draws what
an uninterrupted one would have drawn from the same history.
"""

from __future__ import annotations

import glob
import json
import math
import os
from typing import Any

from ray import cloudpickle
from ray.tune.search import Searcher, SearchGenerator

from goal_plugin.tune.space import SweepSpec

UNFINISHED_STATUSES = ("PENDING", "RUNNING", "PAUSED", "ERROR")  # Ray resumes errored trials too
EXPERIMENT_FILE = "cell_search_experiment.pkl"


class CellSearcher(Searcher):
    def __init__(self, spec: SweepSpec, seed: int = 0, max_concurrent: int = 0):
        search = spec.search
        super().__init__(metric=search.metric if search else None, mode=search.mode if search else None)
        self.spec = spec
        self.seed = seed
        self.max_concurrent = max_concurrent  # 0: Ray's resource scheduling decides
        self.cells = list(spec.cells)
        self.budgets = [spec.trials_in(cell) for cell in self.cells]
        self.issued = [0] * len(self.cells)
        self.studies: dict[int, Any] = {}
        self.pending: dict[str, tuple[int, int | None]] = {}

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True

    def _study(self, index: int):
        import optuna

        if index not in self.studies:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            direction = "maximize" if self.spec.search.mode == "max" else "minimize"
            self.studies[index] = optuna.create_study(direction=direction)
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
            import optuna

            study = self._study(index)
            study.sampler = optuna.samplers.TPESampler(
                seed=(self.seed * 100_003 + index) * 1_009 + self.issued[index]
            )
            trial = study.ask(self._distributions(index))
            config.update(trial.params)
            number = trial.number
        self.issued[index] += 1
        self.pending[trial_id] = (index, number)
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        index, number = self.pending.pop(trial_id, (None, None))
        if number is not None:
            self._tell(index, number, None if error else result)

    def _tell(self, index: int, number: int, result: dict | None) -> None:
        import optuna

        value = None if result is None else result.get(self.spec.search.metric)
        if isinstance(value, (int, float)) and math.isfinite(value):
            self._study(index).tell(number, float(value))
        else:
            self._study(index).tell(number, state=optuna.trial.TrialState.FAIL)

    def rebuild(self, trials: list[dict[str, Any]]) -> None:
        """Derive counts, pending trials and studies from the trials Ray restores.

        ``trials``: dicts with ``trial_id``, ``config``, ``status`` and
        ``last_result``, in the order Ray created them.
        """
        self.issued = [0] * len(self.cells)
        self.studies, self.pending = {}, {}
        cells = CellIndex(self.cells)
        for trial in trials:
            index = cells.find(trial["config"])
            if index is None:
                continue
            self.issued[index] += 1
            number = None
            if self.cells[index].search_params:
                study = self._study(index)
                params = {name: trial["config"][name] for name in self.cells[index].search_params}
                study.enqueue_trial(params)
                number = study.ask(self._distributions(index)).number
                if trial["status"] == "TERMINATED":
                    self._tell(index, number, trial["last_result"])
                    continue
            if trial["status"] in UNFINISHED_STATUSES:
                self.pending[trial["trial_id"]] = (index, number)



class CellSearch(SearchGenerator):
    """Ray's ``SearchGenerator`` around a ``CellSearcher``, restored from the trial list.

    Ray restores a ``SearchGenerator`` only from its own state file and, without
    one, ends the resumed sweep after the restored trials. This one writes the
    only thing it cannot rebuild (Ray's experiment spec, from which it creates
    trials) straight into storage before the first trial exists, and on restore
    rebuilds its searcher from the experiment state Ray restores.
    """

    def __init__(self, searcher: CellSearcher):
        super().__init__(searcher)

    def add_configurations(self, experiments) -> None:
        super().add_configurations(experiments)
        storage = self._experiment.storage
        path = f"{storage.experiment_fs_path.rstrip('/')}/{EXPERIMENT_FILE}"
        storage.storage_filesystem.create_dir(storage.experiment_fs_path, recursive=True)
        with storage.storage_filesystem.open_output_stream(path) as stream:
            stream.write(cloudpickle.dumps(self._experiment))

    def save_to_dir(self, dirpath: str, session_str: str) -> None:
        """Nothing: the state is rebuilt from the trials Ray saves."""

    def has_checkpoint(self, dirpath: str) -> bool:
        return os.path.isfile(os.path.join(dirpath, EXPERIMENT_FILE))

    def restore_from_dir(self, dirpath: str) -> None:
        with open(os.path.join(dirpath, EXPERIMENT_FILE), "rb") as handle:
            self._experiment = cloudpickle.load(handle)
        self._total_samples = self._experiment.spec.get("num_samples", 1)
        self._counter, self._finished = 0, False
        self.searcher.rebuild(ray_trials(dirpath))


class CellIndex:
    """The grid cell a trial's config belongs to (searched keys aside): the first cell,
    in grid order, whose fixed keys the config matches. Built once, so that finding
    the cells of n trials costs n lookups per distinct set of fixed keys, not n times
    the number of cells."""

    def __init__(self, cells) -> None:
        self._tables: dict[tuple[str, ...], dict[str, int]] = {}
        for index, cell in enumerate(cells):
            fixed = {k: v for k, v in cell.config.items() if k not in cell.search_params}
            self._tables.setdefault(tuple(sorted(fixed)), {}).setdefault(_canonical(fixed), index)

    def find(self, config: dict[str, Any]) -> int | None:
        found = [
            table.get(_canonical({k: config.get(k) for k in keys})) for keys, table in self._tables.items()
        ]
        return min((index for index in found if index is not None), default=None)


def _canonical(mapping: dict[str, Any]) -> str:
    return json.dumps(mapping, sort_keys=True, default=str)


def ray_trials(experiment_dir: str) -> list[dict[str, Any]]:
    """The trials of the newest experiment state in ``experiment_dir`` (the one Ray restores)."""
    files = sorted(glob.glob(os.path.join(experiment_dir, "experiment_state-*.json")))
    if not files:
        return []
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
