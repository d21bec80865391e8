"""Data-parallel training: one model replica per process under ``torch.distributed``.

The caller initialises the process group (``torchrun``, Ray Train's ``TorchTrainer``,
``torch.multiprocessing.spawn``); ``engine.prepare`` / ``engine.fit`` then see a world
of more than one process and train data-parallel:

* every rank reads its contiguous shard of the same global batch (``batch_size`` is
  the global batch; the order is still a function of (seed, epoch), so N workers
  see the batches of one);
* the model is wrapped in ``DistributedDataParallel``, and each rank's loss is
  weighted by its share of the global batch, so the averaged gradient is the mean
  over the whole global batch even when the last batch does not split evenly;
* the strategy's batch-level quantities (AL's batch-mean weights, OGM's scores,
  ARL's batch means) are all-reduced over a process group of their own, so every
  replica uses the value of the whole global batch; per-sample steps (GO) need nothing;
* training losses, accuracy and the strategy's statistics are summed over the
  ranks; every rank evaluates the whole validation / test split with identical
  weights, so the metrics agree without communication;
* rank 0 alone writes the run folder (config, metrics, checkpoints); the checkpoint
  holds every rank's random-number state, so a resumed run (same number of
  workers) ends with the numbers of one that never stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, Sampler


def active() -> bool:
    """Whether this process is one of several in an initialised ``torch.distributed`` world."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main() -> bool:
    """Rank 0, or the only process: the one that writes files."""
    return not active() or dist.get_rank() == 0


def local_device(device: torch.device) -> torch.device:
    """``device`` with the CUDA index this process was given (``torch.cuda.set_device``,
    as ``torchrun`` scripts and Ray Train do) when the config names just ``cuda``."""
    if active() and device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def shard_bounds(size: int, rank: int, world_size: int) -> tuple[int, int]:
    """[start, end) of ``rank``'s contiguous shard of ``size`` samples; sizes differ by at most 1."""
    base, extra = divmod(size, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


class ShardedBatches(Sampler[list[int]]):
    """The global batches of ``batches``, each cut into ``world_size`` contiguous shards;
    yields ``rank``'s shard of every one (as many batches as ``batches`` has)."""

    def __init__(self, batches: BatchSampler, rank: int, world_size: int):
        self.batches, self.rank, self.world_size = batches, rank, world_size

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            start, end = shard_bounds(len(batch), self.rank, self.world_size)
            yield batch[start:end]

    def __len__(self) -> int:
        return len(self.batches)


def too_small_batch(num_samples: int, batch_size: int, world_size: int) -> str | None:
    """Why some global batch would leave a rank without a sample, or None."""
    last = num_samples % batch_size
    if batch_size < world_size:
        return f"batch_size {batch_size} (the global batch) is smaller than the {world_size} workers"
    if 0 < last < world_size:
        return (
            f"the last batch of the {num_samples} training samples holds {last}, fewer than the "
            f"{world_size} workers; choose a batch_size that leaves 0 or at least {world_size}"
        )
    return None


@dataclass
class Replicas:
    """This process's place among the replicas and its DDP-wrapped model."""

    rank: int
    world_size: int
    group: Any  # a process group of its own for the strategy's reductions inside backward
    module: DistributedDataParallel

    def loss_share(self, local_size: int, global_size: int) -> float:
        """The weight of this rank's mean loss: DDP averages the ranks' gradients, so
        ``world_size * local / global`` makes the average the global batch's mean."""
        return self.world_size * local_size / global_size

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over the ranks (in place; returned for chaining)."""
        dist.all_reduce(tensor)
        return tensor

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (picklable), in rank order."""
        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values


def replicate(model: torch.nn.Module, device: torch.device) -> Replicas:
    """Wrap ``model`` (already on ``device``) in DDP; rank 0's parameters are broadcast."""
    device_ids = [device.index] if device.type == "cuda" else None
    module = DistributedDataParallel(model, device_ids=device_ids)
    return Replicas(dist.get_rank(), dist.get_world_size(), dist.new_group(), module)
