"""Throughput of runners/prepare.py: clips per second with 1 and 2 worker processes.

The clips are synthetic Kinetics-Sounds videos of realistic size (10 s, 640 x 360
at 30 fps, H.264, with a 44.1 kHz stereo AAC track; encoded with PyAV by the
tests' fixture writer) named after the first clips of the pinned lists, so the
real preparation runs: decoding every frame, 1-fps JPEG frames, the audio
track resampled to 16 kHz and turned into the layout's audio files. Each
configuration prepares the same clips into a fresh folder; the figure is clips
per second over the whole run (planning and the manifest included).

    python benchmarks/prepare_throughput.py [--clips 16] [--layouts ogm_ge balancebenchmark]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' fixture writer

from goal_plugin.prepare import prepare  # noqa: E402
from goal_plugin.prepare.kinetics_sounds import pinned_rows  # noqa: E402
from tests._raw_fixtures import write_video  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--layouts", nargs="+", default=["ogm_ge", "balancebenchmark"])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "raw"
        for number, (clip, label) in enumerate(pinned_rows("train")[: args.clips]):
            write_video(raw / f"label_{label}" / f"{clip}.mp4", 10.0, fps=30, size=(640, 360), seed=number)
        print(f"{args.clips} clips of 10 s, 640 x 360, 30 fps, H.264 + AAC stereo 44.1 kHz")
        for layout in args.layouts:
            for workers in args.workers:
                out = Path(folder) / f"{layout}-{workers}"
                started = time.perf_counter()
                summary = prepare("kinetics_sounds", raw, out, layout=layout, workers=workers, echo=lambda _: None, progress=False)
                seconds = time.perf_counter() - started
                assert summary.written == args.clips, summary.lines()
                print(f"{layout:17s} {workers} worker(s): {args.clips / seconds:6.2f} clips/s ({seconds:.1f} s)")


if __name__ == "__main__":
    main()
