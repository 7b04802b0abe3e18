"""Quantisers, bit accounting, real-codec round trips and quality scores (audiolab.codecs)."""

import math

import numpy as np
import pytest
import torch

from audiolab import codecs


def test_bit_accounting():
    assert codecs.kbit_per_second(62.5, 80) == pytest.approx(5.0)
    assert codecs.vq_bits(1024, 3) == pytest.approx(30.0)
    assert codecs.vq_bits(256) == pytest.approx(8.0)
    with pytest.raises(ValueError):
        codecs.kbit_per_second(0, 10)
    with pytest.raises((ValueError, TypeError)):
        codecs.vq_bits(1, 2)


def test_uniform_quantize_levels_and_straight_through():
    x = torch.linspace(-2, 2, 101, requires_grad=True)
    q = codecs.uniform_quantize(x, 2, -1.0, 1.0)
    levels = torch.unique(q.detach())
    assert len(levels) == 4
    assert torch.allclose(levels, torch.tensor([-1.0, -1 / 3, 1 / 3, 1.0]))
    assert float(q.detach().abs().max()) == pytest.approx(1.0)  # clipped
    inside = x.detach().abs() <= 1
    err = (q.detach() - x.detach())[inside].abs().max()
    assert float(err) <= (2 / 3) / 2 + 1e-6  # at most half a step
    q.sum().backward()
    assert torch.all(x.grad == 1)  # straight through
    with pytest.raises(ValueError):
        codecs.uniform_quantize(x, 2, 1.0, 1.0)


@pytest.mark.parametrize("ema", [True, False])
def test_vector_quantizer_picks_nearest_and_learns_clusters(ema):
    torch.manual_seed(0)
    centres = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    data = centres[torch.randint(0, 4, (2048,))] + 0.05 * torch.randn(2048, 2)
    vq = codecs.VectorQuantizer(8, 2, ema=ema)
    opt = torch.optim.Adam(vq.parameters(), lr=0.05) if not ema else None
    for _ in range(200):
        out = vq(data)
        if opt is not None:
            opt.zero_grad()
            out.loss.backward()
            opt.step()
    vq.eval()
    out = vq(data)
    # nearest entry: no entry is closer than the chosen one
    d = torch.cdist(data, vq.codebook.detach())
    assert torch.equal(out.codes, d.argmin(1))
    assert float((out.quantized - data).pow(2).mean()) < 0.05
    assert out.loss.ndim == 0 and float(out.perplexity) >= 3.5


def test_vector_quantizer_straight_through_and_shapes():
    vq = codecs.VectorQuantizer(16, 4)
    z = torch.randn(3, 4, 7, requires_grad=True)  # channels first
    out = vq(z)
    assert out.quantized.shape == z.shape and out.codes.shape == (3, 7)
    out.quantized.sum().backward()
    assert torch.allclose(z.grad, torch.ones_like(z))
    vq.eval()
    again = vq(z)
    assert torch.allclose(vq.lookup(again.codes), again.quantized.detach(), atol=1e-6)
    assert vq.bits == 4
    with pytest.raises(ValueError, match="length"):
        vq(torch.randn(3, 5))


def test_residual_vq_error_falls_with_stages():
    torch.manual_seed(0)
    data = torch.randn(4096, 8)
    rvq = codecs.ResidualVQ(4, 64, 8, quantizer_dropout=False)
    for _ in range(30):
        rvq(data)
    rvq.eval()
    errors = [float((rvq(data, n).quantized - data).pow(2).mean()) for n in range(1, 5)]
    assert all(b < a for a, b in zip(errors, errors[1:], strict=False))
    assert rvq.bits(3) == pytest.approx(18.0)
    assert rvq(data, 2).codes.shape == (4096, 2)
    with pytest.raises(ValueError):
        rvq(data, 5)


def _speechy(seconds=2.0, sr=16000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = sum(np.sin(k * phase) / k for k in range(1, 20))
    env = np.sin(2 * np.pi * 1.5 * t) ** 2
    return (0.2 * env * voiced + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.mark.parametrize(("codec", "level", "mode"),
                         [("opus", 0.9, None), ("vorbis", 0.5, None), ("mp3", 0.9, "CONSTANT")])
def test_codec_round_trip_measures_bitrate_and_aligns(codec, level, mode):
    clips = np.stack([_speechy(1.0, seed=s) for s in range(4)])
    decoded, kbps = codecs.codec_round_trip(clips, 16000, codec, level, mode)
    assert decoded.shape == clips.shape and decoded.dtype == np.float32
    assert 4 < kbps < 200
    snr = 10 * np.log10((clips**2).sum() / ((clips - decoded) ** 2).sum())
    assert snr > 3, f"{codec}: decoded clips not aligned with the input (SNR {snr:.1f} dB)"


def test_opus_bitrate_falls_with_compression_level():
    wave = _speechy(3.0)
    _, high = codecs.codec_round_trip(wave, 16000, "opus", 0.5)
    _, low = codecs.codec_round_trip(wave, 16000, "opus", 1.0)
    assert low < high / 3


def test_codec_round_trip_refuses_bad_input():
    with pytest.raises(ValueError, match="codec"):
        codecs.codec_round_trip(np.zeros(1000, np.float32), 16000, "aac", 0.5)
    with pytest.raises(ValueError, match="exceed"):
        codecs.codec_round_trip(np.full(1000, 2.0, np.float32), 16000, "opus", 0.5)
    with pytest.raises(ValueError):
        codecs.codec_round_trip(np.zeros(1000, np.float32), 16000, "opus", 1.5)


def test_quality_scores_order_degradations():
    clean = np.stack([_speechy(2.0, seed=s) for s in range(2)])
    rng = np.random.default_rng(1)
    light = clean + 0.003 * rng.standard_normal(clean.shape).astype(np.float32)
    heavy = clean + 0.05 * rng.standard_normal(clean.shape).astype(np.float32)
    q_light = codecs.speech_quality(clean, light, processes=1)
    q_heavy = codecs.speech_quality(clean, heavy, processes=2)
    assert q_light["pesq"].shape == (2,)
    assert np.all(q_light["pesq"] > q_heavy["pesq"])
    assert np.all(q_light["stoi"] > q_heavy["stoi"])
    assert np.all(q_light["stoi"] <= 1.0 + 1e-6)
    same = codecs.log_mel_distance(clean, clean)
    assert np.allclose(same, 0)
    assert np.all(codecs.log_mel_distance(clean, heavy) > codecs.log_mel_distance(clean, light))
    with pytest.raises(ValueError, match="16000"):
        codecs.pesq_wb(clean, light, sample_rate=8000)
    with pytest.raises(ValueError, match="shape"):
        codecs.stoi(clean, light[:1])
    assert math.isnan(codecs.pesq_wb(np.zeros(16000, np.float32),
                                     np.zeros(16000, np.float32), processes=1)[0])
