"""A synthetic multimodal classification task with controllable imbalance.

Each modality m draws a class-conditional latent ``mu_m[c] + noise * N(0, I)``
whose class means have norm ``informativeness[m]``: the larger it is, the more
label information the modality carries and the faster it is learned, so the
modality with the largest value dominates. With probability ``conflict_rate`` a
sample's non-dominant modalities show the evidence of another class than its
label, so that the modalities contradict each other on that sample.

What this knob does not set is the sign of the inner product between the
modalities' fusion gradients ``W_a^T e`` and ``W_v^T e`` (``e = p - y``): with
separate encoders that sign is fixed by the fusion weights (``e^T W_a W_v^T e``),
not by the data. Measured with ``strategy=none`` over 3 seeds, the
``conflict_fraction`` stays between 0.33 and 0.74 for every ``conflict_rate`` in
{0, 0.3, 0.6, 0.9} and moves with the initialisation, not with the rate.
The latent becomes the input through a fixed
random linear map into the modality's shape: a vector, a spectrogram (1, H, W)
or frames (C, T, H, W), so that the convolutional backbones can run on a CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from goal_plugin import _validation as check
from goal_plugin.data.base import DATASETS, SPLITS, MultimodalDataset

KINDS = ("vector", "spectrogram", "frames")


def _shape(kind: str, vector_dim: int, spectrogram_size, frames_size) -> tuple[int, ...]:
    if kind == "vector":
        return (vector_dim,)
    if kind == "spectrogram":
        return (1, *spectrogram_size)
    return tuple(frames_size)


@DATASETS.register("synthetic")
def synthetic(
    root: str | None,
    split: str,
    *,
    modalities: Sequence[str] = ("audio", "visual"),
    kinds: Sequence[str] = ("vector", "vector"),
    informativeness: Sequence[float] = (2.0, 0.8),
    conflict_rate: float = 0.0,
    noise: float = 1.0,
    num_classes: int = 10,
    latent_dim: int = 16,
    vector_dim: int = 32,
    spectrogram_size: Sequence[int] = (32, 24),
    frames_size: Sequence[int] = (3, 2, 16, 16),
    sizes: Sequence[int] = (1200, 400, 400),
    data_seed: int = 0,
) -> MultimodalDataset:
    """Options (per-modality ones are sequences in modality order):
    modalities: names; kinds: vector | spectrogram | frames; informativeness:
    class-mean norm of each modality (>= 0; the largest dominates); conflict_rate:
    share of samples whose non-dominant modalities show another class, in [0, 1];
    noise: latent noise std (> 0); num_classes; latent_dim; vector_dim;
    spectrogram_size (H, W); frames_size (C, T, H, W); sizes: train/val/test
    sample counts; data_seed: fixes the class means, the maps and every sample.
    """
    if root is not None:
        raise ValueError("synthetic data is generated: leave data_root unset")
    modalities = tuple(modalities)
    num_modalities = len(modalities)
    if num_modalities < 1 or len(set(modalities)) != num_modalities:
        raise ValueError(f"modalities must be distinct names, got {modalities}")
    for key, values in (("kinds", kinds), ("informativeness", informativeness)):
        if len(values) != num_modalities:
            raise ValueError(f"{key} needs one entry per modality ({num_modalities}), got {list(values)}")
    kinds = [check.choice("kinds", kind, KINDS) for kind in kinds]
    strength = [check.non_negative("informativeness", v) for v in informativeness]
    conflict_rate = check.in_unit_interval("conflict_rate", conflict_rate, closed_right=True)
    noise = check.positive("noise", noise)
    num_classes = check.integer("num_classes", num_classes, minimum=2)
    latent_dim = check.integer("latent_dim", latent_dim, minimum=1)
    vector_dim = check.integer("vector_dim", vector_dim, minimum=1)
    spectrogram_size = [check.integer("spectrogram_size", s, minimum=1) for s in spectrogram_size]
    frames_size = [check.integer("frames_size", s, minimum=1) for s in frames_size]
    if len(spectrogram_size) != 2 or len(frames_size) != 4:
        raise ValueError("spectrogram_size is (H, W) and frames_size is (C, T, H, W)")
    sizes = [check.integer("sizes", s, minimum=1) for s in sizes]
    if len(sizes) != 3:
        raise ValueError(f"sizes gives the train, val and test sample counts, got {sizes}")
    check.integer("data_seed", data_seed, minimum=0)

    task = np.random.default_rng([data_seed, 0])
    means, maps, shapes = [], [], []
    for kind, norm in zip(kinds, strength):
        directions = task.standard_normal((num_classes, latent_dim))
        means.append(norm * directions / np.linalg.norm(directions, axis=1, keepdims=True))
        shape = _shape(kind, vector_dim, spectrogram_size, frames_size)
        shapes.append(shape)
        maps.append(task.standard_normal((latent_dim, math.prod(shape))) / math.sqrt(latent_dim))

    split_index = SPLITS.index(split)
    rng = np.random.default_rng([data_seed, 1 + split_index])
    count = sizes[split_index]
    labels = rng.integers(0, num_classes, count)
    dominant = int(np.argmax(strength))
    conflicted = rng.random(count) < conflict_rate
    other_class = (labels + rng.integers(1, num_classes, count)) % num_classes
    data = {}
    for m, name in enumerate(modalities):
        shown = labels if m == dominant else np.where(conflicted, other_class, labels)
        latent = means[m][shown] + noise * rng.standard_normal((count, latent_dim))
        values = (latent @ maps[m]).astype(np.float32).reshape(count, *shapes[m])
        data[name] = torch.from_numpy(values)
    protocol = (
        "generated: train / val / test drawn independently from the same task "
        f"({' / '.join(map(str, sizes))} samples, data_seed {data_seed})"
    )
    return MultimodalDataset(data, torch.from_numpy(labels), num_classes, protocol=protocol)
