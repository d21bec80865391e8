"""Training-step time with ``goal`` relative to ``none``, for each backbone.

For every backbone, one network in the layout of the paper's backbone study
(Table 5): the same backbone encodes a 1-channel spectrogram (1 x S x 3S/4, non-square
as audio is) and a clip of frames (3 x T x S x S), concat fusion, unimodal heads,
SGD. Both variants run the same loss (fused + unimodal cross-entropy) and
optimizer step on the same model; they differ only in the strategy behind the
gate. Steps are interleaved round by round in a shuffled order (see
``_interleaved.py``); the figure is the median over rounds of (``goal`` step time
/ ``none`` step time in the same round). ViT-B/32 runs at ``image_size`` S, so
the spectrogram is resized to S x S as in real use.

On a busy machine the ratio's spread can exceed the overhead it measures, so the
gate's own work is also timed alone: the strategy's backward step (``modify``) on
gradients and logits of the step's shapes, ``goal`` minus ``none``, as a percentage
of the median ``none`` step. That difference is all that separates the two steps.

    python benchmarks/backbone_overhead.py [--size 64] [--frames 2] [--batch-size 8] \\
        [--backbones resnet18,convnext_base,vit_b_32] [--rounds 20] [--device cuda]
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch

import goal_plugin as gp
from goal_plugin.models import build_network

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _interleaved import argument_parser, compare, timed
from step_overhead import make_step

BACKBONES = ("resnet18", "convnext_base", "vit_b_32")
VARIANTS = ("none", "goal")
NUM_CLASSES = 6
GATE_REPEATS = 200


def recording(run: Callable[[], float], into: list[float]) -> Callable[[], float]:
    def run_and_record() -> float:
        into.append(run())
        return into[-1]

    return run_and_record


def gate_work_seconds(name: str, batch_size: int, dim: int, device: torch.device) -> float:
    """Median time of strategy ``name``'s backward step on two modalities' (B, dim) gradients."""
    strategy = gp.create_strategy(name)
    grads = [torch.randn(batch_size, dim, device=device) for _ in range(2)]
    logits = [torch.randn(batch_size, NUM_CLASSES, device=device) for _ in range(2)]
    labels = torch.randint(0, NUM_CLASSES, (batch_size,), device=device)
    run = timed(lambda: strategy.modify(grads, logits, labels), device)
    return statistics.median(run() for _ in range(GATE_REPEATS))


def main() -> None:
    parser = argument_parser(__doc__, batch_size=8)
    parser.add_argument("--backbones", default=",".join(BACKBONES))
    parser.add_argument(
        "--size", type=int, default=64, help="S: frame side and spectrogram height (a multiple of 32)"
    )
    parser.add_argument("--frames", type=int, default=2, help="T: frames per clip (CREMA-D: 2)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads")
    args = parser.parse_args()
    if args.size % 32:
        raise SystemExit(f"--size must be a multiple of 32 (ViT-B/32's patch), got {args.size}")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    shapes = {"audio": (1, args.size, 3 * args.size // 4), "visual": (3, args.frames, args.size, args.size)}
    print(f"device {device}, batch {args.batch_size}, shapes {shapes}, {args.rounds} rounds, "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads", flush=True)
    for name in args.backbones.split(","):
        torch.manual_seed(0)
        options = {"image_size": args.size} if name == "vit_b_32" else {}
        model = build_network(name, shapes, NUM_CLASSES, backbone_options=options).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=4e-4, momentum=0.9, weight_decay=1e-4)
        batch = {m: torch.randn(args.batch_size, *s, device=device) for m, s in shapes.items()}
        batch["label"] = torch.randint(0, NUM_CLASSES, (args.batch_size,), device=device)
        times: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        steps = {
            variant: recording(
                timed(make_step(model, optimizer, batch, gp.create_strategy(variant)), device),
                times[variant],
            )
            for variant in VARIANTS
        }
        dim = model.feature_dims["audio"]
        print(f"\n{name} (features {dim}-d)", flush=True)
        compare(steps, "none", rounds=args.rounds, warmup=args.warmup)
        none_step = statistics.median(times["none"][args.warmup:])
        work = {v: gate_work_seconds(v, args.batch_size, dim, device) for v in VARIANTS}
        print(f"gate work per step: goal {1e3 * work['goal']:.3f} ms, none {1e3 * work['none']:.3f} ms; "
              f"difference {100 * (work['goal'] - work['none']) / none_step:.3f} % of the none step")
        del model, optimizer, steps
        if device.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
