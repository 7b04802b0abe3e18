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

The arguments are checked before any work: sizes (``n_fft``, ``hop_length``, ...) must be
positive integers, sample rates positive integers of Hz, and waveforms non-empty, finite
(NaN or infinite samples raise a :class:`ValueError`: one NaN would make a whole log-mel
spectrogram NaN) and laid out ``(..., samples)`` (a ``(samples, 1)`` column vector is refused
rather than read as thousands of one-sample signals). float64 input is computed in float32.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torchaudio.functional as AF
import torchaudio.transforms as AT

from . import checks

ArrayLike = np.ndarray | torch.Tensor


def as_tensor(x: ArrayLike, device: torch.device | str | None = None) -> torch.Tensor:
    """A float32 tensor view of ``x`` (moved to ``device`` when given).

    Raises
    ------
    TypeError
        If ``x`` is not floating point (integers, booleans, complex numbers).
    """
    try:
        t = torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(
            f"expected a NumPy array or a tensor of floating-point samples, got {type(x).__name__}"
        ) from err
    if not t.is_floating_point():
        raise TypeError(f"expected floating-point samples, got dtype {t.dtype}")
    t = t.float()
    return t.to(device) if device is not None else t


def waveforms(x: ArrayLike, name: str = "x", check_finite: bool = True) -> torch.Tensor:
    """``x`` as a float32 tensor of waveforms ``(..., samples)``, checked.

    ``check_finite=False`` skips the NaN/inf check, which on a GPU makes the host wait for the
    device: a model's forward pass uses it (the training engine reports non-finite losses).

    Raises
    ------
    TypeError
        If ``x`` is not floating point.
    ValueError
        If it is empty, a ``(samples, 1)`` column vector, or holds NaN or infinite samples.
    """
    t = as_tensor(x)
    if t.ndim == 0 or t.numel() == 0:
        raise ValueError(
            f"{name} holds no samples (shape {tuple(t.shape)}); expected (..., samples) with at "
            "least one sample"
        )
    if t.ndim >= 2 and t.shape[-1] == 1 and t.shape[-2] > 1:
        raise ValueError(
            f"{name} has shape {tuple(t.shape)}: the last axis must hold the samples, so this "
            f"would be {t.shape[-2]} signals of one sample each. A (samples, 1) column vector? "
            "Pass x[..., 0] or x.T"
        )
    if check_finite:
        _check_finite(t, name)
    return t


def _check_finite(t: torch.Tensor, name: str) -> None:
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        raise ValueError(
            f"{name} contains {int(bad.sum())} NaN or infinite values (of {t.numel()}); the "
            "features would be NaN. Clean the signal first (e.g. torch.nan_to_num) or find "
            "where they come from"
        )


def _frames(n_fft: int, hop_length: int | None, win_length: int | None) -> tuple[int, int, int]:
    """Checked ``(n_fft, hop_length, win_length)``, with the defaults filled in."""
    n_fft = checks.integer("n_fft", n_fft)
    hop_length = n_fft // 4 if hop_length is None else checks.integer("hop_length", hop_length)
    win_length = n_fft if win_length is None else checks.integer("win_length", win_length)
    if hop_length < 1:
        raise ValueError(f"hop_length must be positive, got {hop_length} (n_fft={n_fft} < 4?)")
    if win_length > n_fft:
        raise ValueError(f"win_length={win_length} cannot exceed n_fft={n_fft}")
    return n_fft, hop_length, win_length


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
    x = waveforms(x)
    n_fft, hop_length, win_length = _frames(n_fft, hop_length, win_length)
    _check_length(x, n_fft, center)
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
    """Inverse of :func:`stft` by weighted overlap-add (exact when the window overlap-adds).

    ``spec`` is a complex tensor or NumPy array of shape ``(..., n_fft//2+1, frames)``.
    """
    n_fft, hop_length, win_length = _frames(n_fft, hop_length, win_length)
    spec = _spectrogram(spec, n_fft, "spec", complex_ok=True)
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
    amin = checks.number("amin", amin, positive=True)
    ref = checks.number("ref", ref, positive=True)
    power = as_tensor(power)
    if power.ndim < 2:
        raise ValueError(f"power must have shape (..., bins, frames), got {tuple(power.shape)}")
    db = 10.0 * torch.log10(torch.clamp(power, min=amin)) - 10.0 * np.log10(max(amin, ref))
    if top_db is not None:
        if top_db < 0:
            raise ValueError(f"top_db must be non-negative, got {top_db}")
        peak = db.amax(dim=(-2, -1), keepdim=True)
        db = torch.maximum(db, peak - top_db)
    return db


def _band(sample_rate: int, f_min: float, f_max: float | None) -> tuple[float, float | None]:
    f_min = checks.number("f_min", f_min, non_negative=True)
    if f_max is not None:
        f_max = checks.number("f_max", f_max, positive=True)
        if f_max > sample_rate / 2:
            raise ValueError(
                f"f_max={f_max:g} Hz is above the Nyquist frequency {sample_rate / 2:g} Hz"
            )
    if f_min >= (sample_rate / 2 if f_max is None else f_max):
        raise ValueError(f"f_min={f_min:g} Hz must be below f_max (or Nyquist)")
    return f_min, f_max


def _check_length(x: torch.Tensor, n_fft: int, center: bool) -> None:
    if not center and x.shape[-1] < n_fft:
        raise ValueError(
            f"with center=False a signal needs at least n_fft={n_fft} samples, got {x.shape[-1]}"
        )


def _spectrogram(spec: ArrayLike, n_fft: int, name: str, complex_ok: bool = False) -> torch.Tensor:
    """``spec`` as a tensor ``(..., n_fft//2+1, frames)``, checked."""
    t = torch.as_tensor(spec)
    if complex_ok and t.is_complex():
        t = t.to(torch.complex64)
    elif t.is_floating_point():
        t = t.float()
    else:
        kind = "complex or floating-point" if complex_ok else "floating-point"
        raise TypeError(f"{name} must be {kind}, got dtype {t.dtype}")
    if t.ndim < 2 or t.shape[-2] != n_fft // 2 + 1 or t.shape[-1] == 0:
        raise ValueError(
            f"{name} must have shape (..., n_fft//2+1 = {n_fft // 2 + 1}, frames), got "
            f"{tuple(t.shape)}"
        )
    _check_finite(t, name)
    return t


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
    sample_rate = checks.sample_rate(sample_rate)
    n_fft = checks.integer("n_fft", n_fft)
    n_mels = checks.integer("n_mels", n_mels)
    f_min, f_max = _band(sample_rate, f_min, f_max)
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
    return mel_transform(
        sample_rate, n_fft, hop_length, win_length, n_mels, f_min, f_max, center
    ).to(device)


def mel_transform(
    sample_rate: int,
    n_fft: int,
    hop_length: int,
    win_length: int,
    n_mels: int,
    f_min: float = 0.0,
    f_max: float | None = None,
    center: bool = True,
) -> AT.MelSpectrogram:
    """A new ``torchaudio`` module computing :func:`mel_spectrogram` with these settings.

    Its window and filterbank are buffers that are not saved in a ``state_dict``, so a model
    may hold it (and be compiled with it, and moved between devices) without its saved
    weights changing.
    """
    module = AT.MelSpectrogram(
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
    )
    for child in module.modules():
        for name, buffer in list(child.named_buffers(recurse=False)):
            child.register_buffer(name, buffer, persistent=False)
    return module


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
    *,
    check_finite: bool = True,
) -> torch.Tensor:
    """Mel power spectrogram ``M |X|²`` (Slaney mel scale and filter normalisation).

    ``check_finite=False`` skips the check for NaN or infinite samples (see :func:`waveforms`).
    """
    x = waveforms(x, check_finite=check_finite)
    sample_rate = checks.sample_rate(sample_rate)
    n_fft, hop_length, win_length = _frames(n_fft, hop_length, win_length)
    n_mels = checks.integer("n_mels", n_mels)
    f_min, f_max = _band(sample_rate, f_min, f_max)
    _check_length(x, n_fft, center)
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
    *,
    check_finite: bool = True,
) -> torch.Tensor:
    """Log-mel spectrogram in dB, shape ``(..., n_mels, frames)``.

    Equals ``librosa.power_to_db(librosa.feature.melspectrogram(y=x, sr=sample_rate, ...),
    top_db=top_db)`` for one signal; see :func:`power_to_db` for batches.
    ``check_finite=False`` skips the check for NaN or infinite samples (see :func:`waveforms`).
    """
    mel = mel_spectrogram(
        x, sample_rate, n_fft, hop_length, win_length, n_mels, f_min, f_max, center,
        check_finite=check_finite,
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
    *,
    check_finite: bool = True,
) -> torch.Tensor:
    """Mel-frequency cepstral coefficients, shape ``(..., n_mfcc, frames)``.

    The orthonormal DCT-II of the log-mel spectrogram (dB) along the mel axis, keeping the first
    ``n_mfcc`` coefficients — the definition of ``librosa.feature.mfcc`` (``dct_type=2``,
    ``norm='ortho'``, ``lifter=0``). ``check_finite=False`` skips the check for NaN or infinite
    samples (see :func:`waveforms`): on a GPU that check waits for the device, which a training
    transform called at every step should not do.
    """
    n_mfcc = checks.integer("n_mfcc", n_mfcc)
    if n_mfcc > n_mels:
        raise ValueError(f"n_mfcc={n_mfcc} cannot exceed n_mels={n_mels}")
    log_mel = log_mel_spectrogram(
        x, sample_rate, n_fft, hop_length, win_length, n_mels, f_min, f_max, center, top_db,
        check_finite=check_finite,
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
    The random initial phase is drawn from ``seed``. ``magnitude`` may be a tensor or a NumPy
    array; the result is a tensor on the same device.
    """
    n_fft, hop_length, win_length = _frames(n_fft, hop_length, win_length)
    n_iter = checks.integer("n_iter", n_iter)
    momentum = checks.number("momentum", momentum, non_negative=True)
    if momentum >= 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    magnitude = _spectrogram(magnitude, n_fft, "magnitude")
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
