"""audiolab.features against librosa's definitions, STFT inversion, Griffin–Lim."""

import librosa
import numpy as np
import pytest
import torch

from audiolab import features, metrics

SR = 16000


@pytest.fixture(scope="module")
def signals() -> np.ndarray:
    """Two test signals: a chirp with a little noise, and a harmonic tone with an envelope."""
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    chirp = 0.5 * librosa.chirp(fmin=80, fmax=7000, sr=SR, duration=1.0)
    chirp = chirp + 0.01 * rng.standard_normal(SR)
    harmonic = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 20)) * np.hanning(SR) * 0.2
    return np.stack([chirp, harmonic]).astype(np.float32)


PARAMS = [
    {},  # librosa's defaults: n_fft 2048, hop 512, 128 mel bands
    {"n_fft": 512, "hop_length": 160, "n_mels": 64},
    {"n_fft": 512, "hop_length": 160, "win_length": 400, "n_mels": 40, "f_min": 20, "f_max": 7600},
]


def librosa_kwargs(params: dict) -> dict:
    out = dict(params)
    if "f_min" in out:
        out["fmin"] = out.pop("f_min")
    if "f_max" in out:
        out["fmax"] = out.pop("f_max")
    return out


@pytest.mark.parametrize("params", PARAMS)
def test_log_mel_matches_librosa(signals, params):
    ours = features.log_mel_spectrogram(signals, SR, **params).numpy()
    for i, y in enumerate(signals):
        ref = librosa.power_to_db(
            librosa.feature.melspectrogram(y=y, sr=SR, **librosa_kwargs(params))
        )
        assert ours[i].shape == ref.shape
        assert np.abs(ours[i] - ref).max() < 2e-3  # dB


@pytest.mark.parametrize("params", PARAMS)
def test_mfcc_matches_librosa(signals, params):
    ours = features.mfcc(signals, SR, n_mfcc=20, **params).numpy()
    for i, y in enumerate(signals):
        ref = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=20, **librosa_kwargs(params))
        assert ours[i].shape == ref.shape
        assert np.abs(ours[i] - ref).max() < 2e-3


def test_filterbank_matches_librosa():
    ours = features.mel_filterbank(SR, n_fft=512, n_mels=64, f_min=30, f_max=7000).numpy()
    ref = librosa.filters.mel(sr=SR, n_fft=512, n_mels=64, fmin=30, fmax=7000)
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_power_to_db_matches_librosa_and_is_per_item():
    rng = np.random.default_rng(1)
    s = rng.uniform(0, 1, (3, 5, 7)) ** 8
    s[1] *= 1e-6  # a much quieter item: its floor must follow its own peak
    ours = features.power_to_db(torch.from_numpy(s)).numpy()
    for i in range(3):
        np.testing.assert_allclose(ours[i], librosa.power_to_db(s[i]), atol=1e-4)
    with pytest.raises(ValueError):
        features.power_to_db(torch.ones(2, 2), amin=0)


def test_batched_equals_one_by_one(signals):
    batch = features.log_mel_spectrogram(np.stack([signals, signals]), SR, n_fft=512)
    assert batch.shape[:2] == (2, 2)
    single = features.log_mel_spectrogram(signals[1], SR, n_fft=512)
    torch.testing.assert_close(batch[1, 1], single)


@pytest.mark.parametrize("n_fft,hop", [(512, 128), (512, 256), (400, 100)])
def test_stft_istft_roundtrip(signals, n_fft, hop):
    x = torch.from_numpy(signals)
    spec = features.stft(x, n_fft=n_fft, hop_length=hop)
    assert spec.shape[-2] == n_fft // 2 + 1 and spec.is_complex()
    back = features.istft(spec, n_fft=n_fft, hop_length=hop, length=x.shape[-1])
    assert (back - x).abs().max() < 1e-5


def test_stft_matches_librosa(signals):
    ours = features.stft(signals[0], n_fft=512, hop_length=128).numpy()
    ref = librosa.stft(signals[0], n_fft=512, hop_length=128)
    assert np.abs(ours - ref).max() < 1e-3 * np.abs(ref).max()


def test_griffin_lim_converges(signals):
    x = torch.from_numpy(signals[1])
    mag = features.stft(x, 512, 128).abs()
    sc = [
        metrics.spectral_convergence(
            mag,
            features.stft(
                features.griffin_lim(mag, 512, 128, n_iter=n, length=len(x)), 512, 128
            ).abs(),
        ).item()
        for n in (2, 64)
    ]
    assert sc[1] < 0.5 * sc[0] and sc[1] < 0.2
    again = features.griffin_lim(mag, 512, 128, n_iter=2, length=len(x))
    torch.testing.assert_close(again, features.griffin_lim(mag, 512, 128, n_iter=2, length=len(x)))


def test_bad_arguments(signals):
    with pytest.raises(ValueError, match="Nyquist"):
        features.log_mel_spectrogram(signals, SR, f_max=9000)
    with pytest.raises(ValueError, match="n_mfcc"):
        features.mfcc(signals, SR, n_mfcc=40, n_mels=20)
    with pytest.raises(TypeError, match="floating-point"):
        features.stft(np.zeros(1000, dtype=np.int16))


def test_snr_and_spectral_convergence():
    x = torch.ones(4, 100)
    assert torch.allclose(metrics.snr_db(x, 0.9 * x), torch.full((4,), 20.0))
    assert metrics.spectral_convergence(x, x).abs().max() == 0
    with pytest.raises(ValueError):
        metrics.snr_db(x, x[:, :10])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_matches_cpu(signals):
    cpu = features.mfcc(signals, SR, n_fft=512, hop_length=160, n_mels=64)
    gpu = features.mfcc(torch.from_numpy(signals).cuda(), SR, n_fft=512, hop_length=160, n_mels=64)
    assert gpu.is_cuda
    torch.testing.assert_close(gpu.cpu(), cpu, atol=2e-3, rtol=0)


def test_mfcc_checks_for_nan_unless_told_not_to():
    x = torch.randn(2, 4000)
    x[1, 100] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        features.mfcc(x, 16000, n_fft=512, n_mels=40)
    out = features.mfcc(x, 16000, n_fft=512, n_mels=40, check_finite=False)  # a training transform
    assert torch.isfinite(out[0]).all() and not torch.isfinite(out[1]).all()
