"""Run a sweep of trials with Ray Tune and print a significance-tested table.

    python runners/sweep.py                       # search_spaces/default.yaml -> ./results/
    python runners/sweep.py ablation --name abl1 --storage /shared/results
    python runners/sweep.py temperature --name t1 --resume     # after a crash
    python runners/sweep.py my_space.yaml --address auto --gpus-per-trial 0.25

SPACE is a file or the name of one in search_spaces/. Giving the --name of an
unfinished experiment resumes it (as does --resume, which insists on it).
"""

from __future__ import annotations

import argparse
import sys

from goal_plugin.tune.cli import main_sweep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("space", nargs="?", default="default", help="search-space file or name (default: default)")
    parser.add_argument("--name", help="experiment name (default: <space name>-<date>-<time>, always fresh)")
    parser.add_argument("--storage", default="results", help="local folder or URI for results (default: ./results)")
    parser.add_argument("--resume", action="store_true", help="continue the experiment --name (must exist)")
    parser.add_argument("--address", help="Ray cluster to join ('auto' or host:port); default: start a local one")
    parser.add_argument("--cpus-per-trial", type=float, help="CPUs per trial (default: the space's resources.cpu)")
    parser.add_argument("--gpus-per-trial", type=float, help="GPUs per trial, fractions allowed (default: resources.gpu)")
    parser.add_argument("--max-concurrent", type=int, help="at most this many trials at once (default: as many as the cluster's CPUs/GPUs allow when the sweep starts)")
    parser.add_argument("--max-failures", type=int, default=2, help="retries of a failing trial (default 2)")
    parser.add_argument("--reference", default="goal", help="method the table tests the others against")
    return main_sweep(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
