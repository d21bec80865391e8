"""Encoder backbones, by name.

A backbone factory takes the per-sample input shape of one modality (without the
batch dimension) and keyword options, and returns an ``nn.Module`` mapping a batch
to features (B, out_dim) with an ``out_dim`` attribute. Third-party backbones
register through the entry-point group ``goal_plugin.backbones``.

Accepted input shapes: ``mlp`` any shape (flattened); ``resnet18`` and
``small_cnn`` a spectrogram (H, W) or (1, H, W), an image (C, H, W), or frames
(C, T, H, W), which are folded into the batch and pooled over T x H x W as in
OGM-GE's AVClassifier.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from goal_plugin import _validation as check
from goal_plugin._registry import Registry

BACKBONES = Registry("backbone", "goal_plugin.backbones")


def list_backbones() -> list[str]:
    return BACKBONES.names()


def create_backbone(name: str, input_shape: Sequence[int], **options: object) -> nn.Module:
    """Build backbone ``name`` for inputs of per-sample shape ``input_shape``."""
    return BACKBONES.create(name, tuple(int(s) for s in input_shape), **options)


class MLPEncoder(nn.Module):
    def __init__(self, in_features: int, hidden_dim: int, out_dim: int, depth: int, dropout: float):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(depth - 1):
            layers += [nn.Linear(width, hidden_dim), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden_dim
        layers += [nn.Linear(width, out_dim), nn.ReLU()]
        self.net = nn.Sequential(*layers)
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1))


@BACKBONES.register("mlp")
def mlp(
    input_shape: tuple[int, ...],
    *,
    hidden_dim: int = 128,
    out_dim: int = 64,
    depth: int = 2,
    dropout: float = 0.0,
) -> nn.Module:
    """Fully connected encoder for vector inputs (ReLU features)."""
    check.integer("hidden_dim", hidden_dim, minimum=1)
    check.integer("out_dim", out_dim, minimum=1)
    check.integer("depth", depth, minimum=1)
    check.in_unit_interval("dropout", dropout)
    return MLPEncoder(math.prod(input_shape), hidden_dim, out_dim, depth, dropout)


def _image_layout(name: str, input_shape: tuple[int, ...]) -> tuple[int, bool]:
    """(in_channels, has_time_axis) for a spectrogram, image or frame-stack shape."""
    if len(input_shape) == 2:
        return 1, False
    if len(input_shape) == 3:
        return input_shape[0], False
    if len(input_shape) == 4:
        return input_shape[0], True
    raise ValueError(
        f"backbone {name!r} needs a spectrogram (H, W), an image (C, H, W) or frames "
        f"(C, T, H, W) per sample, got shape {input_shape}; use backbone 'mlp' for vectors"
    )


class ConvEncoder(nn.Module):
    """Runs a 2-D trunk on spectrograms / images / frames and average-pools the map."""

    def __init__(self, trunk: nn.Module, in_channels: int, has_time: bool, out_dim: int):
        super().__init__()
        self.trunk = trunk
        self.in_channels = in_channels
        self.has_time = has_time
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 3:  # (B, H, W) spectrogram
            x = x.unsqueeze(1)
        if not self.has_time:
            return F.adaptive_avg_pool2d(self.trunk(x), 1).flatten(1)
        batch, channels, time = x.shape[:3]
        frames = x.transpose(1, 2).reshape(batch * time, channels, *x.shape[3:])
        maps = self.trunk(frames)  # (B*T, D, h, w)
        maps = maps.reshape(batch, time, *maps.shape[1:]).transpose(1, 2)  # (B, D, T, h, w)
        return F.adaptive_avg_pool3d(maps, 1).flatten(1)


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ResNet18Trunk(nn.Module):
    """ResNet-18 without its classifier; parameter names follow torchvision's."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths = (64, 128, 256, 512)
        in_planes = 64
        for index, planes in enumerate(widths, start=1):
            stride = 1 if index == 1 else 2
            layer = nn.Sequential(BasicBlock(in_planes, planes, stride), BasicBlock(planes, planes, 1))
            self.add_module(f"layer{index}", layer)
            in_planes = planes
        for module in self.modules():  # as torchvision / OGM-GE's backbone
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def load_pretrained_trunk(trunk: nn.Module, path: str | Path) -> None:
    """Load a local torchvision-style ResNet state dict (never downloads).

    ``fc.*`` entries are ignored; a first convolution with a different number of
    input channels is adapted by averaging over the pretrained channels (the
    usual way to start a 1-channel spectrogram encoder from RGB weights).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"pretrained_path {str(path)!r} is not a file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"pretrained_path {str(path)!r} is not a readable state dict: {error}") from error
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    conv1 = state.get("conv1.weight")
    expected = trunk.conv1.weight
    if conv1 is not None and conv1.shape[1] != expected.shape[1]:
        state["conv1.weight"] = conv1.mean(dim=1, keepdim=True).repeat(1, expected.shape[1], 1, 1)
    missing, unexpected = trunk.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"pretrained_path {str(path)!r} does not fit ResNet-18: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )


@BACKBONES.register("resnet18")
def resnet18(input_shape: tuple[int, ...], *, pretrained_path: str | None = None) -> nn.Module:
    """ResNet-18 as in OGM-GE: 1-channel spectrograms, frames folded into the batch
    and pooled over T x H x W; 512-d features. ``pretrained_path``: optional local
    torchvision-format weights."""
    in_channels, has_time = _image_layout("resnet18", input_shape)
    trunk = ResNet18Trunk(in_channels)
    if pretrained_path is not None:
        load_pretrained_trunk(trunk, pretrained_path)
    return ConvEncoder(trunk, in_channels, has_time, 512)


@BACKBONES.register("small_cnn")
def small_cnn(
    input_shape: tuple[int, ...], *, channels: Sequence[int] = (16, 32), out_dim: int = 64
) -> nn.Module:
    """A few strided 3x3 conv + BN + ReLU layers; trains in seconds on a CPU."""
    in_channels, has_time = _image_layout("small_cnn", input_shape)
    check.integer("out_dim", out_dim, minimum=1)
    widths = [check.integer("channels", c, minimum=1) for c in channels] + [out_dim]
    layers: list[nn.Module] = []
    previous = in_channels
    for width in widths:
        layers += [nn.Conv2d(previous, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        previous = width
    return ConvEncoder(nn.Sequential(*layers), in_channels, has_time, out_dim)
