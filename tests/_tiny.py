"""A tiny multi-encoder network written out by hand, for gate tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TinyMultimodal(nn.Module):
    def __init__(self, num_modalities=2, in_dim=5, feat_dim=6, classes=4, conv=False):
        super().__init__()
        self.encoders = nn.ModuleList(
            nn.Sequential(nn.Linear(in_dim, feat_dim), nn.Tanh()) for _ in range(num_modalities)
        )
        if conv:  # a 4-D parameter per encoder, for OGM-GE's noise scope
            self.convs = nn.ModuleList(
                nn.Conv2d(1, 1, (3, 1), padding=(1, 0)) for _ in range(num_modalities)
            )
        self.heads = nn.ModuleList(nn.Linear(feat_dim, classes) for _ in range(num_modalities))
        self.fusion = nn.Linear(feat_dim * num_modalities, classes)

    def features(self, inputs):
        feats = []
        for index, (encoder, x) in enumerate(zip(self.encoders, inputs)):
            if hasattr(self, "convs"):
                x = self.convs[index](x[:, None, :, None])[:, 0, :, 0]
            feats.append(encoder(x))
        return feats

    def forward(self, inputs, labels, strategy=None):
        feats = self.features(inputs)
        logits = [head(f) for head, f in zip(self.heads, feats)]
        if strategy is not None:
            feats = strategy.gate(*feats, logits=logits, labels=labels)
        fused = self.fusion(torch.cat(feats, dim=1))
        return fused, logits


def loss_terms(model, inputs, labels, strategy=None, unimodal_weight=1.0):
    fused, logits = model(inputs, labels, strategy)
    fused_loss = F.cross_entropy(fused, labels)
    unimodal_loss = sum(F.cross_entropy(z, labels) for z in logits)
    return fused_loss + unimodal_weight * unimodal_loss


def make_batch(num_modalities=2, batch=8, in_dim=5, classes=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    inputs = [torch.randn(batch, in_dim, generator=generator) for _ in range(num_modalities)]
    labels = torch.randint(0, classes, (batch,), generator=generator)
    return inputs, labels
