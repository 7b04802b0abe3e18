"""audiolab.verification: cosine trials and the equal error rate."""

import numpy as np
import pytest
import torch

from audiolab import verification


def test_trials_cover_every_pair_once():
    e = torch.tensor([[1.0, 0], [2.0, 0], [0, 1.0], [0, -3.0]])
    scores, target = verification.cosine_trials(e, [0, 0, 1, 1])
    assert len(scores) == 6
    assert target.tolist() == [True, False, False, False, False, True]
    torch.testing.assert_close(scores, torch.tensor([1.0, 0, 0, 0, 0, -1.0]))


def test_eer_of_gaussian_scores_matches_theory():
    from scipy.stats import norm

    rng = np.random.default_rng(0)
    d = 2.0  # target scores N(d, 1), non-target N(0, 1): EER = Φ(-d/2)
    scores = np.concatenate([rng.normal(d, 1, 200000), rng.normal(0, 1, 200000)])
    target = np.arange(400000) < 200000
    eer, threshold = verification.equal_error_rate(scores, target)
    assert eer == pytest.approx(norm.cdf(-d / 2), abs=0.003)
    assert threshold == pytest.approx(d / 2, abs=0.02)


def test_perfect_separation_has_zero_eer_and_bad_input_is_explained():
    eer, _ = verification.equal_error_rate([0.9, 0.8, 0.1, 0.2], [True, True, False, False])
    assert eer == 0.0
    eer, _ = verification.equal_error_rate([0.1, 0.2, 0.9, 0.8], [True, True, False, False])
    assert eer == 1.0
    with pytest.raises(ValueError, match="both target and non-target"):
        verification.equal_error_rate([0.1, 0.2], [True, True])
    with pytest.raises(ValueError, match="at least two"):
        verification.cosine_trials(torch.ones(1, 3), [0])
