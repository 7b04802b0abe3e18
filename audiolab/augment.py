"""Data augmentation on device batches: noise, speed changes and SpecAugment.

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

from collections.abc import Callable, Sequence

import torch
import torchaudio.functional as AF
import torchaudio.transforms as AT
from torch import Tensor, nn

from audiolab import checks
from audiolab.noise import NOISE_TYPES, make_noise, mix_at_snr


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

    def rand(self, *shape: int, device: torch.device) -> Tensor:
        """Uniform numbers in [0, 1) on ``device``."""
        return torch.rand(shape, generator=self.generator(device), device=device)


def _check_waveforms(x: Tensor, name: str) -> None:
    if x.ndim != 2 or not x.is_floating_point():
        raise ValueError(
            f"{name} expects a batch of waveforms, a float tensor (batch, samples); got "
            f"{x.dtype} of shape {tuple(x.shape)}"
        )


class AddNoise(_Random):
    """Add noise of a random type at a random SNR to a random subset of the batch.

    Each example is noised with probability ``p``; it then gets one of ``kinds`` (uniformly),
    mixed by :func:`audiolab.noise.mix_at_snr` at an SNR drawn uniformly from ``snr_db``.

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
        noisy = self.rand(batch, device=dev) < self.p
        kind = (self.rand(batch, device=dev) * len(self.kinds)).long()
        low, high = self.snr_range
        snr = low + (high - low) * self.rand(batch, device=dev)
        noise = torch.zeros_like(x)
        for index, name in enumerate(self.kinds):
            rows = (noisy & (kind == index)).nonzero().flatten()
            if len(rows):
                noise[rows] = make_noise(
                    name, len(rows), n, self.sample_rate,
                    generator=gen, device=dev, speech=self._speech(dev),
                ).to(x.dtype)  # fmt: skip
        noise[~noisy] = 1.0  # any non-silent row: those rows keep the clean signal below
        return torch.where(noisy[:, None], mix_at_snr(x, noise, snr), x)

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
        y = AF.resample(x, round(factor * self.sample_rate), self.sample_rate)
        if y.shape[-1] >= n:
            start = (y.shape[-1] - n) // 2
            return y[:, start : start + n]
        left = (n - y.shape[-1]) // 2
        return nn.functional.pad(y, (left, n - y.shape[-1] - left))

    def forward(self, x: Tensor) -> Tensor:
        _check_waveforms(x, "SpeedPerturb")
        if not self.training:
            return x
        choice = int(self.rand(1, device=x.device).item() * len(self.factors))
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
