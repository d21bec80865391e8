"""Gradient-modifier strategies: pure tensor math on per-modality gradients."""

from goal_plugin.strategies.base import (
    DirectionStep,
    HarnessDefaults,
    MagnitudeStep,
    ParameterHook,
    Strategy,
)
from goal_plugin.strategies.direction import GradientOrthogonalisation
from goal_plugin.strategies.hooks import GradientEnhancementNoise
from goal_plugin.strategies.magnitude import AdaptiveLeveraging, ARLModulation, OGMModulation

__all__ = [
    "ARLModulation",
    "AdaptiveLeveraging",
    "DirectionStep",
    "GradientEnhancementNoise",
    "GradientOrthogonalisation",
    "HarnessDefaults",
    "MagnitudeStep",
    "OGMModulation",
    "ParameterHook",
    "Strategy",
]
