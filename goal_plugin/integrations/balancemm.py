"""Every registered strategy as a BalanceMM trainer (GeWu-Lab/BalanceBenchmark).

    python -m goal_plugin.integrations.balancemm [--cpu] --trainer GOALTrainer --dataset CREMAD ...

run from a BalanceMM checkout whose ``configs/trainer_config.yaml`` holds the
``trainer_para.GOAL`` block (``BALANCEMM_TRAINER_PARA``); see docs/balancemm.md.
The module registers ``GOALTrainer`` with BalanceMM's trainer lookup (working
around BalanceMM's import-time bugs, ``KNOWN_ISSUES``), with ``--cpu`` makes its
entry points run on the CPU (``use_cpu``), and runs BalanceMM's own ``__main__``. Written against BalanceMM commit 4c1482f; BalanceMM
is never imported unless ``GOALTrainer`` or ``register_with_balancemm`` is used.

How the strategy reaches BalanceMM's model: the gate, by re-running the fusion
module on gated features. After BalanceMM's ``model(batch)``, the trainer gates
``model.encoder_result[m]`` and computes the fused logits again as
``model.fusion_module({m: gated f_m})``; the loss is back-propagated once.
Why not the post-backward modes:

- feature space (``feature_space_backward``) needs the tensors the fusion module
  read. BalanceMM wraps its model in ``MultiModalParallel``, which runs replicas
  and stores *gathered copies* in ``encoder_result``; the fused logits do not
  depend on those copies, so ``dL_mm/df_m`` cannot be taken from them. Re-running
  the fusion on the gathered features puts them on the loss's graph, and the
  strategy then sees the whole batch, as on one device.
- parameter space (``parameter_space_backward``) costs a second backward pass,
  and GO would need encoders with equal parameter counts (BalanceMM's audio and
  visual ResNet-18 differ in their first convolution).

The re-run costs one extra forward of the fusion head (a linear layer for concat
fusion); the first gated step checks that it reproduces
``model.unimodal_result['output']``, so a model whose fused logits are not
``fusion_module(encoder_result)`` is refused instead of silently trained otherwise.

Deliberate deviations from our own harness (``goal_plugin.engine``): BalanceMM's
models have no unimodal heads, so the modality logits are always
``model.unimodal_result[m]``, the fused classifier's weight slices (concat fusion
only); the unimodal loss ``lambda * sum_m CE(z_m)`` therefore also trains those
slices. With a recipe's unimodal-loss weight of 0 there is no unimodal loss at all.
"""

from __future__ import annotations

import importlib
import importlib.util
import runpy
import sys
import types
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from goal_plugin import _validation as check
from goal_plugin.registry import create_strategy, strategy_hyperparameters
from goal_plugin.strategies.base import HarnessDefaults, Strategy

BALANCEMM_TRAINER_NAME = "GOALTrainer"

# The ``trainer_para.GOAL`` block of BalanceMM's configs/trainer_config.yaml (BalanceMM
# looks it up by the class name minus "Trainer"). Keys: ``method`` (a registered
# strategy), that strategy's hyperparameters, and optionally the HARNESS_KEYS; a key
# left out takes the recipe's default.
BALANCEMM_TRAINER_PARA: Mapping[str, Any] = types.MappingProxyType(
    {"method": "goal", "temperature": 1.0}
)

HARNESS_KEYS = (
    "modulation_starts",
    "modulation_ends",
    "unimodal_loss_weight",
    "warmup_unimodal_loss_weight",
)
# Keys BalanceMM's own entry points add to every trainer block: ``base_para`` and ``name``
# (``__main__.create_config``), ``checkpoint_dir`` (``train.train_and_test``,
# ``train.linear_probe_eval``, ``test.test``, ``test.t_sne``). BaseTrainer receives
# ``base_para`` separately and ``create_trainer`` sets ``trainer.checkpoint_dir`` itself.
BALANCEMM_BOOKKEEPING_KEYS = ("base_para", "name", "checkpoint_dir")


class KnownIssue(NamedTuple):
    symptom: str
    workaround: str


KNOWN_ISSUES = (
    KnownIssue(
        "`python -m balancemm` fails with `No module named 'models'`",
        "UMT_trainer.py imports a top-level `models` package. register_with_balancemm() "
        "(and `python -m goal_plugin.integrations.balancemm`) alias `models` to "
        "`balancemm.models` when no other `models` package exists.",
    ),
    KnownIssue(
        "`--trainer OGM` (as in BalanceMM's README) is not found",
        "Pass the full class name: `--trainer OGMTrainer`, `--trainer GOALTrainer`.",
    ),
    KnownIssue(
        "`'BaseClassifierModel' object has no attribute 'resnet'`",
        "`encoder_process` calls `self.resnet`; the method is `resnet_process`. "
        "register_with_balancemm() (and `python -m goal_plugin.integrations.balancemm`) add "
        "`BaseClassifierModel.resnet = BaseClassifierModel.resnet_process` when it is missing.",
    ),
    KnownIssue(
        "the default model entry asks for a `text` modality that CREMA-D lacks",
        "Edit the `BaseClassifier` entry of configs/model_config.yaml to `encoders: {audio: "
        "ResNet18, visual: ResNet18}` and `modality_size: 512` (a new entry name would need a "
        "matching `<name>Model` class).",
    ),
    KnownIssue(
        "`has no attribute 'Unimodality_Calculate'`",
        "Several of BalanceMM's own trainers call a misspelt `Unimodality_Calculate()`; "
        "GOALTrainer does not. To run those trainers, alias it to `unimodality_calculate` "
        "on the model class.",
    ),
    KnownIssue(
        "`ImportError` from `lightning` in BalanceMM's trainers",
        "lightning 2.5.6 and later removed a type they import: `pip install lightning==2.5.5`.",
    ),
    KnownIssue(
        "no CPU run: `device` must parse as integers",
        "`__main__` insists on integer GPU ids, while train.py and test.py take their CPU "
        "branch only for `device == ''`, and on that branch the bare model's `validation_step` "
        "returns a tuple where the validation loop expects the loss. Add `--cpu`: "
        "`python -m goal_plugin.integrations.balancemm --cpu ...` (or call `use_cpu()` in "
        "your launcher) runs that branch with a CPU Fabric and the loss-only convention "
        "of `MultiModalParallel`.",
    ),
    KnownIssue(
        "`FileNotFoundError` for `epoch_normal.ckpt` after training",
        "A checkpoint is written only when validation accuracy beats 0 but is always "
        "loaded; train until validation accuracy is above 0 (tiny smoke tests may not).",
    ),
    KnownIssue(
        "every clip is silently dropped and the dataset is empty",
        "Dataset paths are concatenated as strings: end every directory in "
        "configs/dataset_config.yaml with `/`.",
    ),
    KnownIssue(
        "`--mode test` prints the test accuracy, then stops with `ValueError: not a valid path`",
        "A `for ... else` in test.py raises after every search, also after a successful "
        "test; the `The best test acc is` line printed before it is the result.",
    ),
    KnownIssue(
        "the training log has no `train_acc` for the fused output",
        "BaseTrainer's training metrics cover the modalities only (`acc_audio`, "
        "`acc_visual`); the fused accuracy is logged for validation and test.",
    ),
    KnownIssue(
        "`pip install -r requirements.txt` fails with torch 2.x",
        "It is a 2024 freeze for torch 1.12; install only what the code imports: "
        "lightning==2.5.5 dynaconf loguru thop librosa transformers h5py pandas "
        "scikit-learn scipy matplotlib tensorboard tqdm pyyaml, and the torchvision release "
        "of your torch. torchaudio is imported at start-up (by the Kinetics-Sounds dataset "
        "module) but has no release for torch 2.14; `pip install --no-deps torchaudio==2.11.0` "
        "lets the import succeed (CREMA-D does not use it).",
    ),
)


def settings_from_method_dict(method_dict: Mapping[str, Any]) -> tuple[Strategy, HarnessDefaults]:
    """The strategy and harness settings named by a ``trainer_para.GOAL`` block.

    ``method`` (default ``"goal"``) is a registered strategy; the other keys are
    its hyperparameters or HARNESS_KEYS overriding the recipe's defaults. The keys
    BalanceMM's entry points add (``BALANCEMM_BOOKKEEPING_KEYS``) are ignored;
    anything else is a ``ValueError`` naming the key and the accepted ones.
    """
    if not isinstance(method_dict, Mapping):
        raise ValueError(f"method_dict must be a mapping, got {type(method_dict).__name__}")
    method = method_dict.get("method", "goal")
    if not isinstance(method, str):
        raise ValueError(f"method must be a strategy name, got {method!r}")
    accepted = strategy_hyperparameters(method)  # an unknown method is refused here
    hparams, overrides = {}, {}
    for key, value in method_dict.items():
        if key == "method" or key in BALANCEMM_BOOKKEEPING_KEYS:
            continue
        if key in accepted:
            hparams[key] = value
        elif key in HARNESS_KEYS:
            overrides[key] = value
        else:
            raise ValueError(
                check.unknown_name_message(
                    f"trainer_para key for method {method!r}:", key, ["method", *accepted, *HARNESS_KEYS]
                )
            )
    strategy = create_strategy(method, **hparams)
    strategy.require_gate_only("the BalanceMM trainer")
    return strategy, strategy.defaults.replace(**overrides)


class GOALTrainerMixin:
    """A BalanceMM trainer applying any registered strategy (``method``) through the gate.

    ``GOALTrainer(fabric, method_dict, para_dict)``: ``method_dict`` is BalanceMM's
    ``trainer_para.GOAL`` block (see ``settings_from_method_dict``), ``para_dict``
    its ``base_para`` (``max_epochs``, ``grad_accum_steps``, ``logger``), passed to
    BalanceMM's ``BaseTrainer``. ``self.strategy`` and ``self.harness`` hold the
    parsed settings; ``self.strategy.last_stats`` describes the last gated step.

    ``training_step`` runs inside ``optimizer.step(closure)``: BalanceMM's forward,
    then, inside the modulation window (``self.harness.modulates(self.current_epoch)``),
    the fusion re-run on gated features (see the module docstring for why);
    outside it the model's own fused logits. Loss:
    ``CE(fused) + lambda(epoch) * sum_m CE(model.unimodal_result[m])``, one
    backward, then the recipe's parameter-space extra (OGM-GE noise) on
    ``modality_encoder.<m>``. The model's forward results (``prediction`` etc.)
    are left in place for BalanceMM's loop. Works on the bare model and on a
    DataParallel-style wrapper (attributes read through ``.module``, parameter
    names with ``module.``).

    The mixin holds all logic; ``GOALTrainer`` is this mixin on top of BalanceMM's
    ``BaseTrainer`` (``build_trainer_class``).
    """

    def __init__(self, fabric: Any, method_dict: Mapping[str, Any], para_dict: Mapping[str, Any]) -> None:
        self.strategy, self.harness = settings_from_method_dict(method_dict)
        super().__init__(fabric, **dict(para_dict or {}))
        self._fusion_checked = False

    def training_step(self, model: torch.nn.Module, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        model(batch)
        inner = getattr(model, "module", model)
        modalities = list(inner.modalitys)
        output = inner.unimodal_result["output"]
        labels = batch["label"].to(output.device)
        epoch = self.current_epoch
        modulating = self.harness.modulates(epoch)
        unimodal_weight = self.harness.unimodal_weight(epoch)
        reads_logits = modulating and self.strategy.requires_logits
        logits = _modality_logits(inner, modalities) if reads_logits or unimodal_weight > 0 else None
        if modulating:
            features = [inner.encoder_result[m] for m in modalities]
            gated = self.strategy.gate(*features, logits=logits if reads_logits else None, labels=labels)
            fused = inner.fusion_module(dict(zip(modalities, gated)))
            self._check_fusion_reproduces(fused, output)
        else:
            fused = output
        loss = F.cross_entropy(fused, labels)
        if unimodal_weight > 0:
            loss = loss + unimodal_weight * sum(F.cross_entropy(z, labels) for z in logits)
        loss.backward()
        if modulating:
            self.strategy.post_backward(model.named_parameters(), [f"modality_encoder.{m}" for m in modalities])
        self._current_train_return = loss.detach()
        return loss

    def _check_fusion_reproduces(self, fused: torch.Tensor, output: torch.Tensor) -> None:
        if self._fusion_checked:
            return
        with torch.no_grad():
            same = fused.shape == output.shape and torch.allclose(fused, output, rtol=1e-3, atol=1e-5)
        if not same:
            raise RuntimeError(
                "model.fusion_module(encoder_result) does not reproduce model.unimodal_result"
                "['output']; GOALTrainer re-runs the fusion on gated features, so it supports models "
                "whose fused logits are exactly the fusion module's output (BaseClassifierModel)"
            )
        self._fusion_checked = True


def _modality_logits(inner: torch.nn.Module, modalities: list[str]) -> list[torch.Tensor]:
    missing = [m for m in modalities if m not in inner.unimodal_result]
    if missing:
        raise ValueError(
            f"model.unimodal_result has no logits for {missing}: BalanceMM computes modality "
            "logits only for concat fusion. Use concat fusion, or a method that reads no logits "
            "('go', 'none') with unimodal_loss_weight: 0"
        )
    return [inner.unimodal_result[m] for m in modalities]


def build_trainer_class(base: type) -> type:
    """``GOALTrainer``: the mixin on top of ``base`` (BalanceMM's ``BaseTrainer``)."""
    return type(
        BALANCEMM_TRAINER_NAME,
        (GOALTrainerMixin, base),
        {"__module__": "goal_plugin.integrations.balancemm", "__doc__": GOALTrainerMixin.__doc__},
    )


_trainer_class: type | None = None


def trainer_class() -> type:
    """``GOALTrainer`` built against the installed BalanceMM (imported on first use)."""
    global _trainer_class
    if _trainer_class is None:
        _alias_missing_models_package()
        try:
            base_trainer = importlib.import_module("balancemm.trainer.base_trainer")
        except ImportError as error:
            raise ImportError(
                f"GOALTrainer subclasses BalanceMM's BaseTrainer, which cannot be imported ({error}). "
                "Run from a BalanceMM checkout or install it; see docs/balancemm.md"
            ) from error
        _trainer_class = build_trainer_class(base_trainer.BaseTrainer)
    return _trainer_class


def __getattr__(name: str) -> Any:
    if name == BALANCEMM_TRAINER_NAME:
        return trainer_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register_with_balancemm() -> type:
    """Make ``--trainer GOALTrainer`` resolvable by BalanceMM; returns the class.

    Also works around two import-time bugs of BalanceMM at commit 4c1482f, without
    touching its files: the missing top-level ``models`` package, and the missing
    ``BaseClassifierModel.resnet`` (see ``KNOWN_ISSUES``).

    BalanceMM's ``create_trainer`` searches the module list
    ``balancemm.trainer._trainer_modules`` for the class name; this appends a
    small module object carrying ``GOALTrainer`` (once). Call it after importing
    BalanceMM and before its ``create_trainer``. The list is private: if it is
    missing, a ``RuntimeError`` says so and names the fallback (a
    ``GOAL_trainer.py`` in ``balancemm/trainer/`` that imports ``GOALTrainer``
    from here).
    """
    _alias_missing_models_package()
    trainer_package = importlib.import_module("balancemm.trainer")
    modules = getattr(trainer_package, "_trainer_modules", None)
    if not isinstance(modules, list):
        raise RuntimeError(
            "balancemm.trainer has no _trainer_modules list, so GOALTrainer cannot be registered "
            "(BalanceMM changed its private trainer lookup; this was written against commit "
            "4c1482f). Fallback: put a file GOAL_trainer.py containing 'from "
            "goal_plugin.integrations.balancemm import GOALTrainer' into balancemm/trainer/"
        )
    _alias_missing_resnet_method()
    cls = trainer_class()
    if not any(getattr(module, BALANCEMM_TRAINER_NAME, None) is cls for module in modules):
        carrier = types.ModuleType("goal_plugin_balancemm_trainers")
        setattr(carrier, BALANCEMM_TRAINER_NAME, cls)
        modules.append(carrier)
    return cls


def _alias_missing_models_package() -> None:
    """Workaround for BalanceMM's ``from models.avclassify_model import ...`` (UMT_trainer.py).

    Aliases ``models`` (and its loaded submodules) to ``balancemm.models`` so the
    trainer package imports, and the classes stay the same objects. Done only when
    no importable ``models`` exists, so a user's own package is never shadowed.
    """
    if "models" in sys.modules or importlib.util.find_spec("models") is not None:
        return
    if importlib.util.find_spec("balancemm") is None:
        return
    package = importlib.import_module("balancemm.models")
    sys.modules["models"] = package
    for name, module in list(sys.modules.items()):
        if name.startswith("balancemm.models."):
            sys.modules["models." + name.removeprefix("balancemm.models.")] = module


def _alias_missing_resnet_method() -> None:
    """Workaround for ``BaseClassifierModel.encoder_process`` calling ``self.resnet``,
    which does not exist (the method is ``resnet_process``): every ResNet18 model fails
    in its first forward. Only added where ``resnet`` is missing."""
    model_module = importlib.import_module("balancemm.models.avclassify_model")
    model_class = getattr(model_module, "BaseClassifierModel", None)
    if model_class is not None and not hasattr(model_class, "resnet") and hasattr(model_class, "resnet_process"):
        model_class.resnet = model_class.resnet_process


def use_cpu() -> None:
    """Make BalanceMM's ``train_and_test`` and ``test`` run on the CPU (commit 4c1482f).

    Its ``__main__`` insists on integer GPU ids in ``device`` and gives Fabric a GPU
    accelerator, while ``train.py`` and ``test.py`` take their CPU branch (the bare
    model, no ``MultiModalParallel``, no ``.cuda()``) only for ``device == ''``. This
    wraps both entry points so that they get ``device = ''`` and a one-process CPU
    Fabric, and makes the bare model's ``validation_step`` return the loss alone, the
    convention of ``MultiModalParallel`` that BalanceMM's validation loop relies on.
    Call it after ``register_with_balancemm()`` and before running BalanceMM's
    ``__main__``, which imports the entry points by name when it runs.
    """
    train = importlib.import_module("balancemm.train")
    test = importlib.import_module("balancemm.test")
    model_class = importlib.import_module("balancemm.models.avclassify_model").BaseClassifierModel
    if getattr(model_class.validation_step, "_goal_plugin_cpu", False):
        return
    train.train_and_test = _on_cpu(train.train_and_test)
    test.test = _on_cpu(test.test)
    tuple_validation_step = model_class.validation_step

    def validation_step(self: Any, batch: Any, batch_idx: int, limit_modality: Any) -> Any:
        return tuple_validation_step(self, batch, batch_idx, limit_modality)[0]

    validation_step._goal_plugin_cpu = True  # type: ignore[attr-defined]
    model_class.validation_step = validation_step


def _on_cpu(entry_point: Any) -> Any:
    def run_on_cpu(config: dict) -> Any:
        config["Main_config"]["device"] = ""
        config["fabric"] = {**config["fabric"], "accelerator": "cpu", "devices": 1, "strategy": "auto"}
        return entry_point(config)

    return run_on_cpu


def main() -> None:
    """``python -m goal_plugin.integrations.balancemm [--cpu] [BalanceMM's arguments]``:
    register ``GOALTrainer`` (with ``--cpu``: ``use_cpu()``), then run
    ``python -m balancemm`` with the other arguments."""
    cpu = "--cpu" in sys.argv[1:]
    sys.argv = [sys.argv[0], *(arg for arg in sys.argv[1:] if arg != "--cpu")]
    register_with_balancemm()
    if cpu:
        use_cpu()
    runpy.run_module("balancemm", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    # Run the importable copy of this module, so that GOALTrainer is one class object
    # whether it is reached through `python -m` or through an import.
    importlib.import_module("goal_plugin.integrations.balancemm").main()
