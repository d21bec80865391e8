"""Training-step time of the gate vs the post-backward modes vs plain training.

Two small CNN encoders (``small_cnn``, 1 x 32 x 32 inputs per modality, so that
both encoders have the same parameter count and parameter-space GO applies),
unimodal heads, concat fusion, 6 classes, SGD. Every variant computes the same
loss (fused + unimodal cross-entropy) and optimizer step; they differ only in
how the strategy is applied:

- plain:            ``loss.backward()``, no strategy;
- gate:             the gate inside the model (``attach`` costs the same);
- feature space:    ``feature_space_backward`` (autograd.grad to f_m, modify, backward);
- parameter space:  ``parameter_space_backward`` (autograd.grad to theta_m, modify, backward).

Steps are interleaved round by round in a shuffled order, so drift of the
machine hits all variants alike; the reported figure is the median over rounds
of (variant step time / plain step time in the same round).

    python benchmarks/post_backward_cost.py [--rounds 30] [--strategy goal] [--device cpu]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import goal_plugin as gp
from goal_plugin.integrations import feature_space_backward, parameter_space_backward
from goal_plugin.models import build_network

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _interleaved import argument_parser, compare, timed  # noqa: E402

PLAIN = "plain (no strategy)"


def losses(out, labels):
    fused = F.cross_entropy(out.fused_logits, labels)
    unimodal = sum(F.cross_entropy(z, labels) for z in out.unimodal_logits.values())
    return fused, unimodal


def backward_plain(model, batch, strategy):
    fused, unimodal = losses(model(batch), batch["label"])
    (fused + unimodal).backward()


def backward_gate(model, batch, strategy):
    fused, unimodal = losses(model(batch, strategy), batch["label"])
    (fused + unimodal).backward()


def backward_feature_space(model, batch, strategy):
    out = model(batch)
    fused, unimodal = losses(out, batch["label"])
    feature_space_backward(
        strategy,
        list(out.features.values()),
        fused,
        unimodal_loss=unimodal,
        logits=list(out.unimodal_logits.values()),
        labels=batch["label"],
    )


def backward_parameter_space(model, batch, strategy):
    out = model(batch)
    fused, unimodal = losses(out, batch["label"])
    parameter_space_backward(
        strategy,
        [model.encoders[m] for m in model.modalities],
        fused,
        unimodal_loss=unimodal,
        logits=list(out.unimodal_logits.values()),
        labels=batch["label"],
    )


VARIANTS = {
    PLAIN: backward_plain,
    "gate": backward_gate,
    "feature space": backward_feature_space,
    "parameter space": backward_parameter_space,
}


def make_step(model, optimizer, batch, strategy, backward):
    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        backward(model, batch, strategy)
        optimizer.step()

    return step


def main() -> None:
    parser = argument_parser(__doc__, batch_size=32)
    parser.add_argument("--strategy", default="goal")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    shapes = {"audio": (1, 32, 32), "visual": (1, 32, 32)}
    model = build_network("small_cnn", shapes, 6).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    batch = {m: torch.randn(args.batch_size, *shape, device=device) for m, shape in shapes.items()}
    batch["label"] = torch.randint(0, 6, (args.batch_size,), device=device)
    strategy = gp.create_strategy(args.strategy)
    steps = {
        name: timed(make_step(model, optimizer, batch, strategy, fn), device)
        for name, fn in VARIANTS.items()
    }
    encoder_params = sum(p.numel() for p in model.encoders.parameters())
    print(f"device {device}, strategy {args.strategy}, batch {args.batch_size}, small_cnn encoders "
          f"({encoder_params} parameters), {args.rounds} rounds x {len(steps)} variants, "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads", flush=True)
    compare(steps, PLAIN, rounds=args.rounds, warmup=args.warmup)

if __name__ == "__main__":
    main()
