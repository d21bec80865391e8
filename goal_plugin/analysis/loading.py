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

A sweep with a ``search`` block records it in ``<experiment>/space.json``
(``{"search": {"params": ..., "metric": "val_acc", "mode": "max"}}``); its
trials that hold a searched key carry ``search_params`` (the searched keys,
comma-separated), ``search_metric`` and ``search_mode``, and
``goal_plugin.analysis.replicates`` keeps one of them per seed. A tidy CSV
marks the trials of a search with the same three columns.

Columns of ``Results.trials``: ``experiment`` and ``trial`` (folder names, or
the CSV's name and line), the config keys, then the final row's metrics and
``task`` (the trainer's final report says which task the trial trained;
``goal_plugin.analysis.metrics.trial_tasks`` reads it). Nested
config values (``dataset_options``, ``backbone_options``) are kept as JSON text
with sorted keys, so they compare and group like scalars. A report key that is
also a config key (``lr``, ``unimodal_loss_weight``: the value in effect in the
last epoch) keeps the config value in ``trials`` and the reported one in
``epochs`` and, from the final report, as ``final_<key>`` in ``trials``.
``finished_at`` is the time of the final report (a CSV row: the file's
modification time), for ``duplicates="newest"``; ``trial_folder`` the path of a
Ray trial's folder (where its checkpoints are; empty for a CSV row). ``Results.epochs`` has one row per (trial, epoch) from the per-epoch
reports; a retried trial may report an epoch twice, and the later report wins.

An INPUT may also be a URI that ``pyarrow.fs`` opens (``s3://bucket/prefix/experiment``,
``gs://...``; endpoint and credentials as for the sweep's ``--storage``, see
``goal_plugin.uris``): the same files are read from the store (one listing, the
small JSON files fetched in parallel), and trials and error files are named by
their URIs. This needs pyarrow (installed with Ray).

A tidy CSV has one row per trial; ``strategy`` and ``seed`` are required, an
optional ``status`` column sends rows other than finished to ``excluded``.
Its metric columns are those named in ``metrics`` (``acc`` names a column
``acc`` or ``test_acc``) and those with the trainer's metric names (see
``goal_plugin.analysis.metrics.is_metric_column``); every other column is
config. A metric cell that is not a number is an error naming the file, the
column and the line. Accuracies and F1 scores may be fractions (0.852) or
percentages (85.2): ``scale="auto"`` decides per column (all nonzero values at
most 1: fractions; all above 1: percentages) and refuses a column that mixes
the two; ``"percent"`` or ``"fraction"`` declares it for every column. Values
are stored as fractions, and a fraction outside [0, 1] (a percentage above
100) is an error, from any input.

After reading, ``goal_plugin.analysis.replicates`` leaves one trial per
replicate (see ``load_results``). ``Results.protocols`` holds each dataset's
evaluation protocol (see ``goal_plugin.analysis.protocols``): the ``data_protocol``
of a trial's final report, or a tidy CSV's ``data_protocol`` column; trials of one
dataset that record different protocols are an error.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import posixpath
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import SimpleNamespace
from typing import Any

import pandas as pd

from goal_plugin.analysis.errors import AnalysisError
from goal_plugin.analysis.metrics import TASK_COLUMN, is_fraction, is_metric_column
from goal_plugin.analysis.protocols import PROTOCOL_COLUMN, dataset_protocols

TABLE_KEYS = ("dataset", "backbone")
BOOKKEEPING = ("experiment", "trial")
# What the reader records about a trial besides its config and metrics; the task (from the
# final report, or a tidy CSV's column) is what the trial's numbers are, never a setting.
TRIAL_RECORD = (
    "finished_at", "search_params", "search_metric", "search_mode", PROTOCOL_COLUMN, TASK_COLUMN, "trial_folder"
)
# Written by the sweep runner (goal_plugin.tune.runner.SPACE_RECORD, the same name; not imported
# here: the analysis needs no Ray).
SPACE_RECORD = "space.json"
SCALES = ("auto", "percent", "fraction")
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
    """Trials of one or more sweeps, ready for ``summarise`` and ``make_plots``.

    ``trials`` and ``epochs`` hold one trial per replicate; ``searched`` every
    trial of a search (the chosen ones with ``chosen`` True), for the figures;
    ``protocols`` each dataset's evaluation protocol in words.
    """

    trials: pd.DataFrame
    epochs: pd.DataFrame
    excluded: pd.DataFrame
    config_columns: list[str]
    notes: list[str] = field(default_factory=list)
    searched: pd.DataFrame = field(default_factory=pd.DataFrame)
    protocols: dict[str, str] = field(default_factory=dict)


@dataclass
class _Trial:
    experiment: str
    trial: str
    config: dict[str, Any]
    status: str
    finished_at: float | None
    error_file: str | None
    final: dict[str, Any]
    epochs: list[dict[str, Any]]


def load_results(
    inputs: Iterable[str | os.PathLike],
    *,
    metrics: Iterable[str] = (),
    scale: str = "auto",
    duplicates: str = "error",
) -> Results:
    """Concatenate the trials of every input (experiment folder, storage folder or CSV).

    ``metrics``: names that are metric columns of a tidy CSV whatever they are
    called (short names as in ``summarise``). ``scale``: how a CSV gives
    accuracies and F1 scores, one of ``SCALES`` (see the module docstring).
    ``duplicates``: what to do with a replicate (dataset, backbone, method,
    seed) found more than once, one of ``replicates.DUPLICATE_RULES``; by
    default an error naming the sources. Trials of a search are first reduced
    to the chosen one per seed and experiment (``replicates.one_per_replicate``).
    """
    from goal_plugin.analysis import replicates

    paths = [_input_path(p) for p in inputs]
    if not paths:
        raise AnalysisError("no input given: pass Ray Tune experiment folders or tidy CSV files")
    if scale not in SCALES:
        raise AnalysisError(f"unknown scale {scale!r}; choose one of: {', '.join(SCALES)}")
    replicates.check_rule(duplicates)
    named_metrics = {c for name in metrics for c in (name, f"test_{name}")}
    notes: list[str] = []
    trials, epochs, excluded, config_columns = [], [], [], []
    seen: set[Path] = set()
    for path in paths:
        if not path.exists():
            raise AnalysisError(f"input not found: {path}")
        if path.is_dir():
            folders = list(_trial_folders(path))
            if not folders:
                raise AnalysisError(f"no trial folders (folders with params.json) under {path}")
            # An experiment given twice, or inside a storage folder also given, counts once.
            folders = [f for f in folders if f.resolve() not in seen]
            seen.update(f.resolve() for f in folders)
            parts = _from_experiment(folders, notes)
        elif path.resolve() in seen:
            continue  # a CSV given twice counts once
        else:
            seen.add(path.resolve())
            parts = _from_csv(path, notes, named_metrics, scale)
        trials.append(parts[0])
        epochs.append(parts[1])
        excluded.append(parts[2])
        config_columns += [c for c in parts[3] if c not in config_columns]
    trials = _fill_table_keys(_concat(trials), notes)
    if trials.empty:
        excluded = _concat(excluded)
        counts = excluded["status"].value_counts().to_dict() if len(excluded) else {}
        found = ", ".join(f"{n} {status}" for status, n in counts.items()) or "no trials"
        raise AnalysisError(f"no finished trials in {', '.join(map(str, paths))} ({found})")
    config_columns = [*config_columns, *[k for k in TABLE_KEYS if k not in config_columns]]
    check_fractions(trials)
    protocols = dataset_protocols(trials)  # before a duplicate under another protocol is judged
    trials, searched = replicates.one_per_replicate(trials, config_columns, duplicates, notes)
    epochs = _fill_table_keys(_concat(epochs), [])
    if len(epochs):
        kept = pd.MultiIndex.from_frame(trials[list(BOOKKEEPING)])
        epochs = epochs[pd.MultiIndex.from_frame(epochs[list(BOOKKEEPING)]).isin(kept)]
    return Results(
        trials=trials.reset_index(drop=True),
        epochs=epochs.reset_index(drop=True),
        excluded=_fill_table_keys(_concat(excluded), []),
        config_columns=config_columns,
        notes=notes,
        searched=searched,
        protocols=protocols,
    )


def add_input_options(parser: argparse.ArgumentParser) -> None:
    """The command-line options for ``load_results``'s ``duplicates`` and ``scale``."""
    from goal_plugin.analysis.replicates import DUPLICATE_RULES

    parser.add_argument(
        "--duplicates",
        choices=DUPLICATE_RULES,
        default="error",
        help="a (dataset, backbone, method, seed) found in several trials: an error naming them "
        "(default), or keep the newest / oldest copy",
    )
    parser.add_argument(
        "--scale",
        choices=SCALES,
        default="auto",
        help="accuracies / F1 scores in tidy CSVs: fractions or percentages (default: detected "
        "per column)",
    )


def check_fractions(trials: pd.DataFrame, columns: Iterable[str] | None = None) -> None:
    """Accuracies and F1 scores are fractions from here on: never above 100 %.

    ``columns``: the fraction metrics to check (default: every metric column that is one).
    """
    if columns is None:
        columns = [c for c in trials.columns if is_metric_column(c) and is_fraction(c)]
    for column in columns:
        values = pd.to_numeric(trials[column], errors="coerce")
        outside = trials[(values < 0) | (values > 1)]
        if len(outside):
            row = outside.iloc[0]
            raise AnalysisError(
                f"{column} = {row[column]} in {row['experiment']}/{row['trial']} is not a fraction "
                f"in [0, 1] ({len(outside)} trial(s) like it); accuracies and F1 scores are read "
                "as fractions: name a tidy CSV's metric columns and their scale "
                "(--metric, --scale; load_results(metrics=..., scale=...))"
            )


def _trial_folders(root: Path) -> Iterator[Path]:
    if isinstance(root, _StoredPath):
        yield from root.tree.trial_folders(root)
        return
    for folder, subfolders, files in os.walk(root):
        if "params.json" in files:
            subfolders.clear()  # checkpoints inside a trial are not trials
            yield Path(folder)
        # Hidden folders hold what the sweep runner set aside (e.g. ``.superseded``).
        subfolders[:] = sorted(s for s in subfolders if not s.startswith("."))


def _from_experiment(folders: list[Path], notes: list[str]):
    records = [_read_trial(folder, notes) for folder in folders]
    searches = {folder.parent: _search_record(folder.parent) for folder in folders}
    config_columns: list[str] = []
    for record in records:
        config_columns += [k for k in record.config if k not in config_columns]
    trial_rows, epoch_rows, excluded_rows = [], [], []
    for folder, r in zip(folders, records):
        ids = {"experiment": r.experiment, "trial": r.trial}
        if r.status == "finished":
            metrics = {k: v for k, v in r.final.items() if k not in r.config}
            in_effect = {f"final_{k}": v for k, v in r.final.items() if k in r.config}
            search = _search_columns(searches[folder.parent], r.config)
            record = {"finished_at": r.finished_at, "trial_folder": str(folder), **search}
            trial_rows.append({**ids, **r.config, **metrics, **in_effect, **record})
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
        finished_at=finals[-1].get("timestamp") if finals else None,
        error_file=str(error_file) if error_file.exists() else None,
        final=_metrics(finals[-1]) if finals else {},
        epochs=[_metrics(by_epoch[e]) for e in sorted(by_epoch)],
    )


def _search_record(experiment: Path) -> dict[str, Any] | None:
    """The ``search`` block the sweep recorded in ``space.json``; None for a grid."""
    path = experiment / SPACE_RECORD
    if not path.is_file():
        return None
    try:
        search = json.loads(path.read_text()).get("search")
    except (OSError, ValueError, AttributeError) as error:
        raise AnalysisError(f"unreadable {path}: {error}") from None
    if search is None:
        return None
    if not isinstance(search, dict) or not search.get("params"):
        raise AnalysisError(f"{path}: 'search' must be a mapping with 'params'")
    return search


def _search_columns(search: dict[str, Any] | None, config: dict[str, Any]) -> dict[str, Any]:
    """``search_params`` / ``search_metric`` / ``search_mode`` of a trial that a search sampled."""
    if search is None:
        return {}
    # A cell's strategy may take none of the searched keys: that cell ran once, a grid trial.
    searched = [name for name in search["params"] if name in config]
    if not searched:
        return {}
    return {
        "search_params": ",".join(searched),
        "search_metric": search.get("metric", "val_acc"),
        "search_mode": search.get("mode", "max"),
    }


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


def _from_csv(path: Path, notes: list[str], named_metrics: set[str], scale: str):
    try:
        table = pd.read_csv(path if isinstance(path, Path) else io.StringIO(path.read_text()))
    except pd.errors.EmptyDataError:
        raise AnalysisError(f"{path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise AnalysisError(f"{path} is not a readable CSV: {error}") from None
    missing = [c for c in REQUIRED_CSV_COLUMNS if c not in table.columns]
    if missing:
        raise AnalysisError(
            f"{path} lacks the column(s) {', '.join(missing)}; it has: {', '.join(map(str, table.columns))}"
        )
    for column in REQUIRED_CSV_COLUMNS:
        if table[column].isna().any():
            raise AnalysisError(
                f"{path}, column {column}: empty on line(s) {_lines(table[column].isna())}"
            )
    metric_columns = [c for c in table.columns if c in named_metrics or is_metric_column(c)]
    for column in metric_columns:
        if column in named_metrics or is_fraction(column):
            table[column] = _numbers(table[column], path, column)
        if is_fraction(column):
            table[column] = _as_fractions(table[column], path, column, scale, notes)
    if "trial" not in table.columns:
        table.insert(0, "trial", [f"{path.name}:{line}" for line in range(2, len(table) + 2)])
    if "experiment" not in table.columns:
        table.insert(0, "experiment", path.stem)
    if "finished_at" not in table.columns:
        table["finished_at"] = path.stat().st_mtime
    config_columns = [
        c
        for c in table.columns
        if c not in (*BOOKKEEPING, *TRIAL_RECORD, "status", "error_file")
        and c not in metric_columns
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


def _numbers(column: pd.Series, path: Path, name: str) -> pd.Series:
    """The column as floats; a cell that is not a number is an error naming its line."""
    values = pd.to_numeric(column, errors="coerce")
    bad = values.isna() & column.notna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise AnalysisError(
            f"{path}, column {name}, line {row + 2}: {column.iloc[row]!r} is not a number"
            + (f" ({int(bad.sum())} such cells)" if bad.sum() > 1 else "")
        )
    return values.astype(float)


def _as_fractions(
    values: pd.Series, path: Path, name: str, scale: str, notes: list[str]
) -> pd.Series:
    """An accuracy / F1 column as fractions, whether the CSV gave fractions or percentages."""
    where = f"{path}, column {name}"
    negative = values < 0
    if negative.any():
        raise AnalysisError(f"{where}: negative value(s) on line(s) {_lines(negative)}")
    nonzero = values[values > 0]
    if scale == "auto":
        if (nonzero <= 1).all():
            scale = "fraction"
        elif (nonzero > 1).all():
            scale = "percent"
        else:
            raise AnalysisError(
                f"{where} mixes fractions (values <= 1, line(s) {_lines((values > 0) & (values <= 1))}) "
                f"and percentages (values > 1, line(s) {_lines(values > 1)}); fix the file or declare "
                "its scale (--scale percent or fraction)"
            )
        if scale == "percent":
            notes.append(f"{where}: read as percentages")
    limit = 100 if scale == "percent" else 1
    above = values > limit
    if above.any():
        raise AnalysisError(
            f"{where}: value(s) above {limit} on line(s) {_lines(above)}, not "
            f"{'a percentage' if scale == 'percent' else 'a fraction'}"
        )
    return values / 100 if scale == "percent" else values


def _lines(rows: pd.Series) -> str:
    """CSV line numbers (the header is line 1) of the first few rows where ``rows`` holds."""
    return ", ".join(str(i + 2) for i in rows.to_numpy().nonzero()[0][:5])


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


def _input_path(value: str | os.PathLike) -> Path:
    """A local input as a ``Path``; a URI as a ``_StoredPath`` that reads like one."""
    from goal_plugin import uris

    if isinstance(value, str) and uris.is_uri(value):
        return _StoredTree(value).top
    return Path(value)


TRIAL_FILES = ("params.json", "result.json", SPACE_RECORD)  # what the reader opens
PARALLEL_READS = 16  # object stores answer each request slowly but many at once


class _StoredTree:
    """The files under a URI: listed once, the JSON files the reader opens fetched in parallel."""

    def __init__(self, uri: str):
        try:
            import pyarrow.fs as pafs
        except ImportError:
            raise AnalysisError(f"{uri}: reading a URI needs pyarrow (pip install pyarrow)") from None

        from goal_plugin import uris

        try:
            self.filesystem, self.root = uris.open_uri(uri)
            found = self.filesystem.get_file_info(self.root)
            infos = [found]
            if found.type == pafs.FileType.Directory:
                infos += self.filesystem.get_file_info(pafs.FileSelector(self.root, recursive=True))
        except (ValueError, OSError) as error:
            why = uris.reason(error) if isinstance(error, OSError) else error
            raise AnalysisError(f"{uri}: {why}") from None
        self.uri = uris.split_query(uri)[0]
        self.root = self.root.rstrip("/")
        self.infos = {info.path.rstrip("/"): info for info in infos if info.type != pafs.FileType.NotFound}
        wanted = [
            path
            for path, info in self.infos.items()
            if info.type == pafs.FileType.File and posixpath.basename(path) in TRIAL_FILES
        ]
        with ThreadPoolExecutor(PARALLEL_READS) as pool:
            self.texts = dict(zip(wanted, pool.map(self._fetch, wanted)))
        self.top = _StoredPath(self, self.root)

    def _fetch(self, path: str) -> str | OSError:
        try:
            with self.filesystem.open_input_stream(path) as stream:
                return stream.read().decode()
        except OSError as error:  # raised when the file is read, naming it
            return error

    def text(self, path: str) -> str:
        text = self.texts[path] if path in self.texts else self._fetch(path)
        if isinstance(text, OSError):
            raise text
        return text

    def location(self, path: str) -> str:
        return self.uri + path[len(self.root):]

    def trial_folders(self, top: _StoredPath) -> Iterator[_StoredPath]:
        """As the local walk: folders with ``params.json`` under ``top``, not inside
        another trial nor inside a hidden folder, in path order."""
        prefix = top.path + "/"
        folders = sorted(
            PurePosixPath(posixpath.dirname(path)).parts
            for path, info in self.infos.items()
            if posixpath.basename(path) == "params.json" and path.startswith(prefix)
            and info.type.name == "File"
        )
        top_parts, trials = PurePosixPath(top.path).parts, []
        for parts in folders:
            below = parts[len(top_parts):]
            if any(part.startswith(".") for part in below):
                continue
            if any(parts[: len(trial)] == trial for trial in trials):
                continue  # checkpoints inside a trial are not trials
            trials.append(parts)
            yield _StoredPath(self, "/".join(parts))


class _StoredPath:
    """A file or folder of a ``_StoredTree`` with the part of ``pathlib.Path`` the reader uses."""

    def __init__(self, tree: _StoredTree, path: str):
        self.tree, self.path = tree, path.rstrip("/")

    def __truediv__(self, name: str) -> _StoredPath:
        return _StoredPath(self.tree, f"{self.path}/{name}")

    def __str__(self) -> str:
        return self.tree.location(self.path)

    def __eq__(self, other) -> bool:
        return isinstance(other, _StoredPath) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def stem(self) -> str:
        return PurePosixPath(self.path).stem

    @property
    def parent(self) -> _StoredPath:
        return _StoredPath(self.tree, posixpath.dirname(self.path))

    def resolve(self) -> _StoredPath:
        return self

    def exists(self) -> bool:
        return self.path in self.tree.infos

    def is_dir(self) -> bool:
        return self.exists() and self.tree.infos[self.path].type.name == "Directory"

    def is_file(self) -> bool:
        return self.exists() and self.tree.infos[self.path].type.name == "File"

    def read_text(self) -> str:
        return self.tree.text(self.path)

    def stat(self) -> SimpleNamespace:
        mtime = self.tree.infos[self.path].mtime
        return SimpleNamespace(st_mtime=mtime.timestamp() if mtime else time.time())
