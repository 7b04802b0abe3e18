"""Audio input/output on soundfile, resampling, and players for notebooks.

Waveforms are float32 NumPy arrays in [-1, 1]; multichannel files are mixed down to mono unless
asked otherwise. Every failure names the file and says what was wrong with it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from .cache import write_atomically

PathLike = str | os.PathLike[str]

#: File formats written by :func:`save`, by file extension.
FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}


# libsndfile's header log says "data : 16000 (should be 7978)" for a cut-off WAV/AIFF file
_TRUNCATED = re.compile(r"data\s*:\s*(\d+)\s*\(should be (\d+)\)")


class AudioFileError(ValueError):
    """An audio file could not be used: missing, empty, not audio, truncated or not finite."""


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

    Raises
    ------
    AudioFileError
        If the file is missing, empty, not audio, truncated, or contains NaN or infinite samples.
    """
    path = Path(path)
    if not path.exists():
        raise AudioFileError(f"{path}: no such file; check the path (absolute: {path.resolve()})")
    if path.is_dir():
        raise AudioFileError(f"{path}: is a folder, not an audio file")
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
    wave = data.mean(axis=1) if mono else data.T
    wave = np.ascontiguousarray(wave, dtype=np.float32)
    if sample_rate is not None and sample_rate != rate:
        wave = resample(wave, rate, sample_rate)
        rate = sample_rate
    return wave, int(rate)


def resample(wave: np.ndarray | torch.Tensor, orig_rate: int, new_rate: int):
    """Band-limited resampling (windowed sinc, :func:`torchaudio.functional.resample`).

    Works on the last axis of a NumPy array or a tensor (on any device) and returns the same type.
    """
    if orig_rate <= 0 or new_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_rate} and {new_rate}")
    if orig_rate == new_rate:
        return wave
    if isinstance(wave, torch.Tensor):
        return AF.resample(wave, orig_rate, new_rate)
    return AF.resample(
        torch.from_numpy(np.asarray(wave, dtype=np.float32)), orig_rate, new_rate
    ).numpy()


def save(path: PathLike, wave: np.ndarray | torch.Tensor, sample_rate: int) -> Path:
    """Write a waveform to WAV (16-bit PCM), FLAC (16-bit) or OGG (Vorbis), by file extension.

    ``wave`` has shape ``(samples,)`` or ``(channels, samples)``; values outside [-1, 1] are an
    error rather than silently clipped. The file is written atomically (a temporary file is
    renamed), so an interrupted save never leaves half a file under ``path``.
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown extension; use one of {sorted(FORMATS)}")
    if isinstance(wave, torch.Tensor):
        wave = wave.detach().cpu().numpy()
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim not in (1, 2) or wave.size == 0:
        raise ValueError(
            f"expected a non-empty (samples,) or (channels, samples) array, got {wave.shape}"
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

    if isinstance(wave, torch.Tensor):
        wave = wave.detach().float().cpu().numpy()
    wave = np.asarray(wave, dtype=np.float32)
    if not normalize:
        wave = np.clip(wave, -1.0, 1.0)
    return Audio(wave, rate=sample_rate, normalize=normalize)
