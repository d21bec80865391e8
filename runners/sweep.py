"""Run a sweep of trials with Ray Tune and print a significance-tested table.

    python runners/sweep.py                       # search_spaces/default.yaml -> ./results/
    python runners/sweep.py ablation --name abl1 --storage results
    python runners/sweep.py temperature --name t1 --resume     # after a crash
    python runners/sweep.py my_space.yaml --address auto --gpus-per-trial 0.25
    python runners/sweep.py ablation --name abl --storage s3://my-bucket/sweeps   # see docs/sweep_storage.md
    python runners/sweep.py paper_av --data-root crema_d=/data/CREMA-D --data-root ave=/data/AVE \
        --data-root kinetics_sounds=/data/KS --check-data   # open every file first; no training

SPACE is a file or the name of one in search_spaces/. Giving the --name of an
unfinished experiment resumes it (as does --resume, which insists on it); a
--name that holds an experiment of another space is refused. The exit status is
0 only when every trial of the space finished; otherwise the last line gives
the command that resumes the sweep.
"""

from __future__ import annotations

import argparse
import sys

from goal_plugin.tune.cli import main_sweep
from goal_plugin.tune.runner import DEFAULT_MAX_FAILURES
from goal_plugin.tune.trainable import CHECKPOINT_EVERY_S


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("space", nargs="?", default="default", help="search-space file or name (default: default)")
    parser.add_argument("--name", help="experiment name (default: <space name>-<date>-<time>, always fresh)")
    parser.add_argument("--storage", default="results",
                        help="local folder, or a URI the whole cluster reaches: s3://bucket/prefix (endpoint of an "
                        "S3-compatible server from AWS_ENDPOINT_URL), gs://..., any URI pyarrow opens; checked "
                        "before anything runs (default: ./results)")
    parser.add_argument("--resume", action="store_true", help="continue the experiment --name (must exist)")
    parser.add_argument("--address", help="Ray cluster to join ('auto' or host:port); default: start a local one")
    parser.add_argument("--workers-per-trial", type=int, help="DDP workers per trial through Ray Train (default: the space's resources.workers, 1); --cpus/--gpus-per-trial are then per worker")
    parser.add_argument("--cpus-per-trial", type=float, help="CPUs per trial (default: the space's resources.cpu)")
    parser.add_argument("--gpus-per-trial", type=float, help="GPUs per trial, fractions allowed (default: resources.gpu)")
    parser.add_argument("--max-concurrent", type=int, help="at most this many trials at once (default: as many as Ray can place on the cluster, nodes that join later included)")
    parser.add_argument("--max-failures", type=int, default=DEFAULT_MAX_FAILURES,
                        help=f"retries of a failing trial (default {DEFAULT_MAX_FAILURES})")
    parser.add_argument("--checkpoint-every-s", type=float, default=CHECKPOINT_EVERY_S, metavar="SECONDS",
                        help="a trial checkpoints an epoch when skipping it would leave more than this many seconds "
                        f"of its work unsaved, and always at its end; 0: every epoch (default {CHECKPOINT_EVERY_S:g})")
    parser.add_argument("--tensorboard", action="store_true",
                        help="also write TensorBoard event files in every trial folder (Ray's TBXLogger; it costs "
                        "the driver milliseconds per report, so it is off by default; result.json and "
                        "progress.csv are always written)")
    parser.add_argument("--reference", help="strategy the table tests the others against (default: goal, or the "
                        "space's first strategy if it has no goal); checked before the sweep starts")
    parser.add_argument("--data-root", action="append", metavar="DATASET=FOLDER",
                        help="where a dataset's files are (repeat it, one DATASET=FOLDER per dataset; a bare "
                        "FOLDER when the space reads one dataset from files); overrides the space's data_root")
    parser.add_argument("--skip-missing", action="store_true",
                        help="trials skip clips whose files are missing or malformed and count them per split "
                        "(datasets read from files; default: such a clip stops the trial with its path)")
    parser.add_argument("--check-data", action="store_true",
                        help="open every file the space's trials would read, report missing or malformed ones "
                        "per dataset and split, and exit without training")
    return main_sweep(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
