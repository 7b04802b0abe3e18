import numpy as np
import pytest
import torch

from audiolab.generative import frechet_distance, inception_score


def test_inception_score_of_confident_uniform_set_is_number_of_classes():
    probs = torch.eye(10).repeat(5, 1)  # 50 samples, each certainly one of 10 equally used classes
    mean, std = inception_score(probs)
    assert mean == pytest.approx(10.0, rel=1e-6) and std == 0.0


def test_inception_score_of_single_class_or_unsure_set_is_one():
    assert inception_score(torch.eye(10)[[3] * 20])[0] == pytest.approx(1.0)
    assert inception_score(torch.full((20, 10), 0.1))[0] == pytest.approx(1.0)


def test_inception_score_splits_and_partial_confidence():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(400, 10)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    mean, std = inception_score(probs, splits=4)
    assert 1.0 < mean < 10.0 and std > 0.0


def test_inception_score_rejects_logits_and_bad_splits():
    with pytest.raises(ValueError, match="softmax"):
        inception_score(torch.randn(10, 4))
    with pytest.raises(ValueError, match="splits"):
        inception_score(torch.eye(4), splits=5)
    with pytest.raises(ValueError, match="2-D"):
        inception_score(torch.ones(4) / 4)


def test_frechet_distance_matches_closed_form_for_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 3))
    b = rng.normal(size=(20000, 3)) * 2.0 + np.array([1.0, 0.0, 0.0])
    # means differ by 1; covariances I and 4I: tr(I + 4I - 2*2I) = 3
    assert frechet_distance(a, b) == pytest.approx(1.0 + 3.0, abs=0.1)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(torch.from_numpy(a), b) == pytest.approx(frechet_distance(a, b))


def test_frechet_distance_errors():
    with pytest.raises(ValueError, match="sizes differ"):
        frechet_distance(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.full((5, 2), np.nan), np.zeros((5, 2)))
