"""Side-by-side timing: variants interleaved round by round, ratios within rounds.

Each round runs every variant once in a shuffled order, so drift of the machine
(other processes, frequency scaling) hits all variants alike; the figure of merit
is the median over rounds of (variant time / baseline time in the same round).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

import torch


def argument_parser(doc: str, batch_size: int) -> argparse.ArgumentParser:
    """The options every side-by-side benchmark takes; add its own to the result."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser


def timed(step: Callable[[], None], device: torch.device) -> Callable[[], float]:
    """``step`` as a function returning its wall time, synchronising CUDA around it."""

    def run() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    return run


def compare(
    steps: dict[str, Callable[[], float]], baseline: str, *, rounds: int, warmup: int
) -> None:
    """Run the interleaved rounds and print median times and median ratios to ``baseline``."""
    if rounds < 2:
        raise SystemExit("--rounds must be at least 2 (quartiles of the ratios are reported)")
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    order = list(steps)
    rng = random.Random(0)
    for round_index in range(rounds):
        rng.shuffle(order)
        for name in order:
            times[name].append(steps[name]())
        print(f"\rround {round_index + 1}/{rounds}", end="", flush=True)
    print()
    width = max(len(name) for name in steps) + 2
    print(f"{'variant':<{width}}{'median step (ms)':>18}{'median ratio':>14}{'ratio IQR':>18}")
    for name, values in times.items():
        ratios = sorted(v / b for v, b in zip(values, times[baseline]))
        quartiles = statistics.quantiles(ratios, n=4)
        print(
            f"{name:<{width}}{1e3 * statistics.median(values):>18.2f}"
            f"{statistics.median(ratios):>14.4f}{f'{quartiles[0]:.3f}-{quartiles[2]:.3f}':>18}"
        )
