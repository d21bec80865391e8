"""The multi-encoder network: encoders, unimodal heads, gate, fusion.

For a batch ``{modality: Tensor, "label": Tensor}`` it returns the features f_m
(before the gate), the unimodal heads' logits z_m (Eq. 3 of GOAL), the fused
logits (Eq. 2) and the fusion-slice logits that OGM reads. The strategy's gate
sits between the features and the fusion module; the heads read f_m before it,
so the unimodal-loss gradients reach the encoders untouched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from goal_plugin import _validation as check
from goal_plugin.models.backbones import create_backbone
from goal_plugin.strategies.base import Strategy


class ConcatFusion(nn.Module):
    """``fc_out(cat(f_1..f_M))``; slice m's logits are ``f_m W[:, slice_m]^T + b / M``
    (OGM-GE's official unimodal score for concatenation)."""

    def __init__(self, feature_dims: Sequence[int], num_classes: int):
        super().__init__()
        self.fc_out = nn.Linear(sum(feature_dims), num_classes)
        bounds = [0]
        for dim in feature_dims:
            bounds.append(bounds[-1] + dim)
        self.bounds = bounds

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        return self.fc_out(torch.cat(list(features), dim=1))

    def slice_logits(self, features: Sequence[Tensor]) -> list[Tensor]:
        weight, bias = self.fc_out.weight, self.fc_out.bias
        share = bias / len(features)
        return [
            f @ weight[:, start:stop].T + share
            for f, start, stop in zip(features, self.bounds, self.bounds[1:])
        ]


class SumFusion(nn.Module):
    """``sum_m fc_m(f_m)``; slice m's logits are ``fc_m(f_m)`` (OGM-GE's sum branch)."""

    def __init__(self, feature_dims: Sequence[int], num_classes: int):
        super().__init__()
        self.fcs = nn.ModuleList(nn.Linear(dim, num_classes) for dim in feature_dims)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        return torch.stack([fc(f) for fc, f in zip(self.fcs, features)]).sum(dim=0)

    def slice_logits(self, features: Sequence[Tensor]) -> list[Tensor]:
        return [fc(f) for fc, f in zip(self.fcs, features)]


class SharedHeadFusion(nn.Module):
    """One classifier ``fc_out`` shared by every modality (MLA's head): slice m's logits
    are ``fc_out(f_m)`` and the fused logits their mean. Every modality's features must
    have one width."""

    def __init__(self, feature_dims: Sequence[int], num_classes: int):
        super().__init__()
        if len(set(feature_dims)) > 1:
            raise ValueError(
                f"fusion 'shared' applies one head to every modality's features, so they need one "
                f"width; got {list(feature_dims)}. Set the backbone option feature_dim "
                "(backbone_options: {feature_dim: 512})"
            )
        self.fc_out = nn.Linear(feature_dims[0], num_classes)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        return torch.stack(self.slice_logits(features)).mean(dim=0)

    def slice_logits(self, features: Sequence[Tensor]) -> list[Tensor]:
        return [self.fc_out(f) for f in features]


FUSIONS = {"concat": ConcatFusion, "sum": SumFusion, "shared": SharedHeadFusion}


@dataclass
class MultimodalOutput:
    features: dict[str, Tensor]
    unimodal_logits: dict[str, Tensor]
    fusion_slice_logits: dict[str, Tensor]
    fused_logits: Tensor


class MultimodalNetwork(nn.Module):
    """Encoders ``encoders[m]``, unimodal heads ``heads[m]`` and a fusion module."""

    def __init__(self, encoders: Mapping[str, nn.Module], num_classes: int, fusion: str = "concat"):
        super().__init__()
        check.integer("num_classes", num_classes, minimum=1)  # 1: a regression head with MSE
        check.choice("fusion", fusion, FUSIONS)
        if not encoders:
            raise ValueError("MultimodalNetwork needs at least one encoder")
        self.modalities = tuple(encoders)
        self.encoders = nn.ModuleDict(encoders)
        dims = [int(encoder.out_dim) for encoder in encoders.values()]
        self.heads = nn.ModuleDict(
            {m: nn.Linear(dim, num_classes) for m, dim in zip(self.modalities, dims)}
        )
        self.fusion = FUSIONS[fusion](dims, num_classes)
        self.feature_dims = dict(zip(self.modalities, dims))

    def check_strategy(self, strategy: Strategy) -> None:
        """Refuse a strategy whose direction step compares the modalities' gradients
        (GO and the recipes built on it) when the encoders' feature widths differ.

        Call it once, before training: ``forward`` does not repeat it (the gate
        checks the shapes it receives on every training step anyway), but its
        error names the ``feature_dim`` option that fixes the configuration."""
        direction = strategy.direction
        compares = direction is not None and direction.requires_equal_sizes
        if not compares or len(set(self.feature_dims.values())) < 2:
            return
        raise ValueError(
            f"strategy {strategy.name} compares modality gradients, so every encoder must give "
            f"features of one width; got {self.feature_dims}. Set the backbone option feature_dim "
            "(backbone_options: {feature_dim: 512}) to project every modality to a common width"
        )

    def encoder_prefixes(self) -> list[str]:
        """Module paths of the encoders, in modality order (for post-backward hooks)."""
        return [f"encoders.{m}" for m in self.modalities]

    def _encode(self, modality: str, batch: Mapping[str, Tensor]) -> Tensor:
        """The encoder's features; a padding mask ``<modality>_mask`` goes to encoders that read one."""
        encoder = self.encoders[modality]
        mask = batch.get(f"{modality}_mask")
        if mask is not None and getattr(encoder, "accepts_mask", False):
            return encoder(batch[modality], mask=mask)
        return encoder(batch[modality])

    def forward(
        self,
        batch: Mapping[str, Tensor],
        strategy: Strategy | None = None,
        *,
        logits_source: str = "unimodal_head",
        detach_heads: bool = False,
    ) -> MultimodalOutput:
        """``strategy`` (optional) is gated in front of the fusion module, reading
        the logits named by ``logits_source``. ``detach_heads`` trains the heads
        as probes on detached features (no unimodal gradient into the encoders)."""
        missing = [m for m in self.modalities if m not in batch]
        if missing:
            raise ValueError(f"batch lacks modalities {missing}; it has {sorted(batch)}")
        features = {m: self._encode(m, batch) for m in self.modalities}
        unimodal = {
            m: self.heads[m](f.detach() if detach_heads else f) for m, f in features.items()
        }
        with torch.no_grad():
            slices = dict(zip(self.modalities, self.fusion.slice_logits(list(features.values()))))
        fused_inputs = list(features.values())
        if strategy is not None:
            source = check.choice("logits_source", logits_source, ("unimodal_head", "fusion_slice"))
            logits = unimodal if source == "unimodal_head" else slices
            fused_inputs = list(
                strategy.gate(*fused_inputs, logits=list(logits.values()), labels=batch.get("label"))
            )
        return MultimodalOutput(features, unimodal, slices, self.fusion(fused_inputs))


def build_network(
    backbone: str | Mapping[str, str],
    sample_shapes: Mapping[str, Sequence[int]],
    num_classes: int,
    *,
    fusion: str = "concat",
    backbone_options: Mapping[str, object] | None = None,
) -> MultimodalNetwork:
    """One encoder per modality, sized from the dataset's sample shapes.

    ``backbone`` names one backbone for every modality, or maps each modality to
    its own (e.g. ``{"image": "resnet18", "text": "bert_base"}``).
    ``backbone_options`` apply to every encoder; an entry named after a modality
    holding a mapping applies to that modality only (e.g. ``{"out_dim": 64,
    "mor": {"hidden_dim": 16}}``). ``feature_dim`` (any backbone) projects the
    features to a common width (see :func:`create_backbone`).
    """
    names = _backbone_per_modality(backbone, sample_shapes)
    options = dict(backbone_options or {})
    per_modality = {m: dict(options.pop(m)) for m in sample_shapes if isinstance(options.get(m), Mapping)}
    encoders = {
        m: create_backbone(names[m], shape, **{**options, **per_modality.get(m, {})})
        for m, shape in sample_shapes.items()
    }
    return MultimodalNetwork(encoders, num_classes, fusion)


def _backbone_per_modality(
    backbone: str | Mapping[str, str], sample_shapes: Mapping[str, Sequence[int]]
) -> dict[str, str]:
    if not isinstance(backbone, Mapping):
        return {m: backbone for m in sample_shapes}
    missing = [m for m in sample_shapes if m not in backbone]
    unknown = [m for m in backbone if m not in sample_shapes]
    if missing or unknown:
        raise ValueError(
            f"backbone maps modalities {sorted(backbone)}, the dataset has {list(sample_shapes)}"
            + (f"; missing {missing}" if missing else "")
            + (f"; not in the dataset {unknown}" if unknown else "")
        )
    return dict(backbone)
