"""Encoders, fusion modules and the multi-encoder network."""

from goal_plugin.models.backbones import BACKBONES, create_backbone, list_backbones
from goal_plugin.models.network import (
    FUSIONS,
    ConcatFusion,
    MultimodalNetwork,
    MultimodalOutput,
    SumFusion,
    build_network,
)

register_backbone = BACKBONES.register

__all__ = [
    "BACKBONES",
    "FUSIONS",
    "ConcatFusion",
    "MultimodalNetwork",
    "MultimodalOutput",
    "SumFusion",
    "build_network",
    "create_backbone",
    "list_backbones",
    "register_backbone",
]
