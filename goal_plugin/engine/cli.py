"""Helpers for the command-line runners: config files, ``--set`` overrides, summaries."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from goal_plugin.engine.config import ConfigError

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
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of keys, got {type(data).__name__}")
    return dict(data)


def apply_overrides(config: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``key=value`` strings; values are parsed as YAML (``lr=1e-3``,
    ``dataset_options.views=[pix,fou]``); a dotted key sets a nested option."""
    import yaml

    result = {key: (dict(value) if isinstance(value, Mapping) else value) for key, value in config.items()}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        value = yaml.safe_load(text) if text.strip() else None
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


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def format_summary(results: Mapping[str, Any]) -> str:
    final = results["final"]
    keys = [k for k in SUMMARY_KEYS if k in final]
    keys += sorted(k for k in final if k.startswith(("probe_acc_", "test_acc_", "weight_")) and k not in keys)
    width = max(len(k) for k in keys)
    lines = ["final metrics"]
    for key in keys:
        value = final[key]
        shown = f"{value:.4f}" if isinstance(value, float) else json.dumps(value)
        lines.append(f"  {key:<{width}}  {shown}")
    return "\n".join(lines)
