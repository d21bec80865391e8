"""Read finished sweeps: Ray Tune experiment folders and tidy CSVs.

A Ray experiment is read from the plain-JSON files each trial writes,
``params.json`` (the config) and ``result.json`` (one JSON object per report),
without importing Ray or the trainable and without unpickling anything: a
pickle can run arbitrary code and ties the reader to library versions. Any
folder holding ``params.json`` is a trial; an INPUT may be one experiment or a
storage folder holding several.

Trial status, from what is on disk:

* finished: ``result.json`` has a row with ``"final": true``;
* errored: no final row and an ``error.txt``;
* unfinished: neither.

Errored and unfinished trials go to ``Results.excluded`` and into no statistic.

Columns of ``Results.trials``: ``experiment`` and ``trial`` (folder names, or
the CSV's name and line), the config keys, then the final row's metrics. Nested
config values (``dataset_options``, ``backbone_options``) are kept as JSON text
with sorted keys, so they compare and group like scalars. A report key that is
also a config key (``lr``, ``unimodal_loss_weight``: the value in effect in the
last epoch) keeps the config value in ``trials`` and the reported one in
``epochs``. ``Results.epochs`` has one row per (trial, epoch) from the per-epoch
reports; a retried trial may report an epoch twice, and the later report wins.

A tidy CSV has one row per trial; ``strategy`` and ``seed`` are required, an
optional ``status`` column sends rows other than finished to ``excluded``.
Which CSV columns are config (as opposed to metrics) follows the trainer's
metric names, see ``goal_plugin.analysis.metrics.is_metric_column``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from goal_plugin.analysis.errors import AnalysisError
from goal_plugin.analysis.metrics import is_metric_column

TABLE_KEYS = ("dataset", "backbone")
BOOKKEEPING = ("experiment", "trial")
REQUIRED_CSV_COLUMNS = ("strategy", "seed")
UNSPECIFIED = "unspecified"
# Keys Ray adds to every report; they describe the run, not the trial's results.
RAY_KEYS = frozenset(
    {
        "timestamp",
        "checkpoint_dir_name",
        "should_checkpoint",
        "done",
        "training_iteration",
        "trial_id",
        "date",
        "time_this_iter_s",
        "time_total_s",
        "pid",
        "hostname",
        "node_ip",
        "config",
        "time_since_restore",
        "iterations_since_restore",
        "timesteps_total",
        "episodes_total",
        "timesteps_since_restore",
        "experiment_id",
        "experiment_tag",
        "warmup_time",
        "final",
    }
)
FINISHED_WORDS = frozenset({"finished", "terminated"})
ERRORED_WORDS = frozenset({"errored", "error", "failed"})


@dataclass
class Results:
    """Trials of one or more sweeps, ready for ``summarise`` and ``make_plots``."""

    trials: pd.DataFrame
    epochs: pd.DataFrame
    excluded: pd.DataFrame
    config_columns: list[str]
    notes: list[str] = field(default_factory=list)


@dataclass
class _Trial:
    experiment: str
    trial: str
    config: dict[str, Any]
    status: str
    error_file: str | None
    final: dict[str, Any]
    epochs: list[dict[str, Any]]


def load_results(inputs: Iterable[str | os.PathLike]) -> Results:
    """Concatenate the trials of every input (experiment folder, storage folder or CSV)."""
    paths = [Path(p) for p in inputs]
    if not paths:
        raise AnalysisError("no input given: pass Ray Tune experiment folders or tidy CSV files")
    notes: list[str] = []
    trials, epochs, excluded, config_columns = [], [], [], []
    seen_folders: set[Path] = set()
    for path in paths:
        if not path.exists():
            raise AnalysisError(f"input not found: {path}")
        if path.is_dir():
            folders = list(_trial_folders(path))
            if not folders:
                raise AnalysisError(f"no trial folders (folders with params.json) under {path}")
            # An experiment given twice, or inside a storage folder also given, counts once.
            folders = [f for f in folders if f.resolve() not in seen_folders]
            seen_folders.update(f.resolve() for f in folders)
            parts = _from_experiment(folders, notes)
        else:
            parts = _from_csv(path, notes)
        trials.append(parts[0])
        epochs.append(parts[1])
        excluded.append(parts[2])
        config_columns += [c for c in parts[3] if c not in config_columns]
    results = Results(
        trials=_fill_table_keys(_concat(trials), notes),
        epochs=_fill_table_keys(_concat(epochs), []),
        excluded=_fill_table_keys(_concat(excluded), []),
        config_columns=[*config_columns, *[k for k in TABLE_KEYS if k not in config_columns]],
        notes=notes,
    )
    if results.trials.empty:
        counts = (
            results.excluded["status"].value_counts().to_dict() if len(results.excluded) else {}
        )
        found = ", ".join(f"{n} {status}" for status, n in counts.items()) or "no trials"
        raise AnalysisError(f"no finished trials in {', '.join(map(str, paths))} ({found})")
    return results


def _trial_folders(root: Path) -> Iterator[Path]:
    for folder, subfolders, files in os.walk(root):
        if "params.json" in files:
            subfolders.clear()  # checkpoints inside a trial are not trials
            yield Path(folder)
        # Hidden folders hold what the sweep runner set aside (e.g. ``.superseded``).
        subfolders[:] = sorted(s for s in subfolders if not s.startswith("."))


def _from_experiment(folders: list[Path], notes: list[str]):
    records = [_read_trial(folder, notes) for folder in folders]
    config_columns: list[str] = []
    for record in records:
        config_columns += [k for k in record.config if k not in config_columns]
    trial_rows, epoch_rows, excluded_rows = [], [], []
    for r in records:
        ids = {"experiment": r.experiment, "trial": r.trial}
        if r.status == "finished":
            metrics = {k: v for k, v in r.final.items() if k not in r.config}
            trial_rows.append({**ids, **r.config, **metrics})
            epoch_rows += [{**ids, **r.config, **row} for row in r.epochs]
        else:
            excluded_rows.append(
                {**ids, "status": r.status, "error_file": r.error_file, **r.config}
            )
    return (
        pd.DataFrame(trial_rows),
        pd.DataFrame(epoch_rows),
        pd.DataFrame(excluded_rows, columns=_excluded_columns(config_columns)),
        config_columns,
    )


def _read_trial(folder: Path, notes: list[str]) -> _Trial:
    try:
        params = json.loads((folder / "params.json").read_text())
    except (OSError, ValueError) as error:
        raise AnalysisError(f"unreadable {folder / 'params.json'}: {error}") from None
    if not isinstance(params, dict):
        raise AnalysisError(f"{folder / 'params.json'} is not a JSON object")
    config = {k: _scalar(v) for k, v in params.items()}
    reports = _read_reports(folder / "result.json", notes)
    finals = [row for row in reports if row.get("final") is True]
    by_epoch = {
        row["epoch"]: row for row in reports if "epoch" in row and row.get("final") is not True
    }
    error_file = folder / "error.txt"
    if finals:
        status = "finished"
    else:
        status = "errored" if error_file.exists() else "unfinished"
    return _Trial(
        experiment=folder.parent.name,
        trial=folder.name,
        config=config,
        status=status,
        error_file=str(error_file) if error_file.exists() else None,
        final=_metrics(finals[-1]) if finals else {},
        epochs=[_metrics(by_epoch[e]) for e in sorted(by_epoch)],
    )


def _read_reports(path: Path, notes: list[str]) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows, unreadable = [], 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            unreadable += 1  # a line cut short by a crash
            continue
        if isinstance(row, dict):
            rows.append(row)
    if unreadable:
        notes.append(f"{path}: skipped {unreadable} unreadable line(s)")
    return rows


def _metrics(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in RAY_KEYS}


def _scalar(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return value


def _from_csv(path: Path, notes: list[str]):
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise AnalysisError(f"{path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise AnalysisError(f"{path} is not a readable CSV: {error}") from None
    missing = [c for c in REQUIRED_CSV_COLUMNS if c not in table.columns]
    if missing:
        raise AnalysisError(
            f"{path} lacks the column(s) {', '.join(missing)}; it has: {', '.join(map(str, table.columns))}"
        )
    if "trial" not in table.columns:
        table.insert(0, "trial", [f"{path.name}:{line}" for line in range(2, len(table) + 2)])
    if "experiment" not in table.columns:
        table.insert(0, "experiment", path.stem)
    config_columns = [
        c
        for c in table.columns
        if c not in (*BOOKKEEPING, "status", "error_file") and not is_metric_column(c)
    ]
    if "status" not in table.columns:
        return (
            table,
            pd.DataFrame(),
            pd.DataFrame(columns=_excluded_columns(config_columns)),
            config_columns,
        )
    status = table["status"].astype(str).str.strip().str.lower()
    finished = status.isin(FINISHED_WORDS)
    excluded = table.loc[~finished].assign(
        status=["errored" if s in ERRORED_WORDS else "unfinished" for s in status[~finished]],
        error_file=None,
    )[_excluded_columns(config_columns)]
    return table.loc[finished].drop(columns="status"), pd.DataFrame(), excluded, config_columns


def _excluded_columns(config_columns: list[str]) -> list[str]:
    return ["trial", "experiment", "status", "error_file", *config_columns]


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f.columns)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _fill_table_keys(table: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Trials without dataset / backbone form one group, so that a CSV may omit them."""
    if table.empty:
        return table
    for key in TABLE_KEYS:
        if key not in table.columns:
            table[key] = UNSPECIFIED
            notes.append(f"no {key!r} column: all trials form one {key} group {UNSPECIFIED!r}")
        elif table[key].isna().any():
            notes.append(
                f"{int(table[key].isna().sum())} trial(s) without a {key}: grouped as {UNSPECIFIED!r}"
            )
            table[key] = table[key].astype(object).where(table[key].notna(), UNSPECIFIED)
    return table
