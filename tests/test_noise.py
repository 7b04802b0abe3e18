"""audiolab.noise: coloured noise, hum, babble, and mixing at an exact SNR."""

import numpy as np
import pytest
import torch
from scipy.signal import welch

from audiolab import noise
from audiolab.noise import NOISE_TYPES, make_noise, mix_at_snr, scaled_mix

SR = 16000


def rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean(dim=-1).sqrt()


def slope_db_per_decade(x: torch.Tensor, f_lo: float = 50.0, f_hi: float = 5000.0) -> float:
    """Slope of a straight-line fit of the mean Welch PSD (dB) against log10(frequency)."""
    f, psd = welch(x.numpy(), fs=SR, nperseg=4096, axis=-1)
    psd = psd.reshape(-1, psd.shape[-1]).mean(axis=0)
    band = (f >= f_lo) & (f <= f_hi)
    return float(np.polyfit(np.log10(f[band]), 10 * np.log10(psd[band]), 1)[0])


@pytest.fixture
def speech() -> torch.Tensor:
    """Twelve 'voices': decaying tones of different pitch placed at different times."""
    t = torch.arange(SR) / SR
    clips = torch.zeros(12, SR)
    for i in range(12):
        start = 1000 * i
        burst = torch.sin(2 * torch.pi * (150 + 40 * i) * t[:4000]) * torch.hann_window(4000)
        clips[i, start : start + 4000] = burst
    return clips


@pytest.mark.parametrize(("kind", "expected"), [("white", 0.0), ("pink", -10.0), ("brown", -20.0)])
def test_spectral_slopes(kind: str, expected: float) -> None:
    x = make_noise(kind, 16, SR, SR, generator=0)
    assert slope_db_per_decade(x) == pytest.approx(expected, abs=1.0)


@pytest.mark.parametrize("kind", NOISE_TYPES)
def test_unit_rms_shape_dtype(kind: str, speech: torch.Tensor) -> None:
    x = make_noise(kind, 5, 8000, SR, generator=1, speech=speech)
    assert x.shape == (5, 8000) and x.dtype == torch.float32
    torch.testing.assert_close(rms(x), torch.ones(5), atol=1e-4, rtol=0)
    assert torch.isfinite(x).all()


def test_unbatched_shape() -> None:
    assert noise.white(100).shape == (100,)
    assert noise.hum(100, SR, f0=60).shape == (100,)


@pytest.mark.parametrize("kind", NOISE_TYPES)
def test_seeded_generation_is_deterministic(kind: str, speech: torch.Tensor) -> None:
    a = make_noise(kind, 3, 4000, SR, generator=7, speech=speech)
    b = make_noise(kind, 3, 4000, SR, generator=torch.Generator().manual_seed(7), speech=speech)
    c = make_noise(kind, 3, 4000, SR, generator=8, speech=speech)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_global_rng_is_used_without_generator() -> None:
    torch.manual_seed(3)
    a = noise.pink(1000, 2)
    torch.manual_seed(3)
    assert torch.equal(a, noise.pink(1000, 2))


def test_hum_has_mains_harmonics() -> None:
    x = noise.hum(SR, SR, batch=2, f0=50.0, harmonics=3, generator=0)
    spectrum = torch.fft.rfft(x).abs().mean(dim=0)  # 1 Hz bins
    peaks = set(spectrum.topk(3).indices.tolist())
    assert all(any(abs(p - h) <= 1 for p in peaks) for h in (50, 100, 150))
    either = noise.hum(SR, SR, batch=32, generator=0)
    f0 = torch.fft.rfft(either).abs().argmax(dim=-1)
    assert set(f0.tolist()) <= set(range(49, 52)) | set(range(59, 62))
    assert len({int(f > 55) for f in f0}) == 2  # both 50 and 60 Hz occur


def test_babble_mixes_several_clips(speech: torch.Tensor) -> None:
    x = noise.babble(SR, speech, batch=8, k=5, generator=0)
    spectrum = torch.fft.rfft(x).abs()  # 1 Hz bins; clip i has its tone at 150 + 40 i Hz
    tones = spectrum[:, 150 + 40 * torch.arange(12)]
    present = (tones > 0.1 * tones.amax(dim=1, keepdim=True)).sum(dim=1)
    assert (present == 5).all()
    ranged = noise.babble(SR, speech, batch=64, k=(4, 6), generator=1)
    tones = torch.fft.rfft(ranged).abs()[:, 150 + 40 * torch.arange(12)]
    counts = (tones > 0.1 * tones.amax(dim=1, keepdim=True)).sum(dim=1)
    assert set(counts.tolist()) == {4, 5, 6}


def test_babble_errors(speech: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="speech"):
        make_noise("babble", 2, 100, SR)
    with pytest.raises(ValueError, match="clips"):
        noise.babble(100, speech[:3], batch=2, k=4)
    with pytest.raises(ValueError, match="clips, samples"):
        noise.babble(100, speech[0], batch=2)


@pytest.mark.parametrize(
    ("kind", "batch", "n"), [("purple", 2, 100), ("white", 0, 100), ("white", 2, 0)]
)
def test_bad_arguments(kind: str, batch: int, n: int) -> None:
    with pytest.raises(ValueError):
        make_noise(kind, batch, n, SR)


def test_mix_at_snr_is_exact() -> None:
    gen = torch.Generator().manual_seed(0)
    clean = torch.randn(6, 4000, generator=gen) * torch.linspace(0.01, 2, 6)[:, None]
    noise_ = make_noise("brown", 6, 4000, SR, generator=1) * 3
    snr = torch.tensor([-5.0, 0.0, 5.0, 10.0, 20.0, 40.0])
    mixture, scaled = mix_at_snr(clean, noise_, snr, return_noise=True)
    measured = 10 * torch.log10(clean.double().pow(2).mean(-1) / scaled.double().pow(2).mean(-1))
    assert (measured - snr).abs().max() < 1e-4
    torch.testing.assert_close(mixture, clean + scaled)
    fixed = mix_at_snr(clean, noise_, 12.5, return_noise=True)[1]
    measured = 10 * torch.log10(clean.double().pow(2).mean(-1) / fixed.double().pow(2).mean(-1))
    assert (measured - 12.5).abs().max() < 1e-4
    assert torch.equal(mix_at_snr(clean, noise_, float("inf")), clean)
    # the unchecked arithmetic that augmentation uses on an accelerator gives the same mixture
    unchecked, unchecked_noise = scaled_mix(clean, noise_, snr.double())
    torch.testing.assert_close(unchecked, mixture)
    torch.testing.assert_close(unchecked_noise, scaled)


def test_mix_at_snr_errors() -> None:
    clean = torch.randn(2, 100)
    with pytest.raises(ValueError, match="same shape"):
        mix_at_snr(clean, torch.randn(2, 99), 0.0)
    with pytest.raises(ValueError, match="one value per row"):
        mix_at_snr(clean, torch.randn(2, 100), torch.zeros(3))
    with pytest.raises(ValueError, match="silent"):
        mix_at_snr(clean, torch.zeros(2, 100), 0.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device() -> None:
    x = make_noise("pink", 2, 1000, SR, generator=0, device="cuda")
    assert x.is_cuda
