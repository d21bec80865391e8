"""Video frames of a clip: numeric order, the sampled subset, decoding and augmentation.

Frames are the image files of a clip's folder, ordered by the number in their name
(``00030.jpg`` after ``00000.jpg``, ``frame_00010.jpg`` after ``frame_00009.jpg``),
never by directory order. ``count`` frames are taken from ``count`` equal segments
of that list: ``segment_start`` takes each segment's first frame (OGM-GE's
Kinetics-Sounds / AVE reader: frames 1, 4, 7 of 10), ``segment_random`` a random
frame of each segment in training and its middle one otherwise (BalanceBenchmark).

Each frame is decoded with ``torchvision.io.decode_image`` and transformed on its
own as in OGM-GE: in training ``RandomResizedCrop(size)`` and a horizontal flip,
otherwise ``Resize((size, size))``; then scaled to [0, 1] and normalised with the
ImageNet mean and std. Random draws use torch's generator, so a run is repeatable
for a given seed. The result is (3, count, size, size), OGM-GE's (C, T, H, W).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import Tensor

from goal_plugin.data.files import MISSING_DIR, DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SAMPLINGS = ("segment_start", "segment_random")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_NUMBER = re.compile(r"(\d+)")


def _frame_number(path: Path) -> tuple[int, str]:
    numbers = _NUMBER.findall(path.stem)
    return (int(numbers[-1]) if numbers else -1, path.name)


def list_frames(folder: Path, layout: str, pattern: str) -> list[Path]:
    """Image files of ``folder`` in numeric order; ``pattern`` describes the expected names."""
    if not folder.is_dir():
        raise DataError(folder, f"a folder of frames {pattern}", layout, MISSING_DIR)
    frames = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(frames, key=_frame_number)


def frame_indices(available: int, count: int, sampling: str, train: bool) -> list[int]:
    """Indices of the ``count`` frames taken from ``available`` ones."""
    segment = available // count
    if sampling == "segment_start":
        return [i * segment for i in range(count)]
    if train:
        return [i * segment + int(torch.randint(segment, ())) for i in range(count)]
    return [i * segment + segment // 2 for i in range(count)]


class FrameReader:
    """Reads ``count`` frames of a clip folder as a (3, count, size, size) float tensor."""

    def __init__(
        self, count: int, size: int, sampling: str, train: bool, layout: str, pattern: str
    ):
        from torchvision.transforms import v2

        self.count, self.size, self.sampling, self.train = count, size, sampling, train
        self.layout, self.pattern = layout, pattern
        geometry = (
            [v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()]
            if train
            else [v2.Resize((size, size), antialias=True)]
        )
        self.transform = v2.Compose(
            [
                *geometry,
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            ]
        )

    def candidates(self, folder: Path) -> list[Path]:
        """Every frame this reader may open for ``folder`` (all of it for random sampling)."""
        frames = self.frames(folder)
        if self.sampling == "segment_random" and self.train:
            return frames[: self.count * (len(frames) // self.count)]
        return [frames[i] for i in frame_indices(len(frames), self.count, self.sampling, False)]

    def frames(self, folder: Path) -> list[Path]:
        frames = list_frames(folder, self.layout, self.pattern)
        if len(frames) < self.count:
            raise DataError(
                folder,
                f"at least {self.count} frames {self.pattern}",
                self.layout,
                f"{len(frames)} image files",
            )
        return frames

    def __call__(self, folder: Path) -> Tensor:
        frames = self.frames(folder)
        chosen = frame_indices(len(frames), self.count, self.sampling, self.train)
        return torch.stack(
            [self.transform(decode_frame(frames[i], self.layout)) for i in chosen], dim=1
        )


def decode_frame(path: Path, layout: str) -> Tensor:
    """The RGB uint8 image (3, H, W) in ``path``; ``DataError`` if it cannot be decoded."""
    from torchvision.io import ImageReadMode, decode_image

    try:
        return decode_image(str(path), mode=ImageReadMode.RGB)
    except (RuntimeError, OSError, ValueError) as error:
        raise DataError(
            path, "a readable JPEG or PNG frame", layout, f"undecodable ({error})"
        ) from None
