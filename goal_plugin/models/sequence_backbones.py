"""Encoders over feature sequences (T, D) with a padding mask: ``transformer_seq`` and ``lstm``.

The datasets that carry pre-extracted features (CMU-MOSI / MOSEI, MELD, IEMOCAP)
give each modality as a padded sequence ``(B, T, D)`` and a mask ``(B, T)``, True
on real steps; the network hands the mask to encoders that take one
(``accepts_mask``). Both encoders ignore padded steps entirely, so a sequence's
features do not change when more padding is added (tested):

- ``transformer_seq``: a linear input projection, learned positions,
  ``nn.TransformerEncoder`` (pre-norm) with the padding as ``src_key_padding_mask``,
  and the mean over the real steps;
- ``lstm``: ``nn.LSTM`` over the packed sequence (``pack_padded_sequence`` with the
  lengths from the mask), the last hidden state of each direction.

Without a mask every step is real.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from goal_plugin import _validation as check
from goal_plugin.models.backbones import BACKBONES


def _sequence_shape(name: str, input_shape: tuple[int, ...]) -> tuple[int, int]:
    if len(input_shape) != 2:
        raise ValueError(
            f"backbone {name!r} needs a feature sequence (T, D) per sample, got shape {input_shape}"
        )
    return input_shape


def _full_mask(x: Tensor, mask: Tensor | None) -> Tensor:
    if mask is None:
        return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    if mask.shape != x.shape[:2]:
        raise ValueError(f"mask of shape {tuple(mask.shape)} for a sequence batch of shape {tuple(x.shape)}")
    if not bool(mask.any(dim=1).all()):
        raise ValueError("a sequence of the batch has no real step (its mask is all False)")
    return mask.bool()


class TransformerSequenceEncoder(nn.Module):
    accepts_mask = True

    def __init__(self, steps: int, in_dim: int, d_model: int, heads: int, layers: int, dropout: float):
        super().__init__()
        self.projection = nn.Linear(in_dim, d_model)
        self.positions = nn.Parameter(torch.zeros(1, steps, d_model))
        nn.init.normal_(self.positions, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, heads, dim_feedforward=4 * d_model, dropout=dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.out_dim = d_model

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        mask = _full_mask(x, mask)
        steps = x.shape[1]
        if steps > self.positions.shape[1]:
            raise ValueError(f"sequence of {steps} steps, the encoder was built for at most {self.positions.shape[1]}")
        hidden = self.projection(x) + self.positions[:, :steps]
        hidden = self.norm(self.encoder(hidden, src_key_padding_mask=~mask))
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1)


class LSTMSequenceEncoder(nn.Module):
    accepts_mask = True

    def __init__(self, in_dim: int, hidden_dim: int, layers: int, bidirectional: bool, dropout: float):
        super().__init__()
        self.lstm = nn.LSTM(
            in_dim,
            hidden_dim,
            num_layers=layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.out_dim = hidden_dim * (2 if bidirectional else 1)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        mask = _full_mask(x, mask)
        lengths = mask.sum(dim=1)
        if not bool((mask == (torch.arange(x.shape[1], device=x.device) < lengths[:, None])).all()):
            raise ValueError("the lstm backbone reads the mask as lengths: padding must follow the real steps")
        lengths = lengths.cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, (hidden, _) = self.lstm(packed)
        directions = 2 if self.lstm.bidirectional else 1
        return hidden[-directions:].transpose(0, 1).flatten(1)


@BACKBONES.register("transformer_seq")
def transformer_seq(
    input_shape: tuple[int, ...],
    *,
    d_model: int = 64,
    heads: int = 4,
    layers: int = 2,
    dropout: float = 0.1,
) -> nn.Module:
    """Transformer encoder over a (T, D) feature sequence, mean over the real steps."""
    steps, in_dim = _sequence_shape("transformer_seq", input_shape)
    check.integer("d_model", d_model, minimum=1)
    check.integer("heads", heads, minimum=1)
    check.integer("layers", layers, minimum=1)
    check.in_unit_interval("dropout", dropout)
    if d_model % heads:
        raise ValueError(f"d_model ({d_model}) must be a multiple of heads ({heads})")
    return TransformerSequenceEncoder(steps, in_dim, d_model, heads, layers, dropout)


@BACKBONES.register("lstm")
def lstm(
    input_shape: tuple[int, ...],
    *,
    hidden_dim: int = 64,
    layers: int = 1,
    bidirectional: bool = True,
    dropout: float = 0.0,
) -> nn.Module:
    """LSTM over the packed (T, D) feature sequence; the last hidden state of each direction."""
    _, in_dim = _sequence_shape("lstm", input_shape)
    check.integer("hidden_dim", hidden_dim, minimum=1)
    check.integer("layers", layers, minimum=1)
    check.in_unit_interval("dropout", dropout)
    if not isinstance(bidirectional, bool):
        raise ValueError(f"bidirectional must be true or false, got {bidirectional!r}")
    return LSTMSequenceEncoder(in_dim, hidden_dim, layers, bidirectional, dropout)
