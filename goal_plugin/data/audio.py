"""Audio inputs of the audio-visual datasets, computed or read as the public codebases do.

Computed from a WAV (read with soundfile, resampled and transformed with torchaudio):

- ``ogm_ge_spectrogram``: OGM-GE's CREMA-D recipe (``CramedDataset.__getitem__``):
  22,050 Hz mono, tiled to 3 s, clipped to +-1, STFT (n_fft 512, hop 353, periodic
  Hann window, centred), ``log(|X| + 1e-7)`` -> (257, 188). ``librosa.stft`` pads the
  centred frames by reflection up to librosa 0.8 (the PyTorch 1.8 environment OGM-GE
  states) and with zeros from 0.9 on (what the same code gives today): ``padding``
  picks one; they differ in the first and last frames only.
- ``balancebenchmark_fbank``: BalanceBenchmark's fbank recipe (its
  ``process_audio.py``): mean removed, ``torchaudio.compliance.kaldi.fbank`` with 128
  mel bins, 10 ms shift, Hanning window, no dither, zero-padded / cut to 1,024 frames,
  normalised ``(x + 4.503877) / (2 * 5.141276)`` -> (1024, 128).

Read from files the codebases wrote: ``.pt`` fbank (T, 128) or (1, T, 128),
``.npy`` fbank (T, 128), ``.pkl`` spectrogram (257, T). Every reader returns a 2-D
float32 tensor; shapes come from the arrays and are checked against the format.
"""

from __future__ import annotations

import functools
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from goal_plugin.data.files import DataError

OGM_GE_RATE = 22_050
OGM_GE_SECONDS = 3
OGM_GE_N_FFT = 512
OGM_GE_HOP = 353
FBANK_BINS = 128
FBANK_FRAMES = 1024
FBANK_MEAN, FBANK_STD = -4.503877, 5.141276
# torchaudio's settings equal to resampy's "kaiser_best", librosa's default resampler before 0.10.
KAISER_BEST = {
    "resampling_method": "sinc_interp_kaiser",
    "lowpass_filter_width": 64,
    "rolloff": 0.9475937167399596,
    "beta": 14.769656459379492,
}


def read_wav_channels(path: Path, layout: str) -> tuple[np.ndarray, int]:
    """Float32 samples (channels, samples) and the sample rate, read with soundfile."""
    import soundfile

    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        raise DataError(
            path, "a readable audio file (WAV)", layout, f"soundfile: {error}"
        ) from None
    if samples.shape[0] == 0:
        raise DataError(path, "a WAV file with at least one sample", layout, "it is empty")
    return samples.T, int(rate)


def read_wav(path: Path, layout: str) -> tuple[Tensor, int]:
    """Mono float32 samples (channels averaged, as librosa.load does) and the sample rate."""
    samples, rate = read_wav_channels(path, layout)
    return torch.from_numpy(samples.mean(axis=0)), rate


@functools.lru_cache(maxsize=8)
def _resampler(rate: int, target: int):
    import torchaudio

    return torchaudio.transforms.Resample(rate, target, **KAISER_BEST)  # builds its kernel once


def resample(samples: Tensor, rate: int, target: int) -> Tensor:
    return samples if rate == target else _resampler(rate, target)(samples)


STFT_PADDINGS = ("reflect", "constant")


@functools.lru_cache(maxsize=2)
def _ogm_ge_stft(padding: str):
    import torchaudio

    return torchaudio.transforms.Spectrogram(
        n_fft=OGM_GE_N_FFT, hop_length=OGM_GE_HOP, power=None, center=True, pad_mode=padding
    )


def ogm_ge_spectrogram(samples: Tensor, rate: int, padding: str = "reflect") -> Tensor:
    """OGM-GE's log-magnitude STFT of a mono waveform, (257, 188); ``padding`` of the
    centred frames: reflect (librosa <= 0.8) or constant (zeros, librosa >= 0.9)."""
    samples = resample(samples, rate, OGM_GE_RATE)
    length = OGM_GE_RATE * OGM_GE_SECONDS
    tiled = samples.repeat(-(-length // len(samples)))[:length].clamp(-1.0, 1.0)
    return torch.log(_ogm_ge_stft(padding)(tiled).abs() + 1e-7)


def balancebenchmark_fbank(samples: Tensor, rate: int) -> Tensor:
    """BalanceBenchmark's normalised Kaldi fbank of a mono waveform, (1024, 128)."""
    import torchaudio

    waveform = (samples - samples.mean()).unsqueeze(0)
    fbank = torchaudio.compliance.kaldi.fbank(
        waveform,
        htk_compat=True,
        sample_frequency=rate,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=FBANK_BINS,
        dither=0.0,
        frame_shift=10,
    )
    missing = FBANK_FRAMES - fbank.shape[0]
    fbank = (
        torch.nn.functional.pad(fbank, (0, 0, 0, missing)) if missing > 0 else fbank[:FBANK_FRAMES]
    )
    return (fbank - FBANK_MEAN) / (2 * FBANK_STD)


WAV_RECIPES = {"spectrogram": ogm_ge_spectrogram, "fbank": balancebenchmark_fbank}


@dataclass(frozen=True)
class ArrayFormat:
    """What a stored feature file must hold: 2-D (after dropping a leading 1 where
    ``leading_one`` allows it) with ``fixed`` sizes where they are not None."""

    suffix: str
    description: str
    fixed: tuple[int | None, int | None]
    leading_one: bool = False

    def check(self, array: object, path: Path, layout: str) -> Tensor:
        if isinstance(array, np.ndarray):
            if not np.issubdtype(array.dtype, np.floating):
                raise DataError(path, self.description, layout, f"dtype {array.dtype}")
            array = torch.from_numpy(np.ascontiguousarray(array))
        if not isinstance(array, Tensor):
            raise DataError(path, self.description, layout, f"a {type(array).__name__}")
        if not array.is_floating_point():
            raise DataError(path, self.description, layout, f"dtype {array.dtype}")
        if self.leading_one and array.dim() == 3 and array.shape[0] == 1:
            array = array[0]
        shape = tuple(array.shape)
        if len(shape) != 2 or any(f is not None and f != s for f, s in zip(self.fixed, shape)):
            raise DataError(path, self.description, layout, f"shape {shape}")
        return array.float()


PT_FBANK = ArrayFormat(
    ".pt", "a torch tensor of shape (T, 128) or (1, T, 128) (Kaldi fbank)", (None, FBANK_BINS), True
)
NPY_FBANK = ArrayFormat(
    ".npy", "a float array of shape (T, 128) (Kaldi fbank, T = 1024)", (None, FBANK_BINS)
)
PKL_SPECTROGRAM = ArrayFormat(
    ".pkl", "a pickled float array of shape (257, T) (spectrogram, T = 1004)", (257, None)
)


def read_array(path: Path, form: ArrayFormat, layout: str) -> Tensor:
    """The 2-D float32 tensor stored in ``path``; ``DataError`` if unreadable or misshapen."""
    try:
        if form.suffix == ".pt":
            array = torch.load(path, map_location="cpu", weights_only=True)
        elif form.suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        else:
            with open(path, "rb") as handle:
                array = pickle.load(handle)
    except FileNotFoundError:
        raise DataError(path, form.description, layout, "the file does not exist") from None
    except Exception as error:  # noqa: BLE001  (any decoding failure of a user file: name the file)
        raise DataError(
            path, form.description, layout, f"unreadable ({type(error).__name__}: {error})"
        ) from None
    return form.check(array, path, layout)
