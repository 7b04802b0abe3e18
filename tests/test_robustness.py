"""audiolab.robustness: the held-out recording chain and the proxy test."""

import pytest
import torch
from torch import nn

from audiolab import models, robustness
from audiolab.noise import pink


def _clips(n: int = 6, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(16000) / 16000
    f0 = 120 + 100 * torch.rand(n, 1, generator=gen)
    voiced = sum(torch.sin(2 * torch.pi * k * f0 * t) / k for k in range(1, 8))
    envelope = torch.exp(-((t - 0.5) / 0.15) ** 2)
    return 0.3 * voiced * envelope / voiced.abs().amax(1, keepdim=True)


def test_the_chain_is_deterministic_and_keeps_shape_and_level():
    x, talkers = _clips(), _clips(8, seed=1)
    a = robustness.held_out_recording(x, talkers, seed=3)
    b = robustness.held_out_recording(x, talkers, seed=3)
    c = robustness.held_out_recording(x, talkers, seed=4)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    ratio = a.pow(2).mean(1).sqrt() / x.pow(2).mean(1).sqrt()
    assert bool(((ratio > 0.7) & (ratio < 1.4)).all())


def test_each_degradation_is_what_it_says():
    x, talkers = _clips(), _clips(8, seed=1)
    babble = robustness.held_out_babble(x, talkers, seed=0)
    snr = 10 * torch.log10(x.pow(2).sum(1) / (babble - x).pow(2).sum(1))
    lo, hi = robustness.HELD_OUT["babble_snr_db"]
    assert bool(((snr > lo - 0.01) & (snr < hi + 0.01)).all())
    coded = robustness.held_out_codec(x)
    assert float(nn.functional.cosine_similarity(x, coded, dim=1).min()) > 0.9  # aligned
    assert not torch.allclose(coded, x, atol=1e-3)  # but not untouched
    hall = robustness.held_out_reverb(x, seed=0)
    # a long tail: energy after the clip's envelope has died away
    assert float(hall[:, 13000:].pow(2).sum()) > 100 * float(x[:, 13000:].pow(2).sum())


def test_the_codec_streams_are_fixed_chunks_whatever_the_threads(monkeypatch):
    from audiolab.codecs import codec_round_trip

    x = _clips(5)
    monkeypatch.setattr(robustness, "CODEC_CHUNK", 2)
    coded = robustness.held_out_codec(x)
    level = robustness.HELD_OUT["codec_level"]
    expected = torch.cat([
        torch.from_numpy(codec_round_trip(chunk.numpy(), 16000, "opus", level)[0])
        for chunk in torch.split(x, 2)
    ])  # fmt: skip
    torch.testing.assert_close(coded, expected)


def test_proxy_test_scores_every_set_and_explains_missing_arguments():
    x, talkers = _clips(), _clips(8, seed=1)
    labels = torch.zeros(len(x), dtype=torch.long)

    class Loudness(nn.Module):  # "digit 0" when the clip is not silent
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(1))

        def forward(self, w):
            logits = torch.zeros(len(w), 10)
            logits[:, 0] = self.w * w.abs().mean(1)
            return logits

    sets = robustness.degraded_test_sets(x, talkers)
    assert list(sets) == ["clean", "hall", "babble", "codec", "hall + babble + codec"]
    result = robustness.proxy_test(Loudness(), labels=labels, sets=sets)
    assert result["clips"] == len(x) and set(result["accuracy"].values()) == {1.0}
    with pytest.raises(ValueError, match="labels"):
        robustness.proxy_test(Loudness(), x, None, talkers)
    with pytest.raises(ValueError, match="talkers"):
        robustness.proxy_test(Loudness(), x, labels)


def test_the_recipe_puts_domain_randomisation_in_front_of_the_noise(monkeypatch):
    seen = {}

    def fake_fit(model, train, valid, loss, **kw):
        seen["transform"] = kw["train_transform"]
        return []

    monkeypatch.setattr("audiolab.training.fit", fake_fit)
    waves, labels = pink(16000, batch=4), torch.arange(4)
    for randomise in (False, True):
        models.train_digit_classifier(models.DigitCNN(frontend=True), (waves, labels),
                                      (waves, labels), size="quick", randomise=randomise)
        names = [type(m).__name__ for m in next(seen["transform"].children())]
        expected = ["SpeedPerturb", *(["Compose"] if randomise else []), "AddNoise"]
        assert names == expected
        noise = list(next(seen["transform"].children()))[-1]
        assert ("babble" in noise.kinds) == randomise  # other training voices, when randomising
        if randomise:
            assert noise.speech is waves
            # babble is three of the seven kinds (drawn uniformly) and 70 % of the clips get noise
            assert noise.kinds.count("babble") == 3 and len(noise.kinds) == 7
            assert noise.p == 0.7
        else:
            assert noise.p == 0.5


def test_the_full_size_pretrained_classifier_is_the_wide_one(monkeypatch):
    built = {}

    def fake_cached(path, model, train, retrain=False):
        built[path.name] = model
        return model

    monkeypatch.setattr(models, "cached_weights", fake_cached)
    for size in ("quick", "full"):
        models.pretrained_digit_classifier(size=size, device="cpu")
    by_size = {name.split("-")[2]: model for name, model in built.items()}
    convs = {size: [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
             for size, model in by_size.items()}
    assert convs == {"quick": [16, 32, 64, 128, 4], "full": [32, 64, 128, 256, 4]}
    # both sizes pool with attention (the last Conv2d above scores 4 attention maps)
    assert all(isinstance(m.head[0], models.AttentionPool) for m in by_size.values())
    # the width is part of the hashed configuration: changing it changes the file name
    monkeypatch.setitem(models.TRAINING["full"], "channels", (8, 16, 32, 64))
    assert models.weights_path("full").name not in built
    # ... and so is the pooling
    monkeypatch.setitem(models.TRAINING["quick"], "pool", "average")
    assert models.weights_path("quick").name not in built
