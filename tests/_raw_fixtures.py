"""Tiny raw releases in the official formats, for runners/prepare.py.

Videos are encoded with PyAV (FLV with Sorenson video and MP3 audio as the
CREMA-D release; MP4 with H.264 and AAC as YouTube / AVE), WAVs with soundfile,
lists in the exact formats of OGM-GE's files and AVE's annotation files. Clip
names are real ones from the pinned lists, so the pinned definitions select
them.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from goal_plugin.prepare import ave as ave_prepare
from goal_plugin.prepare import crema_d as crema_d_prepare
from goal_plugin.prepare import kinetics_sounds as ks_prepare

SIZE = (32, 24)  # width, height
CODECS = {".flv": ("flv", "mp3"), ".mp4": ("libx264", "aac")}


def write_video(
    path: Path,
    seconds: float,
    *,
    fps: int = 30,
    size: tuple[int, int] = SIZE,
    audio_rate: int = 44_100,
    channels: int = 2,
    audio: bool = True,
    seed: int = 0,
) -> None:
    """A video of moving noise with a tone-and-noise audio track (``audio``), codecs by suffix."""
    import av

    rng = np.random.default_rng(seed)
    video_codec, audio_codec = CODECS[path.suffix]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        video = container.add_stream(video_codec, rate=fps)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        sound = None
        if audio:
            sound = container.add_stream(audio_codec, rate=audio_rate)
            sound.layout = "stereo" if channels == 2 else "mono"
        base = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        for index in range(int(round(seconds * fps))):
            image = np.roll(base, index, axis=1)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if sound is not None:
            total = int(seconds * audio_rate)
            t = np.arange(total) / audio_rate
            wave = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(total)).astype(np.float32)
            planar = np.stack([wave] * channels)
            chunk = sound.codec_context.frame_size or 1024
            for start in range(0, total, chunk):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(planar[:, start : start + chunk]), format="fltp", layout=sound.layout.name
                )
                frame.sample_rate = audio_rate
                frame.pts = start
                frame.time_base = Fraction(1, audio_rate)
                for packet in sound.encode(frame):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)


def write_wav(path: Path, seconds: float, rate: int = 16_000, seed: int = 0) -> None:
    import soundfile

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = (0.2 * rng.standard_normal(int(seconds * rate))).astype(np.float32)
    soundfile.write(str(path), samples, rate, subtype="PCM_16")


def crema_d_clips(per_list: int = 3) -> dict[str, list[str]]:
    """The first clips of each pinned CREMA-D list, covering every emotion of the test list's first rows."""
    return {name: [clip for clip, _ in crema_d_prepare.pinned_rows(name)[:per_list]] for name in crema_d_prepare.LISTS}


def write_crema_d_release(raw: Path, per_list: int = 3, seconds: float = 2.5) -> list[str]:
    """``AudioWAV/<clip>.wav`` (16 kHz mono) and ``VideoFlash/<clip>.flv``; returns the clips."""
    clips = [clip for names in crema_d_clips(per_list).values() for clip in names]
    for number, clip in enumerate(clips):
        write_wav(raw / "AudioWAV" / f"{clip}.wav", seconds, seed=number)
        write_video(raw / "VideoFlash" / f"{clip}.flv", seconds, seed=number)
    return clips


def kinetics_sounds_clips(per_label: dict[str, int] | None = None) -> dict[str, list[tuple[str, int]]]:
    """The first clips of labels 0 and 1 of each pinned list (4 per label in train, 2 in test)."""
    per_label = per_label or {"train": 4, "test": 2}
    chosen = {}
    for split, count in per_label.items():
        rows = ks_prepare.pinned_rows(split)
        chosen[split] = [row for label in (0, 1) for row in [r for r in rows if r[1] == label][:count]]
    return chosen


def write_kinetics_sounds_release(raw: Path, seconds: float = 3.2) -> list[str]:
    """Videos as the Kinetics downloaders store them: ``<split>/<class folder>/<id>.mp4``."""
    clips = []
    for split, rows in kinetics_sounds_clips().items():
        for number, (clip, label) in enumerate(rows):
            folder = raw / split / f"label_{label}"
            write_video(folder / f"{clip}.mp4", seconds, fps=25, seed=number)
            clips.append(clip)
    return clips


AVE_HEADER = "Category&VideoID&Quality&StartTime&EndTime"


def write_ave_release(raw: Path, seconds: float = 4.0) -> dict[str, list[str]]:
    """``AVE_Dataset/AVE/<VideoID>.mp4`` and the four annotation files; two clips per split,
    of two categories, one of them listed twice in the training file (AVE has such rows)."""
    categories = ave_prepare.pinned_categories()
    splits = {
        "trainSet.txt": [("Church bell", "AVEtrain001"), ("Male speech, man speaking", "AVEtrain002")],
        "valSet.txt": [("Church bell", "AVEval001"), ("Male speech, man speaking", "AVEval002")],
        "testSet.txt": [("Church bell", "AVEtest001"), ("Male speech, man speaking", "AVEtest002")],
    }
    assert all(category in categories for rows in splits.values() for category, _ in rows)
    root = raw / "AVE_Dataset"
    lines = {name: [f"{c}&{v}&good&0&{int(seconds)}" for c, v in rows] for name, rows in splits.items()}
    lines["trainSet.txt"].append(f"Church bell&AVEtrain001&good&1&{int(seconds)}")
    for name, rows in lines.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("\n".join([AVE_HEADER, *rows]) + "\n")
    everything = [row for rows in lines.values() for row in rows]
    (root / "Annotations.txt").write_text("\n".join([AVE_HEADER, *everything]) + "\n")
    for number, (_, video) in enumerate(row for rows in splits.values() for row in rows):
        write_video(root / "AVE" / f"{video}.mp4", seconds, fps=25, seed=number)
    return {name: [v for _, v in rows] for name, rows in splits.items()}
