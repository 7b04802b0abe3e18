"""Audio input/output on soundfile, resampling, and players for notebooks.

Waveforms are float32 NumPy arrays in [-1, 1]; multichannel files are mixed down to mono unless
asked otherwise. Every failure names the file and says what was wrong with it.

Floating-point files (WAV float, FLAC cannot hold them) may store samples beyond [-1, 1]:
:func:`load` clips them to [-1, 1] and says so with a :class:`AudioClippedWarning` naming the
file and its peak (read such a file with :func:`soundfile.read` to get the raw values).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from . import checks
from .cache import write_atomically

PathLike = str | os.PathLike[str]

#: File formats written by :func:`save`, by file extension.
FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}


# libsndfile's header log says "data : 16000 (should be 7978)" for a cut-off WAV/AIFF file
_TRUNCATED = re.compile(r"data\s*:\s*(\d+)\s*\(should be (\d+)\)")
#: The data size that streaming writers put in a WAV header when they cannot know the length.
_STREAMING_SIZES = {0xFFFFFFFF, 0x7FFFFFFF, 0}


class AudioFileError(ValueError):
    """An audio file could not be used: missing, empty, not audio, truncated or not finite."""


class AudioClippedWarning(UserWarning):
    """A floating-point file held samples beyond [-1, 1]; :func:`load` clipped them."""


def load(
    path: PathLike, sample_rate: int | None = None, mono: bool = True
) -> tuple[np.ndarray, int]:
    """Read an audio file (WAV, FLAC, OGG, ... anything libsndfile reads).

    Parameters
    ----------
    path
        The file.
    sample_rate
        Resample to this rate (Hz); ``None`` keeps the file's rate.
    mono
        Average the channels into one. With ``False`` the result has shape ``(channels, samples)``.

    Returns
    -------
    waveform, sample_rate
        float32 samples in [-1, 1] (shape ``(samples,)`` when ``mono``) and their rate in Hz.
        Samples of a floating-point file beyond [-1, 1] are clipped, with an
        :class:`AudioClippedWarning`.

    Raises
    ------
    AudioFileError
        If the file is missing, empty, not audio, truncated, or contains NaN or infinite samples.
    PermissionError
        If the file exists but this user may not read it.
    TypeError, ValueError
        If ``sample_rate`` is not a positive integer.
    """
    path = Path(path)
    if sample_rate is not None:
        sample_rate = checks.sample_rate(sample_rate)
    if not path.exists():
        raise AudioFileError(f"{path}: no such file; check the path (absolute: {path.resolve()})")
    if path.is_dir():
        raise AudioFileError(f"{path}: is a folder, not an audio file")
    try:
        with open(path, "rb") as file:
            file.read(1)
    except PermissionError as err:
        raise PermissionError(
            f"{path}: permission denied: this user may not read the file; check its permissions "
            "(e.g. chmod u+r) or copy it somewhere readable"
        ) from err
    if path.stat().st_size == 0:
        raise AudioFileError(f"{path}: the file is empty (0 bytes); re-export or re-copy it")
    try:
        info = sf.info(str(path), verbose=True)
    except sf.LibsndfileError as err:
        raise AudioFileError(
            f"{path}: not a readable audio file ({err.error_string}); "
            "supported formats include WAV, FLAC and OGG"
        ) from err
    short = _TRUNCATED.search(info.extra_info)
    if short and int(short[1]) in _STREAMING_SIZES:
        short = None  # a streaming header ("size unknown"): soundfile reads what is there
    if short:
        raise AudioFileError(
            f"{path}: truncated: the header announces {short[1]} bytes of audio but only "
            f"{short[2]} are there; the file was probably cut off while copying"
        )
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioFileError(f"{path}: the audio data is damaged or truncated ({err})") from err
    if len(data) == 0:
        raise AudioFileError(f"{path}: contains no samples (a header with no audio data)")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise AudioFileError(
            f"{path}: {bad} samples are NaN or infinite; the file was written from a broken "
            "computation and cannot be used as audio"
        )
    peak = float(np.abs(data).max())
    if peak > 1.0:
        warnings.warn(
            f"{path}: samples reach {peak:.3g}, beyond [-1, 1] (a floating-point file); they "
            "were clipped to [-1, 1]. Read it with soundfile.read for the raw values",
            AudioClippedWarning,
            stacklevel=2,
        )
        np.clip(data, -1.0, 1.0, out=data)
    wave = data.mean(axis=1) if mono else data.T
    wave = np.ascontiguousarray(wave, dtype=np.float32)
    if sample_rate is not None and sample_rate != rate:
        wave = resample(wave, rate, sample_rate)
        rate = sample_rate
    return wave, int(rate)


def resample(wave: np.ndarray | torch.Tensor, orig_rate: int, new_rate: int):
    """Band-limited resampling (windowed sinc, :func:`torchaudio.functional.resample`).

    Works on the last axis of a NumPy array or a tensor (on any device) and returns the same type
    (float64 NumPy input is computed and returned in float32).
    """
    orig_rate = checks.sample_rate(orig_rate, "orig_rate")
    new_rate = checks.sample_rate(new_rate, "new_rate")
    if orig_rate == new_rate:
        return wave
    if isinstance(wave, torch.Tensor):
        if not wave.is_floating_point():
            raise TypeError(f"resample needs floating-point samples, got {wave.dtype}")
        return AF.resample(wave, orig_rate, new_rate)
    if not np.issubdtype(np.asarray(wave).dtype, np.floating):
        raise TypeError(f"resample needs floating-point samples, got {np.asarray(wave).dtype}")
    return AF.resample(
        torch.from_numpy(np.asarray(wave, dtype=np.float32)), orig_rate, new_rate
    ).numpy()


def save(path: PathLike, wave: np.ndarray | torch.Tensor, sample_rate: int) -> Path:
    """Write a waveform to WAV (16-bit PCM), FLAC (16-bit) or OGG (Vorbis), by file extension.

    ``wave`` has shape ``(samples,)`` or ``(channels, samples)`` (as :func:`load` returns with
    ``mono=False``); an array with more channels than samples is refused, since it is almost
    certainly soundfile's ``(samples, channels)`` layout (pass ``wave.T``). Values outside
    [-1, 1] are an error rather than silently clipped. The file is written atomically (a
    temporary file is renamed), so an interrupted save never leaves half a file under ``path``.

    Raises
    ------
    ValueError
        For an unknown extension, an empty, non-finite or too loud signal, a
        ``(samples, channels)`` array, or a sample rate that is not positive.
    TypeError
        If ``sample_rate`` is not an integer.
    FileNotFoundError, PermissionError
        If the folder of ``path`` does not exist or cannot be written (the message names
        ``path``).
    """
    path = Path(path)
    sample_rate = checks.sample_rate(sample_rate)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown extension; use one of {sorted(FORMATS)}")
    if isinstance(wave, torch.Tensor):
        wave = wave.detach().cpu().float().numpy()
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim not in (1, 2) or wave.size == 0:
        raise ValueError(
            f"expected a non-empty (samples,) or (channels, samples) array, got {wave.shape}"
        )
    if wave.ndim == 2 and wave.shape[0] > wave.shape[1]:
        raise ValueError(
            f"the array has shape {wave.shape}: {wave.shape[0]} channels of {wave.shape[1]} "
            "samples? save takes (channels, samples); for soundfile's (samples, channels) "
            "layout pass wave.T"
        )
    if not np.isfinite(wave).all():
        raise ValueError("the waveform contains NaN or infinite samples; nothing was written")
    peak = float(np.abs(wave).max())
    if peak > 1.0:
        raise ValueError(f"peak amplitude {peak:.3f} exceeds 1.0; scale the signal before saving")
    subtype = "VORBIS" if fmt == "OGG" else "PCM_16"
    write_atomically(
        path, lambda file: sf.write(file, wave.T, sample_rate, format=fmt, subtype=subtype)
    )
    return path


def player(wave: np.ndarray | torch.Tensor, sample_rate: int, normalize: bool = False):
    """An audio player for a notebook (:class:`IPython.display.Audio`).

    By default the signal is *not* rescaled, so that players side by side keep their relative
    loudness (quieter is quieter); samples outside [-1, 1] are clipped.
    """
    from IPython.display import Audio

    sample_rate = checks.sample_rate(sample_rate)
    if isinstance(wave, torch.Tensor):
        wave = wave.detach().float().cpu().numpy()
    wave = np.asarray(wave, dtype=np.float32)
    if not normalize:
        wave = np.clip(wave, -1.0, 1.0)
    return Audio(wave, rate=sample_rate, normalize=normalize)
