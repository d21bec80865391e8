"""A backbone registered in your own code, trained by the engine (docs/extending.md).

    python docs/examples/custom_backbone.py

``register_backbone(name)`` adds a factory ``(input_shape, **options) -> nn.Module``:
``input_shape`` is one sample's shape of the modality (no batch axis), the module
maps a batch to features (B, out_dim) and has an ``out_dim`` attribute. Keyword
options with defaults become ``backbone_options``; a bad value is a ``ValueError``.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from goal_plugin.engine import fit
from goal_plugin.models import register_backbone


class Conv1dEncoder(nn.Module):
    """Reads a vector as a 1-channel signal: strided 1-D convolutions, then the mean."""

    def __init__(self, channels: int, layers: int):
        super().__init__()
        blocks, width = [], 1
        for _ in range(layers):
            blocks += [nn.Conv1d(width, channels, 5, stride=2, padding=2), nn.ReLU()]
            width = channels
        self.net = nn.Sequential(*blocks)
        self.out_dim = channels

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1).unsqueeze(1)).mean(dim=2)


@register_backbone("conv1d")
def conv1d(input_shape: tuple[int, ...], *, channels: int = 32, layers: int = 2) -> nn.Module:
    """1-D convolutions over a flattened sample (any shape)."""
    for name, value in (("channels", channels), ("layers", layers)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"conv1d option {name} must be an integer >= 1, got {value!r}")
    if math.prod(input_shape) < 2**layers:
        raise ValueError(
            f"conv1d with {layers} layers needs at least {2**layers} values per sample, got {input_shape}"
        )
    return Conv1dEncoder(channels, layers)


if __name__ == "__main__":
    results = fit(
        {
            "dataset": "mfeat",  # embedded: pix (240 values) + fou (76 values)
            "backbone": {"pix": "conv1d", "fou": "mlp"},
            "backbone_options": {"feature_dim": 32, "pix": {"channels": 16}},
            "strategy": "goal",
            "optimizer": "adam",
            "lr": 1e-3,
            "epochs": 2,
        }
    )
    print(
        f"mfeat, conv1d on pix and mlp on fou, goal: test accuracy {results['final']['test_acc']:.3f}"
    )
