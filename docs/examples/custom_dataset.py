"""A dataset registered in your own code, trained by the engine (docs/extending.md).

    python docs/examples/custom_dataset.py

``register_dataset(name)`` adds a factory ``(root, split, **options) -> dataset``;
the dataset gives samples ``{modality: Tensor, "label": Tensor}`` and says its
``modalities``, ``sample_shapes``, ``num_classes``, ``class_names`` and ``protocol``.
``MultimodalDataset`` does all of that for tensors held in memory.
"""

from __future__ import annotations

import torch

from goal_plugin.data import MultimodalDataset, register_dataset
from goal_plugin.engine import fit

SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}


@register_dataset("two_sensors")
def two_sensors(
    root: str | None, split: str, *, samples: int = 120, classes: int = 3
) -> MultimodalDataset:
    """Two noisy sensors of one class signal: ``accel`` (a clear one) and ``gyro``
    (a faint one); ``root`` is unused (nothing is read from files)."""
    if not isinstance(samples, int) or samples < classes:
        raise ValueError(f"samples must be an integer >= classes ({classes}), got {samples!r}")
    generator = torch.Generator().manual_seed(SPLIT_SEEDS[split])
    labels = torch.arange(samples) % classes
    signal = torch.nn.functional.one_hot(labels, classes).float()
    accel = torch.cat([2.0 * signal, torch.randn(samples, 5, generator=generator)], dim=1)
    gyro = torch.cat([0.5 * signal, torch.randn(samples, 9, generator=generator)], dim=1)
    accel += torch.randn(accel.shape, generator=generator)
    gyro += torch.randn(gyro.shape, generator=generator)
    return MultimodalDataset(
        {"accel": accel, "gyro": gyro},
        labels,
        classes,
        protocol="generated: train / val / test drawn with seeds 0 / 1 / 2",
    )


if __name__ == "__main__":
    results = fit({"dataset": "two_sensors", "strategy": "goal", "epochs": 3, "batch_size": 16})
    final = results["final"]
    print(f"two_sensors with goal: test accuracy {final['test_acc']:.3f}")
    print(
        f"linear probes: accel {final['probe_acc_accel']:.3f}, gyro {final['probe_acc_gyro']:.3f}"
    )
