"""Complete the trials' ``result.json`` and ``params.json`` files after a killed driver.

Ray's driver keeps each trial's log (``result.json``, one row per report), its
configuration (``params.json``, written when the trial starts) and the
experiment state in a staging folder and copies them into storage file by file,
concurrently. A driver killed during that copy can leave a state that says a
trial finished beside a log that lacks its last reports, the final one
included, or beside no ``params.json`` at all; after the resume Ray keeps that
trial as finished and never writes either file again. A trial resumed from a
checkpoint newer than its stored log leaves a gap of epochs the same way. Any
of these makes the analysis count a finished trial as unfinished, skip it, or
plot curves with holes.

Ray's state holds each trial's configuration and final report, and every
finished trial's last checkpoint (for a trial of several workers, its Train
run's last) holds every epoch's report (``epochs.json``), so
after ``Tuner.fit`` has saved its state, a missing ``params.json`` is written from
the configuration and the rows a log lacks are appended. The epoch rows carry
``"restored_from_checkpoint": true``, as they lack the bookkeeping keys that Ray
adds to each report (time, iteration, node).
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Iterable
from typing import Any

RESULT_FILE = "result.json"
PARAMS_FILE = "params.json"
EPOCHS_FILE = "epochs.json"  # written by the trainable into its final checkpoint


def complete_result_logs(results: Iterable, echo: Callable[[str], None]) -> None:
    """Write each trial's missing ``params.json``, and append to each finished trial's
    ``result.json`` the reports it lacks (see the module docstring)."""
    import pyarrow.fs as pafs

    for result in results:
        params_path = posixpath.join(result.path, PARAMS_FILE)
        if result.config is not None and result.filesystem.get_file_info(params_path).type != pafs.FileType.File:
            with result.filesystem.open_output_stream(params_path) as stream:  # as Ray's JSON logger writes it
                stream.write(json.dumps(result.config, indent=2, sort_keys=True, default=str).encode())
            echo(
                f"{posixpath.basename(result.path)}: wrote its {PARAMS_FILE}, which the stopped driver had not "
                "saved (from the trial's configuration in Ray's state)"
            )
        metrics = result.metrics or {}
        checkpoint = result.checkpoint or _train_run_checkpoint(result)
        if result.error is not None or not metrics.get("final") or checkpoint is None:
            continue
        log_path = posixpath.join(result.path, RESULT_FILE)
        rows = _read_rows(result.filesystem, log_path)
        missing = missing_rows(rows, checkpoint, metrics)
        if missing:
            _write_rows(result.filesystem, log_path, rows + missing)
            echo(
                f"{posixpath.basename(result.path)}: added {len(missing)} report(s) to its {RESULT_FILE} "
                "that the stopped driver had not saved (from the trial's last checkpoint)"
            )


def _train_run_checkpoint(result):
    """A trial of several workers has no Tune checkpoint: Ray Train's ``TuneReportCallback``
    passes on the path of its run's checkpoint (on the trial's storage) with each report."""
    from ray import tune
    from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY

    path = (result.metrics or {}).get(CHECKPOINT_PATH_KEY)
    return tune.Checkpoint(path, filesystem=result.filesystem) if isinstance(path, str) else None


def missing_rows(rows: list[dict[str, Any]], checkpoint, final: dict[str, Any]) -> list[dict[str, Any]]:
    """The epoch reports (from ``checkpoint``) and the final report ``final`` that ``rows`` lacks."""
    logged = {row["epoch"] for row in rows if "epoch" in row and not row.get("final")}
    epochs = json.loads(_read_text(checkpoint.filesystem, posixpath.join(checkpoint.path, EPOCHS_FILE)))
    missing = [{**row, "restored_from_checkpoint": True} for row in epochs if row["epoch"] not in logged]
    if not any(row.get("final") for row in rows):
        missing.append(final)
    return missing


def _read_text(filesystem, path: str) -> str:
    with filesystem.open_input_stream(path) as stream:
        return stream.read().decode()


def _read_rows(filesystem, path: str) -> list[dict[str, Any]]:
    """The log's complete rows (a line cut short by a killed writer is dropped)."""
    import pyarrow.fs as pafs

    if filesystem.get_file_info(path).type != pafs.FileType.File:
        return []
    rows = []
    for line in _read_text(filesystem, path).splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _write_rows(filesystem, path: str, rows: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(row, default=str) + "\n" for row in rows)
    with filesystem.open_output_stream(path) as stream:
        stream.write(text.encode())
