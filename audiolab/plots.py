"""Plots with labelled axes: waveforms (seconds), spectrograms (Hz or mel bands, dB).

Thin wrappers around :mod:`librosa.display` that always label their axes and colour bars, so that
every figure in the book says what it shows and in which unit.
"""

from __future__ import annotations

import librosa.display
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes


def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


def waveform(
    wave, sample_rate: int, ax: Axes | None = None, title: str | None = None, **kwargs
) -> Axes:
    """Plot a waveform against time in seconds (amplitude in full-scale units)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 2.2))
    librosa.display.waveshow(_numpy(wave), sr=sample_rate, ax=ax, **kwargs)
    ax.set(xlabel="time (s)", ylabel="amplitude", title=title)
    ax.label_outer()
    return ax


def spectrogram(
    db,
    sample_rate: int,
    hop_length: int,
    y_axis: str = "hz",
    ax: Axes | None = None,
    title: str | None = None,
    colorbar: bool = True,
    **kwargs,
) -> Axes:
    """Show a spectrogram in dB (shape ``(bins, frames)``) against time and frequency.

    ``y_axis`` is ``"hz"`` (linear frequency), ``"log"``, ``"mel"`` (mel bands placed at their
    centre frequencies, labelled in Hz) or ``"mel_bands"`` (band index), ``"mfcc"`` (coefficient
    index). Frequency axes end at the Nyquist frequency ``sample_rate / 2``. Extra keyword
    arguments go to :func:`librosa.display.specshow` (e.g. ``fmax`` for mel spectrograms,
    ``n_fft`` for linear ones).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3))
    db = _numpy(db)
    if db.ndim != 2:
        raise ValueError(f"expected one spectrogram of shape (bins, frames), got {db.shape}")
    labels = {
        "hz": "frequency (Hz)",
        "log": "frequency (Hz)",
        "mel": "frequency (Hz, mel-spaced)",
        "mel_bands": "mel band",
        "mfcc": "MFCC coefficient",
    }
    if y_axis not in labels:
        raise ValueError(f"y_axis must be one of {sorted(labels)}, got {y_axis!r}")
    shown = None if y_axis in ("mel_bands", "mfcc") else y_axis
    # One colour map for levels in dB whatever their sign; a diverging one for cepstra.
    kwargs.setdefault("cmap", "coolwarm" if y_axis == "mfcc" else "magma")
    img = librosa.display.specshow(
        db, sr=sample_rate, hop_length=hop_length, x_axis="s", y_axis=shown, ax=ax, **kwargs
    )
    ax.set(xlabel="time (s)", ylabel=labels[y_axis], title=title)
    if y_axis in ("hz", "log", "mel"):
        ax.set_ylim(top=sample_rate / 2)  # a frequency axis stops at the Nyquist frequency
    if y_axis == "mel":  # ticks in Hz, ending at Nyquist
        ticks = [f for f in (0, 512, 1024, 2048, 4096, 8192, 16384) if f < 0.9 * sample_rate / 2]
        ax.set_yticks([*ticks, sample_rate / 2])
    if colorbar:
        unit = "coefficient value" if y_axis == "mfcc" else "level (dB)"
        ax.figure.colorbar(img, ax=ax, label=unit, pad=0.01)
    return ax
