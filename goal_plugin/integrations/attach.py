"""``attach``: put a strategy's gate in front of an existing fusion module, from outside.

    handle = gp.attach(model.fusion, gp.create_strategy("go"))

A forward pre-hook replaces the fusion module's inputs by ``strategy.gate(...)``
of them, so code that calls ``fusion(f_a, f_v)`` (or ``fusion([f_a, f_v])``, or
``fusion({"audio": f_a, "visual": f_v})``) gets the strategy without editing the
model. Identity in forward; one backward pass, like the gate it inserts.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from goal_plugin.strategies.base import Strategy

_ATTACHED: weakref.WeakSet[nn.Module] = weakref.WeakSet()


class AttachedStrategy:
    """Handle returned by :func:`attach`: ``remove()`` detaches the gate,
    ``set_labels(y)`` hands the next forward its labels."""

    def __init__(
        self, fusion_module: nn.Module, strategy: Strategy, logits_fn: Callable[..., Any] | None
    ) -> None:
        self.strategy = strategy
        self.logits_fn = logits_fn
        self._module_ref = weakref.ref(fusion_module)
        self._labels: Tensor | None = None
        self._hook = fusion_module.register_forward_pre_hook(self._gate_inputs)
        _ATTACHED.add(fusion_module)

    def set_labels(self, labels: Tensor) -> None:
        """Labels for the next gated forward of the fusion module (then forgotten).

        Label-reading strategies (``ogm``, ``ogm_ge``, ``ogm_go``) need them every
        step: call ``handle.set_labels(y)`` before the forward that computes the
        loss. Forgetting them after one use means a stale batch's labels can never
        be read by mistake.
        """
        self._labels = labels

    def remove(self) -> None:
        """Detach the gate; the fusion module behaves exactly as before ``attach``."""
        self._hook.remove()
        module = self._module_ref()
        if module is not None:
            _ATTACHED.discard(module)
        self._labels = None

    def _gate_inputs(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        labels, self._labels = self._labels, None
        if not torch.is_grad_enabled():  # evaluation: nothing to modify, skip the logits
            return None
        layout = _Layout.of(args)
        features = layout.features
        if self.strategy.requires_labels and labels is None:
            raise ValueError(
                f"{self.strategy.name} reads the labels: call handle.set_labels(y) before each "
                "forward of the attached fusion module"
            )
        logits = None
        if self.logits_fn is not None:
            with torch.no_grad():  # the gate detaches them anyway; keep no graph
                logits = layout.order_logits(layout.call(self.logits_fn))
        gated = self.strategy.gate(*features, logits=logits, labels=labels)
        return layout.rebuild(gated)


def attach(
    fusion_module: nn.Module,
    strategy: Strategy,
    logits_fn: Callable[..., Any] | None = None,
) -> AttachedStrategy:
    """Gate the inputs of ``fusion_module`` with ``strategy``; returns a handle with
    ``remove()`` and ``set_labels(y)``.

    The fusion module may be called with M positional tensors, one list/tuple of
    M tensors, or one dict of M tensors (modality -> feature); keyword arguments
    pass through unchanged. ``logits_fn`` receives the features in the same
    form (``logits_fn(f_a, f_v)``, ``logits_fn([f_a, f_v])`` or
    ``logits_fn({"audio": f_a, ...})``) and returns the modality-specific logits
    (B, K) in that form (a sequence, or a dict with the same keys); it runs under
    ``torch.no_grad()`` because the strategy reads logits as constants. It is
    required when the strategy reads logits (``al``, ``goal``, ``ogm*``,
    ``arl*``) and may be ``None`` otherwise (``none``, ``go``). Labels come from
    :meth:`AttachedStrategy.set_labels`.

    The gate is skipped while gradients are disabled (evaluation). What the
    attached strategy does not do: the harness defaults (unimodal-loss weight,
    modulation window in ``strategy.defaults``) stay with the training loop;
    leave the window with ``remove()``. With ``nn.DataParallel`` on several
    devices the hook runs in every replica on its shard while ``logits_fn``
    refers to the original modules; use DDP, or put the gate in the model.
    """
    if not isinstance(fusion_module, nn.Module):
        raise ValueError(f"fusion_module must be a torch.nn.Module, got {type(fusion_module).__name__}")
    if not isinstance(strategy, Strategy):
        raise ValueError(
            f"strategy must be a Strategy (goal_plugin.create_strategy(name)), got {type(strategy).__name__}"
        )
    if logits_fn is not None and not callable(logits_fn):
        raise ValueError(f"logits_fn must be callable or None, got {type(logits_fn).__name__}")
    if logits_fn is None and strategy.requires_logits:
        raise ValueError(
            f"{strategy.name} reads modality-specific logits: pass logits_fn, mapping the "
            "fusion module's features to the unimodal logits"
        )
    if fusion_module in _ATTACHED:
        raise ValueError(
            f"{type(fusion_module).__name__} already has a strategy attached; call remove() on "
            "its handle first"
        )
    return AttachedStrategy(fusion_module, strategy, logits_fn)


class _Layout:
    """How the fusion module received its features, to hand them back the same way."""

    def __init__(self, kind: str, args: tuple[Any, ...], keys: tuple[str, ...] = ()) -> None:
        self.kind = kind  # "positional", "sequence" or "mapping"
        self.args = args
        self.keys = keys

    @classmethod
    def of(cls, args: tuple[Any, ...]) -> _Layout:
        if len(args) == 1 and isinstance(args[0], Mapping):
            layout = cls("mapping", args, tuple(args[0]))
        elif len(args) == 1 and isinstance(args[0], (list, tuple)):
            layout = cls("sequence", args)
        else:
            layout = cls("positional", args)
        for index, value in enumerate(layout.features):
            if not isinstance(value, Tensor):
                where = f"[{layout.keys[index]!r}]" if layout.keys else f"[{index}]"
                raise ValueError(
                    f"attach gates every feature the fusion module receives; its {layout.kind} "
                    f"input{where} is a {type(value).__name__}, not a tensor (pass other "
                    "arguments by keyword)"
                )
        return layout

    @property
    def features(self) -> list[Any]:
        if self.kind == "mapping":
            return list(self.args[0].values())
        if self.kind == "sequence":
            return list(self.args[0])
        return list(self.args)

    def call(self, fn: Callable[..., Any]) -> Any:
        return fn(*self.args)

    def order_logits(self, logits: Any) -> list[Tensor]:
        if self.kind == "mapping":
            if not isinstance(logits, Mapping) or set(logits) != set(self.keys):
                got = sorted(logits) if isinstance(logits, Mapping) else type(logits).__name__
                raise ValueError(
                    f"logits_fn must return a dict with the features' keys {list(self.keys)}, got {got}"
                )
            return [logits[key] for key in self.keys]
        if not isinstance(logits, Sequence) or isinstance(logits, (str, Tensor)):
            raise ValueError(
                f"logits_fn must return a sequence of per-modality logits, got {type(logits).__name__}"
            )
        return list(logits)

    def rebuild(self, gated: Sequence[Tensor]) -> tuple[Any, ...]:
        if self.kind == "mapping":
            return (dict(zip(self.keys, gated)),)
        if self.kind == "sequence":
            return (list(gated) if isinstance(self.args[0], list) else tuple(gated),)
        return tuple(gated)
