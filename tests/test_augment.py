"""audiolab.augment: noise, speed perturbation and SpecAugment on device batches."""

import pytest
import torch

from audiolab.augment import AddNoise, Compose, SpecAugment, SpeedPerturb

SR = 16000


def tones(freq: float, batch: int = 4, n: int = SR) -> torch.Tensor:
    t = torch.arange(n) / SR
    return torch.sin(2 * torch.pi * freq * t).repeat(batch, 1) * 0.5


def test_add_noise_snr_range_and_shapes() -> None:
    clean = tones(440.0, batch=64)
    noisy = AddNoise(snr_db=(5.0, 15.0), p=1.0, seed=0)(clean)
    assert noisy.shape == clean.shape and noisy.dtype == clean.dtype
    added = noisy - clean
    snr = 10 * torch.log10(clean.pow(2).mean(-1) / added.pow(2).mean(-1))
    assert snr.min() >= 5.0 - 1e-3 and snr.max() <= 15.0 + 1e-3
    assert snr.max() - snr.min() > 5.0  # drawn per example


def test_add_noise_probability_and_identity() -> None:
    clean = tones(440.0, batch=200)
    assert torch.equal(AddNoise(p=0.0)(clean), clean)
    noisy = AddNoise(p=0.5, seed=1)(clean)
    changed = (noisy != clean).any(dim=1).float().mean()
    assert 0.35 < changed < 0.65
    module = AddNoise(p=1.0).eval()
    assert torch.equal(module(clean), clean)  # eval mode: no augmentation


def test_add_noise_is_seeded_and_uses_global_rng() -> None:
    clean = tones(300.0, batch=8)
    assert torch.equal(AddNoise(p=1.0, seed=5)(clean), AddNoise(p=1.0, seed=5)(clean))
    torch.manual_seed(0)
    a = AddNoise(p=1.0)(clean)
    torch.manual_seed(0)
    assert torch.equal(a, AddNoise(p=1.0)(clean))


def test_add_noise_fixed_snr_with_babble() -> None:
    clean = tones(300.0, batch=6)
    speech = torch.randn(8, SR)
    noisy = AddNoise(kinds=["babble"], snr_db=10.0, p=1.0, speech=speech, seed=0)(clean)
    snr = 10 * torch.log10(clean.pow(2).mean(-1) / (noisy - clean).pow(2).mean(-1))
    torch.testing.assert_close(snr, torch.full((6,), 10.0), atol=1e-3, rtol=0)


def test_add_noise_errors() -> None:
    with pytest.raises(ValueError, match="kinds"):
        AddNoise(kinds=["violet"])
    with pytest.raises(ValueError, match="speech"):
        AddNoise(kinds=["babble"])
    with pytest.raises(ValueError, match="probability"):
        AddNoise(p=1.5)
    with pytest.raises(ValueError, match="waveforms"):
        AddNoise()(torch.zeros(2, 1, 100))


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturb_shifts_frequency(factor: float) -> None:
    x = tones(1000.0, batch=2)
    y = SpeedPerturb(factors=(factor,))(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    peak = torch.fft.rfft(y[:, 2000:-2000]).abs().argmax(dim=-1) * SR / (SR - 4000)
    assert torch.allclose(peak.float(), torch.full((2,), 1000.0 * factor), atol=5.0)


def test_speed_perturb_duration() -> None:
    x = torch.zeros(1, SR)
    x[:, 4000:12000] = 1.0  # a 0.5 s burst in the middle
    fast = SpeedPerturb(factors=(1.25,))(x)
    assert int((fast.abs() > 0.5).sum()) == pytest.approx(8000 / 1.25, abs=40)
    assert torch.equal(SpeedPerturb(factors=(1.0,))(x), x)
    choices = {SpeedPerturb(seed=s)(x).abs().gt(0.5).sum().item() for s in range(20)}
    assert len(choices) == 3


def test_spec_augment_masks() -> None:
    torch.manual_seed(0)
    x = torch.randn(32, 64, 101) + 5.0
    y = SpecAugment(freq_mask=8, time_mask=0, n_masks=1)(x)
    mean = x.mean(dim=(-2, -1), keepdim=True)
    masked_rows = torch.isclose(y, mean.expand_as(y)).all(dim=-1).sum(dim=-1)
    assert masked_rows.max() <= 7 and masked_rows.float().mean() > 1  # widths in [0, 8)
    assert len(set(masked_rows.tolist())) > 1  # independent per example
    kept = ~torch.isclose(y, mean.expand_as(y)).all(dim=-1, keepdim=True).expand_as(y)
    torch.testing.assert_close(y[kept], x[kept])  # the other bins are untouched
    y = SpecAugment(freq_mask=0, time_mask=10, n_masks=2)(x)
    masked_frames = torch.isclose(y, mean.expand_as(y)).all(dim=-2).sum(dim=-1)
    assert masked_frames.max() <= 18 and masked_frames.float().mean() > 2


def test_spec_augment_shapes_and_eval() -> None:
    x = torch.randn(4, 1, 64, 101)
    augment = SpecAugment()
    assert augment(x).shape == x.shape
    assert torch.equal(augment.eval()(x), x)
    with pytest.raises(ValueError, match="batch"):
        augment.train()(torch.randn(64, 101))


def test_compose_and_train_eval() -> None:
    x = tones(500.0, batch=3)
    chain = Compose(SpeedPerturb(factors=(1.1,)), AddNoise(p=1.0, seed=0), lambda z: z * 2)
    y = chain(x)
    assert y.shape == x.shape and not torch.equal(y, 2 * x)
    chain.eval()
    assert torch.equal(chain(x), 2 * x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_device_preserved_on_cuda() -> None:
    x = tones(440.0).cuda()
    y = Compose(SpeedPerturb(), AddNoise(p=1.0, seed=0))(x)
    assert y.is_cuda and y.shape == x.shape
    assert SpecAugment()(torch.randn(2, 64, 101, device="cuda")).is_cuda
