"""Training harness: configuration, deterministic fit / evaluate, checkpoints, metrics."""

from goal_plugin.engine.checkpoint import CheckpointError, load_checkpoint
from goal_plugin.engine.config import DEFAULTS, ConfigError, TrialConfig, resolve_config
from goal_plugin.engine.run_folder import RunFolderError
from goal_plugin.engine.trainer import NONDETERMINISTIC_METRICS, DivergenceError, fit

__all__ = [
    "DEFAULTS",
    "NONDETERMINISTIC_METRICS",
    "CheckpointError",
    "ConfigError",
    "DivergenceError",
    "RunFolderError",
    "TrialConfig",
    "fit",
    "load_checkpoint",
    "resolve_config",
]
