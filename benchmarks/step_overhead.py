"""Training-step time of every registered strategy relative to ``none``, as the trainer runs it.

Each variant is a run prepared by the engine (``goal_plugin.engine.trainer.prepare``)
and stepped with the engine's own ``train_step``: two ResNet-18 encoders (audio
1 x 128 x 96 spectrogram, visual 3 x 1 x 112 x 112 frame) on synthetic data,
batch 16, 6 classes, SGD, each recipe's fusion (concatenation; MLA's shared
head) and harness defaults. A step is what a training epoch repeats: forward,
the recipe's backward (gate, MMPareto's separate passes, AGM's zero-padded
passes, MLA's alternating updates, PMR's prototype losses, ...) and the
optimiser step(s). Work a recipe does once per epoch or less often
(Gradient-Blending's probe epochs, D&R's re-initialisation, PMR's prototypes)
runs once before timing (``start_epoch`` of epoch 0) and is not in the step
time; the methods page states it. Steps are timed at epoch 6, where every
recipe's window is open (ARL starts there). ``unimodal`` trains a one-encoder
network, so it is not one of these variants.

The baseline is ``none``, the plain baseline as the harness trains it (through
the identity gate, which still records the gradient statistics); "(no gate)" is
the same run without any gate and shows what the gate itself costs. Steps are
interleaved round by round in a shuffled order, so drift of the machine hits all
variants alike; the figure reported is the median over rounds of (variant step
time / ``none`` step time in the same round).

    python benchmarks/step_overhead.py [--rounds 30] [--strategies none,goal] [--device cuda] [--amp]
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch

import goal_plugin as gp
from goal_plugin.engine.config import resolve_config
from goal_plugin.engine.trainer import prepare, start_epoch, train_step

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _interleaved import argument_parser, compare, timed

NO_GATE = "(no gate)"
BASELINE = "none"
TIMED_EPOCH = 6  # inside every built-in recipe's modulation window


def prepared_run(strategy: str, batch_size: int, device: str, amp: bool):
    """A run of ``strategy`` on a synthetic audio-visual batch, its epoch-0 work done."""
    run = prepare(
        resolve_config(
            {
                "dataset": "synthetic",
                "dataset_options": {
                    "kinds": ["spectrogram", "frames"],
                    "spectrogram_size": [128, 96],
                    "frames_size": [3, 1, 112, 112],
                    "num_classes": 6,
                    "sizes": [batch_size, batch_size, batch_size],
                },
                "backbone": "resnet18",
                "strategy": strategy,
                "batch_size": batch_size,
                "optimizer": "sgd",
                "lr": 1e-4,
                "momentum": 0.9,
                "weight_decay": 1e-4,
                "epochs": TIMED_EPOCH + 1,
                "device": device,
                "amp": amp,
                "diagnostics": False,
            }
        )
    )
    start_epoch(run, 0)
    return run


def main() -> None:
    parser = argument_parser(__doc__, batch_size=16)
    parser.add_argument("--strategies", default=",".join(gp.list_strategies()))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads")
    parser.add_argument("--amp", action="store_true", help="autocast (float16 on CUDA, bfloat16 on CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    names = list(dict.fromkeys([BASELINE, *args.strategies.split(",")]))
    # A unimodal baseline trains another network (one encoder): not a variant of this step.
    names = [name for name in names if gp.create_strategy(name).only_modality is None]
    runs = {name: prepared_run(name, args.batch_size, args.device, args.amp) for name in names}
    runs = {NO_GATE: dataclasses.replace(runs[BASELINE], strategy=None)} | runs
    steps = {}
    for name, run in runs.items():
        train = run.splits["train"]
        batch = {k: v.to(device) for k, v in _first_batch(train, args.batch_size).items()}
        steps[name] = timed(lambda run=run, batch=batch: train_step(run, batch, TIMED_EPOCH), device)
    print(f"device {device}, batch {args.batch_size}, amp {args.amp}, {args.rounds} rounds x {len(steps)} "
          f"variants, torch {torch.__version__}, {torch.get_num_threads()} CPU threads", flush=True)
    compare(steps, BASELINE, rounds=args.rounds, warmup=args.warmup)


def _first_batch(dataset, batch_size: int) -> dict[str, torch.Tensor]:
    from goal_plugin.data import collate_batch

    return collate_batch([dataset[i] for i in range(batch_size)])


if __name__ == "__main__":
    main()
