"""D&R: diagnose each encoder by the train/validation gap of its features'
clustering purity, and re-learn by moving it part of the way back to its
initialisation.

Paper: Wei, Li, Feng, Hu, "Diagnosing and Re-learning for Balanced Multimodal
Learning", ECCV 2024. Official code: GeWu-Lab/Diagnosing_Relearning_ECCV2024,
commit 025085ea82ed784c6ab6e5fb1b08bfe498dd0fc7 (``code/ours.py``:
``purity_score``, ``reinit_score``, ``reinit``, the loop in ``main``; defaults
from its argparse and ``code/script/ours.sh``). Also read: BalanceBenchmark
(GeWu-Lab/BalanceBenchmark, commit 4c1482fca5aaa8d4278af8e26020daa039e3ccf3,
``balancemm/trainer/ReLearning_trainer.py``, the same rule per modality).

Diagnosis, for each encoder m, on its (pooled) features of the whole training
split and of the whole validation split (model in eval mode):

    X     <- MinMaxScaler(feature_range=(-1, 1)).fit_transform(X)   (per split)
    c     <- KMeans(n_clusters=K, random_state=0).fit_predict(X)   (K = classes)
    P(X)  =  (1/N) sum_clusters max_class |{i in cluster: y_i = class}|   (purity)
    gap_m =  |P(train_m) - P(val_m)|
    a_m   =  tanh(move_lambda * gap_m)

Re-learning, for every parameter theta of encoder m (parameters only: buffers
such as batch-norm statistics are left as they are)::

    theta <- a_m * theta_init + (1 - a_m) * theta

with ``theta_init`` the parameters at the start of training. Schedule: after
training epoch ``e`` (0-based) with ``e > 0`` and ``e % reinit_epoch == 0``, at
most ``reinit_num`` times (so epochs 20, 40, 60 by default). A well-learnt
(overfitting, large-gap) encoder is pulled back harder than a weak one.

Hyperparameters: ``move_lambda`` >= 0, default 3.0; ``reinit_epoch`` >= 1,
default 20; ``reinit_num`` >= 0, default 3 (the official argparse and
``ours.sh``; BalanceBenchmark's config uses 15 and 2); ``kmeans_seed`` default 0
(the official ``random_state``); ``kmeans_n_init`` default 10.

Deliberate deviations from the official code: ``n_init`` is passed explicitly.
The official code leaves it at scikit-learn's default, which was 10 before
scikit-learn 1.4 and is "auto" (one run for k-means++) since; 10 keeps the
clustering of the paper's era on any scikit-learn. Purity is computed from
scikit-learn's contingency matrix, which equals the official majority-vote
``purity_score``. Features are flattened to (N, d) when an encoder returns
higher-rank features (the official encoders' are already pooled); float32
features are clustered in float32, as the official code clusters its encoders'
outputs, other dtypes in float64.

Three or more modalities (the paper's "*" version, as BalanceBenchmark): the
same diagnosis and re-learning independently for every encoder.

Training (``DNRStep``, the engine's ``TrainingMethod`` hook; classification only,
the recipe ``dnr``): the step is the plain one and, as in the official
``train_epoch``, the loss is the fused cross-entropy alone (the recipe's
unimodal_loss_weight is 0, so the unimodal heads learn as probes on detached
features). After training epoch e the engine evaluates the validation and test
splits and then calls ``on_epoch_end``, which diagnoses and re-learns if
``due(e)``: the official loop likewise runs ``valid`` before ``reinit``, so the
metrics reported for epoch e are those before its re-initialisation (the
BalanceBenchmark trainer re-initialises before its validation). The heads and the
fusion module are never re-initialised, the optimiser's state (momentum) is kept
(the official ``param.data = new_weight`` keeps it too), and the re-initialised
parameters are in epoch e's checkpoint. Where the wiring differs from the
official loop:

- The initial parameters are remembered in the first training step of epoch 0,
  before its optimiser step (the hook gives the model to a step, not to
  ``on_epoch_start``), which are the parameters the official code saves to
  ``init_para.pkl`` before training. A step runs only inside the recipe's
  modulation window, so the window must start at epoch 0; it does not gate the
  re-initialisations, which follow ``reinit_epoch`` and ``reinit_num`` alone.
- The training split's features are read in the split's order, not through the
  shuffled training loader as the official ``get_feature``, so the seeded k-means
  sees the samples in another order.

The initial parameters and the number of re-initialisations done are the
method's state, saved in every checkpoint, so a resumed run continues exactly.
scikit-learn (the ``harness`` extra) is imported when D&R is used, not with the
package.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterable, Mapping, Sequence
from types import ModuleType

import numpy as np
import torch
from torch import Tensor, nn

from goal_plugin import _validation as check
from goal_plugin.methods.hook import EpochEnd, EpochStart, TrainingMethod


def _sklearn(module: str) -> ModuleType:
    """``sklearn.<module>``, or a one-line error naming the package and the extra to install
    (scikit-learn is not a dependency of the package itself)."""
    try:
        return importlib.import_module(f"sklearn.{module}")
    except ImportError as error:
        raise ValueError(
            f"D&R clusters features with scikit-learn, which cannot be imported ({error}): "
            "pip install scikit-learn, or goal-plugin's 'harness' extra"
        ) from None


def purity(labels: Sequence[int] | np.ndarray | Tensor, clusters: Sequence[int] | np.ndarray | Tensor) -> float:
    """Share of samples whose class is the majority class of their cluster."""
    labels, clusters = _as_numpy(labels).reshape(-1), _as_numpy(clusters).reshape(-1)
    if labels.shape != clusters.shape or labels.size == 0:
        raise ValueError(
            f"labels and clusters must be two non-empty lists of the same length, got "
            f"{labels.size} and {clusters.size}"
        )
    counts = _sklearn("metrics.cluster").contingency_matrix(labels, clusters)
    return float(counts.max(axis=0).sum() / labels.size)


def clustering_purity(
    features: np.ndarray | Tensor,
    labels: Sequence[int] | np.ndarray | Tensor,
    num_classes: int,
    *,
    kmeans_seed: int = 0,
    kmeans_n_init: int = 10,
) -> float:
    """Purity of k-means (k = ``num_classes``) on min-max scaled features."""
    check.integer("num_classes", num_classes, minimum=2)
    features = _as_numpy(features)
    features = features.reshape(features.shape[0], -1)
    if features.dtype != np.float32:
        features = features.astype(np.float64)
    labels = _as_numpy(labels).reshape(-1)
    if features.shape[0] != labels.size:
        raise ValueError(f"features have {features.shape[0]} rows but labels has {labels.size} entries")
    if features.shape[0] < num_classes:
        raise ValueError(f"k-means with {num_classes} clusters needs at least as many samples, got {features.shape[0]}")
    scaled = _sklearn("preprocessing").MinMaxScaler(feature_range=(-1, 1)).fit_transform(features)
    clusters = _sklearn("cluster").KMeans(
        n_clusters=num_classes,
        random_state=check.integer("kmeans_seed", kmeans_seed, minimum=0),
        n_init=check.integer("kmeans_n_init", kmeans_n_init, minimum=1),
    ).fit_predict(scaled)
    return purity(labels, clusters)


def reinit_strength(train_purity: float, val_purity: float, *, move_lambda: float = 3.0) -> float:
    """``tanh(move_lambda * |train_purity - val_purity|)`` in [0, 1)."""
    gap = abs(check.real("train_purity", train_purity) - check.real("val_purity", val_purity))
    return math.tanh(check.non_negative("move_lambda", move_lambda) * gap)


def partial_reinit(current: Tensor, initial: Tensor, strength: float) -> Tensor:
    """``strength * initial + (1 - strength) * current`` (a new tensor)."""
    strength = check.in_unit_interval("strength", strength, closed_right=True)
    if current.shape != initial.shape:
        raise ValueError(f"initial has shape {tuple(initial.shape)}, the parameter {tuple(current.shape)}")
    return strength * initial.to(current) + (1 - strength) * current


def _as_numpy(values: object) -> np.ndarray:
    if isinstance(values, Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


class DiagnoseAndRelearn:
    """D&R's state: each encoder's initial parameters and the re-initialisations done.

    ``remember_initial(encoders)`` once before training (``encoders[m]``: modality
    m's encoder's named parameters); after each training epoch, if
    ``due(epoch)``: ``strengths = diagnose(...)`` on the features of the training
    and validation splits, then ``relearn_(encoders, strengths)``.
    """

    def __init__(
        self,
        num_modalities: int,
        *,
        move_lambda: float = 3.0,
        reinit_epoch: int = 20,
        reinit_num: int = 3,
        kmeans_seed: int = 0,
        kmeans_n_init: int = 10,
    ) -> None:
        self.num_modalities = check.integer("num_modalities", num_modalities, minimum=1)
        self.move_lambda = check.non_negative("move_lambda", move_lambda)
        self.reinit_epoch = check.integer("reinit_epoch", reinit_epoch, minimum=1)
        self.reinit_num = check.integer("reinit_num", reinit_num, minimum=0)
        self.kmeans_seed = check.integer("kmeans_seed", kmeans_seed, minimum=0)
        self.kmeans_n_init = check.integer("kmeans_n_init", kmeans_n_init, minimum=1)
        self.initial: list[dict[str, Tensor]] | None = None
        self.reinits_done = 0

    def remember_initial(self, encoders: Sequence[Iterable[tuple[str, Tensor]]]) -> None:
        """Keep a copy of every encoder's parameters (call before the first step)."""
        self._check_count("encoders", encoders)
        self.initial = [
            {name: param.detach().clone() for name, param in named} for named in encoders
        ]

    def due(self, epoch: int) -> bool:
        """Whether D&R runs after training epoch ``epoch`` (0-based)."""
        epoch = check.integer("epoch", epoch, minimum=0)
        return epoch > 0 and epoch % self.reinit_epoch == 0 and self.reinits_done < self.reinit_num

    def diagnose(
        self,
        train_features: Sequence[np.ndarray | Tensor],
        train_labels: Sequence[int] | np.ndarray | Tensor,
        val_features: Sequence[np.ndarray | Tensor],
        val_labels: Sequence[int] | np.ndarray | Tensor,
        num_classes: int,
    ) -> list[float]:
        """Each encoder's re-initialisation strength ``a_m``."""
        self._check_count("train_features", train_features)
        self._check_count("val_features", val_features)
        kmeans = {"kmeans_seed": self.kmeans_seed, "kmeans_n_init": self.kmeans_n_init}
        return [
            reinit_strength(
                clustering_purity(train, train_labels, num_classes, **kmeans),
                clustering_purity(val, val_labels, num_classes, **kmeans),
                move_lambda=self.move_lambda,
            )
            for train, val in zip(train_features, val_features)
        ]

    @torch.no_grad()
    def relearn_(self, encoders: Sequence[Iterable[tuple[str, Tensor]]], strengths: Sequence[float]) -> None:
        """Move every encoder parameter towards its initial value, in place."""
        if self.initial is None:
            raise RuntimeError("D&R needs the initial parameters: call remember_initial() before training")
        self._check_count("encoders", encoders)
        self._check_count("strengths", strengths)
        for m, (named, strength, initial) in enumerate(zip(encoders, strengths, self.initial)):
            named = list(named)
            names = {name for name, _ in named}
            if names != set(initial):
                raise ValueError(
                    f"encoder {m}'s parameters differ from those remembered: "
                    f"new {sorted(names - set(initial))}, missing {sorted(set(initial) - names)}"
                )
            for name, param in named:
                param.copy_(partial_reinit(param, initial[name], strength))
        self.reinits_done += 1

    def _check_count(self, what: str, values: Sequence[object]) -> None:
        if len(values) != self.num_modalities:
            raise ValueError(f"{what} needs one entry per modality ({self.num_modalities}), got {len(values)}")

    def state_dict(self) -> dict[str, object]:
        return {
            "initial": None if self.initial is None else [
                {name: tensor.clone() for name, tensor in encoder.items()} for encoder in self.initial
            ],
            "reinits_done": self.reinits_done,
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        initial = state["initial"]
        if initial is not None:
            self._check_count("the state's initial parameters", initial)
        self.initial = None if initial is None else [
            {name: tensor.clone() for name, tensor in encoder.items()} for encoder in initial
        ]
        self.reinits_done = check.integer("reinits_done", state["reinits_done"], minimum=0)


class DNRStep(TrainingMethod):
    """D&R as a training method (the engine's ``TrainingMethod`` hook; see the module
    docstring): the plain step; before epoch 0 it remembers every encoder's
    parameters; after each due epoch the features of the whole training
    and validation splits diagnose each encoder and ``end.model``'s encoders are
    re-learnt in place. Classification only (purity needs classes)."""

    supported_tasks = ("classification",)

    def __init__(
        self,
        move_lambda: float = 3.0,
        reinit_epoch: int = 20,
        reinit_num: int = 3,
        kmeans_seed: int = 0,
        kmeans_n_init: int = 10,
    ) -> None:
        _sklearn("cluster")  # refused when the run is configured, not after reinit_epoch epochs
        self.options = {
            "move_lambda": move_lambda,
            "reinit_epoch": reinit_epoch,
            "reinit_num": reinit_num,
            "kmeans_seed": kmeans_seed,
            "kmeans_n_init": kmeans_n_init,
        }
        DiagnoseAndRelearn(1, **self.options)  # validates the options where the rule does
        self.dnr: DiagnoseAndRelearn | None = None

    def on_epoch_start(self, start: EpochStart) -> None:
        if start.epoch == 0:  # a new run: the encoders as initialised
            encoders = _encoder_parameters(start.model)
            self.dnr = DiagnoseAndRelearn(len(encoders), **self.options)
            self.dnr.remember_initial(encoders)
        elif self.dnr is None:
            raise RuntimeError(
                f"D&R has no initial encoder parameters at epoch {start.epoch + 1}: a resumed run "
                "needs a checkpoint written by D&R"
            )

    def on_epoch_end(self, end: EpochEnd) -> None:
        if self.dnr is None or not self.dnr.due(end.epoch):
            return
        train_features, train_labels = _whole_split(end, "train")
        val_features, val_labels = _whole_split(end, "val")
        strengths = self.dnr.diagnose(train_features, train_labels, val_features, val_labels, end.num_classes)
        self.dnr.relearn_(_encoder_parameters(end.model), strengths)

    def state_dict(self) -> dict[str, object]:
        return {} if self.dnr is None else self.dnr.state_dict()

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        if not state:
            self.dnr = None
            return
        expected = {"initial", "reinits_done"}
        if set(state) != expected or not isinstance(state["initial"], list):
            raise ValueError(
                f"D&R state needs keys {sorted(expected)} with a list of each encoder's initial "
                f"parameters, got keys {sorted(state)}"
            )
        self.dnr = DiagnoseAndRelearn(len(state["initial"]), **self.options)
        self.dnr.load_state_dict(dict(state))


def _encoder_parameters(model: nn.Module) -> list[list[tuple[str, Tensor]]]:
    """Each encoder's named parameters, in modality order (buffers excluded)."""
    return [list(model.encoders[m].named_parameters()) for m in model.modalities]


def _whole_split(end: EpochEnd, split: str) -> tuple[list[Tensor], Tensor]:
    """Each encoder's features of the whole ``split`` (on the CPU) and the labels."""
    batches, labels = [], []
    for features, batch_labels in end.features(split):
        batches.append([f.cpu() for f in features])
        labels.append(batch_labels.cpu())
    return [torch.cat(per_modality) for per_modality in zip(*batches)], torch.cat(labels)
