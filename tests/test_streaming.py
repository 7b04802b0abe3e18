"""audiolab.streaming: the causal mask model, run chunk by chunk, equals its offline run."""

import pytest
import torch

from audiolab import streaming
from audiolab.streaming import CausalMaskLSTM, StreamingDenoiser


def _model(seed: int = 0) -> CausalMaskLSTM:
    torch.manual_seed(seed)
    return CausalMaskLSTM(hidden=16, layers=2).eval()


@pytest.mark.parametrize("chunk", [1, 77, 128, 1000, 5003])
def test_stream_equals_offline_for_any_chunking(chunk):
    model = _model()
    x = torch.randn(2, 5003) * 0.1  # not a multiple of the hop
    offline = streaming.enhance_offline(model, x)
    online = streaming.stream(model, x, chunk)
    assert online.shape == x.shape
    torch.testing.assert_close(online, offline, atol=1e-5, rtol=0)


def test_model_is_causal():
    model = _model()
    Y = torch.randn(1, 257, 40, dtype=torch.complex64)
    changed = Y.clone()
    changed[..., 25:] = torch.randn(1, 257, 15, dtype=torch.complex64)  # frame 24's future
    with torch.no_grad():
        a, b = model(Y), model(changed)
    torch.testing.assert_close(a[..., :25], b[..., :25])
    assert not torch.allclose(a[..., 25:], b[..., 25:])
    with torch.no_grad():  # each frame is normalised by itself: a louder frame, the same mask
        torch.testing.assert_close(model(Y * 10), a, atol=1e-4, rtol=0)


def test_measured_lag_matches_the_stated_latency():
    denoiser = StreamingDenoiser(_model())
    hop, n_fft = streaming.HOP, streaming.N_FFT
    fed = out = 0
    for _ in range(20):
        out += denoiser.process(torch.randn(1, hop)).shape[-1]
        fed += hop
        if out:  # past the start, the output trails the input by n_fft - hop at hop boundaries
            assert fed - out == n_fft - hop
    assert streaming.algorithmic_latency() == n_fft == 512  # 32 ms at 16 kHz
    assert fed - out + hop - 1 < streaming.algorithmic_latency()  # the worst sample waits n_fft - 1


def test_reset_starts_an_independent_stream_and_bad_chunks_are_refused():
    model = _model()
    x = torch.randn(1, 3000) * 0.1
    denoiser = StreamingDenoiser(model)
    denoiser.process(torch.randn(1, 999))
    with pytest.raises(ValueError, match="1 channel.*reset"):
        denoiser.process(torch.randn(2, 100))
    with pytest.raises(ValueError, match=r"\(batch, samples\)"):
        denoiser.process(torch.randn(100))
    denoiser.reset()
    parts = [denoiser.process(x[:, :1500]), denoiser.process(x[:, 1500:]), denoiser.finish()]
    torch.testing.assert_close(torch.cat(parts, -1)[:, :3000], streaming.enhance_offline(model, x),
                               atol=1e-5, rtol=0)
    with pytest.raises(RuntimeError, match="finished"):
        denoiser.process(x)
    with pytest.raises(RuntimeError, match="process"):
        StreamingDenoiser(model).finish()


def test_trains_with_chapter_4_recipe():
    from types import SimpleNamespace

    from audiolab import enhancement

    gen = torch.Generator().manual_seed(0)
    t = torch.arange(4000) / 16000
    clean = torch.stack([0.3 * torch.sin(2 * torch.pi * (200 + 50 * i) * t) for i in range(8)])
    noise_ = 0.3 * torch.randn(8, 4000, generator=gen)
    data = SimpleNamespace(noisy=clean + noise_, clean=clean, noise=noise_)
    model = _model()
    history = enhancement.train_mask_model(model, data, data, epochs=3, batch_size=4, device="cpu")
    assert history["valid_loss"][-1] < history["valid_loss"][0]
