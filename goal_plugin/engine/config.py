"""The flat trial configuration: defaults, validation and the resolved form.

Keys (flat; the analysis tables use the same names): dataset, data_root,
dataset_options, backbone, backbone_options, strategy and its
hyperparameters as flat keys (temperature, space, alpha, ...), seed, epochs,
batch_size, optimizer, lr, momentum, weight_decay, scheduler, lr_step_size,
lr_gamma, grad_clip, the strategy's harness settings (unimodal_loss_weight,
warmup_unimodal_loss_weight, logits_source, modulation_starts,
modulation_ends, fusion; ``None`` = the recipe's default: concatenation for
every built-in recipe but ``mla``), regression_head and
beta_nll (read only when the dataset's task is regression; see tasks.py),
num_workers, device, amp, diagnostics. Every check runs before any data is loaded and raises
``ConfigError`` naming the key. ``data_protocol`` (``RECORDED_KEY``) is no
config key: a run records there the evaluation protocol its dataset states.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from goal_plugin import _validation as check
from goal_plugin.data import DATASETS
from goal_plugin.engine.tasks import REGRESSION_HEADS
from goal_plugin.models import BACKBONES, FUSIONS
from goal_plugin.registry import STRATEGIES, create_strategy
from goal_plugin.strategies.base import HarnessDefaults, Strategy

OPTIMIZERS = ("sgd", "adam", "adamw")
# The optimizers multiply float32 tensors by lr and weight_decay: larger values overflow inside torch.
FLOAT32_MAX = torch.finfo(torch.float32).max
SCHEDULERS = ("none", "step", "cosine")
HARNESS_KEYS = (
    "unimodal_loss_weight",
    "warmup_unimodal_loss_weight",
    "logits_source",
    "modulation_starts",
    "modulation_ends",
    "fusion",
)

DEFAULTS: dict[str, Any] = {
    "dataset": "mfeat",
    "data_root": None,
    "dataset_options": {},
    "backbone": "mlp",
    "backbone_options": {},
    "strategy": "goal",
    "seed": 0,
    "epochs": 20,
    "batch_size": 64,
    "optimizer": "sgd",
    "lr": 0.01,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "scheduler": "none",
    "lr_step_size": 70,
    "lr_gamma": 0.1,
    "grad_clip": None,
    **{key: None for key in HARNESS_KEYS},
    "regression_head": "gaussian",
    "beta_nll": 0.5,
    "num_workers": 0,
    "device": "cpu",
    "amp": None,
    "diagnostics": True,
}


# Recorded beside the config in a run's config.json and final metrics; never set.
RECORDED_KEY = "data_protocol"


class ConfigError(ValueError):
    """A trial configuration that cannot run; the message names the key."""


@dataclass(frozen=True)
class TrialConfig:
    values: dict[str, Any]
    strategy_hparams: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, key: str) -> Any:
        try:
            return self.values[key]
        except KeyError:
            raise AttributeError(key) from None

    def as_dict(self) -> dict[str, Any]:
        return {**self.values, **self.strategy_hparams}

    def fingerprint(self) -> str:
        """Hash of everything that determines the numbers (not device or workers)."""
        relevant = {k: v for k, v in self.as_dict().items() if k not in ("num_workers", "diagnostics")}
        encoded = json.dumps(relevant, sort_keys=True, default=str).encode()
        return hashlib.sha256(encoded).hexdigest()[:16]

    def build_strategy(self) -> Strategy:
        return create_strategy(self.strategy, **self.strategy_hparams)

    def harness(self, strategy: Strategy) -> HarnessDefaults:
        overrides = {k: self.values[k] for k in HARNESS_KEYS if self.values[k] is not None}
        return strategy.defaults.replace(**overrides)

    def resolved_device(self) -> torch.device:
        return torch.device(self.device)


def _wrap(key: str, error: Exception) -> ConfigError:
    message = str(error)
    return ConfigError(message if key in message else f"{key}: {message}")


def resolve_config(raw: Mapping[str, Any] | None = None) -> TrialConfig:
    """Merge ``raw`` over the defaults and validate every key."""
    raw = dict(raw or {})
    strategy_name = raw.get("strategy", DEFAULTS["strategy"])
    try:
        hparam_names = STRATEGIES.options(strategy_name)
    except ValueError as error:
        raise _wrap("strategy", error) from None
    shadowed = sorted(set(hparam_names) & set(DEFAULTS))
    if shadowed:  # flat keys: such a hyperparameter could never be set
        raise ConfigError(
            f"strategy {strategy_name!r} has hyperparameter(s) {shadowed} named like config keys; "
            "rename them in its factory"
        )
    values = dict(DEFAULTS)
    hparams: dict[str, Any] = {}
    for key, value in raw.items():
        if key in DEFAULTS:
            values[key] = value
        elif key == RECORDED_KEY:
            raise ConfigError(
                f"{RECORDED_KEY} is recorded by a run, not set: choose a dataset's protocol "
                "with its options (e.g. dataset_options.protocol for crema_d)"
            )
        elif key in hparam_names:
            hparams[key] = value
        else:
            other_hparams = {
                name: strategy for strategy in STRATEGIES.names() for name in STRATEGIES.options(strategy)
            }
            if key in other_hparams:
                raise ConfigError(
                    f"key {key!r} is a hyperparameter of other strategies, not of "
                    f"{strategy_name!r} (which takes: {', '.join(hparam_names) or 'none'})"
                )
            raise ConfigError(check.unknown_name_message("config key", key, [*DEFAULTS, *hparam_names]))
    config = TrialConfig(values, {**hparam_names, **hparams})
    _validate(config)
    return config


def _check_backbone(backbone: object) -> None:
    """One registered backbone name, or a mapping of modality names to such names."""
    if isinstance(backbone, Mapping):
        if not backbone:
            raise ValueError("backbone: an empty mapping; name a backbone per modality")
        for modality, name in backbone.items():
            try:
                BACKBONES.get(name)
            except ValueError as error:
                raise ValueError(f"backbone of modality {modality!r}: {error}") from None
        return
    BACKBONES.get(backbone)


def _validate(config: TrialConfig) -> None:
    v = config.values
    checks = [
        ("dataset", lambda: DATASETS.get(v["dataset"])),
        ("backbone", lambda: _check_backbone(v["backbone"])),
        ("optimizer", lambda: check.choice("optimizer", v["optimizer"], OPTIMIZERS)),
        ("scheduler", lambda: check.choice("scheduler", v["scheduler"], SCHEDULERS)),
        ("seed", lambda: check.integer("seed", v["seed"], minimum=0)),
        ("epochs", lambda: check.integer("epochs", v["epochs"], minimum=1)),
        ("batch_size", lambda: check.integer("batch_size", v["batch_size"], minimum=1)),
        ("lr", lambda: check.positive("lr", v["lr"], maximum=FLOAT32_MAX)),
        ("momentum", lambda: check.in_unit_interval("momentum", v["momentum"])),
        ("weight_decay", lambda: check.non_negative("weight_decay", v["weight_decay"], maximum=FLOAT32_MAX)),
        ("lr_step_size", lambda: check.integer("lr_step_size", v["lr_step_size"], minimum=1)),
        ("lr_gamma", lambda: check.positive("lr_gamma", v["lr_gamma"])),
        ("num_workers", lambda: check.integer("num_workers", v["num_workers"], minimum=0)),
        ("regression_head", lambda: check.choice("regression_head", v["regression_head"], REGRESSION_HEADS)),
        ("beta_nll", lambda: check.non_negative("beta_nll", v["beta_nll"], maximum=1.0)),
        ("strategy", config.build_strategy),
        ("strategy", lambda: config.harness(config.build_strategy())),
    ]
    if v["fusion"] is not None:
        checks.insert(2, ("fusion", lambda: check.choice("fusion", v["fusion"], FUSIONS)))
    if v["grad_clip"] is not None:
        checks.append(("grad_clip", lambda: check.positive("grad_clip", v["grad_clip"])))
    for key in ("dataset_options", "backbone_options"):
        if not isinstance(v[key], Mapping):
            raise ConfigError(f"{key} must be a mapping of option names to values, got {v[key]!r}")
    if v["data_root"] is not None and not isinstance(v["data_root"], str):
        raise ConfigError(f"data_root must be a path string, got {v['data_root']!r}")
    if v["amp"] is not None and not isinstance(v["amp"], bool):
        raise ConfigError(f"amp must be true, false or null (auto: on for CUDA), got {v['amp']!r}")
    if not isinstance(v["diagnostics"], bool):
        raise ConfigError(f"diagnostics must be true or false, got {v['diagnostics']!r}")
    for key, run in checks:
        try:
            run()
        except ValueError as error:
            raise _wrap(key, error) from None
    if not isinstance(v["device"], str):
        raise ConfigError(f"device must be a string such as 'cpu', 'cuda' or 'cuda:1', got {v['device']!r}")
    try:
        device = torch.device(v["device"])
    except RuntimeError as error:
        raise ConfigError(f"device: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {v['device']!r} was requested but CUDA is not available here")
