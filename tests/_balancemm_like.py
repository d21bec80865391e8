"""Stand-ins with BalanceMM's conventions (GeWu-Lab/BalanceBenchmark, commit 4c1482f),
built from the structure of its files (BalanceMM is not installable here): its
model's attribute structure, a gathering DataParallel-style wrapper, its
BaseTrainer constructor, and a fake checkout whose entry points pass a trainer
what BalanceMM's do, for the registration and launcher tests."""

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

    def __init__(
        self,
        fabric,
        max_epochs=1000,
        grad_accum_steps=1,
        limit_train_batches=float("inf"),
        limit_val_batches=float("inf"),
        validation_frequency=1,
        use_distributed_sampler=True,
        checkpoint_dir="./experiments/checkpoints",
        checkpoint_frequency=1,
        should_train=True,
        logger=None,
        tb_logger=None,
    ):
        self.fabric = fabric
        self.max_epochs = max_epochs
        self.grad_accum_steps = grad_accum_steps
        self.checkpoint_dir = checkpoint_dir
        self.should_train = should_train
        self.logger = logger
        self.current_epoch = 0
        self.global_step = 0
        self._current_train_return = {}


def make_batch(modalities=("audio", "visual"), batch=8, in_dim=5, num_classes=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    out = {m: torch.randn(batch, in_dim, generator=generator, dtype=torch.float64) for m in modalities}
    out["label"] = torch.randint(0, num_classes, (batch,), generator=generator)
    return out


def write_fake_balancemm(root: Path) -> None:
    """A checkout named ``balancemm`` whose entry points pass the trainer what BalanceMM's
    do (commit 4c1482f), built from the structure of its files:

    - ``__main__``: argparse flags; ``create_config`` reads ``configs/trainer_config.yaml``,
      insists on integer GPU ids in ``--device``, writes ``--alpha`` into the trainer's
      block, adds ``base_para`` and ``name`` (and ``should_train: False`` in test mode),
      then calls ``train_and_test`` or ``test``, imported by name when it runs;
    - ``train.train_and_test`` / ``test.test``: put ``checkpoint_dir`` into the trainer's
      dict, wrap the model in ``MultiModalParallel`` unless ``device == ''`` (the CPU
      branch keeps the bare model), create the trainer and run a validation step that
      needs ``MultiModalParallel``'s convention (the loss alone);
    - ``trainer``: imports ``*_trainer.py`` into ``_trainer_modules``; ``create_trainer``
      resolves the name by ``getattr``, sets ``base_para['logger']``, builds
      ``cls(fabric, para_opt, para_opt['base_para'])``, then sets ``checkpoint_dir`` and
      overwrites ``name``; ``UMT_trainer.py`` imports the top-level ``models`` package;
    - ``models.avclassify_model.BaseClassifierModel``: ``encoder_process`` calls the
      missing ``resnet`` (the method is ``resnet_process``), ``validation_step`` returns
      a tuple on the bare model.

    Each run prints one JSON line describing the trainer and the run; no data, no
    training: the device move of the GPU branch is left out so that it runs anywhere.
    """
    files = {
        "configs/trainer_config.yaml": """
            trainer_para:
              base: {grad_accum_steps: 1, max_epochs: 3}
              GOAL: {method: ogm_go, alpha: 0.5}
        """,
        "balancemm/__init__.py": "",
        "balancemm/models/__init__.py": "from . import avclassify_model\n",
        "balancemm/models/avclassify_model.py": """
            class MultiModalParallel:
                def __init__(self, model, device_ids=()):
                    self.module = model

                def validation_step(self, batch, batch_idx, limit_modality):
                    return self.module.validation_step(batch, batch_idx, limit_modality)[0]


            class BaseClassifierModel:
                def resnet_process(self, modality_data, modality):
                    return modality_data

                def encoder_process(self, modality_data, modality_name):
                    return self.resnet(modality_data=modality_data, modality=modality_name)

                def validation_step(self, batch, batch_idx, limit_modality):
                    loss = 2.0 * self.encoder_process(batch['audio'], 'audio')
                    return loss, {}, {}, {}
        """,
        "balancemm/trainer/base_trainer.py": """
            class BaseTrainer:
                def __init__(self, fabric, max_epochs=1000, grad_accum_steps=1,
                             limit_train_batches=float('inf'), limit_val_batches=float('inf'),
                             validation_frequency=1, use_distributed_sampler=True,
                             checkpoint_dir='./experiments/checkpoints', checkpoint_frequency=1,
                             should_train=True, logger=None, tb_logger=None):
                    self.fabric, self.max_epochs, self.current_epoch = fabric, max_epochs, 0
                    self.should_train, self.checkpoint_dir = should_train, checkpoint_dir
        """,
        "balancemm/trainer/UMT_trainer.py": """
            from models.avclassify_model import MultiModalParallel
            from balancemm.models.avclassify_model import MultiModalParallel as Original
            assert MultiModalParallel is Original
        """,
        "balancemm/trainer/__init__.py": """
            import importlib, os
            names = [f[:-3] for f in os.listdir(os.path.dirname(__file__)) if f.endswith('_trainer.py')]
            _trainer_modules = [importlib.import_module('.' + n, package='balancemm.trainer') for n in names]

            def create_trainer(fabric, trainer_opt, para_opt, args, logger, tb_logger):
                for module in _trainer_modules:
                    trainer_cls = getattr(module, trainer_opt['trainer'], None)
                    if trainer_cls is not None:
                        break
                if trainer_cls is None:
                    raise ValueError('trainer is not found.')
                para_opt['base_para']['logger'] = logger
                trainer = trainer_cls(fabric, para_opt, para_opt['base_para'])
                trainer.checkpoint_dir = args.checkpoint_dir
                para_opt['name'] = trainer_opt['trainer']
                return trainer
        """,
        "balancemm/run.py": """
            import json, os
            from types import SimpleNamespace
            from .models.avclassify_model import BaseClassifierModel, MultiModalParallel
            from .trainer import create_trainer

            def run(config, mode):
                args = SimpleNamespace(**config)
                args.checkpoint_dir = os.path.join(os.getcwd(), 'experiments', mode, 'checkpoints')
                model = BaseClassifierModel()
                if args.Main_config['device'] != '':
                    model = MultiModalParallel(model, device_ids=[0])
                args.trainer['checkpoint_dir'] = args.checkpoint_dir
                trainer = create_trainer(None, args.Main_config, args.trainer, args, 'logger', None)
                loss = float(model.validation_step({'audio': 1.5}, 0, ['ALL']))
                print(json.dumps({
                    'trainer': type(trainer).__name__, 'strategy': trainer.strategy.name,
                    'hparams': trainer.strategy.hparams, 'max_epochs': trainer.max_epochs,
                    'should_train': trainer.should_train,
                    'checkpoint_dir': trainer.checkpoint_dir == args.checkpoint_dir,
                    'device': args.Main_config['device'], 'fabric': args.fabric, 'loss': loss,
                }))
        """,
        "balancemm/train.py": """
            from .run import run

            def train_and_test(args):
                run(args, 'train_and_test')
        """,
        "balancemm/test.py": """
            from .run import run

            def test(args):
                run(args, 'test')
        """,
        "balancemm/__main__.py": """
            import argparse, os, yaml
            from balancemm.train import train_and_test
            from balancemm.test import test

            root_path = os.path.dirname(os.path.dirname(__file__))

            def create_config(args):
                with open(os.path.join(root_path, 'configs', 'trainer_config.yaml')) as f:
                    trainer_settings = yaml.safe_load(f)
                config = {'Main_config': {'device': args.device, 'trainer': args.trainer},
                          'fabric': {'accelerator': 'gpu', 'devices': [1], 'strategy': 'dp'},
                          'mode': args.mode}
                gpu_ids = list(map(int, config['Main_config']['device'].split(',')))
                config['fabric']['devices'] = [i for i in range(len(gpu_ids))]
                name = args.trainer.split('Trainer', 1)[0]
                if args.alpha:
                    trainer_settings['trainer_para'][name]['alpha'] = args.alpha
                config['trainer'] = trainer_settings['trainer_para'][name]
                config['trainer']['base_para'] = trainer_settings['trainer_para']['base']
                config['trainer']['name'] = name
                if args.mode == 'test':
                    config['trainer']['base_para']['should_train'] = False
                return config

            if __name__ == '__main__':
                parser = argparse.ArgumentParser()
                parser.add_argument('--trainer', type=str)
                parser.add_argument('--mode', type=str, default='train_and_test')
                parser.add_argument('--device', type=str, default='0')
                parser.add_argument('--alpha', type=float, default=None)
                args = create_config(parser.parse_args())
                if args['mode'] == 'train_and_test':
                    train_and_test(args)
                elif args['mode'] == 'test':
                    test(args)
        """,
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
