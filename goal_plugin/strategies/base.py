"""A strategy is a recipe: a magnitude step, then a direction step, plus the
training-harness defaults of the method it reproduces.

Both steps are pure tensor math on the per-modality gradients ``dL_mm/df_m`` that
reach the fusion input. The magnitude step turns the modality-specific logits into
one non-negative multiplier per modality; the direction step (identity or GO) then
acts on the scaled gradients. Nothing here knows about models, optimisers or Ray.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed
from torch import Tensor

from goal_plugin import _validation as check
from goal_plugin.strategies import _geometry

LOGITS_SOURCES = ("unimodal_head", "fusion_slice")


@dataclass(frozen=True)
class HarnessDefaults:
    """How the source method trains; the harness reads these, a sweep may override each.

    ``unimodal_loss_weight`` is lambda_s in ``L_mm + lambda_s * sum_m L(z_m)``.
    ``warmup_unimodal_loss_weight`` replaces it before ``modulation_starts`` (ARL
    trains with weight 1 during its warm-up); ``None`` keeps ``unimodal_loss_weight``.
    ``logits_source`` says which logits the magnitude step reads: the unimodal
    heads' (Eq. 3 of GOAL) or the fused classifier's weight slices (OGM).
    The strategy acts only for epochs in ``[modulation_starts, modulation_ends]``
    (0-based, inclusive; ``None`` = until the end), as in OGM's official loop.
    ``fusion`` is the fusion module the method trains (concatenation for every
    built-in recipe but MLA's shared head).
    """

    unimodal_loss_weight: float = 1.0
    warmup_unimodal_loss_weight: float | None = None
    logits_source: str = "unimodal_head"
    modulation_starts: int = 0
    modulation_ends: int | None = None
    fusion: str = "concat"

    def __post_init__(self) -> None:
        if not isinstance(self.fusion, str) or not self.fusion:
            raise ValueError(f"fusion must name a fusion module, got {self.fusion!r}")
        check.non_negative("unimodal_loss_weight", self.unimodal_loss_weight)
        if self.warmup_unimodal_loss_weight is not None:
            check.non_negative("warmup_unimodal_loss_weight", self.warmup_unimodal_loss_weight)
        check.choice("logits_source", self.logits_source, LOGITS_SOURCES)
        check.integer("modulation_starts", self.modulation_starts, minimum=0)
        if self.modulation_ends is not None:
            check.integer("modulation_ends", self.modulation_ends, minimum=self.modulation_starts)

    def modulates(self, epoch: int) -> bool:
        ends = self.modulation_ends
        return self.modulation_starts <= epoch and (ends is None or epoch <= ends)

    def unimodal_weight(self, epoch: int) -> float:
        if self.warmup_unimodal_loss_weight is not None and epoch < self.modulation_starts:
            return self.warmup_unimodal_loss_weight
        return self.unimodal_loss_weight

    def replace(self, **changes: object) -> HarnessDefaults:
        known = {f.name for f in dataclasses.fields(self)}
        for key in changes:
            if key not in known:
                raise ValueError(check.unknown_name_message("harness setting", key, known))
        return dataclasses.replace(self, **changes)


class MagnitudeStep:
    """Maps modality-specific logits (and labels) to one multiplier per modality.

    ``reads`` says what the logits must be: ``"class_probabilities"`` (class
    logits, read through a softmax) or ``"gaussian"`` (a regression head's mean
    and log-variance); a trainer refuses a task whose heads give something else.

    Batch-level quantities go through ``batch_mean`` / ``batch_sum``: under
    data-parallel training (``batch_group`` set by ``Strategy.share_batch``) each
    replica holds a shard of the batch, and these reduce over all replicas so that
    the weights equal those of one process holding the whole batch.
    """

    requires_logits = True
    requires_labels = False
    reads = "class_probabilities"
    batch_group = None  # a torch.distributed group whose replicas share the batch

    def weights(self, logits: Sequence[Tensor], labels: Tensor | None) -> Tensor:
        """Return a (M,) tensor of non-negative multipliers in the logits' dtype."""
        raise NotImplementedError

    def batch_mean(self, values: Tensor, dim: int) -> Tensor:
        """Mean of per-sample ``values`` over their batch dimension ``dim``, over the
        whole batch of all replicas (per-replica sums and counts all-reduced)."""
        if self.batch_group is None:
            return values.mean(dim=dim)
        sums = values.sum(dim=dim)
        totals = torch.cat([sums.flatten().double(), sums.new_full((1,), values.shape[dim], dtype=torch.float64)])
        torch.distributed.all_reduce(totals, group=self.batch_group)
        return (totals[:-1] / totals[-1]).to(values.dtype).reshape(sums.shape)

    def batch_sum(self, sums: Tensor) -> Tensor:
        """``sums`` over this replica's samples, summed over all replicas."""
        if self.batch_group is None:
            return sums
        total = sums.double()
        torch.distributed.all_reduce(total, group=self.batch_group)
        return total.to(sums.dtype)


class DirectionStep:
    """Changes the direction of the (already scaled) modality gradients.

    ``space`` is where inner products are taken: ``"sample"`` (one inner product
    per sample, the default) or ``"batch"`` (over the flattened batch).
    """

    space = "sample"
    requires_equal_sizes = True

    def apply(self, stacked: Tensor) -> Tensor:
        """(M, N, D) gradients -> (M, N, D) new gradients; must not modify the input."""
        raise NotImplementedError


class ParameterHook:
    """A parameter-space extra applied after ``loss.backward()`` (e.g. OGM-GE noise)."""

    def __call__(
        self,
        params_by_modality: Sequence[Sequence[torch.nn.Parameter]],
        modality_weights: Tensor,
    ) -> None:
        raise NotImplementedError


class Strategy:
    """Magnitude step, then direction step; see ``modify`` for the contract.

    Use ``goal_plugin.create_strategy(name, **hparams)`` rather than building one by
    hand: the registry validates the hyperparameters and records them in
    ``self.hparams``.
    """

    def __init__(
        self,
        magnitude: MagnitudeStep | None = None,
        direction: DirectionStep | None = None,
        defaults: HarnessDefaults = HarnessDefaults(),
        parameter_hook: ParameterHook | None = None,
        training_method: object | None = None,
        only_modality: str | None = None,
    ) -> None:
        self.magnitude = magnitude
        self.direction = direction
        self.defaults = defaults
        self.parameter_hook = parameter_hook
        # A goal_plugin.methods.hook.TrainingMethod: how the trainer computes a step's
        # gradients for methods that need more than this gate (e.g. MMPareto).
        self.training_method = training_method
        # A unimodal baseline: the trainer builds one encoder and head, on this modality.
        self.only_modality = only_modality
        self.name = type(self).__name__
        self.hparams: dict[str, object] = {}
        self._stats: _geometry.StepStats | None = None
        self._materialised_stats: dict[str, object] | None = None

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.hparams.items())
        return f"<strategy {self.name}({args})>"

    @property
    def requires_logits(self) -> bool:
        return self.magnitude is not None and self.magnitude.requires_logits

    def share_batch(self, group: object) -> None:
        """Data-parallel training: each replica's ``modify`` sees its shard of the batch;
        the magnitude step's batch-level quantities are all-reduced over the
        ``torch.distributed`` ``group`` (collective: every replica's backward calls it)."""
        if self.magnitude is not None:
            self.magnitude.batch_group = group

    def require_gate_only(self, where: str) -> None:
        """Refuse a recipe that is more than its gate (a training step of its own, or a
        one-modality network) where only the gate runs (``attach``, BalanceMM)."""
        if self.training_method is not None or self.only_modality is not None:
            what = "changes the training step" if self.training_method is not None else "trains one modality alone"
            raise ValueError(
                f"strategy {self.name!r} {what}, which {where} cannot do (it applies the gate only); "
                "run it with goal_plugin's trainer (runners/train.py, runners/sweep.py)"
            )

    @property
    def reads(self) -> str:
        """What the recipe reads from the heads: ``"nothing"``, or its magnitude step's ``reads``."""
        return self.magnitude.reads if self.requires_logits else "nothing"

    @property
    def requires_labels(self) -> bool:
        return self.magnitude is not None and self.magnitude.requires_labels

    @property
    def stats_space(self) -> str:
        return self.direction.space if self.direction is not None else "sample"

    # ------------------------------------------------------------------ checks
    def check_inputs(
        self,
        tensors: Sequence[Tensor],
        logits: Sequence[Tensor] | None,
        labels: Tensor | None,
        *,
        what: str = "grads",
        complete: bool = True,
    ) -> None:
        """Shape and presence checks only (no device synchronisation).

        ``complete=False`` skips the checks that the logits and labels the magnitude
        step reads are present (the gate runs them in backward, where it reads them).
        """
        num_modalities = len(tensors)
        if num_modalities < 2:
            raise ValueError(
                f"{self.name} needs at least 2 modalities, got {num_modalities} {what} tensor(s)"
            )
        for index, tensor in enumerate(tensors):
            if not isinstance(tensor, Tensor):
                raise ValueError(f"{what}[{index}] must be a torch.Tensor, got {type(tensor).__name__}")
            if tensor.dim() < 2:
                raise ValueError(
                    f"{what}[{index}] must have shape (batch, features...), got {tuple(tensor.shape)}"
                )
        batch = tensors[0].shape[0]
        for index, tensor in enumerate(tensors):
            if tensor.shape[0] != batch:
                raise ValueError(
                    f"{what}[{index}] has batch size {tensor.shape[0]}, {what}[0] has {batch}"
                )
        if self.direction is not None and self.direction.requires_equal_sizes:
            sizes = [tuple(tensor.shape[1:]) for tensor in tensors]
            if len(set(sizes)) > 1:
                raise ValueError(
                    f"{self.name} compares modality gradients, so every gated feature must have "
                    f"the same per-sample shape; got {sizes}. Add a projection layer (e.g. "
                    "nn.Linear) that maps each modality to a common dimension before the gate."
                )
        if logits is not None:
            self._check_logits(logits, num_modalities, batch)
        elif self.requires_logits and complete:
            raise ValueError(f"{self.name} reads modality-specific logits: pass logits=(z_1, ..., z_M)")
        if not self.requires_labels:
            return  # labels a recipe does not read (regression targets, say) are not its concern
        if labels is not None:
            if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.shape[0] != batch:
                shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
                raise ValueError(f"labels must be a 1-D tensor of {batch} class indices, got {shape}")
            if labels.is_floating_point() or labels.is_complex():
                raise ValueError(f"labels must hold integer class indices, got dtype {labels.dtype}")
        elif complete:
            raise ValueError(
                f"{self.name} needs the labels: pass labels=y (a 1-D tensor of class indices); "
                "with goal_plugin.attach, call handle.set_labels(y) before each training forward"
            )

    def _check_logits(self, logits: Sequence[Tensor], num_modalities: int, batch: int) -> None:
        if len(logits) != num_modalities:
            raise ValueError(f"got {len(logits)} logits tensors for {num_modalities} modalities")
        for index, z in enumerate(logits):
            if not isinstance(z, Tensor) or z.dim() != 2:
                shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
                raise ValueError(f"logits[{index}] must have shape (batch, classes), got {shape}")
            if z.shape[0] != batch:
                raise ValueError(
                    f"logits[{index}] has batch size {z.shape[0]} but the gradients have {batch}"
                )
            if z.shape[1] < 2:
                raise ValueError(f"logits[{index}] must have at least 2 classes, got {z.shape[1]}")
            if z.shape[1] != logits[0].shape[1]:
                raise ValueError(
                    f"logits[{index}] has {z.shape[1]} classes, logits[0] has {logits[0].shape[1]}"
                )

    # -------------------------------------------------------------------- math
    def modify(
        self,
        grads: Sequence[Tensor],
        logits: Sequence[Tensor] | None,
        labels: Tensor | None = None,
    ) -> list[Tensor]:
        """Apply the recipe to the M per-sample fusion gradients ``dL_mm/df_m``.

        ``grads``: M tensors (B, d...) ; ``logits``: M tensors (B, K) of
        modality-specific logits (may be ``None`` when the magnitude step reads
        none); ``labels``: (B,) class indices where the magnitude step needs them.
        Returns M new tensors with the dtypes, shapes and devices of ``grads``.
        The arithmetic runs in at least float32 with autocast disabled; inputs
        are never modified.
        """
        self.check_inputs(grads, logits, labels)
        device = grads[0].device
        with torch.autocast(device_type=device.type, enabled=False):
            work_dtype = torch.promote_types(grads[0].dtype, torch.float32)
            flat = [g.reshape(g.shape[0], -1).to(work_dtype) for g in grads]
            if self.magnitude is None:
                weights = torch.ones(len(grads), dtype=work_dtype, device=device)
            else:
                weights = self.magnitude.weights(
                    [z.detach().to(device=device, dtype=work_dtype) for z in logits]
                    if logits is not None
                    else [],
                    labels.to(device) if labels is not None else None,
                ).to(work_dtype)
            if len({g.shape[1] for g in flat}) > 1:  # no inner products across modalities
                out = [w * g for w, g in zip(weights.unbind(), flat)]
                self._stats = _geometry.StepStats.measure(weights, None, None)
            else:
                stacked = torch.stack(flat)  # (M, B, D)
                result = stacked * weights[:, None, None]
                if self.direction is not None:
                    in_space = _geometry.to_space(result, self.direction.space)
                    result = self.direction.apply(in_space).reshape(stacked.shape)
                self._stats = _geometry.StepStats.measure(
                    weights,
                    _geometry.to_space(stacked, self.stats_space),
                    _geometry.to_space(result, self.stats_space),
                )
                out = result.unbind()
            self._materialised_stats = None
        return [o.reshape(g.shape).to(g.dtype) for o, g in zip(out, grads)]

    @property
    def last_stats(self) -> dict[str, object]:
        """Diagnostics of the last ``modify`` call (empty before the first one).

        ``weights``: the magnitude step's per-modality multipliers;
        ``conflict_fraction``: share of modality pairs (per sample, or per batch
        in batch space) whose gradients have a negative inner product;
        ``cosine_before`` / ``cosine_after``: mean cosine between modality
        gradients before and after the strategy. The last three are ``None``
        when the modalities' feature sizes differ (no inner product exists).
        Values are kept on the device and converted on first access, so
        logging them costs no synchronisation in the backward pass.
        """
        if self._stats is None:
            return {}
        if self._materialised_stats is None:
            self._materialised_stats = self._stats.as_dict()
        return self._materialised_stats

    @property
    def last_step_stats(self) -> _geometry.StepStats | None:
        """The last call's diagnostics as device tensors (for accumulation without syncs)."""
        return self._stats

    def state_dict(self) -> dict[str, object]:
        """Persistent state across steps: its training method's, if it keeps any (the
        gate keeps none)."""
        method = {} if self.training_method is None else self.training_method.state_dict()
        return {"training_method": method} if method else {}

    def load_state_dict(self, state: dict[str, object]) -> None:
        state = dict(state)
        method = state.pop("training_method", {})
        if state:
            raise ValueError(f"{self.name} keeps no state, got keys {sorted(state)}")
        if self.training_method is not None:
            self.training_method.load_state_dict(method)
        elif method:
            raise ValueError(f"{self.name} has no training method, got its state")

    @property
    def last_weights(self) -> Tensor | None:
        return None if self._stats is None else self._stats.weights

    def last_cosines(self) -> tuple[Tensor, Tensor] | None:
        """Per-sample (or per-batch) cosines of every modality pair, before and after."""
        if self._stats is None or self._stats.cosines_before is None:
            return None
        return self._stats.cosines_before, self._stats.cosines_after

    # ---------------------------------------------------------------- plumbing
    def gate(
        self,
        *features: Tensor,
        logits: Sequence[Tensor] | None = None,
        labels: Tensor | None = None,
    ) -> tuple[Tensor, ...]:
        """Identity on ``features``; in backward, apply ``modify`` to their gradients.

        Insert it between the encoders and the fusion module:
        ``f_a, f_v = s.gate(f_a, f_v, logits=(z_a, z_v), labels=y)``.
        """
        from goal_plugin.gate import gate

        return gate(self, *features, logits=logits, labels=labels)

    def post_backward(
        self,
        named_parameters: Iterable[tuple[str, torch.nn.Parameter]],
        encoder_prefixes: Sequence[str],
    ) -> None:
        """Run the recipe's parameter-space extra (if any) after ``loss.backward()``.

        ``encoder_prefixes[m]`` is the module path of modality m's encoder
        (e.g. ``"encoders.audio"``); names are matched after removing wrapper
        prefixes (``module.`` of DataParallel/DDP, ``_orig_mod.`` of
        torch.compile), so the same call works for wrapped and bare models.
        """
        if self.parameter_hook is None:
            return
        if self._stats is None:
            raise RuntimeError(
                f"{self.name}.post_backward needs the modality weights of a backward pass "
                "through the gate; call it after loss.backward()"
            )
        groups = group_parameters_by_prefix(named_parameters, encoder_prefixes)
        self.parameter_hook(groups, self._stats.weights)


_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def strip_wrapper_prefixes(name: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in _WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name, stripped = name[len(prefix):], True
    return name


def group_parameters_by_prefix(
    named_parameters: Iterable[tuple[str, torch.nn.Parameter]],
    encoder_prefixes: Sequence[str],
) -> list[list[torch.nn.Parameter]]:
    """Split parameters by encoder module path; every prefix must match something."""
    prefixes = [strip_wrapper_prefixes(p).rstrip(".") for p in encoder_prefixes]
    groups: list[list[torch.nn.Parameter]] = [[] for _ in prefixes]
    seen: list[str] = []
    for name, param in named_parameters:
        name = strip_wrapper_prefixes(name)
        seen.append(name)
        for index, prefix in enumerate(prefixes):
            if name.startswith(prefix + "."):
                groups[index].append(param)
                break
    for prefix, group in zip(prefixes, groups):
        if not group:
            shown = ", ".join(seen[:8]) + (", ..." if len(seen) > 8 else "")
            raise ValueError(
                f"no parameter belongs to encoder prefix {prefix!r} "
                f"(names, wrapper prefixes removed: {shown})"
            )
    return groups
