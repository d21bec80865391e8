"""Full training-step time of every registered strategy relative to ``none``.

Two ResNet-18 encoders (audio 1 x 128 x 96 spectrogram, visual 3 x 112 x 112
frame), batch 16, 6 classes, concat fusion, unimodal heads, SGD. Every variant
runs the same losses (fused + unimodal cross-entropy) and optimizer step; they
differ only in the strategy behind the gate (and OGM-GE's post-backward noise),
and in how a recipe with a training method (``mmpareto``, ``pmr``) computes the
step's gradients from those losses, as the trainer runs it (PMR's prototypes are
computed once, before timing). ``unimodal`` trains a one-encoder network, so it
is not one of these variants.
The baseline is ``none``, the plain baseline as the harness trains it (through
the identity gate, which still records the gradient statistics); a row without
any gate shows what the gate itself costs. Steps are interleaved round by round
in a shuffled order, so drift of the machine hits all variants alike; the
figure reported is the median over rounds of (variant step time / ``none``
step time in the same round).

    python benchmarks/step_overhead.py [--rounds 30] [--strategies none,goal] [--device cuda]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import goal_plugin as gp
from goal_plugin.methods.hook import EpochStart, StepLosses, TrainingMethod
from goal_plugin.models import build_network

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _interleaved import argument_parser, compare, timed  # noqa: E402

NO_GATE = "(no gate)"
BASELINE = "none"


def make_step(model, optimizer, batch, strategy):
    labels = batch["label"]

    method = strategy.training_method if strategy is not None and strategy.training_method else TrainingMethod()

    def features(count: int):
        with torch.no_grad():
            out = model(batch)
        yield [out.features[m] for m in model.modalities], labels

    method.on_epoch_start(EpochStart(0, 6, 1, features))  # PMR's prototypes (once: not timed)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        out = model(batch, strategy, logits_source="unimodal_head")
        fused = F.cross_entropy(out.fused_logits, labels)
        unimodal = {m: F.cross_entropy(z, labels) for m, z in out.unimodal_logits.items()}
        method.backward(StepLosses(model, fused, unimodal, 1.0, lambda loss: loss, out.features, labels))
        if strategy is not None:
            strategy.post_backward(model.named_parameters(), model.encoder_prefixes())
        optimizer.step()

    return step


def main() -> None:
    parser = argument_parser(__doc__, batch_size=16)
    parser.add_argument("--strategies", default=",".join(gp.list_strategies()))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_network("resnet18", {"audio": (1, 128, 96), "visual": (3, 1, 112, 112)}, 6).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=1e-4)
    batch = {
        "audio": torch.randn(args.batch_size, 1, 128, 96, device=device),
        "visual": torch.randn(args.batch_size, 3, 1, 112, 112, device=device),
        "label": torch.randint(0, 6, (args.batch_size,), device=device),
    }
    names = list(dict.fromkeys([BASELINE, *args.strategies.split(",")]))
    strategies = {name: gp.create_strategy(name) for name in names}
    # A unimodal baseline trains another network (one encoder): not a variant of this step.
    variants = {NO_GATE: None} | {name: s for name, s in strategies.items() if s.only_modality is None}
    steps = {name: timed(make_step(model, optimizer, batch, s), device) for name, s in variants.items()}
    print(f"device {device}, batch {args.batch_size}, {args.rounds} rounds x {len(steps)} variants, "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads", flush=True)
    compare(steps, BASELINE, rounds=args.rounds, warmup=args.warmup)

if __name__ == "__main__":
    main()
