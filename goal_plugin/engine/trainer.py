"""``fit(config)``: one deterministic, resumable training run.

Loss per step: ``L_mm + lambda_s * sum_m L(z_m)`` with lambda_s from the
strategy's recipe (or the config). When lambda_s is 0 the unimodal heads are
still trained, as probes on detached features, so that their accuracy and the
logits that AL/ARL read stay meaningful without sending any unimodal gradient
into the encoders. The strategy's gate is active only inside its modulation
window; its parameter-space extra (OGM-GE noise) runs after backward, after
AMP unscaling and before gradient clipping.

Every epoch ends with a checkpoint (see ``checkpoint.py``) and a call of
``on_epoch_end(metrics, checkpoint_dir)``; a run resumed from that checkpoint
produces the same numbers as one that never stopped (bit for bit on CPU): the
data order is a function of (seed, epoch) and every generator is restored.

A run whose training loss (at any step) or evaluation outputs stop being
finite raises ``DivergenceError`` at the end of that epoch, before its
checkpoint: the per-step losses stay on the device and are read in the one
transfer the epoch already makes for its metrics, so the check adds no
per-step synchronisation.
"""

from __future__ import annotations

import copy
import ctypes
import json
import math
import random
import resource
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler

from goal_plugin.data import DataError, build_dataset, collate_batch
from goal_plugin.data.base import dataset_protocol
from goal_plugin.engine import checkpoint as ckpt
from goal_plugin.engine import distributed
from goal_plugin.engine.config import RECORDED_KEY, ConfigError, TrialConfig, resolve_config
from goal_plugin.engine.metrics import canonical_correlations, linear_probe_accuracy
from goal_plugin.engine.run_folder import claim_run_folder
from goal_plugin.engine.tasks import TASKS, Task
from goal_plugin.methods.hook import EpochEnd, EpochStart, Objective, StepLosses, TrainingMethod
from goal_plugin.models import MultimodalNetwork, build_network
from goal_plugin.strategies.base import HarnessDefaults, Strategy

NONDETERMINISTIC_METRICS = (
    "epoch_time_s",
    "time_per_sample_ms",
    "peak_memory_mb",
    "train_time_s",
    "diagnostics_time_s",
)
COSINE_BINS = 20
CCA_COMPONENTS = 10
EpochCallback = Callable[[dict[str, Any], Path | None], None]


class DivergenceError(RuntimeError):
    """Training diverged: a non-finite training loss, or non-finite model outputs
    after an epoch whose losses were finite. ``epoch`` and ``step`` (counted from
    0) locate the first non-finite loss, or the epoch's last step (whose update
    broke the model) for the outputs."""

    def __init__(self, message: str, epoch: int, step: int):
        super().__init__(message)
        self.epoch, self.step = epoch, step

    def __reduce__(self) -> tuple[Any, ...]:  # picklable, so that Ray can hand it to the driver
        return type(self), (str(self), self.epoch, self.step)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Run:
    """Everything a training run holds; built by ``prepare``."""

    config: TrialConfig
    device: torch.device
    splits: dict[str, Any]
    model: MultimodalNetwork
    strategy: Strategy | None
    harness: HarnessDefaults
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    data_protocol: str  # how the dataset formed train / val / test, in words
    task: Task
    replicas: distributed.Replicas | None = None  # data-parallel training (see distributed.py)

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.model.modalities


def prepare(config: TrialConfig) -> Run:
    """Build data, model, strategy and optimizer; configuration errors name the key.

    Inside an initialised ``torch.distributed`` world of several processes the model
    is replicated with DDP (see ``goal_plugin.engine.distributed``)."""
    device = distributed.local_device(config.resolved_device())
    seed_everything(config.seed)
    try:
        splits = {
            split: build_dataset(config.dataset, config.data_root, split, **config.dataset_options)
            for split in ("train", "val", "test")
        }
    except ValueError as error:
        raise ConfigError(f"dataset_options / data_root of dataset {config.dataset!r}: {error}") from None
    train = splits["train"]
    task = _task(config, train)
    strategy = config.build_strategy()
    shapes = _trained_modalities(config, strategy, train.sample_shapes)
    backbone, backbone_options = config.backbone, _with_text_checkpoint(config, train)
    if strategy.only_modality is not None:  # a unimodal baseline: the other modalities' settings go
        others = set(train.sample_shapes) - {strategy.only_modality}
        if isinstance(backbone, Mapping):
            backbone = {m: name for m, name in backbone.items() if m not in others}
        backbone_options = {k: v for k, v in backbone_options.items() if not (k in others and isinstance(v, Mapping))}
    harness = config.harness(strategy)
    probes_only = getattr(strategy.training_method, "heads_as_probes", False)
    if probes_only and (harness.unimodal_loss_weight > 0 or (harness.warmup_unimodal_loss_weight or 0) > 0):
        raise ConfigError(
            f"strategy {config.strategy!r} trains the encoders with its own losses; the unimodal heads "
            "learn as probes only: unimodal_loss_weight (and warmup_unimodal_loss_weight) must be 0"
        )
    required = getattr(strategy.training_method, "fusion", None)
    if required is not None and harness.fusion != required:
        raise ConfigError(
            f"strategy {config.strategy!r} trains the {required!r} fusion module, not fusion "
            f"{harness.fusion!r}; leave fusion unset (or set it to {required!r})"
        )
    try:
        model = build_network(
            backbone,
            shapes,
            task.outputs,
            fusion=harness.fusion,
            backbone_options=backbone_options,
        ).to(device)
    except ValueError as error:
        raise ConfigError(
            f"backbone / backbone_options / fusion ({config.backbone!r}, {harness.fusion!r}): {error}"
        ) from None
    if strategy.reads not in ("nothing", task.heads_read):
        raise ConfigError(_unsupported_strategy(config, task, strategy.reads))
    tasks = getattr(strategy.training_method, "supported_tasks", None)
    if tasks is not None and task.name not in tasks:
        raise ConfigError(f"strategy {config.strategy!r} trains {', '.join(tasks)} tasks only, not {task.name}")
    if getattr(strategy.training_method, "needs_unimodal_loss", False) and harness.unimodal_loss_weight == 0:
        raise ConfigError(
            f"strategy {config.strategy!r} combines the fused and the unimodal losses' gradients: "
            "unimodal_loss_weight must be above 0"
        )
    if len(model.modalities) < 2:
        if config.strategy != "none" and strategy.only_modality is None:
            raise ConfigError(
                f"strategy {config.strategy!r} needs at least 2 modalities; the dataset gives "
                f"{list(model.modalities)} (use strategy 'none' or 'unimodal' for a unimodal baseline)"
            )
        strategy = None
    else:
        try:
            model.check_strategy(strategy)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    optimizer = _optimizer(config, model)
    scheduler = None
    if config.scheduler == "step":
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, config.lr_step_size, config.lr_gamma)
    elif config.scheduler == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs)
    amp = config.amp if config.amp is not None else device.type == "cuda"
    amp_dtype = (torch.float16 if device.type == "cuda" else torch.bfloat16) if amp else None
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    replicas = _replicate(config, model, strategy, len(train), device) if distributed.active() else None
    return Run(
        config,
        device,
        splits,
        model,
        strategy,
        harness,
        optimizer,
        scheduler,
        scaler,
        amp_dtype,
        dataset_protocol(train),
        task,
        replicas,
    )


def _replicate(
    config: TrialConfig, model: MultimodalNetwork, strategy: Strategy | None, num_train: int, device: torch.device
) -> distributed.Replicas:
    """DDP replicas of ``model``, the strategy's batch quantities reduced over them;
    ``ConfigError`` for what data-parallel training cannot reproduce."""
    if strategy is not None and (strategy.training_method is not None or strategy.parameter_hook is not None):
        what = (
            "changes the training step"
            if strategy.training_method is not None
            else "adds random noise to the gradients after backward, which each replica would draw apart"
        )
        raise ConfigError(
            f"strategy {config.strategy!r} {what}; data-parallel training (workers > 1) runs gate-only "
            "recipes: run it with 1 worker"
        )
    too_small = distributed.too_small_batch(num_train, config.batch_size, torch.distributed.get_world_size())
    if too_small is not None:
        raise ConfigError(f"batch_size: {too_small}")
    replicas = distributed.replicate(model, device)
    if strategy is not None:
        strategy.share_batch(replicas.group)
    return replicas


PLAIN_STEP = TrainingMethod()  # (L_mm + lambda * sum_m L_m).backward()


def _with_text_checkpoint(config: TrialConfig, train) -> dict[str, Any]:
    """``backbone_options`` where a ``bert_base`` encoder given neither ``path`` nor
    ``config`` reads the folder of the dataset's tokenizer (``text_checkpoint``): one
    local checkpoint folder holds both."""
    options = dict(config.backbone_options)
    folder = getattr(train, "text_checkpoint", None)
    if folder is None:
        return options
    names = config.backbone if isinstance(config.backbone, Mapping) else dict.fromkeys(train.sample_shapes, config.backbone)
    for modality, name in names.items():
        own = options.get(modality) if isinstance(options.get(modality), Mapping) else {}
        if name == "bert_base" and not {"path", "config"} & {*own, *options}:
            options[modality] = {**own, "path": str(folder)}
    return options


def _trained_modalities(config: TrialConfig, strategy: Strategy, shapes) -> dict[str, Any]:
    """The sample shapes of the modalities the run trains: all, or a unimodal baseline's one."""
    only = strategy.only_modality
    if only is None:
        return dict(shapes)
    if only not in shapes:
        raise ConfigError(
            f"modality {only!r} of strategy {config.strategy!r} is not one of the dataset's {list(shapes)}"
        )
    return {only: shapes[only]}


def _task(config: TrialConfig, train) -> Task:
    """The dataset's task (classification when it states none) with the config's head settings."""
    name = getattr(train, "task", "classification")
    if name not in TASKS:
        raise ConfigError(f"dataset {config.dataset!r} states task {name!r}; the engine trains {', '.join(TASKS)}")
    return Task(
        name,
        train.num_classes,
        regression_head=config.regression_head,
        beta_nll=config.beta_nll,
        score_range=getattr(train, "score_range", None),
    )


def _unsupported_strategy(config: TrialConfig, task: Task, reads: str) -> str:
    """Why the strategy cannot train this task, and what can."""
    heads = {"nothing": "heads whose outputs no magnitude step reads", "gaussian": "Gaussian heads"}
    what = f"{task.name} ({config.regression_head} head)" if task.name == "regression" else task.name
    fix = {
        "gaussian": "uncertainty: variance (al, goal)",
        "nothing": "a recipe without a magnitude step (none, none_uniloss, go)",
    }.get(task.heads_read, "")
    if task.name == "regression" and task.heads_read == "nothing":
        fix += ", or regression_head: gaussian with al / goal and uncertainty: variance"
    if reads == "gaussian" and task.heads_read == "class_probabilities":
        fix = "uncertainty: entropy (the default)"
    return (
        f"strategy {config.strategy!r} reads {reads.replace('_', ' ')} from the unimodal heads, but a "
        f"{what} task gives {heads.get(task.heads_read, 'class logits')}; use {fix}"
    )


def _optimizer(config: TrialConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = model.parameters()
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


def _to_device(batch: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


def _loader(run: Run, split: str, epoch: int | None) -> DataLoader:
    generator = None
    if epoch is not None:  # the data order is a function of (seed, epoch) alone
        generator = torch.Generator().manual_seed(run.config.seed * 1_000_003 + epoch)
    if epoch is not None and run.replicas is not None:  # this rank's shard of each global batch
        # The sampler and batching that shuffle=True builds, drawing from the same generator.
        batches = BatchSampler(RandomSampler(run.splits[split], generator=generator), run.config.batch_size, False)
        return DataLoader(
            run.splits[split],
            batch_sampler=distributed.ShardedBatches(batches, run.replicas.rank, run.replicas.world_size),
            generator=generator,
            num_workers=run.config.num_workers,
            collate_fn=collate_batch,
            pin_memory=run.device.type == "cuda",
        )
    return DataLoader(
        run.splits[split],
        batch_size=run.config.batch_size,
        shuffle=epoch is not None,
        generator=generator,
        num_workers=run.config.num_workers,
        collate_fn=collate_batch,
        pin_memory=run.device.type == "cuda",
    )


class _StatsAccumulator:
    """Sums strategy diagnostics on the device; converted once per epoch.

    Besides the means over all modality pairs (``cosine_before`` / ``cosine_after``),
    the mean cosine of every pair ``a`` < ``b`` (in the order of the modalities),
    ``cosine_before_<a>_<b>`` / ``cosine_after_<a>_<b>``, averaged over the epoch's
    measured steps like the means.
    """

    def __init__(self, num_modalities: int, device: torch.device):
        self.steps = 0
        self.measured = 0
        self.weights = torch.zeros(num_modalities, dtype=torch.float64, device=device)
        self.sums = torch.zeros(3, dtype=torch.float64, device=device)
        self.pairs = num_modalities * (num_modalities - 1) // 2
        self.pair_sums = torch.zeros(2, self.pairs, dtype=torch.float64, device=device)
        self.hist = torch.zeros(2, COSINE_BINS, dtype=torch.float64, device=device)

    def add(self, strategy: Strategy) -> None:
        stats = strategy.last_step_stats
        if stats is None:  # no gradient passed the gate (MLA trains nothing through the fusion)
            return
        self.steps += 1
        self.weights += stats.weights.double()
        if stats.conflict_fraction is None:
            return
        self.measured += 1
        self.sums += torch.stack(
            [stats.conflict_fraction, stats.cosines_before.mean(), stats.cosines_after.mean()]
        ).double()
        for row, cosines in enumerate((stats.cosines_before, stats.cosines_after)):
            self.hist[row] += torch.histc(cosines.double(), COSINE_BINS, -1.0, 1.0)
            # The cosines are (N, P) flattened: N inner products of each of the P pairs.
            self.pair_sums[row] += cosines.double().reshape(-1, self.pairs).mean(0)

    def reduce(self, replicas: distributed.Replicas) -> None:
        """Combine the replicas' sums (every replica measured the same steps): the
        histograms count every rank's samples; the means average the ranks' equal shards."""
        means = replicas.sum(torch.cat([self.weights, self.sums, self.pair_sums.flatten()]))
        means /= replicas.world_size
        self.weights, self.sums, pairs = means.split([len(self.weights), 3, self.pair_sums.numel()])
        self.pair_sums = pairs.reshape(self.pair_sums.shape)
        self.hist = replicas.sum(self.hist)

    def as_metrics(self, modalities: tuple[str, ...]) -> dict[str, Any]:
        metrics: dict[str, Any] = {}
        weights = (self.weights / self.steps).tolist() if self.steps else [None] * len(modalities)
        metrics.update({f"weight_{m}": w for m, w in zip(modalities, weights)})
        sums = (self.sums / self.measured).tolist() if self.measured else [None] * 3
        metrics.update(dict(zip(("conflict_fraction", "cosine_before", "cosine_after"), sums)))
        pairs = [f"{a}_{b}" for i, a in enumerate(modalities) for b in modalities[i + 1 :]]
        per_pair = (self.pair_sums / self.measured).tolist() if self.measured else [[None] * self.pairs] * 2
        for when, means in zip(("before", "after"), per_pair):
            metrics.update({f"cosine_{when}_{pair}": value for pair, value in zip(pairs, means)})
        metrics["cosine_hist_before"] = [int(v) for v in self.hist[0].tolist()]
        metrics["cosine_hist_after"] = [int(v) for v in self.hist[1].tolist()]
        return metrics


def start_epoch(run: Run, epoch: int) -> None:
    """The training method's ``on_epoch_start`` (see goal_plugin.methods.hook)."""
    method = _training_method(run)
    if method is None:
        return

    loader = _loader(run, "train", epoch)  # the epoch's own batch order

    def features(count: int):
        run.model.eval()
        try:
            with torch.no_grad():
                for _, batch in zip(range(count), loader):
                    batch = _to_device(batch, run.device)
                    out = run.model(batch)
                    yield [out.features[m] for m in run.modalities], batch["label"]
        finally:
            run.model.train()

    def probe(objective: Objective, epochs: int) -> list[tuple[float, float]]:
        return _probe(run, epoch, objective, epochs)

    method.on_epoch_start(
        EpochStart(epoch, run.task.num_labels, len(loader), features, probe, run.task.loss, run.model)
    )


def _method(run: Run) -> TrainingMethod:
    """The strategy's training method, or the plain step."""
    return _training_method(run) or PLAIN_STEP


def _training_method(run: Run) -> TrainingMethod | None:
    """The run's recipe's training method, if it has one (whatever the epoch's window)."""
    return run.strategy.training_method if run.strategy is not None else None


def _split_features(run: Run, split: str, model: torch.nn.Module | None = None):
    """(features in modality order, labels) of every batch of ``split``, eval mode, no gradients."""
    model = model or run.model
    model.eval()
    try:
        with torch.no_grad():
            for batch in _loader(run, split, None):
                batch = _to_device(batch, run.device)
                with _autocast(run):
                    out = model(batch)
                yield [out.features[m].float() for m in run.modalities], batch["label"]
    finally:
        model.train()


def _epoch_end(run: Run, epoch: int) -> None:
    """The training method's ``on_epoch_end`` (see goal_plugin.methods.hook)."""
    method = _training_method(run)
    if method is not None:
        end = EpochEnd(epoch, run.task.num_labels, run.model, lambda split: _split_features(run, split))
        method.on_epoch_end(end)


def _autocast(run: Run):
    return torch.autocast(run.device.type, dtype=run.amp_dtype or torch.float32, enabled=run.amp_dtype is not None)


def _probe(run: Run, epoch: int, objective: Objective, epochs: int) -> list[tuple[float, float]]:
    """Train a copy of the model on ``objective`` alone for ``epochs`` epochs with a fresh
    optimiser (the run's settings, no scheduler); per epoch, the mean training loss
    while training and the mean validation loss after it. Probe epoch p reads the
    training batches in the order of epoch ``epoch + p``."""
    model = copy.deepcopy(run.model)
    optimizer = _optimizer(run.config, model)
    scaler = torch.amp.GradScaler(run.device.type, enabled=run.amp_dtype == torch.float16)
    results = []
    for offset in range(epochs):
        model.train()
        total, count = torch.zeros((), dtype=torch.float64, device=run.device), 0
        for batch in _loader(run, "train", epoch + offset):
            batch = _to_device(batch, run.device)
            optimizer.zero_grad(set_to_none=True)
            with _autocast(run):
                loss = objective(model(batch), batch["label"])
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            if run.config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), run.config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            total += loss.detach().double() * len(batch["label"])
            count += len(batch["label"])
        model.eval()
        held_out, held_count = torch.zeros((), dtype=torch.float64, device=run.device), 0
        with torch.no_grad():
            for batch in _loader(run, "val", None):
                batch = _to_device(batch, run.device)
                with _autocast(run):
                    loss = objective(model(batch), batch["label"])
                held_out += loss.double() * len(batch["label"])
                held_count += len(batch["label"])
        results.append((float(total) / max(count, 1), float(held_out) / max(held_count, 1)))
    return results


def train_step(
    run: Run,
    batch: Mapping[str, torch.Tensor],
    epoch: int,
    index: int = 0,
    num_batches: int = 1,
    stats: _StatsAccumulator | None = None,
) -> torch.Tensor:
    """One training step of ``epoch`` on a batch already on the device (the model in
    train mode): forward, the recipe's backward, the optimiser step. Returns, on the
    device, (objective, fused loss) times the batch size and the correct predictions."""
    model = run.model
    modulating = run.harness.modulates(epoch)
    unimodal_weight = run.harness.unimodal_weight(epoch)
    # With lambda_s = 0 the heads learn as probes on detached features (weight 1).
    head_weight = unimodal_weight if unimodal_weight > 0 else 1.0
    strategy = run.strategy if modulating else None
    labels = batch["label"]
    scale = run.scaler.scale
    forward = model
    if run.replicas is not None:  # DDP averages the ranks' gradients: weigh each by its share
        forward = run.replicas.module
        global_size = min(run.config.batch_size, len(run.splits["train"]) - index * run.config.batch_size)
        share = run.replicas.loss_share(len(labels), global_size)
        scale = lambda loss: run.scaler.scale(loss * share)
    run.optimizer.zero_grad(set_to_none=True)
    with _autocast(run):
        out = forward(
            batch,
            strategy,
            logits_source=run.harness.logits_source,
            detach_heads=unimodal_weight == 0,
        )
        fused_loss = run.task.loss(out.fused_logits, labels)
        unimodal_losses = {m: run.task.loss(z, labels) for m, z in out.unimodal_logits.items()}
        unimodal_loss = sum(unimodal_losses.values())
    step_losses = StepLosses(
        model,
        fused_loss,
        unimodal_losses,
        head_weight,
        scale,
        out.features,
        labels,
        batch=batch,
        outputs=out,
        loss=lambda logits: run.task.loss(logits, labels),
        forward=lambda inputs, train=True: _extra_forward(run, inputs, train),
        update=lambda: _optimizer_step(run, zero=True),
        index=index,
        num_batches=num_batches,
    )
    method = strategy.training_method if strategy is not None else None
    (method or PLAIN_STEP).backward(step_losses)
    run.scaler.unscale_(run.optimizer)
    if strategy is not None:
        strategy.post_backward(model.named_parameters(), model.encoder_prefixes())
        if stats is not None:
            stats.add(strategy)
    _optimizer_step(run, unscale=False)
    with torch.no_grad():
        objective = fused_loss + unimodal_weight * unimodal_loss
        correct = run.task.correct(_method(run).predict(out), labels)
        return torch.stack([objective * len(labels), fused_loss * len(labels), correct]).double()


def train_epoch(run: Run, epoch: int, progress: bool = False) -> dict[str, Any]:
    config = run.config
    start_epoch(run, epoch)
    run.model.train()
    modulating = run.harness.modulates(epoch)
    unimodal_weight = run.harness.unimodal_weight(epoch)
    stats = _StatsAccumulator(len(run.modalities), run.device)
    seen = 0
    memory_baseline_mb = _start_memory_window(run.device)
    start = time.perf_counter()
    batches = _loader(run, "train", epoch)
    # Per step, on the device: objective, fused loss (both times batch size), correct predictions.
    step_totals = torch.empty(len(batches), 3, dtype=torch.float64, device=run.device)
    if progress:
        from tqdm import tqdm

        batches = tqdm(
            batches, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False, file=sys.stderr, disable=None
        )
    for step, batch in enumerate(batches):
        batch = _to_device(batch, run.device)
        step_totals[step] = train_step(run, batch, epoch, step, len(step_totals), stats)
        seen += len(batch["label"])
    if run.replicas is not None:  # the global batches' sums
        step_totals = run.replicas.sum(step_totals)
        seen = len(run.splits["train"])
        stats.reduce(run.replicas)
    per_step = step_totals.cpu()  # the epoch's one read of its training numbers
    _raise_if_diverged(run, epoch, per_step[:, 0])
    if run.scheduler is not None:
        run.scheduler.step()
    elapsed = time.perf_counter() - start
    loss_sum, fused_sum, correct_sum = (sum(column) for column in zip(*per_step.tolist()))  # in step order
    metrics = {
        "train_loss": loss_sum / seen,
        "train_fused_loss": fused_sum / seen,
        **({"train_acc": correct_sum / seen} if run.task.name == "classification" else {}),
        "modulating": modulating and run.strategy is not None,
        "unimodal_loss_weight": unimodal_weight,
        **stats.as_metrics(run.modalities),
        "epoch_time_s": elapsed,
        "time_per_sample_ms": 1e3 * elapsed / seen,
        "peak_memory_mb": _peak_memory_mb(run.device, memory_baseline_mb),
    }
    return metrics


_DIVERGENCE_HINT = "lower lr, set grad_clip, or check the inputs for non-finite values"


def _optimizer_step(run: Run, *, unscale: bool = True, zero: bool = False) -> None:
    """Unscale (AMP), clip, step and update the loss scale; ``zero`` then clears the gradients."""
    if unscale:
        run.scaler.unscale_(run.optimizer)
    if run.config.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.config.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    if zero:
        run.optimizer.zero_grad(set_to_none=True)


def _extra_forward(run: Run, batch: Mapping[str, torch.Tensor], train: bool):
    """A training method's extra forward pass: as the engine's (autocast), in train or eval
    mode, with autograd; the model is left in train mode."""
    if not train:
        run.model.eval()
    try:
        with _autocast(run):
            return run.model(batch)
    finally:
        run.model.train()


def _raise_if_diverged(run: Run, epoch: int, step_objectives: torch.Tensor) -> None:
    """``DivergenceError`` naming the first step whose training loss is not finite."""
    bad = torch.nonzero(~torch.isfinite(step_objectives)).flatten()
    if len(bad):
        step, steps = int(bad[0]), len(step_objectives)
        raise DivergenceError(
            f"training diverged: the loss is {float(step_objectives[step])} at epoch "
            f"{epoch + 1}/{run.config.epochs}, step {step + 1}/{steps}; {_DIVERGENCE_HINT}",
            epoch,
            step,
        )


_PROC_STATUS, _PROC_CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def _start_memory_window(device: torch.device) -> float | None:
    """Start the epoch's peak-memory measurement; returns the CPU baseline in MB
    (None where the high-water mark cannot be reset).

    CUDA: resets the allocator's peak. CPU (Linux): gives freed memory back to
    the OS, resets the process's resident-set high-water mark (``clear_refs``
    5) and returns the resident set now. The CPU figure is then the rise above
    that level, not the process's total: the total is mostly the interpreter
    and libraries, and in a Ray worker that runs trial after trial it also
    holds what earlier trials left, so trials run later would look heavier.
    """
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return None
    try:
        ctypes.CDLL(None).malloc_trim(0)  # glibc keeps freed heap pages resident otherwise
    except (AttributeError, OSError):
        pass
    try:
        _PROC_CLEAR_REFS.write_text("5")
    except OSError:
        return None  # not Linux: see _peak_memory_mb
    return _proc_status_mb("VmRSS")


def _peak_memory_mb(device: torch.device, baseline_mb: float | None) -> float:
    """CUDA: peak tensor memory allocated (parameters and optimizer state included).
    CPU: how far the resident set rose above ``baseline_mb`` during the epoch
    (activations, gradients, the strategy's temporaries; not the parameters and
    optimizer state that were resident before). Where the high-water mark
    cannot be reset (not Linux): the process's peak resident set since it started.
    """
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    if baseline_mb is not None:
        return _proc_status_mb("VmHWM") - baseline_mb
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, kB elsewhere


def _proc_status_mb(field: str) -> float:
    for line in _PROC_STATUS.read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"{_PROC_STATUS} has no {field} line")


@torch.no_grad()
def collect(run: Run, split: str) -> dict[str, torch.Tensor]:
    """Eval-mode predictions, unimodal-head predictions and features of a split (on CPU);
    ``finite`` says per sample whether every logit was finite."""
    run.model.eval()
    parts: dict[str, list[torch.Tensor]] = {}
    for batch in _loader(run, split, None):
        batch = _to_device(batch, run.device)
        with _autocast(run):
            out = run.model(batch)
            fused = _method(run).predict(out)
        logits = torch.cat([fused, *out.unimodal_logits.values()], dim=1)
        rows = {
            "label": batch["label"],
            "pred": run.task.predict(fused),
            "finite": torch.isfinite(logits).all(1),
        }
        for m in run.modalities:
            rows[f"pred_{m}"] = run.task.predict(out.unimodal_logits[m])
            rows[f"feat_{m}"] = out.features[m].float()
        for key, value in rows.items():
            parts.setdefault(key, []).append(value.cpu())
    return {key: torch.cat(values) for key, values in parts.items()}


def evaluate(run: Run, split: str, epoch: int) -> dict[str, float]:
    """Metrics of ``split`` after ``epoch``; non-finite outputs raise ``DivergenceError``
    (an update that broke the model while the losses it saw were finite)."""
    outputs = collect(run, split)
    features = [outputs[f"feat_{m}"] for m in run.modalities]
    if not (outputs["finite"].all() and all(torch.isfinite(f).all() for f in features)):
        steps = len(_loader(run, "train", epoch))
        raise DivergenceError(
            f"training diverged: the loss was finite through epoch {epoch + 1}/{run.config.epochs}, but "
            f"after its last step ({steps}/{steps}) the model's outputs on the {split} split are not finite; "
            f"{_DIVERGENCE_HINT}",
            epoch,
            steps - 1,
        )
    labels = outputs["label"]
    metrics = {f"{split}_{name}": value for name, value in run.task.scores(outputs["pred"], labels).items()}
    for m in run.modalities:
        name, value = run.task.modality_score(outputs[f"pred_{m}"], labels)
        metrics[f"{split}_{name}_{m}"] = value
    if split == "test":  # the CCA of every epoch (the paper's Figure 2b); diagnostics has the final one
        metrics.update({f"test_{key}": value for key, value in _cca(run, outputs).items()})
    return metrics


def _cca(run: Run, outputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Mean of the first CCA_COMPONENTS canonical correlations of every modality pair
    (``cca_<a>_<b>``) and their mean over pairs (``cca_mean``)."""
    results: dict[str, float] = {}
    for i, a in enumerate(run.modalities):
        for b in run.modalities[i + 1:]:
            correlations = canonical_correlations(outputs[f"feat_{a}"], outputs[f"feat_{b}"])
            results[f"cca_{a}_{b}"] = float(correlations[:CCA_COMPONENTS].mean())
    if results:
        results["cca_mean"] = sum(results.values()) / len(results)
    return results


def diagnostics(run: Run) -> dict[str, float]:
    """Linear-probe accuracy of each frozen encoder and CCA between modality features."""
    train, test = collect(run, "train"), collect(run, "test")
    num_classes = run.splits["train"].num_classes
    results: dict[str, float] = {}
    for m in run.modalities if run.task.name == "classification" else ():  # the probe classifies
        results[f"probe_acc_{m}"] = linear_probe_accuracy(
            train[f"feat_{m}"], train["label"], test[f"feat_{m}"], test["label"], num_classes
        )
    results.update(_cca(run, test))
    return results


def _state(
    run: Run, epoch: int, history: list[dict[str, Any]], replica_rng: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The checkpoint's payload; ``replica_rng``: every rank's generators under data-parallel training."""
    state = {
        "config_fingerprint": run.config.fingerprint(),
        RECORDED_KEY: run.data_protocol,
        "epoch": epoch,
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": None if run.scheduler is None else run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(),
        "strategy": {} if run.strategy is None else run.strategy.state_dict(),
        "rng": ckpt.capture_rng(),
        "history": history,
    }
    if replica_rng is not None:
        state["replica_rng"] = replica_rng
    return state


def _check_same_protocol(run: Run, state: dict[str, Any], source: Path) -> None:
    """A run continues only under the protocol it started with (the dataset's pinned
    splits could differ between installations of the package)."""
    recorded = state.get(RECORDED_KEY, run.data_protocol)  # absent from older checkpoints
    if recorded != run.data_protocol:
        raise ckpt.CheckpointError(
            f"{str(ckpt.checkpoint_file(source))!r} was evaluated under the protocol "
            f"{recorded!r}, this installation gives {run.data_protocol!r}; start a new run"
        )


def _check_same_workers(run: Run, state: dict[str, Any], source: Path) -> None:
    """A data-parallel run continues with as many workers as it had: each restores its own generators."""
    recorded = len(state.get("replica_rng", [None]))
    workers = 1 if run.replicas is None else run.replicas.world_size
    if recorded != workers:
        raise ckpt.CheckpointError(
            f"{str(ckpt.checkpoint_file(source))!r} was written by a run of {recorded} worker(s); "
            f"resume it with {recorded}, not {workers}"
        )


def _restore(run: Run, state: dict[str, Any]) -> None:
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    if run.scheduler is not None:
        run.scheduler.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    if run.strategy is not None:
        run.strategy.load_state_dict(state["strategy"])
    ckpt.restore_rng(state["rng"] if run.replicas is None else state["replica_rng"][run.replicas.rank])


def _summary(run: Run, history: list[dict[str, Any]], extra: dict[str, Any], finished: bool) -> dict[str, Any]:
    results: dict[str, Any] = {
        "config": run.config.as_dict(),
        RECORDED_KEY: run.data_protocol,
        "fingerprint": run.config.fingerprint(),
        "modalities": list(run.modalities),
        "finished": finished,
        "history": history,
    }
    if finished:
        selection, higher_is_better = run.task.selection
        scores = [history[e][f"val_{selection}"] for e in range(len(history))]
        best = (max if higher_is_better else min)(range(len(history)), key=scores.__getitem__)  # first best
        final = {**history[-1], **extra, RECORDED_KEY: run.data_protocol, "task": run.task.name}
        final.update(best_val_epoch=best, **{f"best_val_{selection}": scores[best]})
        for name in run.task.score_names:
            final[f"test_{name}_at_best_val"] = history[best][f"test_{name}"]
        results["final"] = final
    return results


def _recorded_config(config: TrialConfig, data_protocol: str) -> dict[str, Any]:
    """What a run folder's ``config.json`` holds: the config and, under
    ``RECORDED_KEY``, the evaluation protocol the dataset stated."""
    return {**config.as_dict(), RECORDED_KEY: data_protocol}


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(payload, indent=1, default=_json_default, allow_nan=True))
    temporary.replace(path)


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.generic,)):
        return value.item()
    return str(value)


def _data_error(config: TrialConfig, error: DataError) -> ConfigError:
    """A dataset file found malformed while training, as the one-line error of a bad
    data_root (the whole message names the file, what was expected and the layout)."""
    return ConfigError(f"data_root of dataset {config.dataset!r}: {error.one_line()}")


def fit(
    config: Mapping[str, Any] | TrialConfig | None = None,
    *,
    output_dir: str | Path | None = None,
    resume_from: str | Path | None = None,
    on_epoch_end: EpochCallback | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train one trial; returns ``{"config", "history", "final", ...}``.

    output_dir: writes ``config.json``, ``metrics.json`` (every epoch) and
    ``checkpoint/checkpoint.pt`` (every epoch). A folder that already holds a run
    raises ``RunFolderError`` unless that run is the one resumed (``resume_from``
    is the folder or inside it) or ``overwrite`` (its run files are removed first).
    resume_from: a checkpoint file or folder (or a previous ``output_dir``) of a
    run with the same configuration.
    on_epoch_end(metrics, checkpoint_dir): called after each epoch's checkpoint.
    Under data-parallel training (see ``distributed.py``) every rank calls ``fit``
    with the same arguments; rank 0 alone writes ``output_dir`` (the others get
    ``checkpoint_dir=None``), every rank reads ``resume_from``.
    log: receives one summary line per epoch.
    Raises ``DivergenceError`` at the end of an epoch in which a training loss, or
    after which the model's evaluation outputs, are not finite; ``metrics.json``
    then holds the finished epochs and the error, and the checkpoint stays the
    last finite epoch's. A dataset file found missing or malformed while reading a
    batch raises ``ConfigError`` naming the file.
    """
    config = config if isinstance(config, TrialConfig) else resolve_config(config)
    run = prepare(config)
    output = Path(output_dir) if output_dir is not None and distributed.is_main() else None
    checkpoint_dir = output / "checkpoint" if output is not None else None
    state = None
    if resume_from is not None:  # checked before the run folder's config.json is rewritten
        source = Path(resume_from)
        if (source / "checkpoint").is_dir():
            source = source / "checkpoint"
        state = ckpt.load_checkpoint(source, config.fingerprint())
        _check_same_protocol(run, state, source)
        _check_same_workers(run, state, source)
    if output is not None:
        resumed_here = resume_from is not None and output.resolve() in (
            Path(resume_from).resolve(),
            *Path(resume_from).resolve().parents,
        )
        claim_run_folder(output, resuming=resumed_here, overwrite=overwrite)
        _write_json(output / "config.json", _recorded_config(config, run.data_protocol))
    history: list[dict[str, Any]] = []
    first_epoch = 0
    if state is not None:
        _restore(run, state)
        history = list(state["history"])
        first_epoch = state["epoch"] + 1
    for epoch in range(first_epoch, config.epochs):
        metrics = {"epoch": epoch, "lr": run.optimizer.param_groups[0]["lr"]}
        try:
            metrics.update(train_epoch(run, epoch, progress))
            metrics.update(evaluate(run, "val", epoch))
            metrics.update(evaluate(run, "test", epoch))
            _epoch_end(run, epoch)
        except DivergenceError as error:
            if output is not None:
                unfinished = _summary(run, history, {}, finished=False)
                _write_json(output / "metrics.json", {**unfinished, "error": str(error)})
            raise
        except DataError as error:
            raise _data_error(config, error) from None
        history.append(metrics)
        replica_rng = None if run.replicas is None else run.replicas.gather(ckpt.capture_rng())
        if checkpoint_dir is not None:
            ckpt.save_checkpoint(checkpoint_dir, _state(run, epoch, history, replica_rng))
            _write_json(output / "metrics.json", _summary(run, history, {}, finished=False))
        if log is not None:
            score, _ = run.task.selection
            log(
                f"epoch {epoch + 1}/{config.epochs}  loss {metrics['train_loss']:.4f}  "
                f"val {score} {metrics[f'val_{score}']:.4f}  test {score} {metrics[f'test_{score}']:.4f}  "
                f"({metrics['epoch_time_s']:.2f}s)"
            )
        if on_epoch_end is not None:
            on_epoch_end(metrics, checkpoint_dir)
    started = time.perf_counter()
    try:
        extra = diagnostics(run) if config.diagnostics else {}
    except DataError as error:
        raise _data_error(config, error) from None
    extra["diagnostics_time_s"] = time.perf_counter() - started
    extra["train_time_s"] = sum(m["epoch_time_s"] for m in history)
    results = _summary(run, history, extra, finished=True)
    if output is not None:
        _write_json(output / "metrics.json", results)
    return results
