"""Noise generators and mixing at a given signal-to-noise ratio, batched, on any device.

Every generator returns float32 noise of shape ``(n,)`` (``batch=None``) or ``(batch, n)``,
each row scaled to unit RMS, so that :func:`mix_at_snr` alone decides how loud it is:

- :func:`white`: flat power spectrum;
- :func:`pink`: power ∝ 1/f (−10 dB per decade, −3 dB per octave);
- :func:`brown`: power ∝ 1/f² (−20 dB per decade), a random walk's spectrum;
- :func:`hum`: mains hum, a 50 or 60 Hz tone with a few harmonics;
- :func:`babble`: several speech clips at once, the "cocktail party" noise.

Randomness comes from ``generator``: a :class:`torch.Generator` (noise is drawn on its device,
then moved to ``device``), an ``int`` seed (a generator on ``device`` is made from it), or
``None`` (torch's global random state, which :func:`audiolab.settings.seed_everything` and
:func:`audiolab.training.fit` seed).

Examples
--------
::

    from audiolab import noise
    n = noise.make_noise("pink", batch=8, n=16000, sample_rate=16000, generator=0)
    noisy = noise.mix_at_snr(clean, n, snr_db=10.0)      # clean: (8, 16000)
"""

from __future__ import annotations

import torch
from torch import Tensor

from audiolab import checks

#: The noise types that :func:`make_noise` knows.
NOISE_TYPES: tuple[str, ...] = ("white", "pink", "brown", "hum", "babble")

Generator = torch.Generator | int | None
Device = torch.device | str | None

_EPS = 1e-12


def _generator(generator: Generator, device: Device) -> tuple[torch.Generator | None, Device]:
    """The generator to draw with and the device to draw on."""
    if isinstance(generator, torch.Generator):
        return generator, generator.device
    if isinstance(generator, int):
        dev = torch.device(device) if device is not None else torch.device("cpu")
        return torch.Generator(dev).manual_seed(generator), dev
    if generator is None:
        return None, device
    raise TypeError(f"generator must be a torch.Generator, an int seed or None, not {generator!r}")


def _check_size(n: int, batch: int | None) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n (samples) must be a positive integer, got {n!r}")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ValueError(f"batch must be a positive integer or None, got {batch!r}")


def _unit_rms(x: Tensor) -> Tensor:
    """Scale each row (last axis) to RMS 1."""
    return x / x.pow(2).mean(dim=-1, keepdim=True).sqrt().clamp_min(_EPS)


def _shape(n: int, batch: int | None) -> tuple[int, ...]:
    return (n,) if batch is None else (batch, n)


def white(
    n: int, batch: int | None = None, *, generator: Generator = None, device: Device = None
) -> Tensor:
    """Gaussian white noise with unit RMS, shape ``(n,)`` or ``(batch, n)``."""
    _check_size(n, batch)
    gen, dev = _generator(generator, device)
    x = torch.randn(_shape(n, batch), generator=gen, device=dev)
    return _unit_rms(x).to(device) if device is not None else _unit_rms(x)


def colored(
    n: int,
    exponent: float,
    batch: int | None = None,
    *,
    generator: Generator = None,
    device: Device = None,
) -> Tensor:
    """Noise whose power spectrum falls as ``1/f**exponent`` (0 white, 1 pink, 2 brown).

    White Gaussian noise is shaped in the frequency domain (:func:`torch.fft.rfft`): each bin
    ``f > 0`` is multiplied by ``f**(-exponent/2)`` (amplitude, so power goes as
    ``f**-exponent``), the DC bin is set to zero, and the result is transformed back and
    scaled to unit RMS.
    """
    exponent = checks.number("exponent", exponent)
    spectrum = torch.fft.rfft(white(n, batch, generator=generator, device=device))
    f = torch.arange(spectrum.shape[-1], device=spectrum.device, dtype=torch.float32)
    gain = torch.where(f > 0, f.clamp_min(1.0).pow(-exponent / 2), torch.zeros_like(f))
    return _unit_rms(torch.fft.irfft(spectrum * gain, n=n))


def pink(
    n: int, batch: int | None = None, *, generator: Generator = None, device: Device = None
) -> Tensor:
    """Pink noise: power ∝ 1/f, i.e. −10 dB per decade (equal power in every octave)."""
    return colored(n, 1.0, batch, generator=generator, device=device)


def brown(
    n: int, batch: int | None = None, *, generator: Generator = None, device: Device = None
) -> Tensor:
    """Brown (red) noise: power ∝ 1/f², i.e. −20 dB per decade, the spectrum of a random walk."""
    return colored(n, 2.0, batch, generator=generator, device=device)


def hum(
    n: int,
    sample_rate: int,
    batch: int | None = None,
    *,
    f0: float | None = None,
    harmonics: int = 4,
    generator: Generator = None,
    device: Device = None,
) -> Tensor:
    """Mains hum: ``Σ_k a_k sin(2π k f0 t + φ_k)`` for ``k = 1..harmonics``, unit RMS.

    Parameters
    ----------
    n, sample_rate
        Length in samples and sample rate in Hz.
    batch
        Number of rows, or ``None`` for one signal of shape ``(n,)``.
    f0
        The mains frequency in Hz; ``None`` picks 50 or 60 Hz at random for each row.
    harmonics
        Number of partials (the fundamental included). Their amplitudes fall as ``1/k`` with a
        random ±30 % variation, and each has a random phase; ``f0`` itself varies by ±0.5 %.
    """
    _check_size(n, batch)
    sample_rate = checks.sample_rate(sample_rate)
    if f0 is not None:
        f0 = checks.number("f0", f0, positive=True)
    harmonics = checks.integer("harmonics", harmonics)
    if harmonics < 1:
        raise ValueError(f"harmonics must be at least 1, got {harmonics}")
    gen, dev = _generator(generator, device)
    rows = batch or 1
    rand = lambda *shape: torch.rand(shape, generator=gen, device=dev)  # noqa: E731
    if f0 is None:
        base = torch.where(rand(rows, 1) < 0.5, 50.0, 60.0)
    else:
        base = torch.full((rows, 1), float(f0), device=dev)
    base = base * (1 + 0.01 * (rand(rows, 1) - 0.5))
    k = torch.arange(1, harmonics + 1, device=dev, dtype=torch.float32)
    amplitude = (0.7 + 0.6 * rand(rows, harmonics)) / k
    phase = 2 * torch.pi * rand(rows, harmonics)
    keep = (k * base) < sample_rate / 2  # drop partials above Nyquist
    t = torch.arange(n, device=dev, dtype=torch.float32) / sample_rate
    angles = 2 * torch.pi * (k * base)[..., None] * t + phase[..., None]  # (rows, harmonics, n)
    x = _unit_rms(((amplitude * keep)[..., None] * torch.sin(angles)).sum(dim=1))
    x = x if batch is not None else x[0]
    return x.to(device) if device is not None else x


def babble(
    n: int,
    speech: Tensor,
    batch: int | None = None,
    *,
    k: int | tuple[int, int] = (4, 6),
    generator: Generator = None,
    device: Device = None,
) -> Tensor:
    """Babble: the sum of ``k`` different speech clips, each circularly shifted in time.

    Each row draws ``k`` distinct clips from ``speech`` (without replacement), rotates each by a
    random number of samples (so the words overlap at random times), scales each to unit RMS
    (the talkers are equally loud), adds them up and scales the sum to unit RMS.

    Parameters
    ----------
    n
        Length in samples. Clips longer than ``n`` contribute ``n`` consecutive samples (from a
        random start, wrapping around); shorter ones are repeated.
    speech
        The pool of clips, shape ``(clips, samples)``, at the sample rate wanted for the noise.
        Use voices that are not in the test set when the babble is meant to be unseen speech.
    batch
        Number of rows, or ``None`` for one signal of shape ``(n,)``.
    k
        Talkers per row: a number, or a range ``(low, high)`` (inclusive) drawn for each row.
    """
    _check_size(n, batch)
    if not isinstance(speech, Tensor) or speech.ndim != 2 or speech.shape[-1] == 0:
        shape = tuple(speech.shape) if isinstance(speech, Tensor) else type(speech).__name__
        raise ValueError(f"speech must be a tensor of clips, shape (clips, samples); got {shape}")
    low, high = (k, k) if isinstance(k, int) else k
    if not 1 <= low <= high:
        raise ValueError(f"k must be a positive number or a range (low, high), got {k!r}")
    if high > len(speech):
        raise ValueError(f"babble of up to {high} talkers needs as many clips, got {len(speech)}")
    gen, dev = _generator(generator, device)
    rows, clips, length = batch or 1, len(speech), speech.shape[-1]
    talkers = torch.randint(low, high + 1, (rows, 1), generator=gen, device=dev)
    chosen = torch.rand(rows, clips, generator=gen, device=dev).argsort(dim=1)[:, :high]
    shifts = torch.randint(0, length, (rows, high, 1), generator=gen, device=dev)
    where = (shifts + torch.arange(n, device=dev)) % length  # (rows, high, n)
    pool = speech.to(device=dev, dtype=torch.float32)
    voices = _unit_rms(pool[chosen[..., None], where])
    weight = (torch.arange(high, device=dev) < talkers).float()  # the first k_i of each row
    x = _unit_rms((voices * weight[..., None]).sum(dim=1))
    x = x if batch is not None else x[0]
    return x.to(device) if device is not None else x


def make_noise(
    kind: str,
    batch: int | None,
    n: int,
    sample_rate: int,
    *,
    generator: Generator = None,
    device: Device = None,
    speech: Tensor | None = None,
) -> Tensor:
    """Noise of type ``kind`` (one of :data:`NOISE_TYPES`), shape ``(batch, n)``, unit RMS.

    ``speech`` is the pool of clips that ``"babble"`` needs (see :func:`babble`); the hum's
    mains frequency is 50 or 60 Hz at random for each row.

    Raises
    ------
    ValueError
        For an unknown ``kind``, or ``"babble"`` without ``speech``.
    """
    options = {"generator": generator, "device": device}
    if kind == "white":
        return white(n, batch, **options)
    if kind == "pink":
        return pink(n, batch, **options)
    if kind == "brown":
        return brown(n, batch, **options)
    if kind == "hum":
        return hum(n, sample_rate, batch, **options)
    if kind == "babble":
        if speech is None:
            raise ValueError(
                "babble noise needs a pool of speech clips: pass speech=<tensor (clips, samples)>,"
                " e.g. SpokenDigits('train').waveforms"
            )
        return babble(n, speech, batch, **options)
    raise ValueError(f"unknown noise kind {kind!r}; choose one of {NOISE_TYPES}")


def mix_at_snr(
    clean: Tensor, noise: Tensor, snr_db: float | Tensor, *, return_noise: bool = False
) -> Tensor | tuple[Tensor, Tensor]:
    """Add ``noise`` to ``clean``, scaled so that the SNR is exactly ``snr_db``.

    With ``P`` the mean square over the last axis, the noise is multiplied by
    ``g = sqrt(P_clean / P_noise) · 10^(−snr_db/20)``, so that
    ``10 log10(P_clean / P(g · noise)) = snr_db`` for every row.

    Parameters
    ----------
    clean, noise
        Signals of the same shape ``(..., samples)``.
    snr_db
        The SNR in dB: a number, or a tensor of one value per row (shape ``clean.shape[:-1]``).
        ``inf`` adds nothing. A silent ``clean`` row stays silent (its noise is scaled to 0).
    return_noise
        Also return the scaled noise (``mixture = clean + scaled_noise``).

    Returns
    -------
    Tensor or (Tensor, Tensor)
        The mixture, and the scaled noise if asked for.

    Raises
    ------
    ValueError
        If the shapes differ, ``snr_db`` has the wrong shape, or a noise row is silent.
    """
    if not isinstance(clean, Tensor) or not isinstance(noise, Tensor):
        raise TypeError(
            f"clean and noise must be tensors, got {type(clean).__name__} and "
            f"{type(noise).__name__} (use torch.from_numpy for NumPy arrays)"
        )
    if not clean.is_floating_point() or not noise.is_floating_point():
        raise TypeError(f"clean and noise must be floating point, got {clean.dtype}, {noise.dtype}")
    if clean.shape != noise.shape:
        raise ValueError(
            f"clean {tuple(clean.shape)} and noise {tuple(noise.shape)} must have the same shape"
        )
    snr = torch.as_tensor(snr_db, dtype=torch.float64, device=clean.device)
    if snr.ndim and snr.shape != clean.shape[:-1]:
        raise ValueError(
            f"snr_db must be a number or one value per row, shape {tuple(clean.shape[:-1])}; "
            f"got shape {tuple(snr.shape)}"
        )
    if bool(torch.isnan(snr).any()):
        raise ValueError("snr_db is NaN; give a number of dB (inf adds no noise)")
    if bool(noise.eq(0).all(dim=-1).any()):
        raise ValueError("a row of the noise is silent: it cannot be scaled to an SNR")
    mixture, scaled = scaled_mix(clean, noise, snr)
    return (mixture, scaled) if return_noise else mixture


def scaled_mix(clean: Tensor, noise: Tensor, snr_db: Tensor) -> tuple[Tensor, Tensor]:
    """The arithmetic of :func:`mix_at_snr` without its checks: ``(mixture, scaled noise)``.

    For callers that already know their inputs are valid (same shapes, no silent noise row,
    ``snr_db`` a float64 tensor on ``clean``'s device, one value per row or a scalar): the
    checks read values back from the device, which makes a GPU wait for its queue to empty.
    """
    p_clean = clean.double().pow(2).mean(dim=-1)
    p_noise = noise.double().pow(2).mean(dim=-1)
    gain = (p_clean / p_noise).sqrt() * torch.pow(10.0, -snr_db.double() / 20)
    scaled = (noise.double() * gain.unsqueeze(-1)).to(noise.dtype)
    return clean + scaled, scaled
