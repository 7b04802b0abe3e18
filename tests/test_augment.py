"""audiolab.augment: noise, speed perturbation and SpecAugment on device batches."""

import pytest
import torch

from audiolab import augment
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


# --- domain randomisation ---------------------------------------------------------------------
from audiolab.augment import (  # noqa: E402
    Clip,
    MicrophoneEQ,
    Reverb,
    ShiftAndGain,
    TelephoneBand,
    domain_randomisation,
    room_impulse_responses,
)


def test_parameters_are_drawn_on_the_cpu_the_same_for_every_device() -> None:
    a, b = AddNoise(seed=3), AddNoise(seed=3)
    cpu, moved = a.rand(5), b.rand(5, device=torch.device("meta"))
    assert cpu.device.type == "cpu" and moved.device.type == "meta"
    torch.testing.assert_close(AddNoise(seed=3).rand(5), cpu)  # the seed fixes the draws


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_training_chain_never_waits_for_the_gpu() -> None:
    """No synchronisation: the CPU can queue the next batch's work while the GPU computes."""
    x = tones(440.0, batch=64).cuda()
    speech = tones(300.0, batch=32).cuda()
    speed = SpeedPerturb(seed=0)
    chain = Compose(speed, domain_randomisation(16000, seed=1),
                    AddNoise(kinds=("white", "pink", "brown", "hum", "babble"), speech=speech,
                             p=0.5, seed=2))
    for factor in speed.factors:  # the first calls make FFT plans and resampling kernels
        speed.perturb(x, factor)
    for _ in range(5):
        chain(x)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            y = chain(x)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert y.is_cuda and y.shape == x.shape and bool(torch.isfinite(y).all())


def _rt60_schroeder(h: torch.Tensor) -> float:
    """RT60 from the Schroeder energy decay curve, by a line fitted between -5 and -25 dB (T20)."""
    edc = h.double().pow(2).flip(0).cumsum(0).flip(0)
    edc_db = 10 * torch.log10(edc / edc[0])
    t = torch.arange(len(h), dtype=torch.float64) / SR
    fit = (edc_db <= -5) & (edc_db >= -25)
    slope = torch.linalg.lstsq(
        torch.stack([t[fit], torch.ones_like(t[fit])], 1), edc_db[fit, None]
    ).solution[0, 0]
    return float(-60.0 / slope)


def test_room_impulse_responses_have_the_asked_rt60_and_drr() -> None:
    rt60 = torch.tensor([0.3, 0.6, 1.0])
    torch.manual_seed(0)
    rir = room_impulse_responses(rt60, torch.full((3,), -10.0), SR)
    assert rir.shape == (3, int(1.2 * 1.0 * SR))
    for k in range(3):
        assert _rt60_schroeder(rir[k]) == pytest.approx(float(rt60[k]), rel=0.1)
    torch.testing.assert_close(rir.pow(2).sum(1), torch.ones(3))
    rir = room_impulse_responses(torch.full((2,), 0.5), torch.tensor([0.0, 10.0]), SR)
    direct, late = rir[:, 0] ** 2, rir[:, 1:].pow(2).sum(1)
    torch.testing.assert_close(10 * torch.log10(direct / late), torch.tensor([0.0, 10.0]))
    with pytest.raises(ValueError, match="rt60 > 0"):
        room_impulse_responses(torch.tensor([0.0]), torch.tensor([0.0]))


def test_reverb_smears_in_time_keeps_level_and_is_identity_in_eval() -> None:
    click = torch.zeros(4, SR)
    click[:, 1000] = 1.0
    wet = Reverb(rt60=0.5, drr_db=0.0, p=1.0, seed=0)(click)
    assert wet.shape == click.shape
    tail = wet[:, 1000 + int(0.1 * SR) :].pow(2).sum(1) / wet.pow(2).sum(1)
    assert (tail > 0.01).all()  # energy 100 ms after the click: a room, not a dry signal
    torch.testing.assert_close(wet.pow(2).mean(1), click.pow(2).mean(1))
    assert torch.equal(Reverb(p=1.0).eval()(click), click)
    assert torch.equal(Reverb(p=0.0)(click), click)
    with pytest.raises(ValueError, match="low <= high"):
        Reverb(rt60=(1.0, 0.2))


def _band_energy(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    spec = torch.fft.rfft(x).abs().pow(2)
    f = torch.fft.rfftfreq(x.shape[-1], 1 / SR)
    return spec[:, (f >= lo) & (f < hi)].sum(1) / spec.sum(1)


def test_telephone_band_removes_low_and_high_frequencies() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, SR) * 0.1
    y = TelephoneBand(p=1.0, seed=0)(x)
    assert y.shape == x.shape
    assert (_band_energy(y, 4200, 8000) < 1e-3).all()  # above the 8 kHz channel's Nyquist
    assert (_band_energy(y, 0, 150) < 0.01).all()
    assert (_band_energy(y, 500, 3000) > 0.8).all()
    with pytest.raises(ValueError, match="8000"):
        TelephoneBand(sample_rate=4000)


def test_microphone_eq_colours_the_spectrum_but_not_the_level() -> None:
    torch.manual_seed(0)
    x = torch.randn(16, SR) * 0.1
    y = MicrophoneEQ(p=1.0, seed=0)(x)
    torch.testing.assert_close(y.pow(2).mean(1), x.pow(2).mean(1), rtol=1e-3, atol=1e-6)
    bands = [(100, 400), (400, 1500), (1500, 3000)]
    ratio = torch.stack([_band_energy(y, *b) / _band_energy(x, *b) for b in bands], 1)
    assert ratio.std(0).min() > 0.05  # each example coloured differently
    flat = MicrophoneEQ(gain_db=0.0, low_cut=1.0, high_cut=7900.0, p=1.0, seed=0)(x)
    assert (_band_energy(flat, 200, 3500) / _band_energy(x, 200, 3500) - 1).abs().max() < 0.05
    with pytest.raises(ValueError, match="Nyquist"):
        MicrophoneEQ(high_cut=(3000.0, 9000.0))


def test_shift_and_gain_moves_and_scales() -> None:
    x = torch.zeros(64, 1000)
    x[:, 500] = 1.0
    y = ShiftAndGain(max_shift=0.01, gain_db=(-6.0, 0.0), sample_rate=SR, seed=0)(x)
    where = y.abs().argmax(1)
    assert (where - 500).abs().max() <= 160 and len(where.unique()) > 10
    peak = y.abs().amax(1)
    assert peak.min() >= 10 ** (-6 / 20) - 1e-6 and peak.max() <= 1.0 + 1e-6


def test_clip_limits_the_peak_of_the_chosen_examples() -> None:
    x = tones(440.0, batch=100)
    y = Clip(ceiling=0.5, p=0.5, seed=0)(x)
    clipped = (y != x).any(1)
    assert 0.3 < clipped.float().mean() < 0.7
    torch.testing.assert_close(y[clipped].abs().amax(1), torch.full((int(clipped.sum()),), 0.25))
    with pytest.raises(ValueError, match="fraction"):
        Clip(ceiling=(0.5, 2.0))


def test_domain_randomisation_chain_is_seeded_finite_and_eval_identity() -> None:
    torch.manual_seed(0)
    x = torch.randn(8, SR) * 0.1
    a, b = domain_randomisation(seed=3)(x), domain_randomisation(seed=3)(x)
    assert torch.equal(a, b) and a.shape == x.shape and torch.isfinite(a).all()
    assert not torch.equal(a, x)
    chain = domain_randomisation().eval()
    assert torch.equal(chain(x), x)
    rooms = [m for m in chain.modules() if isinstance(m, augment.Reverb)]
    assert len(rooms) == 1 and rooms[0].rt60 == (0.2, 1.2) and rooms[0].drr_db == (-6.0, 12.0)
    assert rooms[0].p == 0.6


def test_biquad_cascade_in_the_frequency_domain_equals_recursive_filtering() -> None:
    # the FFT cascade of MicrophoneEQ and TelephoneBand against torchaudio's lfilter, biquad by
    # biquad, each row with its own filters (high-pass, low-pass, two peaks)
    torch.manual_seed(0)
    m, sr = 4, 16000
    x = torch.randn(m, 8000)
    filters = [
        augment._biquad_pass("high", torch.tensor([50.0, 120.0, 200.0, 300.0]), 0.707, sr),
        augment._biquad_pass("low", torch.tensor([3400.0, 5000.0, 7000.0, 7800.0]), 0.707, sr),
        augment._biquad_peaking(torch.tensor([300.0, 900.0, 2500.0, 5000.0]),
                                torch.tensor([-8.0, 6.0, 3.0, -4.0]),
                                torch.tensor([0.7, 1.5, 3.0, 2.0]), sr),
    ]
    recursive = x
    for b, a in filters:
        recursive = augment._filter(recursive, b, a)
    assert torch.equal(augment._filter_cascade(x, filters), recursive)  # CPU: the recursion
    cascade = augment._filter_cascade_fft(x, filters)  # what a GPU runs
    assert cascade.shape == x.shape and cascade.dtype == x.dtype
    assert torch.allclose(cascade, recursive, atol=1e-4 * float(recursive.abs().max()))


def test_reverb_uses_one_response_length_for_every_batch(monkeypatch) -> None:
    # the same taps whatever RT60s are drawn (a GPU then reuses one FFT plan)
    rir = room_impulse_responses(torch.tensor([0.2, 0.3]), torch.zeros(2), SR, length=4000)
    assert rir.shape == (2, 4000)
    assert torch.allclose(rir.pow(2).sum(1), torch.ones(2))
    with pytest.raises(ValueError, match="at least 8"):
        room_impulse_responses(torch.tensor([0.2]), torch.zeros(1), SR, length=4)
    seen = []
    original = augment.AF.fftconvolve
    monkeypatch.setattr(augment.AF, "fftconvolve",
                        lambda x, h: seen.append(h.shape[-1]) or original(x, h))
    reverb = augment.Reverb(rt60=(0.2, 0.9), p=1.0, seed=0).train()
    for _ in range(3):
        reverb(torch.randn(4, SR))
    assert seen == [int(1.2 * 0.9 * SR)] * 3
