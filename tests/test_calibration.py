"""audiolab.calibration: reliability bins, ECE, temperature scaling."""

import pytest
import torch

from audiolab import calibration


def _overconfident(n=4000, classes=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=gen)
    logits = torch.randn(n, classes, generator=gen)
    logits[torch.arange(n), labels] += 1.5  # right more often than chance
    return logits * 4, labels  # sharpened: over-confident


def test_ece_matches_the_reliability_bins_and_torchmetrics():
    logits, labels = _overconfident()
    probs = torch.softmax(logits, 1)
    bins = calibration.reliability(probs, labels, n_bins=10)
    assert int(bins["count"].sum()) == len(labels)
    used = bins["count"] > 0
    by_hand = float((bins["count"][used] / len(labels)
                     * (bins["accuracy"][used] - bins["confidence"][used]).abs()).sum())
    assert calibration.expected_calibration_error(probs, labels, 10) == pytest.approx(by_hand,
                                                                                      abs=1e-5)
    assert by_hand > 0.1  # over-confident


def test_temperature_scaling_recovers_the_temperature_and_keeps_predictions():
    gen = torch.Generator().manual_seed(1)
    true_logits = torch.randn(20000, 4, generator=gen) * 2
    labels = torch.distributions.Categorical(logits=true_logits).sample()
    with torch.inference_mode():  # as audiolab.training.predict returns them
        sharp = true_logits * 3  # 3x too sharp
    t = calibration.fit_temperature(sharp, labels)
    assert t == pytest.approx(3.0, rel=0.05)
    scaled = calibration.temperature_scale(true_logits * 3, t)
    assert torch.equal(scaled.argmax(1), true_logits.argmax(1))
    before = calibration.expected_calibration_error(torch.softmax(true_logits * 3, 1), labels)
    after = calibration.expected_calibration_error(scaled, labels)
    assert after < before / 3


def test_bad_inputs_are_explained():
    with pytest.raises(ValueError, match="apply softmax"):
        calibration.reliability(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(examples, classes\)"):
        calibration.expected_calibration_error(torch.ones(4) / 4, torch.zeros(4))
    with pytest.raises(ValueError, match="positive"):
        calibration.temperature_scale(torch.randn(2, 3), 0.0)
