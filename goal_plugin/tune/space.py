"""Search-space files (search_spaces/*.yaml): loading, validation, grid cells.

::

    name: paper_table1
    description: free text (optional)
    base: {epochs: 100, batch_size: 64, optimizer: sgd, lr: 4.0e-4}
    grid:                      # full cross product
      dataset: [mfeat]
      strategy: [none, ogm, goal]
      seed: [0, 1, 2, 3, 4]
      temperature: [0.2, 1.0]  # a strategy hyperparameter: only for strategies that take it
    datasets:                  # optional: per dataset, keys for its cells only
      mosi: {dataset_options: {task: classification, label_scheme: non_zero}}
      hateful_memes: {backbone: {image: resnet18, text: bert_base}, strategy: [none, goal]}
    search:                    # optional: Optuna inside every grid cell
      temperature: {distribution: loguniform, low: 0.1, high: 10.0}
      num_samples: 8           # Optuna trials per cell
      metric: val_acc          # reported metric the study optimises (default val_acc)
      mode: max
    resources: {cpu: 1, gpu: 0}

A strategy hyperparameter (in ``base``, ``grid`` or ``search``) applies only to
the cells whose strategy accepts it, so ``none`` is not repeated for every
temperature. ``datasets`` gives a dataset's cells keys of their own, over
``base``: a list under a grid axis replaces that axis for the dataset (e.g. the
strategies that can train its task), any other value is set in its cells. Every expanded trial config is validated with the engine's own
checks before anything starts; errors name the file, the key and the allowed
values.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from goal_plugin import _validation as check
from goal_plugin.engine.config import DEFAULTS, ConfigError, resolve_config
from goal_plugin.registry import STRATEGIES

TOP_LEVEL_KEYS = ("name", "description", "base", "grid", "datasets", "search", "resources")
DISTRIBUTIONS = ("uniform", "loguniform", "int", "categorical")
SEARCH_SETTINGS = ("num_samples", "metric", "mode")
GRID_ORDER = ("dataset", "backbone", "strategy", "seed")
SPACES_DIR = Path(__file__).resolve().parents[2] / "search_spaces"


class SweepSpecError(ValueError):
    """A search-space file that cannot run; the message names file and key."""


@dataclass(frozen=True)
class SearchParam:
    name: str
    distribution: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()

    def optuna_distribution(self):
        import optuna

        if self.distribution == "categorical":
            return optuna.distributions.CategoricalDistribution(self.choices)
        if self.distribution == "int":
            return optuna.distributions.IntDistribution(int(self.low), int(self.high))
        return optuna.distributions.FloatDistribution(
            self.low, self.high, log=self.distribution == "loguniform"
        )

    def extremes(self) -> list[Any]:
        return list(self.choices) if self.distribution == "categorical" else [self.low, self.high]


@dataclass(frozen=True)
class SearchSpec:
    params: dict[str, SearchParam]
    num_samples: int
    metric: str = "val_acc"
    mode: str = "max"


@dataclass(frozen=True)
class Cell:
    """One grid point: a full trial config and the search parameters that apply to it."""

    config: dict[str, Any]
    search_params: tuple[str, ...] = ()

    def label(self) -> str:
        parts = [f"{k}={self.config[k]}" for k in GRID_ORDER if k in self.config]
        return ", ".join(parts)


@dataclass(frozen=True)
class SweepSpec:
    name: str
    source: str
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    search: SearchSpec | None
    resources: dict[str, float]
    cells: tuple[Cell, ...] = field(default=())
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def trials_in(self, cell: Cell) -> int:
        return self.search.num_samples if (self.search and cell.search_params) else 1

    def label(self, cell: Cell) -> str:
        """The cell's grid values, ``strategy=goal, seed=0, temperature=0.2``."""
        axes = [k for k in GRID_ORDER if k in self.grid] + [k for k in self.grid if k not in GRID_ORDER]
        return ", ".join(f"{k}={cell.config[k]}" for k in axes if k in cell.config) or "the base config"

    @property
    def total_trials(self) -> int:
        return sum(self.trials_in(cell) for cell in self.cells)

    def with_data_roots(self, roots: Mapping[str, str]) -> SweepSpec:
        """The same sweep with ``data_root`` set for the cells of each dataset named in
        ``roots`` (``{dataset: folder}``); other cells keep theirs."""
        cells = tuple(
            replace(c, config={**c.config, "data_root": roots[c.config["dataset"]]})
            if c.config.get("dataset") in roots else c
            for c in self.cells
        )
        return replace(self, cells=cells)

    def with_dataset_option(self, datasets: set[str], key: str, value: Any) -> SweepSpec:
        """The same sweep with ``dataset_options[key] = value`` in the cells of ``datasets``."""
        cells = tuple(
            replace(c, config={**c.config, "dataset_options": {**(c.config.get("dataset_options") or {}), key: value}})
            if c.config.get("dataset") in datasets else c
            for c in self.cells
        )
        return replace(self, cells=cells)

    def with_overrides(self, **base_overrides: Any) -> SweepSpec:
        """The same sweep with keys forced into every trial (e.g. ``device``)."""
        cells = tuple(replace(c, config={**c.config, **base_overrides}) for c in self.cells)
        return replace(self, base={**self.base, **base_overrides}, cells=cells)


def resolve_space_path(name_or_path: str | Path) -> Path:
    """A path as given, or a bare name looked up in search_spaces/ (``default``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    candidate = SPACES_DIR / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    available = sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))
    raise SweepSpecError(
        f"search space {str(name_or_path)!r} is neither a file nor one of: {', '.join(available)}"
    )


def load_space(name_or_path: str | Path) -> SweepSpec:
    import yaml

    path = resolve_space_path(name_or_path)
    source = str(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise SweepSpecError(f"{source}: not valid YAML: {error}") from None
    return parse_space(raw, source=source, default_name=path.stem)


def _all_hparams() -> dict[str, set[str]]:
    """hyperparameter name -> strategies that accept it."""
    owners: dict[str, set[str]] = {}
    for strategy in STRATEGIES.names():
        for name in STRATEGIES.options(strategy):
            owners.setdefault(name, set()).add(strategy)
    return owners


def parse_space(raw: Any, *, source: str = "<space>", default_name: str = "sweep") -> SweepSpec:
    def fail(key: str, message: str) -> SweepSpecError:
        return SweepSpecError(f"{source}: {key}: {message}")

    if not isinstance(raw, Mapping):
        raise SweepSpecError(f"{source}: the file must hold a mapping with keys {', '.join(TOP_LEVEL_KEYS)}")
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            raise fail(key, check.unknown_name_message("top-level key", key, TOP_LEVEL_KEYS))
    hparams = _all_hparams()
    config_keys = [*DEFAULTS, *hparams]

    def known_key(section: str, key: Any) -> str:
        if key not in config_keys:
            raise fail(f"{section}.{key}", check.unknown_name_message("trial-config key", key, config_keys))
        return key

    name = raw.get("name", default_name)
    if not isinstance(name, str) or not name or any(c in name for c in "/\\ "):
        raise fail("name", f"must be a non-empty string without '/', '\\' or spaces, got {name!r}")
    base = raw.get("base") or {}
    if not isinstance(base, Mapping):
        raise fail("base", f"must be a mapping of trial-config keys, got {type(base).__name__}")
    base = {known_key("base", k): v for k, v in base.items()}
    grid_raw = raw.get("grid") or {}
    if not isinstance(grid_raw, Mapping):
        raise fail("grid", f"must be a mapping of key -> list of values, got {type(grid_raw).__name__}")
    grid: dict[str, list[Any]] = {}
    for key, values in grid_raw.items():
        known_key("grid", key)
        if not isinstance(values, list) or not values:
            raise fail(f"grid.{key}", f"must be a non-empty list, got {values!r}")
        if len({json.dumps(v, sort_keys=True, default=str) for v in values}) != len(values):
            raise fail(f"grid.{key}", f"lists a value twice: {values}")
        grid[key] = values
    search = _parse_search(raw.get("search"), fail, known_key, grid)
    resources = _parse_resources(raw.get("resources"), fail)
    datasets = _parse_datasets(raw.get("datasets"), fail, known_key, base, grid)
    spec = SweepSpec(name, source, dict(base), grid, search, resources, datasets=datasets)
    cells = _expand(spec, hparams, fail)
    return replace(spec, cells=cells)


def _parse_datasets(raw, fail, known_key, base, grid) -> dict[str, dict[str, Any]]:
    """``datasets``: per dataset of the space, the keys of its cells."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise fail("datasets", f"must map dataset names to mappings of trial-config keys, got {type(raw).__name__}")
    named = grid.get("dataset") or [base.get("dataset", DEFAULTS["dataset"])]
    parsed = {}
    for dataset, keys in raw.items():
        if dataset not in named:
            raise fail(f"datasets.{dataset}", f"is not a dataset of this space ({', '.join(map(str, named))})")
        if not isinstance(keys, Mapping):
            raise fail(f"datasets.{dataset}", f"must be a mapping of trial-config keys, got {keys!r}")
        for key, value in keys.items():
            known_key(f"datasets.{dataset}", key)
            if key == "dataset":
                raise fail(f"datasets.{dataset}.dataset", "names the dataset already")
            if key in grid and isinstance(value, list) and not value:
                raise fail(f"datasets.{dataset}.{key}", "must be a non-empty list")
        parsed[dataset] = dict(keys)
    return parsed


def _parse_search(raw, fail, known_key, grid) -> SearchSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise fail("search", f"must be a mapping, got {type(raw).__name__}")
    params: dict[str, SearchParam] = {}
    for key, value in raw.items():
        if key in SEARCH_SETTINGS:
            continue
        known_key("search", key)
        if key in grid:
            raise fail(f"search.{key}", "is also a grid axis; choose one")
        params[key] = _parse_param(key, value, fail)
    if not params:
        raise fail("search", "names no parameter to search")
    try:
        num_samples = check.integer("num_samples", raw.get("num_samples"), minimum=1)
        metric = raw.get("metric", "val_acc")
        if not isinstance(metric, str):
            raise ValueError(f"metric must be the name of a reported metric, got {metric!r}")
        mode = check.choice("mode", raw.get("mode", "max"), ("max", "min"))
    except ValueError as error:
        raise fail("search", str(error)) from None
    return SearchSpec(params, num_samples, metric, mode)


def _parse_param(key: str, value: Any, fail) -> SearchParam:
    where = f"search.{key}"
    if not isinstance(value, Mapping):
        raise fail(where, "must be {distribution: ..., low: ..., high: ...} or {distribution: categorical, choices: [...]}")
    allowed = ("distribution", "low", "high", "choices")
    for option in value:
        if option not in allowed:
            raise fail(where, check.unknown_name_message("option", option, allowed))
    try:
        distribution = check.choice("distribution", value.get("distribution"), DISTRIBUTIONS)
        if distribution == "categorical":
            choices = value.get("choices")
            if not isinstance(choices, list) or not choices:
                raise ValueError("categorical needs a non-empty list 'choices'")
            return SearchParam(key, distribution, choices=tuple(choices))
        low, high = check.real("low", value.get("low")), check.real("high", value.get("high"))
        if low >= high:
            raise ValueError(f"low must be < high, got low={low}, high={high}")
        if distribution == "loguniform" and low <= 0:
            raise ValueError(f"loguniform needs low > 0, got {low}")
        if distribution == "int" and (low != math.floor(low) or high != math.floor(high)):
            raise ValueError(f"int needs integer bounds, got {low}, {high}")
        return SearchParam(key, distribution, low, high)
    except ValueError as error:
        raise fail(where, str(error)) from None


# cpu and gpu per trial, or per DDP worker when a trial has several workers
RESOURCE_KEYS = ("cpu", "gpu", "workers")


def _parse_resources(raw, fail) -> dict[str, float]:
    raw = raw or {}
    if not isinstance(raw, Mapping):
        raise fail("resources", f"must be a mapping {{cpu: N, gpu: F, workers: W}}, got {raw!r}")
    for key in raw:
        if key not in RESOURCE_KEYS:
            raise fail(f"resources.{key}", check.unknown_name_message("resource", key, RESOURCE_KEYS))
    try:
        return {
            "cpu": check.positive("cpu", raw.get("cpu", 1)),
            "gpu": check.non_negative("gpu", raw.get("gpu", 0)),
            "workers": check.integer("workers", raw.get("workers", 1), minimum=1),
        }
    except ValueError as error:
        raise fail("resources", str(error)) from None


def _per_dataset(spec: SweepSpec) -> list[tuple[dict[str, Any], dict[str, list[Any]]]]:
    """(base, grid) of each dataset's cells: ``datasets`` over the space's own."""
    if not spec.datasets:
        return [(spec.base, spec.grid)]
    parts = []
    for dataset in spec.grid.get("dataset") or [spec.base.get("dataset", DEFAULTS["dataset"])]:
        keys = spec.datasets.get(dataset, {})
        grid = {**spec.grid, **({"dataset": [dataset]} if "dataset" in spec.grid else {})}
        base = dict(spec.base)
        for key, value in keys.items():
            if key in grid:
                grid[key] = value if isinstance(value, list) else [value]
            else:
                base[key] = value
        parts.append((base, grid))
    return parts


def _expand(spec: SweepSpec, hparams: dict[str, set[str]], fail) -> tuple[Cell, ...]:
    cells: list[Cell] = []
    seen: set[str] = set()
    for base, grid in _per_dataset(spec):
        axes = sorted(grid, key=lambda k: (GRID_ORDER.index(k) if k in GRID_ORDER else len(GRID_ORDER), k))
        for values in itertools.product(*(grid[k] for k in axes)):
            _add_cell(spec, {**base, **dict(zip(axes, values))}, hparams, fail, cells, seen)
    return tuple(cells)


def _add_cell(spec, config, hparams, fail, cells: list[Cell], seen: set[str]) -> None:
    """Append the cell of ``config`` (once; strategy hyperparameters its strategy takes only)."""
    strategy = config.get("strategy", DEFAULTS["strategy"])
    if strategy not in STRATEGIES.names():
        raise fail("grid.strategy" if "strategy" in spec.grid else "base.strategy",
                   check.unknown_name_message("strategy", strategy, STRATEGIES.names()))
    accepted = STRATEGIES.options(strategy)
    config = {k: v for k, v in config.items() if k not in hparams or k in accepted}
    key = json.dumps(config, sort_keys=True, default=str)
    if key in seen:
        return
    seen.add(key)
    search_params = tuple(
        p for p in (spec.search.params if spec.search else ()) if p not in hparams or p in accepted
    )
    cell = Cell(config, search_params)
    _validate_cell(spec, cell, fail)
    if search_params:
        _check_search_metric(spec.search, config, fail)
    # Trials carry the full resolved config, so params.json records every value.
    cells.append(replace(cell, config=resolve_config(config).as_dict()))


def _check_search_metric(search: SearchSpec, config: dict[str, Any], fail) -> None:
    """The metric a study optimises is one the cell's task reports on the validation split."""
    from goal_plugin.data import DATASETS
    from goal_plugin.engine.tasks import Task

    dataset = config.get("dataset", DEFAULTS["dataset"])
    options = config.get("dataset_options") or {}
    task = options.get("task", DATASETS.options(dataset).get("task", "classification"))
    if not isinstance(task, str) or task not in ("classification", "multilabel", "regression"):
        return  # the dataset refuses it when the trial starts
    scores = Task(task, 2, score_range=(-3.0, 3.0) if task == "regression" else None).score_names
    name = search.metric.removeprefix("val_")
    reported = name in scores or any(name.startswith(f"{score}_") for score in scores)  # or per modality
    if not search.metric.startswith("val_") or not reported:
        raise fail(
            "search.metric",
            f"{search.metric!r} is not a validation score of {dataset}'s {task} task; use one of "
            f"{', '.join('val_' + s for s in scores)}" + (" (with mode: min for val_mae)" if task == "regression" else ""),
        )


def _validate_cell(spec: SweepSpec, cell: Cell, fail) -> None:
    probes = [{}]
    for name in cell.search_params:
        probes = [{**p, name: v} for p in probes for v in spec.search.params[name].extremes()]
    for probe in probes:
        try:
            resolve_config({**cell.config, **probe})
        except ConfigError as error:
            # A strategy hyperparameter's message also names the strategy: blame the hyperparameter.
            hparams = _all_hparams()
            axes = sorted(spec.grid, key=lambda k: k not in hparams)
            origin = next((f"grid.{k}" for k in axes if k in str(error)), None)
            origin = origin or next((f"search.{k}" for k in probe if k in str(error)), None)
            origin = origin or next((f"base.{k}" for k in spec.base if k in str(error)), "base")
            raise fail(origin, f"{error} (in the cell {cell.label()})") from None
