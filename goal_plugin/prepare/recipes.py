"""The audio pre-processing of the public codebases, from decoded samples to stored features.

Kinetics-Sounds and AVE start from the videos' audio tracks. The codebases first
extract a WAV with ``ffmpeg -i <video> -acodec pcm_s16le -ar 16000`` (channels
kept); ``track_as_wav16k`` does the same with torchaudio's resampler (the one
deliberate difference: FFmpeg resamples with swresample's filter, torchaudio with
its windowed sinc, which differ near the 8 kHz band edge) and 16-bit quantisation.
From that WAV:

- ``ogm_ge_pkl_spectrogram`` (the ``audio_spec/<id>.pkl`` files of the OGM-GE
  lineage's ``audio_extract`` script): ``librosa.load`` at its default 22,050 Hz
  (mono: channels averaged; resampled with resampy's ``kaiser_best``), tiled ten
  times and cut to 160,000 samples (7.26 s at 22,050 Hz: the script multiplies
  its ``sr=16000`` argument by 10), clipped to +-1,
  ``scipy.signal.spectrogram(nperseg=512, noverlap=353)`` at 22,050 Hz,
  ``log(S + 1e-7)``, standardised by the clip's mean and ``std + 1e-9`` ->
  (257, 1004) float32;
- ``fbank_of_wav`` (BalanceBenchmark's ``process_audio.py``): ``torchaudio.load``
  keeps the channels and ``kaldi.fbank`` reads the first, so the fbank is
  computed from channel 0 -> (1024, 128).

CREMA-D ships 16 kHz mono WAVs, read as they are.
"""

from __future__ import annotations

import numpy as np
import torch

from goal_plugin.data.audio import balancebenchmark_fbank, resample

WAV_RATE = 16_000
PKL_RATE = 22_050
PKL_SAMPLES = 160_000
PKL_NPERSEG, PKL_NOVERLAP = 512, 353
PKL_SHAPE = (257, 1004)
FBANK_WINDOW_S = 0.025  # Kaldi's frame length: no fbank frame from less


def track_as_wav16k(audio: np.ndarray, rate: int) -> np.ndarray:
    """(channels, samples) at ``rate`` -> (channels, samples) at 16 kHz, quantised to 16 bits
    as a ``pcm_s16le`` WAV holds it (read back as float, like soundfile and torchaudio)."""
    samples = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    if rate != WAV_RATE:
        import torchaudio

        samples = torchaudio.functional.resample(samples, rate, WAV_RATE)
    quantised = torch.clamp(torch.round(samples * 32768.0), -32768, 32767)
    return (quantised / 32768.0).numpy()


def ogm_ge_pkl_spectrogram(wav: np.ndarray, rate: int) -> np.ndarray:
    """(channels, samples) -> the (257, 1004) float32 standardised log spectrogram."""
    from scipy import signal

    mono = torch.from_numpy(np.ascontiguousarray(wav.mean(axis=0), dtype=np.float32))
    samples = resample(mono, rate, PKL_RATE).numpy()
    tiled = np.tile(samples, 10)[:PKL_SAMPLES]
    if tiled.shape[0] < PKL_SAMPLES:  # the script asserts the shape: shorter audio is refused upstream
        raise ValueError(f"{tiled.shape[0]} samples after tiling, the recipe needs {PKL_SAMPLES}")
    tiled = np.clip(tiled, -1.0, 1.0)
    _, _, spectrogram = signal.spectrogram(tiled, PKL_RATE, nperseg=PKL_NPERSEG, noverlap=PKL_NOVERLAP)
    spectrogram = np.log(spectrogram + 1e-7)
    spectrogram = (spectrogram - spectrogram.mean()) / (spectrogram.std() + 1e-9)
    return spectrogram.astype(np.float32)


def fbank_of_wav(wav: np.ndarray, rate: int) -> np.ndarray:
    """(channels, samples) -> BalanceBenchmark's (1024, 128) float32 fbank of channel 0."""
    first = torch.from_numpy(np.ascontiguousarray(wav[0], dtype=np.float32))
    return balancebenchmark_fbank(first, rate).numpy().astype(np.float32)


def shortest_audio_s(recipe: str) -> float:
    """The least audio a recipe can use: one analysis window."""
    if recipe == "pkl":
        # Ten tiles must fill 160,000 samples at 22,050 Hz.
        return PKL_SAMPLES / 10 / PKL_RATE
    return FBANK_WINDOW_S
