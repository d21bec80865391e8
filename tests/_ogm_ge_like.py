"""Stand-ins shaped like the official OGM-GE code (GeWu-Lab/OGM-GE_CVPR2022), written
from its structure: fusion modules with its call and return signatures
(``x, y, out = fusion(x, y)``; ``GatedFusion`` returns its two projections instead
of its inputs), and an ``AVClassifier`` whose forward returns what the fusion
module returns. Encoders are tiny, so a test step runs in milliseconds."""

from __future__ import annotations

import torch
from torch import nn


class ConcatFusion(nn.Module):
    def __init__(self, input_dim, output_dim):
        super().__init__()
        self.fc_out = nn.Linear(input_dim, output_dim)

    def forward(self, x, y):
        return x, y, self.fc_out(torch.cat((x, y), dim=1))


class SumFusion(nn.Module):
    def __init__(self, input_dim, output_dim):
        super().__init__()
        self.fc_x = nn.Linear(input_dim // 2, output_dim)
        self.fc_y = nn.Linear(input_dim // 2, output_dim)

    def forward(self, x, y):
        return x, y, self.fc_x(x) + self.fc_y(y)


class FiLM(nn.Module):
    """x conditions y: ``gamma * y + beta`` with ``gamma, beta`` from x."""

    def __init__(self, input_dim, output_dim):
        super().__init__()
        self.dim = input_dim // 2
        self.fc = nn.Linear(self.dim, 2 * self.dim)
        self.fc_out = nn.Linear(self.dim, output_dim)

    def forward(self, x, y):
        gamma, beta = torch.split(self.fc(x), self.dim, dim=1)
        return x, y, self.fc_out(gamma * y + beta)


class GatedFusion(nn.Module):
    """Returns its projections of x and y (computed from its inputs), then the output."""

    def __init__(self, input_dim, output_dim):
        super().__init__()
        dim = input_dim // 2
        self.fc_x = nn.Linear(dim, dim)
        self.fc_y = nn.Linear(dim, dim)
        self.fc_out = nn.Linear(dim, output_dim)

    def forward(self, x, y):
        out_x, out_y = self.fc_x(x), self.fc_y(y)
        return out_x, out_y, self.fc_out(torch.sigmoid(out_x) * out_y)


FUSIONS = {"concat": ConcatFusion, "sum": SumFusion, "film": FiLM, "gated": GatedFusion}


class AVClassifier(nn.Module):
    """``audio_net`` / ``visual_net`` -> pooled features -> ``a, v, out = fusion_module(a, v)``."""

    def __init__(self, fusion="concat", feat_dim=6, n_classes=4):
        super().__init__()
        self.audio_net = nn.Sequential(nn.Conv2d(1, feat_dim, 3, padding=1), nn.Tanh())
        self.visual_net = nn.Sequential(nn.Conv2d(3, feat_dim, 3, padding=1), nn.Tanh())
        self.fusion_module = FUSIONS[fusion](2 * feat_dim, n_classes)

    def features(self, audio, visual):
        a = self.audio_net(audio).mean(dim=(2, 3))
        batch, _, frames = visual.shape[:3]  # (B, C, T, H, W): frames share the encoder
        v = self.visual_net(visual.transpose(1, 2).flatten(0, 1)).mean(dim=(2, 3))
        return a, v.view(batch, frames, -1).mean(dim=1)

    def forward(self, audio, visual):
        a, v = self.features(audio, visual)
        a, v, out = self.fusion_module(a, v)
        return a, v, out


def make_batch(batch=8, n_classes=4, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    audio = torch.randn(batch, 1, 5, 4, generator=generator, dtype=dtype)
    visual = torch.randn(batch, 3, 2, 4, 4, generator=generator, dtype=dtype)
    return audio, visual, torch.randint(0, n_classes, (batch,), generator=generator)
