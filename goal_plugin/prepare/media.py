"""Reading the official video and audio files, and writing frames and audio files.

Videos are decoded with PyAV (FFmpeg's libraries, bundled with the wheel: no
binary on the user's PATH). Frames are kept at one per second as the codebases'
pre-processing keeps them (``video_preprocessing.py`` of OGM-GE and its
descendants, OpenCV): with ``fps = int(frame rate)``, the frames whose index is a
multiple of ``fps``. Frames are written as JPEG with Pillow at quality 95 (the
OpenCV ``imencode`` default the codebases used) and 4:2:0 chroma subsampling.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

JPEG_QUALITY = 95
VIDEO_SUFFIXES = (".mp4", ".flv", ".mkv", ".webm", ".avi", ".mov", ".m4v")


class ClipError(Exception):
    """A clip that cannot be prepared; the message is the reason shown in the summary."""


@dataclass
class DecodedVideo:
    frames: list[tuple[int, np.ndarray]]  # (index in the video, H x W x 3 uint8 RGB) at 1 fps
    audio: np.ndarray | None  # (channels, samples) float32 in [-1, 1], or None without a track
    audio_rate: int


def decode_video(path: Path, *, with_audio: bool) -> DecodedVideo:
    """The 1-fps frames and (optionally) the audio track of a video file."""
    import av

    if path.stat().st_size == 0:
        raise ClipError(f"{path.name}: empty file (0 bytes)")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ClipError(f"{path.name}: no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            if not rate:
                raise ClipError(f"{path.name}: the video stream states no frame rate")
            every = max(int(rate), 1)  # OpenCV's int(CAP_PROP_FPS), as the codebases read it
            frames = []
            for index, frame in enumerate(container.decode(stream)):
                if index % every == 0:
                    frames.append((index, frame.to_ndarray(format="rgb24")))
        audio, audio_rate = (_decode_audio(path) if with_audio else (None, 0))
    except av.error.FFmpegError as error:
        raise ClipError(f"{path.name}: undecodable ({error.strerror or error})") from None
    if not frames:
        raise ClipError(f"{path.name}: no decodable video frames")
    return DecodedVideo(frames, audio, audio_rate)


def _decode_audio(path: Path) -> tuple[np.ndarray | None, int]:
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None, 0
        stream = container.streams.audio[0]
        # Planar float32 at the stream's own rate and channels; resampling is torchaudio's.
        converter = av.AudioResampler(format="fltp", layout=stream.layout, rate=stream.rate)
        chunks = []
        for frame in container.decode(stream):
            for converted in converter.resample(frame):
                chunks.append(converted.to_ndarray())
        for converted in converter.resample(None):
            chunks.append(converted.to_ndarray())
    if not chunks:
        return np.zeros((1, 0), dtype=np.float32), stream.rate
    return np.concatenate(chunks, axis=1).astype(np.float32, copy=False), stream.rate


def jpeg_bytes(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling="4:2:0")
    return buffer.getvalue()


def find_videos(root: Path) -> dict[str, list[Path]]:
    """Video files under ``root`` by stem (a stem found twice maps to both paths)."""
    found: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file():
            found.setdefault(path.stem, []).append(path)
    return found
