"""Ray Tune sweeps: search-space files, the trainable, the grid x Optuna searcher."""

from goal_plugin.tune.runner import SweepOutcome, run_sweep
from goal_plugin.tune.space import SweepSpec, SweepSpecError, load_space, parse_space

__all__ = ["SweepOutcome", "SweepSpec", "SweepSpecError", "load_space", "parse_space", "run_sweep"]
