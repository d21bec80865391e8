"""Helpers for the command-line runners: config files, ``--set`` overrides, the
saved config of a run, the key listing and summaries. Every bad input raises
``ConfigError`` with a one-line message naming the file or option."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from goal_plugin.engine.config import (
    DEFAULTS,
    HARNESS_KEYS,
    RECORDED_KEY,
    ConfigError,
    TrialConfig,
)
from goal_plugin.registry import STRATEGIES

SUMMARY_KEYS = (
    "test_acc",
    "test_macro_f1",
    "val_acc",
    "best_val_epoch",
    "test_acc_at_best_val",
    "conflict_fraction",
    "cosine_before",
    "cosine_after",
    "cca_mean",
    "time_per_sample_ms",
    "peak_memory_mb",
)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML (or JSON) mapping of trial-config keys."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} is not a file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(
            f"config file {str(path)!r} is not valid YAML: {_yaml_problem(error)}"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"config file {str(path)!r} must hold a mapping of keys, got {type(data).__name__}"
        )
    return dict(data)


def apply_overrides(config: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``key=value`` strings; values are parsed as YAML (``lr=1e-3``,
    ``dataset_options.views=[pix,fou]``); a dotted key sets a nested option."""
    import yaml

    result = {
        key: (dict(value) if isinstance(value, Mapping) else value) for key, value in config.items()
    }
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as error:
            raise ConfigError(
                f"--set {key}: {text!r} is not a valid YAML value: {_yaml_problem(error)}"
            ) from None
        if isinstance(value, str) and _looks_numeric(value):
            value = float(value)  # PyYAML reads "1e-3" as a string
        head, dot, tail = key.partition(".")
        if dot:
            nested = result.setdefault(head, {})
            if not isinstance(nested, dict):
                raise ConfigError(f"--set {key}: {head!r} is not a mapping")
            nested[tail] = value
        else:
            result[key] = value
    return result


def load_run_config(folder: str | Path) -> dict[str, Any]:
    """The config a run folder was started with (its ``config.json``, without the
    protocol recorded there; a resumed run checks it against its checkpoint's)."""
    folder = Path(folder)
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ConfigError(f"{str(folder)!r} holds no config.json: not a run folder")
    try:
        data = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{str(config_file)!r} is not a readable JSON config: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{str(config_file)!r} must hold a JSON object of config keys, got {type(data).__name__}"
        )
    data.pop(RECORDED_KEY, None)
    return data


def format_config_keys() -> str:
    """Every trial-config key with its default, then every strategy hyperparameter
    with its default and the strategies that take it (read from the registry)."""
    width = max(map(len, DEFAULTS))
    lines = ["config keys and defaults"]
    for key, value in DEFAULTS.items():
        note = "  (the strategy's recipe decides)" if key in HARNESS_KEYS else ""
        lines.append(f"  {key:<{width}}  {json.dumps(value)}{note}")
    takers: dict[str, dict[str, list[str]]] = {}  # hyperparameter -> default -> strategies
    for strategy in STRATEGIES.names():
        for name, default in STRATEGIES.options(strategy).items():
            takers.setdefault(name, {}).setdefault(json.dumps(default, default=str), []).append(
                strategy
            )
    lines.append("strategy hyperparameters: default (strategies that take it)")
    width = max(map(len, takers), default=0)
    for name in sorted(takers):
        uses = "; ".join(
            f"{default} ({', '.join(names)})" for default, names in takers[name].items()
        )
        lines.append(f"  {name:<{width}}  {uses}")
    return "\n".join(lines)


def _yaml_problem(error: Exception) -> str:
    """A YAML error on one line: the problem and where it is."""
    import yaml

    if isinstance(error, yaml.MarkedYAMLError) and error.problem:
        mark = error.problem_mark
        return error.problem + (
            f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        )
    return " ".join(str(error).split())


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def format_summary(results: Mapping[str, Any]) -> str:
    final = results["final"]
    keys = [k for k in SUMMARY_KEYS if k in final]
    keys += sorted(
        k for k in final if k.startswith(("probe_acc_", "test_acc_", "weight_")) and k not in keys
    )
    width = max(len(k) for k in keys)
    lines = ["final metrics"]
    for key in keys:
        value = final[key]
        shown = f"{value:.4f}" if isinstance(value, float) else json.dumps(value)
        lines.append(f"  {key:<{width}}  {shown}")
    dataset = results["config"]["dataset"]
    lines.append(f"Evaluation protocol ({dataset}): {results[RECORDED_KEY]}")
    return "\n".join(lines)


def check_trial_data(config: TrialConfig) -> tuple[str, bool]:
    """``--check-data`` of one trial: every file of each split of its dataset opened as
    training would read it (``goal_plugin.data.check_data``), nothing trained. Returns
    the report (a table per split, then every problem found, e.g. each unreadable row
    of a ``files`` manifest with its line and column) and whether all was readable."""
    from goal_plugin.data import check_data, format_check

    try:
        results = check_data(config.dataset, config.data_root, config.dataset_options)
    except ValueError as error:
        raise ConfigError(
            f"dataset_options / data_root of dataset {config.dataset!r}: {error}"
        ) from None
    bad = [r for r in results if not r.ok]
    summary = (
        f"data check: {len(bad)} of {len(results)} split(s) have missing or malformed files"
        if bad
        else f"data check: every file of {len(results)} split(s) opened and had the expected shape"
    )
    return f"{format_check(results)}\n{summary}", not bad
