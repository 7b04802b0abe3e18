"""Chapter 4's mask model and recipe, as reused by chapter 6 (audiolab.enhancement)."""

from types import SimpleNamespace

import pytest
import torch

from audiolab import enhancement


def _corpus(n=8, samples=4000, seed=0):
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / 16000
    clean = torch.stack([0.3 * torch.sin(2 * torch.pi * (200 + 50 * i) * t) for i in range(n)])
    noise_ = 0.3 * torch.randn(n, samples, generator=gen)
    return SimpleNamespace(noisy=clean + noise_, clean=clean, noise=noise_)


def test_mask_lstm_outputs_a_mask_of_the_input_shape():
    model = enhancement.MaskLSTM(hidden=8)
    (Y,) = enhancement.spectra(torch.randn(2, 4000))
    with torch.no_grad():
        mask = model(Y)
    assert mask.shape == Y.shape
    assert float(mask.min()) >= 0 and float(mask.max()) <= 1


def test_psa_target_is_between_zero_and_noisy_magnitude():
    clean, noisy = torch.randn(2, 4000), torch.randn(2, 4000)
    Y, S = enhancement.spectra(noisy, clean)
    target = enhancement.psa_target(Y, S)
    assert torch.all(target >= 0) and torch.all(target <= Y.abs() + 1e-6)
    # a clean input is its own target: the mask is one
    assert torch.allclose(enhancement.psa_target(S, S), S.abs(), atol=1e-5)


def test_training_recipe_lowers_the_loss_and_enhance_keeps_shape():
    torch.manual_seed(0)
    train, valid = _corpus(16, seed=0), _corpus(4, seed=1)
    model = enhancement.MaskLSTM(hidden=16)
    history = enhancement.train_mask_model(model, train, valid, epochs=6, batch_size=8,
                                           device="cpu")
    assert len(history) == 6
    assert history["train_loss"][-1] < history["train_loss"][0]
    out = enhancement.enhance(model.eval(), valid.noisy)
    assert out.shape == valid.noisy.shape


def test_bad_inputs_are_refused():
    model = enhancement.MaskLSTM(hidden=4)
    with pytest.raises(ValueError, match="batch, samples"):
        enhancement.enhance(model, torch.randn(4000))
    with pytest.raises(TypeError, match="NoisySpeech"):
        enhancement.train_mask_model(model, torch.randn(3), _corpus(2), epochs=1, batch_size=2)
    with pytest.raises(ValueError, match="config"):
        enhancement.train_mask_lstm(_corpus(2), _corpus(2), config={"epochs": 1})
    with pytest.raises(ValueError, match="size"):
        enhancement.pretrained_mask_lstm(size="huge")
