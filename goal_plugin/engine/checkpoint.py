"""Per-epoch checkpoints that restore a run exactly.

A checkpoint holds the model, optimizer, scheduler, AMP scaler and strategy
state, every random generator (python, numpy, torch CPU and CUDA; the data order
is derived from the seed and the epoch) and the metric history. It contains only
tensors and plain Python values, is written atomically (temporary file, then
rename) and is read with ``torch.load(weights_only=True)``: a corrupt or foreign
file raises ``CheckpointError`` and is never executed.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "goal_plugin.checkpoint"
VERSION = 1
FILENAME = "checkpoint.pt"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used (corrupt, foreign, or from another config)."""


def capture_rng() -> dict[str, Any]:
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_file(path: str | os.PathLike) -> Path:
    """``path`` itself, or the checkpoint inside the folder ``path``."""
    path = Path(path)
    return path / FILENAME if path.is_dir() else path


def save_checkpoint(directory: str | os.PathLike, payload: dict[str, Any]) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / FILENAME
    temporary = directory / f".{FILENAME}.{os.getpid()}.tmp"
    torch.save({"format": FORMAT, "version": VERSION, **payload}, temporary)
    os.replace(temporary, target)
    return target


def load_checkpoint(path: str | os.PathLike, fingerprint: str | None = None) -> dict[str, Any]:
    """Read a checkpoint safely; ``fingerprint`` must match the run's config if given."""
    file = checkpoint_file(path)
    if not file.is_file():
        raise CheckpointError(f"no checkpoint at {str(file)!r}")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(
            f"{str(file)!r} is corrupt or not a goal_plugin checkpoint "
            f"(refused by the safe loader: {type(error).__name__}: {str(error)[:200]})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{str(file)!r} is not a goal_plugin checkpoint")
    if state.get("version") != VERSION:
        raise CheckpointError(
            f"{str(file)!r} has checkpoint version {state.get('version')}, this build reads {VERSION}"
        )
    if fingerprint is not None and state.get("config_fingerprint") != fingerprint:
        raise CheckpointError(
            f"{str(file)!r} was written by a run with a different configuration; "
            "resume with the configuration it was started with"
        )
    return state
