"""One clip from its official files to the files a loader reads.

``prepare_clip`` runs in a worker process: it decodes, computes and encodes in
memory, then writes the frame folder (under a hidden temporary name, renamed
into place) and the audio file (renamed into place), and returns the SHA-256 of
every file it wrote. A clip that cannot be prepared raises ``ClipError`` with
the reason; nothing of it is left under a final name.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from goal_plugin.data.audio import read_wav_channels
from goal_plugin.data.files import DataError, write_atomic
from goal_plugin.prepare.media import ClipError, decode_video, jpeg_bytes
from goal_plugin.prepare.recipes import (
    WAV_RATE,
    fbank_of_wav,
    ogm_ge_pkl_spectrogram,
    shortest_audio_s,
    track_as_wav16k,
)

PARTIAL = ".partial"


@dataclass(frozen=True)
class Recipe:
    """What one clip becomes in a dataset's layout."""

    frames_dir: str  # folder of the clips' frame folders
    frame_names: str  # "video_index": 00000.jpg, 00030.jpg, ... (OGM-GE CREMA-D); "numbered": frame_00001.jpg, ...
    min_frames: int  # the loaders' default frames per clip
    audio_dir: str
    audio_format: str  # "wav" (the official WAV, copied), "pt" / "npy" (fbank), "pkl" (spectrogram)

    @property
    def audio_suffix(self) -> str:
        return f".{self.audio_format}"


@dataclass(frozen=True)
class Job:
    clip: str  # the name in the lists and of the output files
    video: Path
    wav: Path | None = None  # the official WAV, when the release has one; else the video's track


def prepare_clip(job: Job, recipe: Recipe, out: Path) -> dict[str, str]:
    """Writes the clip's frames and audio under ``out``; relative path -> SHA-256."""
    video = decode_video(job.video, with_audio=job.wav is None)
    if len(video.frames) < recipe.min_frames:
        raise ClipError(
            f"{job.video.name}: {len(video.frames)} frame(s) at 1 fps, the loaders read {recipe.min_frames}"
        )
    audio_bytes = _audio_bytes(job, video, recipe)
    files = _write_frames(video.frames, recipe, out, job.clip)
    audio_path = Path(recipe.audio_dir) / f"{job.clip}{recipe.audio_suffix}"
    write_atomic(out / audio_path, audio_bytes)
    files[audio_path.as_posix()] = hashlib.sha256(audio_bytes).hexdigest()
    return files


def _audio_bytes(job: Job, video, recipe: Recipe) -> bytes:
    if job.wav is not None:
        wav, rate = _read_wav(job.wav)
        source = job.wav.name
    elif video.audio is None:
        raise ClipError(f"{job.video.name}: no audio track")
    else:
        wav, rate = track_as_wav16k(video.audio, video.audio_rate), WAV_RATE
        source = f"{job.video.name} (audio track)"
    needed = shortest_audio_s(recipe.audio_format)
    if wav.shape[1] < needed * rate:
        raise ClipError(
            f"{source}: {wav.shape[1] / rate:.3f} s of audio, the {recipe.audio_format} recipe needs "
            f"at least {needed:.3f} s"
        )
    if recipe.audio_format == "wav":
        return job.wav.read_bytes()
    if recipe.audio_format == "pkl":
        return pickle.dumps(ogm_ge_pkl_spectrogram(wav, rate), protocol=4)
    fbank = fbank_of_wav(wav, rate)
    buffer = io.BytesIO()
    if recipe.audio_format == "npy":
        np.save(buffer, fbank)
    else:
        import torch

        torch.save(torch.from_numpy(fbank), buffer)  # in memory: the archive's name never depends on a path
    return buffer.getvalue()


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    try:
        return read_wav_channels(path, "release")
    except DataError as error:
        raise ClipError(f"{path.name}: {error.found}") from None


def frame_name(recipe: Recipe, position: int, video_index: int) -> str:
    if recipe.frame_names == "video_index":
        return f"{video_index:05d}.jpg"
    return f"frame_{position + 1:05d}.jpg"


def _write_frames(frames, recipe: Recipe, out: Path, clip: str) -> dict[str, str]:
    parent = out / recipe.frames_dir
    partial = parent / f".{clip}{PARTIAL}"
    final = parent / clip
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    files = {}
    for position, (video_index, rgb) in enumerate(frames):
        name = frame_name(recipe, position, video_index)
        data = jpeg_bytes(rgb)
        (partial / name).write_bytes(data)
        files[f"{recipe.frames_dir}/{clip}/{name}"] = hashlib.sha256(data).hexdigest()
    if final.exists():  # left by a run killed before it recorded the clip
        shutil.rmtree(final)
    os.replace(partial, final)
    return files
