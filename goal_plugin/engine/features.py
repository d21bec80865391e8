"""The features a trained run's model gives on one split: what its fusion module reads.

``split_features(source, split)`` rebuilds the run from the configuration stored
beside its checkpoint (``prepare(resolve_config(...))``), loads the checkpoint's
model state and reads the split in eval mode, without gradients. ``source`` is
one of

* a training run's folder (``fit(output_dir=...)``: ``config.json`` and
  ``checkpoint/checkpoint.pt``);
* a sweep trial's folder (``params.json`` and Ray's ``checkpoint_<n>/`` folders:
  the highest ``<n>`` that holds ``checkpoint.pt``);
* a checkpoint file or folder inside either (the configuration is read from the
  folder above it);
* the URI of a sweep trial's folder in storage (``s3://...``, anything
  ``goal_plugin.uris`` opens): its configuration and newest checkpoint are
  copied to a temporary folder and read from there.

The checkpoint must hold the run's last epoch (a finished run's model), written
by the stored configuration (its fingerprint) under the evaluation protocol the
data give now. ``data_root`` replaces the stored one (the data moved since
training); ``device`` is where the encoders run (default the CPU, whatever the
run trained on). The features are those of the last epoch's model, not of the
epoch with the best validation score (checkpoints keep the last one).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import NamedTuple

import torch

from goal_plugin import uris
from goal_plugin.data import DataError
from goal_plugin.data.base import SPLITS
from goal_plugin.engine import checkpoint as ckpt
from goal_plugin.engine.config import (
    DEFAULTS,
    RECORDED_KEY,
    ConfigError,
    TrialConfig,
    resolve_config,
)
from goal_plugin.engine.trainer import _data_error, _split_features, prepare

RUN_CONFIG, TRIAL_CONFIG = "config.json", "params.json"  # fit's run folder, a Ray trial folder
ENGINE_CHECKPOINTS = "checkpoint"  # fit's folder of checkpoint.pt
RAY_CHECKPOINT = re.compile(r"checkpoint_(\d+)")


class SplitFeatures(NamedTuple):
    """Per modality (in the model's order) the (N, d_m) float32 features on the CPU, and
    the N labels, in the split's order."""

    features: dict[str, torch.Tensor]
    labels: torch.Tensor

    def fused(self) -> torch.Tensor:
        """The fusion module's input: every modality's features concatenated in modality order."""
        return torch.cat(list(self.features.values()), dim=1)


def split_features(
    source: str | os.PathLike,
    split: str = "test",
    *,
    data_root: str | os.PathLike | None = None,
    device: str = "cpu",
) -> SplitFeatures:
    """The eval-mode features and labels of ``split`` under the model of ``source``'s
    last checkpoint (see the module docstring). Raises ``CheckpointError`` (no, a
    foreign or an unfinished run's checkpoint) or ``ConfigError`` (the stored
    configuration, the data), each naming the file or the key."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if uris.is_uri(os.fspath(source)):
        uri = os.fspath(source)
        with tempfile.TemporaryDirectory(prefix="goal_plugin_trial_") as local:
            try:
                return split_features(_fetch_trial(uri, Path(local)), split, data_root=data_root, device=device)
            except (ckpt.CheckpointError, ConfigError) as error:  # name the stored files, not the copies
                raise type(error)(str(error).replace(local, uris.split_query(uri)[0])) from None
    config_file, checkpoint_file = locate_run(Path(source))
    stored = _stored_config(config_file)
    overrides = {
        "device": device,
        **({"data_root": os.fspath(data_root)} if data_root is not None else {}),
    }
    config = resolve_config({**stored, **overrides})
    state = ckpt.load_checkpoint(checkpoint_file, _trained_fingerprint(config, stored))
    last = state.get("epoch")
    if last != config.epochs - 1:
        raise ckpt.CheckpointError(
            f"{str(checkpoint_file)!r} holds epoch {last + 1 if isinstance(last, int) else last} of "
            f"{config.epochs}: the run did not finish, so this is not its trained model"
        )
    run = prepare(config)
    recorded = state.get(RECORDED_KEY, run.data_protocol)
    if recorded != run.data_protocol:
        raise ckpt.CheckpointError(
            f"{str(checkpoint_file)!r} was evaluated under the protocol {recorded!r}, the data here "
            f"give {run.data_protocol!r}: its {split} split is not this one"
        )
    run.model.load_state_dict(state["model"])
    parts: dict[str, list[torch.Tensor]] = {m: [] for m in run.modalities}
    labels = []
    try:
        for features, batch_labels in _split_features(run, split):
            for modality, values in zip(run.modalities, features):
                parts[modality].append(values.cpu())
            labels.append(batch_labels.cpu())
    except DataError as error:
        raise _data_error(config, error) from None
    return SplitFeatures({m: torch.cat(values) for m, values in parts.items()}, torch.cat(labels))


def locate_run(source: Path) -> tuple[Path, Path]:
    """(the stored configuration, the checkpoint file) of ``source`` (see the module docstring)."""
    if not source.exists():
        raise ckpt.CheckpointError(f"no run at {str(source)!r}")
    if source.is_file() or (source / ckpt.FILENAME).is_file():
        checkpoint_file = ckpt.checkpoint_file(source)
        folder = checkpoint_file.parent.parent
    else:
        folder, checkpoint_file = source, _newest_checkpoint(source)
    for name in (RUN_CONFIG, TRIAL_CONFIG):
        if (folder / name).is_file():
            return folder / name, checkpoint_file
    raise ckpt.CheckpointError(
        f"no {RUN_CONFIG} (a training run's folder) or {TRIAL_CONFIG} (a sweep trial's folder) in "
        f"{str(folder)!r}: the configuration of {str(checkpoint_file)!r} is not known"
    )


def _fetch_trial(uri: str, into: Path) -> Path:
    """Copy what ``locate_run`` reads of the sweep trial at ``uri`` into ``into``: its
    configuration and the newest ``checkpoint_<n>/`` that holds the engine's checkpoint."""
    import pyarrow.fs as pafs

    try:
        filesystem, root = uris.open_uri(uri)
        root = root.rstrip("/")
        entries = filesystem.get_file_info(pafs.FileSelector(root))
        numbered = sorted(
            ((int(match[1]), entry.base_name) for entry in entries
             if entry.type == pafs.FileType.Directory and (match := RAY_CHECKPOINT.fullmatch(entry.base_name))),
            reverse=True,
        )  # fmt: skip
        newest = next(
            (name for _, name in numbered
             if filesystem.get_file_info(f"{root}/{name}/{ckpt.FILENAME}").type == pafs.FileType.File),
            None,
        )  # fmt: skip
        if newest is None:
            raise ckpt.CheckpointError(f"no checkpoint in {uri!r}: no checkpoint_<n>/{ckpt.FILENAME} (a sweep trial's folder)")
        if not any(entry.base_name == TRIAL_CONFIG and entry.type == pafs.FileType.File for entry in entries):
            raise ckpt.CheckpointError(f"no {TRIAL_CONFIG} in {uri!r}: not a sweep trial's folder")
        (into / newest).mkdir()
        for name in (TRIAL_CONFIG, f"{newest}/{ckpt.FILENAME}"):
            pafs.copy_files(f"{root}/{name}", str(into / name), source_filesystem=filesystem,
                            destination_filesystem=pafs.LocalFileSystem())
    except ValueError as error:  # open_uri: the store cannot be used
        raise ckpt.CheckpointError(f"{uri}: {error}") from None
    except OSError as error:
        raise ckpt.CheckpointError(f"{uri}: {uris.reason(error)}") from None
    return into


def _newest_checkpoint(folder: Path) -> Path:
    engine = folder / ENGINE_CHECKPOINTS / ckpt.FILENAME
    if engine.is_file():
        return engine
    # Ray keeps a trial's newest few checkpoint folders (older ones may be left empty).
    numbered = [
        (int(match[1]), path / ckpt.FILENAME)
        for path in folder.iterdir()
        if (match := RAY_CHECKPOINT.fullmatch(path.name)) and (path / ckpt.FILENAME).is_file()
    ]
    if not numbered:
        raise ckpt.CheckpointError(
            f"no checkpoint in {str(folder)!r}: neither {ENGINE_CHECKPOINTS}/{ckpt.FILENAME} (a training "
            f"run's folder) nor checkpoint_<n>/{ckpt.FILENAME} (a sweep trial's folder)"
        )
    return max(numbered)[1]


def _stored_config(path: Path) -> dict:
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"unreadable {path}: {error}") from None
    if not isinstance(stored, dict):
        raise ConfigError(f"{path} is not a JSON object of config keys")
    stored.pop(RECORDED_KEY, None)  # what the run recorded about its data, not a setting
    return stored


def _trained_fingerprint(config: TrialConfig, stored: dict) -> str:
    """The fingerprint of the run as it trained: the device and data_root it had, not the
    ones the features are read with."""
    trained = {key: stored.get(key, DEFAULTS[key]) for key in ("device", "data_root")}
    return TrialConfig({**config.values, **trained}, config.strategy_hparams).fingerprint()
