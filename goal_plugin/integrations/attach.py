"""``attach``: put a strategy's gate in front of an existing fusion module, from outside.

    handle = gp.attach(model.fusion, gp.create_strategy("go"))

A forward pre-hook replaces the fusion module's inputs by ``strategy.gate(...)``
of them, so code that calls ``fusion(f_a, f_v)`` (or ``fusion([f_a, f_v])``, or
``fusion({"audio": f_a, "visual": f_v})``) gets the strategy without editing the
model. Identity in forward; one backward pass, like the gate it inserts.

Only the fused output's gradient may go through the strategy. Fusion modules
that hand their inputs back (OGM-GE's ``x, y, out = fusion(x, y)``) would hand
back the gate's outputs, and a unimodal head put on them would send its loss's
gradient through the strategy too; a forward hook therefore returns the
ungated features in their place. A module that returns several tensors computed
from the gated features (OGM-GE's ``GatedFusion``) cannot be split that way:
if a loss reads more than one of them, the backward pass stops with an error.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.weak import WeakIdKeyDictionary

from goal_plugin.strategies.base import Strategy

_HANDLES: weakref.WeakKeyDictionary[nn.Module, AttachedStrategy] = weakref.WeakKeyDictionary()


class AttachedStrategy:
    """Handle returned by :func:`attach`: ``remove()`` detaches the gate,
    ``set_labels(y)`` hands the next forward its labels."""

    def __init__(
        self, fusion_module: nn.Module, strategy: Strategy, logits_fn: Callable[..., Any] | None
    ) -> None:
        self.strategy = strategy
        self.logits_fn = logits_fn
        self._module_ref = weakref.ref(fusion_module)
        self._module_name = type(fusion_module).__name__
        self._labels: Tensor | None = None
        self._ungated: WeakIdKeyDictionary = WeakIdKeyDictionary()  # gate output -> its input
        self._hooks = (
            fusion_module.register_forward_pre_hook(self._gate_inputs),
            fusion_module.register_forward_hook(self._ungate_outputs),
        )
        _HANDLES[fusion_module] = self

    @property
    def module(self) -> nn.Module | None:
        """The fusion module this handle is attached to (``None`` once it is gone)."""
        return self._module_ref()

    def set_labels(self, labels: Tensor) -> None:
        """Labels for the next forward of the fusion module (then forgotten).

        Label-reading strategies (``ogm``, ``ogm_ge``, ``ogm_go``) need them every
        training step: call ``handle.set_labels(y)`` before the forward that
        computes the loss (the backward pass stops with an error otherwise).
        Forgetting them after one use means a stale batch's labels can never be
        read by mistake.
        """
        self._labels = labels

    def remove(self) -> None:
        """Detach the gate; the fusion module behaves exactly as before ``attach``."""
        for hook in self._hooks:
            hook.remove()
        module = self._module_ref()
        if module is not None and _HANDLES.get(module) is self:
            del _HANDLES[module]
        self._labels = None

    def _gate_inputs(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        labels, self._labels = self._labels, None
        if not torch.is_grad_enabled():  # evaluation: nothing to modify, skip the logits
            return None
        layout = _Layout.of(args)
        features = layout.features
        if not any(feature.requires_grad for feature in features):
            return None
        logits = None
        if self.logits_fn is not None:
            with torch.no_grad():  # the gate detaches them anyway; keep no graph
                logits = layout.order_logits(layout.call(self.logits_fn))
        gated = self.strategy.gate(*features, logits=logits, labels=labels)
        for gated_feature, feature in zip(gated, features):
            self._ungated[gated_feature] = feature
        return layout.rebuild(gated)

    def _ungate_outputs(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        gated = [t for t in _Layout.features_of(args) if isinstance(t, Tensor) and t in self._ungated]
        if not gated:  # this forward was not gated
            return None
        originals = {id(t): self._ungated.pop(t) for t in gated}
        others: list[tuple[str, Tensor]] = []

        def hand_back(path: str, tensor: Tensor) -> Tensor:
            if id(tensor) in originals:  # the module returned its (gated) input
                return originals[id(tensor)]
            if tensor.requires_grad:
                others.append((path, tensor))
            return tensor

        output = _map_tensors(output, hand_back, "output")
        gate_node = next((t.grad_fn for t in gated if t.grad_fn is not None), None)
        if len(others) < 2 or gate_node is None:  # at most one output reads the gated features
            return output
        dependent = [(path, t) for path, t in others if _reaches(t.grad_fn, gate_node)]
        if len(dependent) < 2:
            return output
        record = _ProbeRecord(self._module_name, self.strategy.name)
        probes = {id(t): _OutputProbe.apply(record, path, t) for path, t in dependent}
        return _map_tensors(output, lambda path, t: probes.get(id(t), t), "output")


def attach(
    fusion_module: nn.Module,
    strategy: Strategy,
    logits_fn: Callable[..., Any] | None = None,
) -> AttachedStrategy:
    """Gate the inputs of ``fusion_module`` with ``strategy``; returns a handle with
    ``remove()`` and ``set_labels(y)`` (``attached(module)`` finds it again).

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

    What the module returns besides the fused output carries ungated gradients:
    an input it hands back (``x, y, out = fusion(x, y)``; also inside returned
    tuples, lists and dicts) is replaced by the ungated feature, so a unimodal
    head on it trains its encoder without the strategy. If the module returns several tensors computed from the gated
    features (e.g. ``GatedFusion``'s projections and its output), a backward
    pass in which a loss reads more than one of them raises ``RuntimeError``
    naming them, because the strategy cannot tell their gradients apart.

    The gate is skipped while gradients are disabled (evaluation) or when no
    feature requires grad. What the attached strategy does not do: the harness
    defaults (unimodal-loss weight, modulation window in ``strategy.defaults``)
    stay with the training loop; leave the window with ``remove()`` or
    ``detach(module)``. With ``nn.DataParallel`` on several devices the hook runs
    in every replica on its shard while ``logits_fn`` refers to the original
    modules; use DDP, or put the gate in the model.
    """
    if not isinstance(fusion_module, nn.Module):
        raise ValueError(f"fusion_module must be a torch.nn.Module, got {type(fusion_module).__name__}")
    if not isinstance(strategy, Strategy):
        raise ValueError(
            f"strategy must be a Strategy (goal_plugin.create_strategy(name)), got {type(strategy).__name__}"
        )
    strategy.require_gate_only("goal_plugin.attach")
    if logits_fn is not None and not callable(logits_fn):
        raise ValueError(f"logits_fn must be callable or None, got {type(logits_fn).__name__}")
    if logits_fn is None and strategy.requires_logits:
        raise ValueError(
            f"{strategy.name} reads modality-specific logits: pass logits_fn, mapping the "
            "fusion module's features to the unimodal logits"
        )
    if fusion_module in _HANDLES:
        raise ValueError(
            f"{type(fusion_module).__name__} already has {_HANDLES[fusion_module].strategy.name} "
            "attached; call goal_plugin.integrations.detach(module) (or remove() on its handle) first"
        )
    return AttachedStrategy(fusion_module, strategy, logits_fn)


def attached(fusion_module: nn.Module) -> AttachedStrategy | None:
    """The handle of the strategy attached to ``fusion_module``, or ``None``."""
    return _HANDLES.get(fusion_module)


def detach(fusion_module: nn.Module) -> AttachedStrategy | None:
    """Remove the strategy attached to ``fusion_module``; returns its handle, or
    ``None`` when nothing was attached. Afterwards the module behaves exactly as
    before ``attach``."""
    handle = _HANDLES.get(fusion_module)
    if handle is not None:
        handle.remove()
    return handle


def _map_tensors(value: Any, fn: Callable[[str, Tensor], Tensor], path: str) -> Any:
    """``value`` with every tensor ``t`` inside tuples, lists and dicts replaced by ``fn(path, t)``."""
    if isinstance(value, Tensor):
        return fn(path, value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple
        return type(value)(*(_map_tensors(v, fn, f"{path}.{k}") for k, v in zip(value._fields, value)))
    if isinstance(value, (list, tuple)):
        return type(value)(_map_tensors(v, fn, f"{path}[{i}]") for i, v in enumerate(value))
    if isinstance(value, dict):
        return type(value)((k, _map_tensors(v, fn, f"{path}[{k!r}]")) for k, v in value.items())
    return value


def _reaches(node: Any, target: Any) -> bool:
    """Whether the autograd graph below ``node`` contains ``target``."""
    stack, seen = [node], {}
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        if current is target:
            return True
        seen[id(current)] = current  # keeps the node alive, so its id is not reused
        stack.extend(next_node for next_node, _ in current.next_functions)
    return False


class _ProbeRecord:
    """Which of a module's outputs computed from the gated features got a loss gradient."""

    def __init__(self, module_name: str, strategy_name: str) -> None:
        self.module_name = module_name
        self.strategy_name = strategy_name
        self.reached: list[str] = []


class _OutputProbe(torch.autograd.Function):
    """Identity; in backward, refuses a second output of the same forward carrying a gradient."""

    @staticmethod
    def forward(ctx: Any, record: _ProbeRecord, path: str, tensor: Tensor) -> Tensor:
        ctx.record, ctx.path = record, path
        return tensor.view_as(tensor)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[None, None, Tensor]:
        record = ctx.record
        if ctx.path not in record.reached:
            record.reached.append(ctx.path)
        if len(record.reached) > 1:
            raise RuntimeError(
                f"a loss reads {' and '.join(record.reached)} of {record.module_name}, which are all "
                f"computed from the features that {record.strategy_name} gates; the strategy would "
                "modify the gradients of all of them, not only the fused output's. Compute unimodal "
                "heads from the features before the fusion module, or detach outputs you only log."
            )
        return None, None, grad


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
        return _Layout.features_of(self.args)

    @staticmethod
    def features_of(args: tuple[Any, ...]) -> list[Any]:
        if len(args) == 1 and isinstance(args[0], Mapping):
            return list(args[0].values())
        if len(args) == 1 and isinstance(args[0], (list, tuple)):
            return list(args[0])
        return list(args)

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
