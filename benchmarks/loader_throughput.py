"""Loader throughput of the audio-visual datasets against what a training step consumes.

For each dataset and layout, the training split is read through a DataLoader
(batch 16, shuffled) with 0 and 2 worker processes, and, where the audio is
computed from WAVs (CREMA-D, OGM-GE layout), without and with the feature cache
(the cache timed warm: after one pass filled it). The figure is samples per
second over ``--samples`` samples after a first, untimed batch (worker start-up,
first-call set-up). The reference is the samples per second that one training
step of two ResNet-18 encoders (OGM-GE's CREMA-D inputs: spectrogram 1 x 257 x
188, 2 frames of 3 x 224 x 224; concat fusion, SGD) processes on ``--device``:
a loader below it starves the step.

Without ``--data-root`` the data are synthetic files of realistic sizes written in
each layout to a temporary folder: 2.5 s WAVs at 16 kHz, 480 x 360 JPEG frames,
(257, 1004) pickled spectrograms, (1024, 128) fbanks. ``--data-root DATASET=ROOT``
(repeatable) times a real copy instead.

    python benchmarks/loader_throughput.py [--samples 128] [--device cuda] [--data-root crema_d=/data/crema]
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision.io import encode_jpeg

from goal_plugin.data import build_dataset, collate_batch
from goal_plugin.models import build_network

BATCH = 16
EMOTIONS = ("NEU", "HAP", "SAD", "FEA", "DIS", "ANG")
LAYOUTS = {
    "crema_d": ("ogm_ge", "balancebenchmark"),
    "kinetics_sounds": ("ogm_ge", "balancebenchmark"),
    "ave": ("ogm_ge", "balancebenchmark"),
}


def _jpeg(rng: np.random.Generator) -> bytes:
    noise = torch.from_numpy(rng.integers(0, 256, (3, 45, 60), dtype=np.uint8))
    image = F.interpolate(noise[None].float(), size=(360, 480), mode="bilinear")[0].to(torch.uint8)
    return encode_jpeg(image, quality=90).numpy().tobytes()


def write_synthetic(root: Path, dataset: str, layout: str, clips: int) -> None:
    """``clips`` training clips of ``dataset`` in ``layout`` with files of realistic size."""
    rng = np.random.default_rng(0)
    frame = _jpeg(rng)  # one image reused: decoding cost is what is measured
    root.mkdir(parents=True)
    names = [f"clip{i:05d}" for i in range(clips)]
    labels = [i % 6 for i in range(clips)]
    frame_dirs = "Image-01-FPS" if (dataset, layout) == ("crema_d", "ogm_ge") else "visual"
    frame_names = (
        [f"{30 * k:05d}.jpg" for k in range(3)]
        if frame_dirs == "Image-01-FPS"
        else [f"frame_{k + 1:05d}.jpg" for k in range(10)]
    )
    for name in names:
        folder = root / frame_dirs / name
        folder.mkdir(parents=True)
        for frame_name in frame_names:
            (folder / frame_name).write_bytes(frame)
    if dataset == "crema_d":
        rows = [f"{n},{EMOTIONS[label]}" for n, label in zip(names, labels)]
        for list_name in ("train.csv", "test.csv"):
            (root / list_name).write_text("\r\n".join(rows) + "\r\n")
        if layout == "ogm_ge":
            (root / "AudioWAV").mkdir()
            for name in names:
                samples = (0.1 * rng.standard_normal(40_000)).astype(np.float32)
                soundfile.write(
                    root / "AudioWAV" / f"{name}.wav", samples, 16_000, subtype="PCM_16"
                )
        else:
            (root / "audio").mkdir()
            for name in names:
                torch.save(torch.randn(1024, 128), root / "audio" / f"{name}.pt")
        return
    audio_dir = root / ("audio_spec" if layout == "ogm_ge" else "audio")
    audio_dir.mkdir()
    for name in names:
        if layout == "ogm_ge":
            with open(audio_dir / f"{name}.pkl", "wb") as handle:
                pickle.dump(rng.standard_normal((257, 1004)).astype(np.float32), handle)
        else:
            np.save(audio_dir / f"{name}.npy", rng.standard_normal((1024, 128)).astype(np.float32))
    if dataset == "kinetics_sounds":
        lists = ("my_train.txt", "my_test.txt") if layout == "ogm_ge" else ("train.txt", "test.txt")
        rows = [
            f"{n},10,{label}" if layout == "ogm_ge" else f"{n} {label}"
            for n, label in zip(names, labels)
        ]
        for list_name in lists:
            (root / list_name).write_text("\n".join(rows) + "\n")
    else:
        rows = [f"Category {label}, with a comma&{n}&good&0&10" for n, label in zip(names, labels)]
        header = "Category&VideoID&Quality&StartTime&EndTime"
        (root / "Annotations.txt").write_text("\n".join([header, *rows]) + "\n")
        for list_name in ("trainSet.txt", "valSet.txt", "testSet.txt"):
            (root / list_name).write_text("\n".join(rows) + "\n")


def samples_per_second(dataset, workers: int, samples: int) -> float:
    loader = DataLoader(
        dataset,
        batch_size=BATCH,
        shuffle=True,
        num_workers=workers,
        collate_fn=collate_batch,
        generator=torch.Generator().manual_seed(0),
        persistent_workers=False,
    )
    batches = iter(loader)
    next(batches)  # not timed: worker start-up and first-call set-up (resampling kernel, imports)
    seen, start = 0, time.perf_counter()
    for batch in batches:
        seen += len(batch["label"])
        if seen >= samples:
            break
    return seen / (time.perf_counter() - start)


def training_step_rate(device: torch.device, steps: int) -> float:
    """Samples/s of a ResNet-18 audio-visual training step on CREMA-D's OGM-GE inputs."""
    torch.manual_seed(0)
    model = build_network("resnet18", {"audio": (1, 257, 188), "visual": (3, 2, 224, 224)}, 6).to(
        device
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    batch = {
        "audio": torch.randn(BATCH, 1, 257, 188, device=device),
        "visual": torch.randn(BATCH, 3, 2, 224, 224, device=device),
        "label": torch.randint(0, 6, (BATCH,), device=device),
    }

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        out = model(batch)
        loss = F.cross_entropy(out.fused_logits, batch["label"]) + sum(
            F.cross_entropy(z, batch["label"]) for z in out.unimodal_logits.values()
        )
        loss.backward()
        optimizer.step()

    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return BATCH * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=128, help="samples timed per variant")
    parser.add_argument(
        "--steps", type=int, default=3, help="training steps timed for the reference"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--datasets", default=",".join(LAYOUTS))
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads of the main process"
    )
    parser.add_argument("--data-root", action="append", default=[], metavar="DATASET=ROOT")
    args = parser.parse_args()
    real = dict(item.split("=", 1) for item in args.data_root)
    torch.set_num_threads(args.threads)  # DataLoader workers run with one thread each
    print(
        f"torch threads {torch.get_num_threads()}, batch {BATCH}, {args.samples} samples per variant"
    )
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for dataset in args.datasets.split(","):
            for layout in LAYOUTS[dataset] if dataset not in real else (None,):
                if dataset in real:
                    root = real[dataset]
                else:
                    root = Path(scratch) / f"{dataset}-{layout}"
                    write_synthetic(root, dataset, layout, args.samples + BATCH)
                options = {"layout": layout} if layout else {}
                if dataset in ("crema_d", "kinetics_sounds"):
                    options["val_fraction"] = 0.01
                cached = [False]
                probe = build_dataset(dataset, str(root), "train", **options)
                if (dataset, probe.layout) == ("crema_d", "ogm_ge"):
                    cached.append(True)
                for cache in cached:
                    extra = {"cache_dir": str(Path(scratch) / "cache")} if cache else {}
                    data = build_dataset(dataset, str(root), "train", **options, **extra)
                    if cache:  # fill the cache once; the figure is the warm one
                        samples_per_second(data, 2, args.samples)
                    for workers in (0, 2):
                        rate = samples_per_second(data, workers, args.samples)
                        rows.append(
                            (dataset, probe.layout, "on" if cache else "off", workers, rate)
                        )
                        print(
                            f"{dataset:<16}{probe.layout:<18}cache {rows[-1][2]:<4}workers {workers}  {rate:8.1f} samples/s",
                            flush=True,
                        )
    device = torch.device(args.device)
    consumed = training_step_rate(device, args.steps)
    print(f"\nResNet-18 audio-visual training step on {device}: {consumed:.1f} samples/s consumed")
    print(f"{'dataset':<16}{'layout':<18}{'cache':<7}{'workers':<9}{'samples/s':>10}{'x step':>8}")
    for dataset, layout, cache, workers, rate in rows:
        print(
            f"{dataset:<16}{layout:<18}{cache:<7}{workers:<9}{rate:>10.1f}{rate / consumed:>8.2f}"
        )


if __name__ == "__main__":
    main()
