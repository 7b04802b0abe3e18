"""Data augmentation on device batches: noise, speed changes, SpecAugment, and domain
randomisation (rooms, microphones, telephone lines, levels, clipping).

Each augmentation is a small :class:`torch.nn.Module` that takes a whole batch on its device and
returns a batch of the same shape, dtype and device. They are meant for
``fit(..., train_transform=...)`` (waveforms) or as a layer of a model (features); like dropout,
they do nothing in eval mode (``module.eval()``).

Randomness: with ``seed=None`` (the default) they draw from torch's global random state, which
:func:`audiolab.training.fit` seeds, so a training run is reproducible; with an ``int`` seed each
module keeps its own :class:`torch.Generator` on the batch's device. (:class:`SpecAugment`
uses torchaudio's masking, which always draws from the global state.)

Examples
--------
::

    from audiolab.augment import AddNoise, Compose, SpeedPerturb
    augment = Compose(SpeedPerturb(), AddNoise(snr_db=(0, 20), p=0.5))
    fit(model, train, valid, loss, train_transform=augment)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torchaudio.functional as AF
import torchaudio.transforms as AT
from torch import Tensor, nn

from audiolab import checks
from audiolab.noise import NOISE_TYPES, make_noise, scaled_mix


class _Random(nn.Module):
    """A module with its own seeded generator per device, or torch's global random state."""

    def __init__(self, seed: int | None = None) -> None:
        super().__init__()
        self.seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}

    def generator(self, device: torch.device) -> torch.Generator | None:
        """The generator for ``device`` (``None``: the global random state)."""
        if self.seed is None:
            return None
        if device not in self._generators:
            self._generators[device] = torch.Generator(device).manual_seed(self.seed)
        return self._generators[device]

    def rand(self, *shape: int, device: torch.device | None = None) -> Tensor:
        """Uniform numbers in [0, 1), drawn on the CPU and then moved to ``device`` if given.

        Per-example parameters (which rows, which SNR, which filter) are drawn on the CPU:
        there they cost no kernel launch, and decisions taken from them (how many rows to
        change) need no synchronisation with an accelerator, which would stall its queue. The
        same seed gives the same parameters on every device.
        """
        u = torch.rand(shape, generator=self.generator(torch.device("cpu")))
        if device is None or torch.device(device).type == "cpu":
            return u
        return u.to(device, non_blocking=True)

    def chosen_rows(self, x: Tensor, p: float) -> Tensor | None:
        """Indices of the examples of ``x`` to augment, each with probability ``p``.

        ``None`` when there is nothing to do: eval mode, ``p`` = 0, or no example drawn.
        """
        if not self.training or p == 0:
            return None
        rows = (self.rand(len(x)) < p).nonzero().flatten()
        return rows.to(x.device, non_blocking=True) if len(rows) else None


_RESAMPLERS: dict[tuple[int, int, torch.device, torch.dtype], AT.Resample] = {}


def _resample(x: Tensor, orig_freq: int, new_freq: int) -> Tensor:
    """:func:`torchaudio.functional.resample` with its windowed-sinc kernel made once per
    rates, device and dtype (the function recomputes it, a dozen small kernels, every call)."""
    key = (orig_freq, new_freq, x.device, x.dtype)
    if key not in _RESAMPLERS:
        _RESAMPLERS[key] = AT.Resample(orig_freq, new_freq, dtype=x.dtype).to(x.device)
    return _RESAMPLERS[key](x)


def _check_waveforms(x: Tensor, name: str) -> None:
    if x.ndim != 2 or not x.is_floating_point():
        raise ValueError(
            f"{name} expects a batch of waveforms, a float tensor (batch, samples); got "
            f"{x.dtype} of shape {tuple(x.shape)}"
        )


class AddNoise(_Random):
    """Add noise of a random type at a random SNR to a random subset of the batch.

    Each example is noised with probability ``p``; it then gets one of ``kinds`` (uniformly,
    so a kind listed twice is drawn twice as often), mixed by :func:`audiolab.noise.mix_at_snr`
    at an SNR drawn uniformly from ``snr_db``.

    Parameters
    ----------
    kinds
        Noise types from :data:`audiolab.noise.NOISE_TYPES`. The default leaves out
        ``"babble"``, which needs ``speech``.
    snr_db
        A range ``(low, high)`` in dB, or one number for a fixed SNR.
    p
        Probability that an example is noised (0: the module is the identity).
    speech
        Pool of speech clips ``(clips, samples)`` for ``"babble"`` (kept on the CPU, copied to
        the batch's device once).
    sample_rate
        Sample rate of the waveforms in Hz (for the hum's frequency).
    seed
        Seed of this module's own generator; ``None`` uses the global random state.
    """

    def __init__(
        self,
        kinds: Sequence[str] = ("white", "pink", "brown", "hum"),
        snr_db: float | tuple[float, float] = (0.0, 20.0),
        p: float = 0.5,
        speech: Tensor | None = None,
        sample_rate: int = 16000,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        unknown = [k for k in kinds if k not in NOISE_TYPES]
        if not kinds or unknown:
            raise ValueError(f"kinds must be some of {NOISE_TYPES}, got {kinds!r}")
        if "babble" in kinds and speech is None:
            raise ValueError("'babble' noise needs speech=<tensor of clips (clips, samples)>")
        low, high = (snr_db, snr_db) if isinstance(snr_db, int | float) else snr_db
        low, high = checks.number("snr_db", low), checks.number("snr_db", high)
        p = checks.number("p", p)
        sample_rate = checks.sample_rate(sample_rate)
        if low > high:
            raise ValueError(f"snr_db range must be (low, high) with low <= high, got {snr_db!r}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be a probability in [0, 1], got {p}")
        self.kinds, self.snr_range, self.p = kinds, (float(low), float(high)), p
        self.sample_rate = sample_rate
        self.speech = speech
        self._speech_on: dict[torch.device, Tensor] = {}

    def _speech(self, device: torch.device) -> Tensor | None:
        if self.speech is None:
            return None
        if device not in self._speech_on:
            self._speech_on[device] = self.speech.to(device)
        return self._speech_on[device]

    def forward(self, x: Tensor) -> Tensor:
        _check_waveforms(x, "AddNoise")
        if not self.training or self.p == 0:
            return x
        batch, n = x.shape
        dev, gen = x.device, self.generator(x.device)
        noisy = self.rand(batch) < self.p  # drawn on the CPU: no synchronisation below
        kind = (self.rand(batch) * len(self.kinds)).long()
        low, high = self.snr_range
        snr = (low + (high - low) * self.rand(batch)).to(dev, non_blocking=True)
        noise = torch.zeros_like(x)
        for index, name in enumerate(self.kinds):
            rows = (noisy & (kind == index)).nonzero().flatten()
            if len(rows):
                noise[rows.to(dev, non_blocking=True)] = make_noise(
                    name, len(rows), n, self.sample_rate,
                    generator=gen, device=dev, speech=self._speech(dev),
                ).to(x.dtype)  # fmt: skip
        chosen = noisy.to(dev, non_blocking=True)[:, None]
        noise = noise.masked_fill(~chosen, 1.0)  # rows left clean: any non-silent noise will do
        return torch.where(chosen, scaled_mix(x, noise, snr.double())[0], x)

    def extra_repr(self) -> str:
        return f"kinds={self.kinds}, snr_db={self.snr_range}, p={self.p}, seed={self.seed}"


class SpeedPerturb(_Random):
    """Change the speed (duration and pitch together) by a random factor, one per batch.

    A factor ``f`` resamples the waveforms as if they had been recorded at ``f`` times the
    sample rate (:func:`torchaudio.functional.resample` from ``round(f·sr)`` to ``sr`` Hz), so
    they play ``f`` times faster and every frequency is multiplied by ``f``. The result is then
    centre-cropped (``f < 1``) or zero-padded equally on both sides (``f > 1``) back to the
    original length.

    One factor is drawn per batch, which keeps it cheap (one resampling kernel per call); over
    many batches every example sees every factor.

    Parameters
    ----------
    factors
        Speed factors to choose from (uniformly); 1.0 leaves the batch unchanged.
    sample_rate
        Sample rate of the waveforms in Hz.
    seed
        Seed of this module's own generator; ``None`` uses the global random state.
    """

    def __init__(
        self,
        factors: Sequence[float] = (0.9, 1.0, 1.1),
        sample_rate: int = 16000,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        sample_rate = checks.sample_rate(sample_rate)
        if not factors or any(checks.number("factors", f) <= 0 for f in factors):
            raise ValueError(f"factors must be positive numbers, got {factors!r}")
        self.factors, self.sample_rate = tuple(float(f) for f in factors), sample_rate

    def perturb(self, x: Tensor, factor: float) -> Tensor:
        """``x`` sped up by ``factor``, cropped or padded back to its length."""
        _check_waveforms(x, "SpeedPerturb")
        if factor == 1.0:
            return x
        n = x.shape[-1]
        y = _resample(x, round(factor * self.sample_rate), self.sample_rate)
        if y.shape[-1] >= n:
            start = (y.shape[-1] - n) // 2
            return y[:, start : start + n]
        left = (n - y.shape[-1]) // 2
        return nn.functional.pad(y, (left, n - y.shape[-1] - left))

    def forward(self, x: Tensor) -> Tensor:
        _check_waveforms(x, "SpeedPerturb")
        if not self.training:
            return x
        choice = int(self.rand(1).item() * len(self.factors))
        return self.perturb(x, self.factors[min(choice, len(self.factors) - 1)])

    def extra_repr(self) -> str:
        return f"factors={self.factors}, sample_rate={self.sample_rate}, seed={self.seed}"


class SpecAugment(nn.Module):
    """SpecAugment's frequency and time masking (Park et al., 2019) on a batch of spectrograms.

    ``n_masks`` frequency masks of up to ``freq_mask`` bins and ``n_masks`` time masks of up to
    ``time_mask`` frames, drawn independently for every example
    (:class:`torchaudio.transforms.FrequencyMasking` and
    :class:`~torchaudio.transforms.TimeMasking` with ``iid_masks=True``; each mask's width is
    uniform in ``[0, max)``). Masked cells are set to each example's mean, so that the masks
    add no artificial edges (for per-utterance normalised features the mean is 0).

    Input: ``(batch, mels, frames)`` or ``(batch, channels, mels, frames)``. Uses torch's global
    random state (torchaudio takes no generator).
    """

    def __init__(self, freq_mask: int = 8, time_mask: int = 10, n_masks: int = 2) -> None:
        super().__init__()
        for name, value in [
            ("freq_mask", freq_mask),
            ("time_mask", time_mask),
            ("n_masks", n_masks),
        ]:
            checks.integer(name, value, minimum=None)
        if min(freq_mask, time_mask, n_masks) < 0:
            raise ValueError("freq_mask, time_mask and n_masks must not be negative")
        self.n_masks = n_masks
        self.freq = AT.FrequencyMasking(freq_mask, iid_masks=True)
        self.time = AT.TimeMasking(time_mask, iid_masks=True)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in (3, 4):
            raise ValueError(
                f"SpecAugment expects (batch, mels, frames) or (batch, channels, mels, frames), "
                f"got shape {tuple(x.shape)}"
            )
        if not self.training or self.n_masks == 0:
            return x
        mean = x.mean(dim=(-2, -1), keepdim=True)
        y = x - mean
        for _ in range(self.n_masks):
            y = self.time(self.freq(y))
        return y + mean


class Compose(nn.Module):
    """Apply transforms one after another (an :class:`torch.nn.Sequential` that also takes
    plain callables)."""

    def __init__(self, *transforms: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.transforms = list(transforms)
        # register the modules so that .train()/.eval()/.to() reach them
        self.modules_ = nn.ModuleList(t for t in transforms if isinstance(t, nn.Module))

    def forward(self, x: Tensor) -> Tensor:
        for transform in self.transforms:
            x = transform(x)
        return x

    def __repr__(self) -> str:
        inner = "".join(f"\n  {t!r}" for t in self.transforms)
        return f"Compose({inner}\n)"


# --- Domain randomisation: rooms, microphones, channels, levels --------------------------------
# Synthetic speech is too clean: digital silence, one "microphone", no room, full bandwidth. The
# modules below make a training batch sound as if it had been recorded somewhere real. Each draws
# its parameters per example, runs on the batch's device and is the identity in eval mode.


def _range(name: str, value: float | tuple[float, float], **kw: bool) -> tuple[float, float]:
    """A ``(low, high)`` range from a number or a pair, checked."""
    low, high = (value, value) if isinstance(value, int | float) else value
    low, high = checks.number(name, low, **kw), checks.number(name, high, **kw)
    if low > high:
        raise ValueError(f"{name} must be (low, high) with low <= high, got {value!r}")
    return low, high


def _probability(p: float) -> float:
    p = checks.number("p", p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p}")
    return p


def room_impulse_responses(
    rt60: Tensor,
    drr_db: Tensor,
    sample_rate: int = 16000,
    generator: torch.Generator | None = None,
    length: int | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Synthetic room impulse responses with the asked reverberation times, one per row.

    Polack's statistical model of a diffuse late field: Gaussian noise under an exponential
    envelope whose energy falls by 60 dB in ``RT60`` seconds,
    ``h[n] = w[n] · 10^(−3 n / (f_s · RT60))``, preceded by a unit direct path; the late part
    starts 2.5 ms after it and is scaled so that the direct-to-reverberant energy ratio is
    ``drr_db``. Length: ``length`` samples, by default ``1.2 · max(RT60)`` seconds. Each response
    is normalised to unit energy.

    Parameters
    ----------
    rt60, drr_db
        ``(batch,)`` reverberation times in seconds (> 0) and direct-to-reverberant ratios in dB.
    sample_rate
        In Hz.
    generator
        Random source (``None``: torch's global state), on ``device``.
    length
        Taps of every response. A fixed length gives every batch the same shapes (on a GPU,
        an FFT plan per shape is made once and reused; a new length each batch makes a new plan
        each time); leave ``None`` for one response or a one-off batch.
    device
        Where the responses are made (default: ``rt60``'s device). Pass ``rt60`` and
        ``drr_db`` on the CPU with ``device`` an accelerator to check them without
        synchronising with it.

    Returns
    -------
    Tensor
        ``(batch, taps)``.
    """
    sample_rate = checks.sample_rate(sample_rate)
    if rt60.ndim != 1 or drr_db.shape != rt60.shape or not bool((rt60 > 0).all()):
        raise ValueError("rt60 and drr_db must be (batch,) tensors with rt60 > 0 seconds")
    taps = length if length is not None else max(int(1.2 * float(rt60.max()) * sample_rate), 8)
    if taps < 8:
        raise ValueError(f"length must be at least 8 taps, got {taps}")
    delay = max(int(0.0025 * sample_rate), 1)
    dev = rt60.device if device is None else torch.device(device)
    rt60, drr_db = (t.to(dev, non_blocking=True) for t in (rt60, drr_db))
    n = torch.arange(taps, device=dev, dtype=torch.float32)
    envelope = 10.0 ** (-3.0 * n / (sample_rate * rt60[:, None].float()))
    noise = torch.randn(len(rt60), taps, device=dev, generator=generator)
    late = noise * envelope
    late[:, :delay] = 0.0
    late_energy = late.pow(2).sum(1, keepdim=True).clamp_min(1e-12)
    late = late * torch.sqrt(10.0 ** (-drr_db[:, None].float() / 10.0) / late_energy)
    late[:, 0] = 1.0  # the direct path (energy 1; reverberant energy 10^(-DRR/10))
    return late / late.pow(2).sum(1, keepdim=True).sqrt()


def _keep_rms(y: Tensor, x: Tensor) -> Tensor:
    """``y`` scaled to the RMS of ``x`` (per row)."""
    target = x.pow(2).mean(1, keepdim=True).sqrt()
    return y * target / y.pow(2).mean(1, keepdim=True).sqrt().clamp_min(1e-8)


class Reverb(_Random):
    """Convolve a random subset of the batch with synthetic room impulse responses.

    Each chosen example gets its own response from :func:`room_impulse_responses` with
    ``RT60`` uniform in ``rt60`` seconds and direct-to-reverberant ratio uniform in ``drr_db``
    (living rooms and offices: 0.2–0.8 s; a small hall: over 1 s). Every response has the taps
    of the longest ``RT60`` of the range (1.2 times it), so that every batch has the same
    shapes. The result keeps the example's length (the tail past the end is cut) and its RMS
    level.
    """

    def __init__(
        self,
        rt60: float | tuple[float, float] = (0.2, 0.9),
        drr_db: float | tuple[float, float] = (-3.0, 12.0),
        p: float = 0.5,
        sample_rate: int = 16000,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        self.rt60 = _range("rt60", rt60, positive=True)
        self.drr_db = _range("drr_db", drr_db)
        self.p, self.sample_rate = _probability(p), checks.sample_rate(sample_rate)

    def forward(self, x: Tensor) -> Tensor:
        _check_waveforms(x, "Reverb")
        rows = self.chosen_rows(x, self.p)
        if rows is None:
            return x
        dev = x.device
        (lo, hi), (dlo, dhi) = self.rt60, self.drr_db
        rt60 = lo + (hi - lo) * self.rand(len(rows))
        drr = dlo + (dhi - dlo) * self.rand(len(rows))
        taps = max(int(1.2 * hi * self.sample_rate), 8)
        rir = room_impulse_responses(rt60, drr, self.sample_rate, self.generator(dev), taps,
                                     device=dev)
        wet = AF.fftconvolve(x[rows].float(), rir)[:, : x.shape[1]]
        out = x.clone()
        out[rows] = _keep_rms(wet, x[rows].float()).to(x.dtype)
        return out

    def extra_repr(self) -> str:
        return f"rt60={self.rt60}, drr_db={self.drr_db}, p={self.p}, seed={self.seed}"


def _biquad_peaking(
    f0: Tensor, gain_db: Tensor, q: Tensor, sample_rate: int
) -> tuple[Tensor, Tensor]:
    """RBJ audio-EQ-cookbook peaking filters, one per row: ``(b, a)`` of shape ``(batch, 3)``."""
    amp = 10.0 ** (gain_db / 40.0)
    w0 = 2 * torch.pi * f0 / sample_rate
    alpha = torch.sin(w0) / (2 * q)
    cos = torch.cos(w0)
    b = torch.stack([1 + alpha * amp, -2 * cos, 1 - alpha * amp], 1)
    a = torch.stack([1 + alpha / amp, -2 * cos, 1 - alpha / amp], 1)
    return b / a[:, :1], a / a[:, :1]


def _biquad_pass(kind: str, f0: Tensor, q: float, sample_rate: int) -> tuple[Tensor, Tensor]:
    """RBJ high-pass or low-pass filters (``kind`` ``"high"`` or ``"low"``), one per row.

    The coefficients of :func:`torchaudio.functional.highpass_biquad` / ``lowpass_biquad``,
    which take one cutoff for the whole batch; here each example gets its own.
    """
    w0 = 2 * torch.pi * f0 / sample_rate
    alpha, cos = torch.sin(w0) / (2 * q), torch.cos(w0)
    if kind == "high":
        b = torch.stack([(1 + cos) / 2, -(1 + cos), (1 + cos) / 2], 1)
    else:
        b = torch.stack([(1 - cos) / 2, 1 - cos, (1 - cos) / 2], 1)
    a = torch.stack([1 + alpha, -2 * cos, 1 - alpha], 1)
    return b / a[:, :1], a / a[:, :1]


def _filter(x: Tensor, b: Tensor, a: Tensor) -> Tensor:
    """Filter each row of ``x`` with its own biquad (torchaudio's batched ``lfilter``)."""
    return AF.lfilter(x, a.to(x.dtype), b.to(x.dtype), clamp=False, batching=True)


def _filter_cascade(x: Tensor, filters: Sequence[tuple[Tensor, Tensor]]) -> Tensor:
    """Filter each row of ``x`` with its own cascade of biquads ``filters`` (``(b, a)`` pairs).

    On a CPU: :func:`_filter` once per biquad (torchaudio's recursive ``lfilter``). On other
    devices the same output is computed in the frequency domain, as one product of spectra: the
    rows are zero-padded to at least twice their length, multiplied by the cascade's frequency
    response ``H(e^{jω}) = Π_k B_k(e^{jω}) / A_k(e^{jω})`` and cut back. That is exact up to
    the part of the impulse response longer than the padding (for the stable biquads of this
    module, which decay within tens of milliseconds, far below float32 precision). The
    recursion runs one sample after another (16,000 dependent steps for a second at 16 kHz,
    per biquad), which a GPU does slowly; the FFT does the whole cascade at once. On a 2-core
    CPU the recursion is the faster of the two (about 2x, batch 64, five biquads).
    """
    if x.device.type == "cpu":
        for b, a in filters:
            x = _filter(x, b, a)
        return x
    return _filter_cascade_fft(x, filters)


_DELAYS: dict[tuple[int, torch.device], Tensor] = {}


def _delays(n_fft: int, device: torch.device) -> Tensor:
    """``e^{-jωk}`` for k = 0, 1, 2 at the ``n_fft // 2 + 1`` rfft frequencies ω, (3, bins)."""
    key = (n_fft, device)
    if key not in _DELAYS:
        w = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * (2 * math.pi / n_fft)
        k = torch.arange(3, dtype=torch.float64)[:, None]
        _DELAYS[key] = torch.polar(torch.ones(3, len(w), dtype=torch.float64), -k * w).to(device)
    return _DELAYS[key]


def _filter_cascade_fft(x: Tensor, filters: Sequence[tuple[Tensor, Tensor]]) -> Tensor:
    """:func:`_filter_cascade` in the frequency domain, on any device.

    The coefficients (from any device) reach ``x``'s device in one copy, as a
    ``(biquads, rows, 2, 3)`` complex128 tensor; the response is evaluated in double precision.
    """
    n = x.shape[-1]
    n_fft = 1 << (2 * n - 1).bit_length()
    powers = _delays(n_fft, x.device)
    coeffs = torch.stack([torch.stack([b, a], 1) for b, a in filters])
    coeffs = coeffs.to(torch.complex128).to(x.device, non_blocking=True)
    response = None
    for k in range(len(filters)):
        ratio = (coeffs[k, :, 0] @ powers) / (coeffs[k, :, 1] @ powers)
        response = ratio if response is None else response * ratio
    spectrum = torch.fft.rfft(x.float(), n_fft)
    if response is not None:
        spectrum = spectrum * response.to(torch.complex64)
    return torch.fft.irfft(spectrum, n_fft)[..., :n].to(x.dtype)


class MicrophoneEQ(_Random):
    """Colour a random subset of the batch like a different microphone and preamp would.

    Per example: a high-pass at ``low_cut`` Hz (small microphones and laptop inputs cut the
    bass), a low-pass at ``high_cut`` Hz, and ``n_bands`` peaking filters (RBJ cookbook
    biquads) at log-uniform frequencies with gains uniform in ``gain_db`` and Q in 0.7–3.
    The RMS level is kept.
    """

    def __init__(
        self,
        gain_db: float | tuple[float, float] = (-8.0, 8.0),
        n_bands: int = 3,
        low_cut: float | tuple[float, float] = (40.0, 300.0),
        high_cut: float | tuple[float, float] = (3500.0, 7800.0),
        p: float = 0.7,
        sample_rate: int = 16000,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        self.sample_rate = checks.sample_rate(sample_rate)
        self.gain_db = _range("gain_db", gain_db)
        self.n_bands = checks.integer("n_bands", n_bands, minimum=0)
        self.low_cut = _range("low_cut", low_cut, positive=True)
        self.high_cut = _range("high_cut", high_cut, positive=True)
        if self.high_cut[1] >= sample_rate / 2:
            raise ValueError(
                f"high_cut must stay below the Nyquist frequency {sample_rate / 2:g} Hz, "
                f"got {high_cut!r}"
            )
        self.p = _probability(p)

    def _uniform(self, bounds: tuple[float, float], n: int, log: bool = False) -> Tensor:
        """``n`` draws on the CPU, uniform in ``bounds`` (on a log scale if ``log``)."""
        lo, hi = bounds
        if log:
            lo, hi = math.log(lo), math.log(hi)
        u = lo + (hi - lo) * self.rand(n).double()
        return u.exp() if log else u

    def forward(self, x: Tensor) -> Tensor:
        _check_waveforms(x, "MicrophoneEQ")
        rows = self.chosen_rows(x, self.p)
        if rows is None:
            return x
        m, sr = len(rows), self.sample_rate
        # the filters' coefficients are computed on the CPU, in float64
        filters = [
            _biquad_pass("high", self._uniform(self.low_cut, m, True), 0.707, sr),
            _biquad_pass("low", self._uniform(self.high_cut, m, True), 0.707, sr),
        ]
        for _ in range(self.n_bands):
            f0 = self._uniform((100.0, 0.85 * self.high_cut[0]), m, log=True)
            gain = self._uniform(self.gain_db, m)
            q = self._uniform((0.7, 3.0), m)
            filters.append(_biquad_peaking(f0, gain, q, sr))
        y = _filter_cascade(x[rows].float(), filters)
        out = x.clone()
        out[rows] = _keep_rms(y, x[rows].float()).to(x.dtype)
        return out

    def extra_repr(self) -> str:
        return (f"gain_db={self.gain_db}, n_bands={self.n_bands}, low_cut={self.low_cut}, "
                f"high_cut={self.high_cut}, p={self.p}, seed={self.seed}")


class TelephoneBand(_Random):
    """Send a random subset of the batch through a narrowband telephone channel and back.

    Band-pass 300–3400 Hz (two RBJ biquads each side), resampling to 8 kHz and back up to the
    original rate, and optionally G.711 μ-law companding with 8 bits per sample (what a
    landline call does to speech). The RMS level is kept.
    """

    def __init__(
        self, p: float = 0.3, mu_law: bool = True, sample_rate: int = 16000, seed: int | None = None
    ) -> None:
        super().__init__(seed)
        self.p, self.mu_law = _probability(p), bool(mu_law)
        self.sample_rate = checks.sample_rate(sample_rate)
        if self.sample_rate < 8000:
            raise ValueError(
                f"TelephoneBand needs a sample rate of at least 8000 Hz, got {sample_rate}"
            )

    def channel(self, x: Tensor) -> Tensor:
        """The telephone channel applied to every row of ``x`` (no randomness)."""
        _check_waveforms(x, "TelephoneBand")
        sr, m = self.sample_rate, len(x)
        y = x.float()
        low, high = (torch.full((m,), f, dtype=torch.float64) for f in (300.0, 3400.0))
        band = [_biquad_pass("high", low, 0.707, sr), _biquad_pass("low", high, 0.707, sr)]
        y = _filter_cascade(y, band * 2)
        if sr != 8000:
            y = _resample(y, sr, 8000)
        if self.mu_law:
            peak = y.abs().amax(1, keepdim=True).clamp_min(1e-8)
            y = AF.mu_law_decoding(AF.mu_law_encoding(y / peak, 256), 256) * peak
        if sr != 8000:
            y = _resample(y, 8000, sr)[:, : x.shape[1]]
        return _keep_rms(y, x.float()).to(x.dtype)

    def forward(self, x: Tensor) -> Tensor:
        _check_waveforms(x, "TelephoneBand")
        rows = self.chosen_rows(x, self.p)
        if rows is None:
            return x
        out = x.clone()
        out[rows] = self.channel(x[rows])
        return out

    def extra_repr(self) -> str:
        return f"p={self.p}, mu_law={self.mu_law}, seed={self.seed}"


class ShiftAndGain(_Random):
    """Move each example's onset by a random delay and change its level by a random gain.

    The waveform is shifted right by up to ``max_shift`` seconds or left by up to the same
    (zeros come in at the edge; content pushed past the edge is lost: keep ``max_shift``
    smaller than the silence around the word) and scaled by a gain uniform in ``gain_db``.
    """

    def __init__(
        self,
        max_shift: float = 0.15,
        gain_db: float | tuple[float, float] = (-20.0, 6.0),
        sample_rate: int = 16000,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        self.max_shift = checks.number("max_shift", max_shift, non_negative=True)
        self.gain_db = _range("gain_db", gain_db)
        self.sample_rate = checks.sample_rate(sample_rate)

    def forward(self, x: Tensor) -> Tensor:
        _check_waveforms(x, "ShiftAndGain")
        if not self.training:
            return x
        batch, n = x.shape
        dev = x.device
        most = min(int(self.max_shift * self.sample_rate), n - 1)
        shift = ((2 * self.rand(batch) - 1) * most).round().long().to(dev, non_blocking=True)
        index = torch.arange(n, device=dev)[None, :] - shift[:, None]
        inside = (index >= 0) & (index < n)
        y = torch.gather(x, 1, index.clamp(0, n - 1)) * inside
        lo, hi = self.gain_db
        gain = (10.0 ** ((lo + (hi - lo) * self.rand(batch)) / 20.0)).to(dev, non_blocking=True)
        return y * gain[:, None].to(x.dtype)

    def extra_repr(self) -> str:
        return f"max_shift={self.max_shift}, gain_db={self.gain_db}, seed={self.seed}"


class Clip(_Random):
    """Hard-clip a random subset of the batch at a random fraction of each example's peak.

    What an overdriven microphone preamp or a too-hot recording level does: samples beyond
    ``±c · max|x|`` are cut to that value, with ``c`` uniform in ``ceiling``.
    """

    def __init__(
        self, ceiling: float | tuple[float, float] = (0.3, 0.9), p: float = 0.1,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        self.ceiling = _range("ceiling", ceiling, positive=True)
        if self.ceiling[1] > 1:
            raise ValueError(f"ceiling is a fraction of the peak, in (0, 1]; got {ceiling!r}")
        self.p = _probability(p)

    def forward(self, x: Tensor) -> Tensor:
        _check_waveforms(x, "Clip")
        if not self.training or self.p == 0:
            return x
        batch, dev = len(x), x.device
        lo, hi = self.ceiling
        level = (lo + (hi - lo) * self.rand(batch, device=dev)) * x.abs().amax(1)
        chosen = (self.rand(batch) < self.p).to(dev, non_blocking=True)
        level = torch.where(chosen, level, torch.full_like(level, float("inf")))[:, None]
        return torch.maximum(torch.minimum(x, level.to(x.dtype)), -level.to(x.dtype))

    def extra_repr(self) -> str:
        return f"ceiling={self.ceiling}, p={self.p}, seed={self.seed}"


#: The rooms of :func:`domain_randomisation` (keyword arguments of :class:`Reverb`).
ROOMS: dict[str, Any] = {"rt60": (0.2, 1.2), "drr_db": (-6.0, 12.0), "p": 0.6}


def domain_randomisation(sample_rate: int = 16000, seed: int | None = None) -> Compose:
    """The recording chain a synthetic clip is pushed through to sound like a real recording.

    In order: onset shift and level (:class:`ShiftAndGain`), a room for 60 % of the clips
    (:class:`Reverb` with ``ROOMS``: RT60 0.2–1.2 s, from a small office to a large classroom
    or a small hall, and a direct-to-reverberant ratio of −6 to 12 dB, from a distant to a close
    microphone), a microphone (:class:`MicrophoneEQ`), sometimes a telephone line
    (:class:`TelephoneBand`), a room-tone noise floor instead of digital silence (pink or brown
    noise at 25–50 dB SNR, :class:`AddNoise`), and now and then clipping (:class:`Clip`). The
    seeds of the parts are derived from ``seed``.
    """
    s = (lambda k: None) if seed is None else (lambda k: seed * 7 + k)
    return Compose(
        ShiftAndGain(sample_rate=sample_rate, seed=s(1)),
        Reverb(**ROOMS, sample_rate=sample_rate, seed=s(2)),
        MicrophoneEQ(sample_rate=sample_rate, seed=s(3)),
        TelephoneBand(sample_rate=sample_rate, seed=s(4)),
        AddNoise(kinds=("pink", "brown"), snr_db=(25.0, 50.0), p=0.9, sample_rate=sample_rate,
                 seed=s(5)),
        Clip(seed=s(6)),
    )
