"""torchvision encoders: ``resnet18``, ``convnext_base`` and ``vit_b_32``.

Each is torchvision's model without its classification head, randomly
initialised by torchvision, or loaded from ``pretrained_path``: a local file
holding a torchvision-format state dict (``torch.save(model.state_dict())``,
optionally under a ``"state_dict"`` key). Nothing is ever downloaded. Head
entries in the file are ignored; any other missing, unexpected or mis-shaped
entry is an error naming the file.

Input channels: the first convolution (ResNet's ``conv1``, ConvNeXt's stem,
ViT's ``conv_proj``) is rebuilt for the modality's channel count (1 for a
spectrogram). From random weights it gets torchvision's own initialisation for
that layer. A file whose first convolution already takes that many channels
(OGM-GE's trained audio ResNet has a 1-channel ``conv1``) is loaded as it is.
From 3-channel pretrained weights for another channel count, each of the C new
input channels gets the *sum* over the RGB kernels divided by C (for C = 1: the
plain sum, as timm's ``adapt_input_conv`` does). Summing, rather than averaging, keeps every
activation of the pretrained network unchanged for an input whose channels are
all equal to x: it is the response the RGB model gives to the grey image
(x, x, x), so batch-norm statistics and later layers see what they were trained
on; averaging would scale the first layer's output by 1/3.

Spatial size: ResNet-18 accepts any size, ConvNeXt any size of at least 32 x 32
(non-square spectrograms included). ViT-B/32 needs exactly ``image_size`` x
``image_size`` (a multiple of 32): inputs of another size, such as a
(257, 188) spectrogram, are resized bilinearly (with antialiasing) to it, and
pretrained position embeddings are interpolated to ``image_size`` with
torchvision's ``interpolate_embeddings``.

torchvision is imported when one of these backbones is built, not when this
module is imported, so that the registry (and ``mlp``, ``small_cnn``) works
without it; building one without torchvision is a one-line error.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from goal_plugin import _validation as check
from goal_plugin.models.backbones import BACKBONES, FrameEncoder, image_channels

if TYPE_CHECKING:
    from torchvision.models import VisionTransformer

RESNET_TRUNK = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
VIT_PATCH = 32
CONVNEXT_MIN_SIZE = 32  # stride-4 stem and three stride-2 downsamplings


def _torchvision(backbone: str) -> ModuleType:
    """torchvision, or a one-line error naming the backbone that needs it."""
    try:
        import torchvision
    except ImportError:
        raise ValueError(
            f"backbone {backbone!r} needs torchvision: pip install torchvision "
            "(or goal-plugin's 'av' extra, which includes it)"
        ) from None
    return torchvision


def _read_state_dict(path: str | Path) -> Mapping[str, Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"pretrained_path {str(path)!r} is not a file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - EOFError, KeyError, RuntimeError, UnpicklingError, ...
        raise ValueError(f"pretrained_path {str(path)!r} is not a readable state dict: {error!r}") from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(
            f"pretrained_path {str(path)!r} must hold a state dict (parameter name -> tensor), "
            "as saved by torch.save(model.state_dict())"
        )
    return state


def _load_weights(
    model: nn.Module,
    name: str,
    path: str | Path,
    state: dict[str, Tensor],
    head: tuple[str, ...],
    adjust: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None,
) -> None:
    """Load ``state`` (read from ``path``, without the keys under ``head``) into
    ``model``, built on the meta device."""
    try:
        state = state if adjust is None else adjust(state)
        _, unexpected = model.load_state_dict(state, strict=False, assign=True)
    except (RuntimeError, ValueError) as error:
        mismatches = [line.strip() for line in str(error).splitlines() if "size mismatch" in line]
        raise ValueError(
            f"pretrained_path {str(path)!r} does not fit {name}: {'; '.join(mismatches[:3]) or error}"
        ) from None
    tensors = [*model.named_parameters(), *model.named_buffers()]
    missing = [k for k, t in tensors if t.is_meta and not k.startswith(head)]
    if missing or unexpected:
        raise ValueError(
            f"pretrained_path {str(path)!r} does not fit {name}: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )


def _set_input_channels(
    model: nn.Module, stem: str, in_channels: int, pretrained: bool, init: Callable[[nn.Conv2d], None]
) -> None:
    """Rebuild the convolution at ``stem`` for ``in_channels`` (see the module docstring)."""
    parent_name, _, attribute = stem.rpartition(".")
    parent = model.get_submodule(parent_name)
    old: nn.Conv2d = getattr(parent, attribute)
    if old.in_channels == in_channels:
        return
    new = nn.Conv2d(
        in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=old.bias is not None
    )
    if pretrained:
        with torch.no_grad():
            summed = old.weight.sum(dim=1, keepdim=True) / in_channels
            new.weight.copy_(summed.expand_as(new.weight))
            if old.bias is not None:
                new.bias.copy_(old.bias)
    else:
        init(new)
    setattr(parent, attribute, new)


def _build(
    builder: Callable[[], nn.Module],
    name: str,
    input_shape: tuple[int, ...],
    pretrained_path: str | None,
    *,
    stem: str,
    head: tuple[str, ...],
    init_stem: Callable[[nn.Conv2d], None],
    adjust: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None,
) -> nn.Module:
    """The torchvision model from ``builder``, with local weights (if any) and its stem
    fitted to the input's channels. With weights it is built on the meta device, so
    its random initialisation (seconds for ConvNeXt-B on a CPU) is skipped."""
    in_channels = image_channels(name, input_shape)
    if pretrained_path is None:
        model = builder()
        _set_input_channels(model, stem, in_channels, False, init_stem)
        return model
    if not isinstance(pretrained_path, (str, Path)):  # a bad option value: ValueError, as every other
        raise ValueError(f"pretrained_path must be a file path, got {pretrained_path!r}")  # noqa: TRY004
    state = {k: v for k, v in _read_state_dict(pretrained_path).items() if not k.startswith(head)}
    stem_weight = state.get(f"{stem}.weight")
    with torch.device("meta"):
        model = builder()
        if stem_weight is not None and stem_weight.dim() == 4 and stem_weight.shape[1] == in_channels:
            # the file's stem already fits the input (e.g. a trained 1-channel audio encoder):
            # build the stem for it, so the file's own weights load, unadapted
            _set_input_channels(model, stem, in_channels, False, init_stem)
    _load_weights(model, name, pretrained_path, state, head, adjust)
    _set_input_channels(model, stem, in_channels, True, init_stem)
    return model


# The stems' random initialisation, as torchvision initialises each model's first layer.
def _init_resnet_stem(conv: nn.Conv2d) -> None:
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")


def _init_convnext_stem(conv: nn.Conv2d) -> None:
    nn.init.trunc_normal_(conv.weight, std=0.02)
    nn.init.zeros_(conv.bias)


def _init_vit_stem(conv: nn.Conv2d) -> None:
    fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
    nn.init.trunc_normal_(conv.weight, std=math.sqrt(1 / fan_in))
    nn.init.zeros_(conv.bias)


@BACKBONES.register("resnet18")
def resnet18(input_shape: tuple[int, ...], *, pretrained_path: str | None = None) -> nn.Module:
    """torchvision's ResNet-18 trunk (``conv1`` .. ``layer4``) as OGM-GE uses it:
    1-channel spectrograms, frames folded into the batch and the maps pooled over
    T x H x W; 512-d features."""
    torchvision = _torchvision("resnet18")
    model = _build(lambda: torchvision.models.resnet18(weights=None), "resnet18", input_shape,
                   pretrained_path, stem="conv1", head=("fc.",), init_stem=_init_resnet_stem)
    trunk = nn.Sequential(OrderedDict((part, getattr(model, part)) for part in RESNET_TRUNK))
    return FrameEncoder(trunk, model.fc.in_features)


@BACKBONES.register("convnext_base")
def convnext_base(
    input_shape: tuple[int, ...],
    *,
    pretrained_path: str | None = None,
    stochastic_depth_prob: float = 0.5,
) -> nn.Module:
    """torchvision's ConvNeXt-Base ``features``, pooled like ``resnet18``, then its
    head's LayerNorm (the final Linear removed); 1024-d features. Inputs of at
    least 32 x 32. ``stochastic_depth_prob``: torchvision's default for this size."""
    image_channels("convnext_base", input_shape)
    if min(input_shape[-2:]) < CONVNEXT_MIN_SIZE:
        raise ValueError(
            f"backbone 'convnext_base' needs inputs of at least {CONVNEXT_MIN_SIZE} x "
            f"{CONVNEXT_MIN_SIZE}, got shape {input_shape}"
        )
    check.in_unit_interval("stochastic_depth_prob", stochastic_depth_prob)
    torchvision = _torchvision("convnext_base")
    model = _build(
        lambda: torchvision.models.convnext_base(weights=None, stochastic_depth_prob=stochastic_depth_prob),
        "convnext_base", input_shape, pretrained_path, stem="features.0.0", head=("classifier.2.",),
        init_stem=_init_convnext_stem,
    )
    norm = model.classifier[0]
    return FrameEncoder(model.features, norm.normalized_shape[0], pooled_norm=norm)


class ResizedViT(nn.Module):
    """torchvision's ViT without heads, on inputs resized to its ``image_size``."""

    def __init__(self, vit: VisionTransformer):
        super().__init__()
        vit.heads = nn.Identity()
        self.vit = vit

    def forward(self, x: Tensor) -> Tensor:
        size = (self.vit.image_size, self.vit.image_size)
        if x.shape[-2:] != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        return self.vit(x)  # the class token after the final LayerNorm: (N, hidden_dim)


@BACKBONES.register("vit_b_32")
def vit_b_32(
    input_shape: tuple[int, ...], *, pretrained_path: str | None = None, image_size: int = 224
) -> nn.Module:
    """torchvision's ViT-B/32 without its heads; 768-d class-token features, averaged
    over frames. Inputs are resized to ``image_size`` x ``image_size`` (224 as
    pretrained; small values such as 32 or 64 keep CPU tests fast)."""
    image_channels("vit_b_32", input_shape)
    check.integer("image_size", image_size, minimum=VIT_PATCH)
    if image_size % VIT_PATCH:
        raise ValueError(f"image_size must be a multiple of the patch size {VIT_PATCH}, got {image_size}")
    torchvision = _torchvision("vit_b_32")
    from torchvision.models.vision_transformer import interpolate_embeddings

    def fit_position_embeddings(state: dict[str, Tensor]) -> dict[str, Tensor]:
        if "encoder.pos_embedding" not in state:
            return state  # reported as a missing key
        return interpolate_embeddings(image_size, VIT_PATCH, state)

    model = _build(
        lambda: torchvision.models.vit_b_32(weights=None, image_size=image_size), "vit_b_32",
        input_shape, pretrained_path, stem="conv_proj", head=("heads.",), init_stem=_init_vit_stem,
        adjust=fit_position_embeddings,
    )
    return FrameEncoder(ResizedViT(model), model.hidden_dim)
