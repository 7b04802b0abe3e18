"""Time–frequency features on any device, batched, with librosa's definitions.

All functions take waveforms of shape ``(..., samples)`` (NumPy arrays or tensors on any device)
and return tensors on the same device, shape ``(..., bins, frames)``. Defaults follow librosa
(``n_fft=2048``, ``hop_length=512``, ``n_mels=128``, centred frames with zero padding, periodic
Hann window, Slaney mel scale and Slaney area normalisation, orthonormal DCT-II), so that for the
same parameters

- :func:`log_mel_spectrogram` equals ``librosa.power_to_db(librosa.feature.melspectrogram(...))``
  and
- :func:`mfcc` equals ``librosa.feature.mfcc(...)``

up to float32 rounding. The filterbanks and DCT matrices are built once per configuration and
device and kept.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torchaudio.functional as AF
import torchaudio.transforms as AT

ArrayLike = np.ndarray | torch.Tensor


def as_tensor(x: ArrayLike, device: torch.device | str | None = None) -> torch.Tensor:
    """A float32 tensor view of ``x`` (moved to ``device`` when given)."""
    t = torch.as_tensor(x)
    if not t.is_floating_point():
        raise TypeError(f"expected floating-point samples, got dtype {t.dtype}")
    t = t.float()
    return t.to(device) if device is not None else t


def hann_window(win_length: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Periodic Hann window, ``w[n] = 0.5 - 0.5 cos(2πn/W)`` for ``n = 0..W-1`` (as librosa)."""
    return torch.hann_window(win_length, periodic=True, device=device)


def stft(
    x: ArrayLike,
    n_fft: int = 2048,
    hop_length: int | None = None,
    win_length: int | None = None,
    center: bool = True,
) -> torch.Tensor:
    """Short-time Fourier transform with a Hann window (complex, shape ``(..., n_fft//2+1, M)``).

    ``X[m, k] = Σ_n x[n + mH] w[n] exp(-2πi kn/N)`` (stored at ``[..., k, m]``: bins before
    frames, as in librosa and torchaudio) with ``N = n_fft``, ``H = hop_length``
    (default ``N/4``); with ``center`` the signal is zero-padded by ``N/2`` on both sides so that
    frame ``m`` is centred on sample ``mH``.
    """
    x = as_tensor(x)
    hop_length = hop_length or n_fft // 4
    win_length = win_length or n_fft
    return torch.stft(
        x.reshape(-1, x.shape[-1]),
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=hann_window(win_length, x.device),
        center=center,
        pad_mode="constant",
        return_complex=True,
    ).reshape(*x.shape[:-1], n_fft // 2 + 1, -1)


def istft(
    spec: torch.Tensor,
    n_fft: int = 2048,
    hop_length: int | None = None,
    win_length: int | None = None,
    length: int | None = None,
    center: bool = True,
) -> torch.Tensor:
    """Inverse of :func:`stft` by weighted overlap-add (exact when the window overlap-adds)."""
    hop_length = hop_length or n_fft // 4
    win_length = win_length or n_fft
    flat = spec.reshape(-1, *spec.shape[-2:])
    out = torch.istft(
        flat,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=hann_window(win_length, spec.device),
        center=center,
        length=length,
    )
    return out.reshape(*spec.shape[:-2], out.shape[-1])


def power_to_db(
    power: torch.Tensor, ref: float = 1.0, amin: float = 1e-10, top_db: float | None = 80.0
) -> torch.Tensor:
    """Decibels ``10 log10(max(amin, S) / ref)``, floored at ``top_db`` below each item's peak.

    As :func:`librosa.power_to_db`, except that for a batch the ``top_db`` floor is taken per
    item (over the last two axes), not over the whole batch.
    """
    if amin <= 0:
        raise ValueError(f"amin must be positive, got {amin}")
    db = 10.0 * torch.log10(torch.clamp(power, min=amin)) - 10.0 * np.log10(max(amin, ref))
    if top_db is not None:
        if top_db < 0:
            raise ValueError(f"top_db must be non-negative, got {top_db}")
        peak = db.amax(dim=(-2, -1), keepdim=True)
        db = torch.maximum(db, peak - top_db)
    return db


def mel_filterbank(
    sample_rate: int,
    n_fft: int = 2048,
    n_mels: int = 128,
    f_min: float = 0.0,
    f_max: float | None = None,
) -> torch.Tensor:
    """The mel filterbank ``M``, shape ``(n_mels, n_fft//2 + 1)`` (as ``librosa.filters.mel``).

    Triangular filters equally spaced on the Slaney mel scale, each scaled to unit area in Hz.
    """
    return AF.melscale_fbanks(
        n_fft // 2 + 1,
        f_min=f_min,
        f_max=f_max if f_max is not None else sample_rate / 2,
        n_mels=n_mels,
        sample_rate=sample_rate,
        norm="slaney",
        mel_scale="slaney",
    ).T


@lru_cache(maxsize=32)
def _mel_transform(
    sample_rate: int,
    n_fft: int,
    hop_length: int,
    win_length: int,
    n_mels: int,
    f_min: float,
    f_max: float | None,
    center: bool,
    device: torch.device,
) -> AT.MelSpectrogram:
    return AT.MelSpectrogram(
        sample_rate=sample_rate,
        n_fft=n_fft,
        win_length=win_length,
        hop_length=hop_length,
        f_min=f_min,
        f_max=f_max,
        n_mels=n_mels,
        window_fn=torch.hann_window,
        power=2.0,
        center=center,
        pad_mode="constant",
        norm="slaney",
        mel_scale="slaney",
    ).to(device)


def mel_spectrogram(
    x: ArrayLike,
    sample_rate: int,
    n_fft: int = 2048,
    hop_length: int | None = None,
    win_length: int | None = None,
    n_mels: int = 128,
    f_min: float = 0.0,
    f_max: float | None = None,
    center: bool = True,
) -> torch.Tensor:
    """Mel power spectrogram ``M |X|²`` (Slaney mel scale and filter normalisation)."""
    x = as_tensor(x)
    hop_length = hop_length or n_fft // 4
    win_length = win_length or n_fft
    if f_max is not None and f_max > sample_rate / 2:
        raise ValueError(f"f_max={f_max} Hz is above the Nyquist frequency {sample_rate / 2} Hz")
    transform = _mel_transform(
        sample_rate, n_fft, hop_length, win_length, n_mels, f_min, f_max, center, x.device
    )
    return transform(x)


def log_mel_spectrogram(
    x: ArrayLike,
    sample_rate: int,
    n_fft: int = 2048,
    hop_length: int | None = None,
    win_length: int | None = None,
    n_mels: int = 128,
    f_min: float = 0.0,
    f_max: float | None = None,
    center: bool = True,
    top_db: float | None = 80.0,
) -> torch.Tensor:
    """Log-mel spectrogram in dB, shape ``(..., n_mels, frames)``.

    Equals ``librosa.power_to_db(librosa.feature.melspectrogram(y=x, sr=sample_rate, ...),
    top_db=top_db)`` for one signal; see :func:`power_to_db` for batches.
    """
    mel = mel_spectrogram(
        x, sample_rate, n_fft, hop_length, win_length, n_mels, f_min, f_max, center
    )
    return power_to_db(mel, top_db=top_db)


@lru_cache(maxsize=16)
def _dct_matrix(n_mfcc: int, n_mels: int, device: torch.device) -> torch.Tensor:
    return AF.create_dct(n_mfcc, n_mels, norm="ortho").to(device)  # (n_mels, n_mfcc)


def mfcc(
    x: ArrayLike,
    sample_rate: int,
    n_mfcc: int = 20,
    n_fft: int = 2048,
    hop_length: int | None = None,
    win_length: int | None = None,
    n_mels: int = 128,
    f_min: float = 0.0,
    f_max: float | None = None,
    center: bool = True,
    top_db: float | None = 80.0,
) -> torch.Tensor:
    """Mel-frequency cepstral coefficients, shape ``(..., n_mfcc, frames)``.

    The orthonormal DCT-II of the log-mel spectrogram (dB) along the mel axis, keeping the first
    ``n_mfcc`` coefficients — the definition of ``librosa.feature.mfcc`` (``dct_type=2``,
    ``norm='ortho'``, ``lifter=0``).
    """
    if n_mfcc > n_mels:
        raise ValueError(f"n_mfcc={n_mfcc} cannot exceed n_mels={n_mels}")
    log_mel = log_mel_spectrogram(
        x, sample_rate, n_fft, hop_length, win_length, n_mels, f_min, f_max, center, top_db
    )
    dct = _dct_matrix(n_mfcc, n_mels, log_mel.device)
    return torch.einsum("...bt,bc->...ct", log_mel, dct)


def griffin_lim(
    magnitude: torch.Tensor,
    n_fft: int = 2048,
    hop_length: int | None = None,
    win_length: int | None = None,
    n_iter: int = 64,
    momentum: float = 0.99,
    length: int | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Estimate a waveform whose STFT magnitude matches ``magnitude`` (fast Griffin–Lim).

    ``magnitude`` is ``|X|`` (not power) of shape ``(..., n_fft//2+1, frames)``. ``momentum``
    0.99 is the accelerated algorithm of Perraudin et al. (2013); 0 gives Griffin & Lim (1984).
    The random initial phase is drawn from ``seed``.
    """
    hop_length = hop_length or n_fft // 4
    win_length = win_length or n_fft
    transform = AT.GriffinLim(
        n_fft=n_fft,
        n_iter=n_iter,
        win_length=win_length,
        hop_length=hop_length,
        power=1.0,
        momentum=momentum,
        length=length,
        rand_init=True,
    ).to(magnitude.device)
    with torch.random.fork_rng(devices=[magnitude.device] if magnitude.is_cuda else []):
        torch.manual_seed(seed)
        return transform(magnitude)
