"""Stand-ins with BalanceMM's conventions, written from BALANCEMM.md (BalanceMM itself
is not installable here): its model's attribute structure, a gathering
DataParallel-style wrapper, its BaseTrainer constructor, and a fake package with
its trainer lookup for the registration tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

import torch
from torch import nn


class ConcatFusionOfDict(nn.Module):
    """BalanceMM's concat fusion: reads a dict of modality features."""

    def __init__(self, input_dim: int, num_classes: int):
        super().__init__()
        self.fc_out = nn.Linear(input_dim, num_classes)

    def forward(self, features):
        return self.fc_out(torch.cat(list(features.values()), dim=1))


class BalanceLikeModel(nn.Module):
    """``modality_encoder`` (ModuleDict), ``fusion_module``, ``modalitys``, ``device``;
    ``forward(batch)`` fills ``encoder_result`` (features + 'output'),
    ``unimodal_result`` (fusion-slice logits + 'output') and ``prediction``."""

    def __init__(self, modalities=("audio", "visual"), in_dim=5, feat_dim=6, num_classes=4):
        super().__init__()
        self.modalitys = dict.fromkeys(modalities).keys()
        self.n_classes = num_classes
        self.device = "cpu"
        self.modality_size = {m: feat_dim for m in modalities}
        self.modality_encoder = nn.ModuleDict(
            {m: nn.Sequential(nn.Linear(in_dim, feat_dim), nn.Tanh()) for m in modalities}
        )
        self.fusion_module = ConcatFusionOfDict(feat_dim * len(modalities), num_classes)
        self.encoder_result, self.unimodal_result, self.prediction = {}, {}, {}

    def forward(self, batch):
        self.encoder_result = {m: self.modality_encoder[m](batch[m]) for m in self.modalitys}
        self.encoder_result["output"] = self.fusion_module(
            {m: self.encoder_result[m] for m in self.modalitys}
        )
        weight, bias = self.fusion_module.fc_out.weight, self.fusion_module.fc_out.bias
        self.unimodal_result, start = {}, 0
        for m in self.modalitys:
            width = self.modality_size[m]
            self.unimodal_result[m] = (
                self.encoder_result[m] @ weight[:, start : start + width].T + bias / len(self.modalitys)
            )
            start += width
        self.unimodal_result["output"] = self.encoder_result["output"]
        self.prediction = {key: z.argmax(dim=1) for key, z in self.unimodal_result.items()}
        return self.encoder_result, self.unimodal_result, self.prediction


class GatheringParallel(nn.DataParallel):
    """CPU stand-in for BalanceMM's MultiModalParallel: parameters under ``module.``,
    and the results stored on the inner model are *copies* made in the graph, as its
    gather of the replicas' results is; the fused logits do not depend on them."""

    def forward(self, batch):
        self.module(batch)
        inner = self.module
        inner.encoder_result = {k: v.clone() for k, v in inner.encoder_result.items()}
        inner.unimodal_result = {k: v.clone() for k, v in inner.unimodal_result.items()}
        return inner.encoder_result

    @property
    def prediction(self):
        return self.module.prediction


class BaseTrainerStandIn:
    """BalanceMM's ``BaseTrainer.__init__`` signature and the state a trainer reads."""

    def __init__(self, fabric, max_epochs=1000, grad_accum_steps=1, logger=None, **others):
        self.fabric = fabric
        self.max_epochs = max_epochs
        self.grad_accum_steps = grad_accum_steps
        self.logger = logger
        self.current_epoch = 0
        self.global_step = 0
        self._current_train_return = {}


def make_batch(modalities=("audio", "visual"), batch=8, in_dim=5, num_classes=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    out = {m: torch.randn(batch, in_dim, generator=generator, dtype=torch.float64) for m in modalities}
    out["label"] = torch.randint(0, num_classes, (batch,), generator=generator)
    return out


def write_fake_balancemm(root: Path, *, with_trainer_list: bool = True) -> None:
    """A package named ``balancemm`` reproducing what registration relies on: a
    ``trainer`` package that imports ``*_trainer.py`` files into ``_trainer_modules``
    and resolves ``--trainer`` by ``getattr`` over that list; a trainer module that
    imports the top-level ``models`` package (BalanceMM's UMT bug); and a
    ``__main__`` that builds the configured trainer and prints what it got."""
    package = root / "balancemm"
    files = {
        "__init__.py": "",
        "models/__init__.py": "from . import avclassify_model\n",
        "models/avclassify_model.py": "class MultiModalParallel:\n    pass\n",
        "trainer/base_trainer.py": """
            class BaseTrainer:
                def __init__(self, fabric, max_epochs=1000, grad_accum_steps=1, logger=None):
                    self.fabric, self.max_epochs, self.current_epoch = fabric, max_epochs, 0
        """,
        "trainer/UMT_trainer.py": """
            from models.avclassify_model import MultiModalParallel
            from balancemm.models.avclassify_model import MultiModalParallel as Original
            assert MultiModalParallel is Original
        """,
        "trainer/__init__.py": textwrap.dedent("""
            import importlib, os
            names = [f[:-3] for f in os.listdir(os.path.dirname(__file__)) if f.endswith('_trainer.py')]
            modules = [importlib.import_module('.' + n, package='balancemm.trainer') for n in names]

            def create_trainer(name, method_dict, para_dict):
                for module in modules:
                    cls = getattr(module, name, None)
                    if cls is not None:
                        return cls(None, method_dict, para_dict)
                raise ValueError(f'trainer {name} is not found.')
        """)
        + ("_trainer_modules = modules\n" if with_trainer_list else ""),
        "__main__.py": """
            import sys
            from balancemm.trainer import create_trainer
            from balancemm.trainer.base_trainer import BaseTrainer
            name = sys.argv[sys.argv.index('--trainer') + 1]
            trainer = create_trainer(name, {'method': 'ogm_go', 'alpha': 0.5, 'name': 'GOAL'},
                                     {'max_epochs': 3})
            print(type(trainer).__name__, isinstance(trainer, BaseTrainer), trainer.strategy.name,
                  trainer.strategy.hparams['alpha'], trainer.max_epochs)
        """,
    }
    for relative, text in files.items():
        path = package / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
