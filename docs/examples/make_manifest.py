"""Write a small three-modality dataset in the ``files`` format (docs/your_data.md).

    python docs/examples/make_manifest.py my_data          # my_data/manifest.csv + its files

Each sample has a WAV (``sound``), a JPEG (``photo``) and a ``.npy`` vector
(``depth``), one of two classes (``calm`` / ``loud``); every modality carries some
evidence of the class, the sound the most. 48 train and 16 test rows and no val
rows: the ``files`` dataset draws val from train and says so in its output. Replace
these files by yours and keep the manifest's shape.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image

CLASSES = ("calm", "loud")
RATE = 22050  # samples per second of the WAVs (the spectrogram recipe's rate: no resampling)


def write_sample(root: Path, index: int, label: int, rng: np.random.Generator) -> dict[str, str]:
    """The three files of one sample; returns its modality cells (paths relative to root)."""
    seconds = np.arange(RATE // 2) / RATE
    tone = (0.1 + 0.4 * label) * np.sin(2 * np.pi * 440 * seconds)  # loud: a louder tone
    wave = tone + rng.normal(0, 0.05, seconds.shape)
    soundfile.write(root / "sound" / f"{index}.wav", wave.astype(np.float32), RATE)
    brightness = 100 + 40 * label + rng.normal(0, 30)
    pixels = np.clip(rng.normal(brightness, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(root / "photo" / f"{index}.jpg")
    np.save(root / "depth" / f"{index}.npy", rng.normal(0.5 * label, 1.0, 8).astype(np.float32))
    return {
        "sound": f"sound/{index}.wav",
        "photo": f"photo/{index}.jpg",
        "depth": f"depth/{index}.npy",
    }


def make(root: Path, train: int = 48, test: int = 16, seed: int = 0) -> Path:
    """``root``/manifest.csv and its files; returns the manifest's path."""
    rng = np.random.default_rng(seed)
    for folder in ("sound", "photo", "depth"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(train + test):
        label = index % len(CLASSES)
        split = "train" if index < train else "test"
        rows.append(
            {"split": split, "label": CLASSES[label], **write_sample(root, index, label, rng)}
        )
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", help="where to write manifest.csv and the files (created)")
    parser.add_argument("--train", type=int, default=48, help="train rows (default 48)")
    parser.add_argument("--test", type=int, default=16, help="test rows (default 16)")
    args = parser.parse_args()
    print(f"wrote {make(Path(args.folder), args.train, args.test)}")
