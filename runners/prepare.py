"""Turn an official dataset release into the layout the audio-visual loaders read.

    python runners/prepare.py crema_d --raw ~/downloads/CREMA-D --out /data/crema_d
    python runners/prepare.py kinetics_sounds --raw ~/kinetics --out /data/ks --layout balancebenchmark --workers 8
    python runners/prepare.py ave --raw ~/downloads/AVE_Dataset --out /data/ave

Re-running continues where a stopped run left off (finished clips are kept).
Clips that cannot be prepared are listed with the reason at the end (and in
<out>/manifest.json); the exit status is 1 only if no clip could be prepared.
What each dataset needs in --raw and what is written: docs/datasets.md.
"""

from __future__ import annotations

import argparse
import os
import sys

from goal_plugin.prepare import DATASETS, LAYOUTS, PrepareError, prepare


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=DATASETS)
    parser.add_argument("--raw", required=True, help="the folder of the official release as downloaded")
    parser.add_argument("--out", required=True, help="the dataset folder to write (new, or one this command wrote)")
    parser.add_argument("--layout", choices=LAYOUTS, default="ogm_ge", help="the codebase layout to write (default ogm_ge)")
    parser.add_argument(
        "--workers", type=int, default=min(8, os.cpu_count() or 1), help="processes decoding clips in parallel"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    args = parser.parse_args(argv)
    try:
        summary = prepare(
            args.dataset, args.raw, args.out, layout=args.layout, workers=args.workers, progress=not args.no_progress
        )
    except PrepareError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the clips finished so far are kept; run the same command again to continue", file=sys.stderr)
        return 130
    return 0 if summary.prepared else 1


if __name__ == "__main__":
    sys.exit(main())
