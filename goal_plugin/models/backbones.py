"""Encoder backbones, by name.

A backbone factory takes the per-sample input shape of one modality (without the
batch dimension) and keyword options, and returns an ``nn.Module`` mapping a batch
to features (B, out_dim) with an ``out_dim`` attribute. Third-party backbones
register through the entry-point group ``goal_plugin.backbones``.

Accepted input shapes: ``mlp`` any shape (flattened); every other built-in
backbone a spectrogram (H, W) or (1, H, W), an image (C, H, W), or frames
(C, T, H, W), which are folded into the batch and pooled over time as in
OGM-GE's AVClassifier. The torchvision backbones (``resnet18``,
``convnext_base``, ``vit_b_32``) live in
:mod:`goal_plugin.models.torchvision_backbones`, the sequence encoders
(``transformer_seq``, ``lstm``) in :mod:`goal_plugin.models.sequence_backbones`
and ``bert_base`` in :mod:`goal_plugin.models.text_backbones`, registered on the
first lookup; each imports torchvision or transformers only when built, so
``import goal_plugin``, the registry and ``mlp`` / ``small_cnn`` work without them.

Encoders that read a padding mask set ``accepts_mask = True``; the network then
passes the batch's ``<modality>_mask`` (True on real steps) as ``mask``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from goal_plugin import _validation as check
from goal_plugin._registry import Registry

BACKBONES = Registry(
    "backbone",
    "goal_plugin.backbones",
    built_ins="goal_plugin.models._builtins",
    common_options=("feature_dim",),  # taken by create_backbone for every backbone
)


def list_backbones() -> list[str]:
    return BACKBONES.names()


def create_backbone(
    name: str, input_shape: Sequence[int], *, feature_dim: int | None = None, **options: object
) -> nn.Module:
    """Build backbone ``name`` for inputs of per-sample shape ``input_shape``.

    ``feature_dim`` (any backbone) appends ``nn.Linear(out_dim, feature_dim)``, so
    that encoders of different widths give features of one width, which direction
    steps (GO) need to compare the modalities' gradients.
    """
    if feature_dim is not None:
        check.integer("feature_dim", feature_dim, minimum=1)
    encoder = BACKBONES.create(name, tuple(int(s) for s in input_shape), **options)
    return encoder if feature_dim is None else ProjectedEncoder(encoder, feature_dim)


class ProjectedEncoder(nn.Module):
    """``encoder`` followed by a linear projection to ``feature_dim``."""

    def __init__(self, encoder: nn.Module, feature_dim: int):
        super().__init__()
        self.encoder = encoder
        self.projection = nn.Linear(int(encoder.out_dim), feature_dim)
        self.out_dim = feature_dim

    @property
    def accepts_mask(self) -> bool:
        return getattr(self.encoder, "accepts_mask", False)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.projection(self.encoder(x) if mask is None else self.encoder(x, mask=mask))


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


def image_channels(name: str, input_shape: tuple[int, ...]) -> int:
    """Input channels of a spectrogram (H, W), image (C, H, W) or frames (C, T, H, W)."""
    if len(input_shape) == 2:
        return 1
    if len(input_shape) in (3, 4):
        return input_shape[0]
    raise ValueError(
        f"backbone {name!r} needs a spectrogram (H, W), an image (C, H, W) or frames "
        f"(C, T, H, W) per sample, got shape {input_shape}; use backbone 'mlp' for vectors"
    )


class FrameEncoder(nn.Module):
    """Runs a 2-D ``trunk`` on a spectrogram, an image or every frame of a clip, and pools.

    A batch (B, H, W) is a 1-channel spectrogram; frames (B, C, T, H, W) are folded
    into the batch as (B*T, C, H, W), as OGM-GE's visual ResNet does. The trunk's
    maps (B*T, D, h, w) are averaged over T x h x w together (OGM-GE's
    ``adaptive_avg_pool3d``); a trunk that returns vectors (B*T, D), such as ViT's
    class token, is averaged over T. ``pooled_norm`` (ConvNeXt's LayerNorm2d)
    normalises the pooled (B, D, 1, 1) map, as torchvision does after its own pooling.
    """

    def __init__(self, trunk: nn.Module, out_dim: int, pooled_norm: nn.Module | None = None):
        super().__init__()
        self.trunk = trunk
        self.pooled_norm = pooled_norm
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        batch = x.shape[0]
        if x.dim() == 5:
            x = x.transpose(1, 2).flatten(0, 1)
        out = self.trunk(x)
        features = out.reshape(batch, -1, out.shape[1], math.prod(out.shape[2:])).mean(dim=(1, 3))
        if self.pooled_norm is not None:
            features = self.pooled_norm(features[:, :, None, None]).flatten(1)
        return features


@BACKBONES.register("small_cnn")
def small_cnn(
    input_shape: tuple[int, ...], *, channels: Sequence[int] = (16, 32), out_dim: int = 64
) -> nn.Module:
    """A few strided 3x3 conv + BN + ReLU layers; trains in seconds on a CPU."""
    in_channels = image_channels("small_cnn", input_shape)
    check.integer("out_dim", out_dim, minimum=1)
    widths = [check.integer("channels", c, minimum=1) for c in channels] + [out_dim]
    layers: list[nn.Module] = []
    previous = in_channels
    for width in widths:
        layers += [nn.Conv2d(previous, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        previous = width
    return FrameEncoder(nn.Sequential(*layers), out_dim)
