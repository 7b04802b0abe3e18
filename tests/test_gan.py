"""audiolab.gan: WGAN-GP and R1 penalties, the judging classifier's posteriors and embeddings."""

import pytest
import torch
from torch import nn

from audiolab.gan import gradient_penalty, judge, r1_penalty
from audiolab.models import DigitCNN


def test_gradient_penalty_of_a_linear_critic_is_known_in_closed_form():
    # critic(x) = w . x has gradient w everywhere: the penalty is (|w| - 1)^2
    torch.manual_seed(0)
    w = torch.tensor([3.0, 4.0])
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    penalty = gradient_penalty(lambda x: x @ w, real, fake)
    assert penalty.item() == pytest.approx((5.0 - 1.0) ** 2)
    unit = gradient_penalty(lambda x: x @ (w / 5), real, fake)
    assert unit.item() == pytest.approx(0.0, abs=1e-10)


def test_gradient_penalty_trains_the_critic_and_passes_extra_inputs():
    torch.manual_seed(0)
    critic = nn.Linear(3, 1)
    real, fake = torch.randn(8, 3), torch.randn(8, 3)
    seen = []

    def conditional(x, labels):
        seen.append(labels)
        return critic(x).squeeze(1) * labels

    penalty = gradient_penalty(conditional, real, fake, torch.full((8,), 2.0))
    penalty.backward()
    assert critic.weight.grad is not None and critic.weight.grad.abs().sum() > 0
    assert len(seen) == 1
    # points between real and fake: a critic that is |x|^2 has gradient 2x at those points
    x_hat = []
    gradient_penalty(lambda x: x_hat.append(x.detach()) or x.pow(2).sum(1), real, fake)
    t = (x_hat[0] - fake) / (real - fake)
    assert torch.allclose(t, t[:, :1].expand_as(t), atol=1e-4)
    assert ((t >= 0) & (t <= 1)).all()


def test_gradient_penalty_refuses_mismatched_batches():
    with pytest.raises(ValueError, match="same shape"):
        gradient_penalty(lambda x: x.sum(1), torch.zeros(4, 2), torch.zeros(3, 2))


def test_r1_penalty_is_the_mean_squared_gradient_norm_on_the_real_examples():
    torch.manual_seed(0)
    w = torch.tensor([3.0, 4.0])
    real = torch.randn(16, 2)
    # a linear discriminator has gradient w everywhere: |w|^2 = 25
    assert r1_penalty(lambda x: x @ w, real).item() == pytest.approx(25.0)
    # D(x) = |x|^2 has gradient 2x: the penalty is the mean of 4 |x|^2 over the REAL examples
    expected = (4 * real.pow(2).sum(1)).mean()
    assert r1_penalty(lambda x: x.pow(2).sum(1), real).item() == pytest.approx(expected.item())
    # images: the norm runs over every axis of an example
    img = torch.randn(3, 1, 4, 5)
    assert r1_penalty(lambda x: 2 * x.sum((1, 2, 3)), img).item() == pytest.approx(4.0 * 20)


def test_r1_penalty_trains_the_discriminator_and_passes_labels():
    torch.manual_seed(0)
    disc = nn.Linear(3, 1)
    seen = []

    def conditional(x, labels):
        seen.append(labels)
        return disc(x).squeeze(1) * labels

    real = torch.randn(8, 3)
    penalty = r1_penalty(conditional, real, torch.full((8,), 2.0))
    # gradient 2 w per example: 4 |w|^2
    assert penalty.item() == pytest.approx(4 * disc.weight.pow(2).sum().item(), rel=1e-5)
    penalty.backward()
    assert disc.weight.grad is not None and disc.weight.grad.abs().sum() > 0
    assert len(seen) == 1 and not real.requires_grad


def test_r1_penalty_refuses_what_is_not_a_batch_of_scores():
    with pytest.raises(ValueError, match="batch"):
        r1_penalty(lambda x: x.sum(), torch.zeros(4))
    with pytest.raises(ValueError, match="one score per example"):
        r1_penalty(lambda x: x, torch.zeros(4, 3))


def test_judge_gives_probabilities_and_the_input_of_the_last_layer():
    torch.manual_seed(0)
    model = DigitCNN().eval()
    waves = 0.1 * torch.randn(5, 16000)
    probs, emb = judge(model, waves, batch_size=2)
    assert probs.shape == (5, 10) and emb.shape == (5, 128)
    assert torch.allclose(probs.sum(1), torch.ones(5), atol=1e-5)
    with torch.no_grad():
        expected = model(waves).softmax(1)
    assert torch.allclose(probs, expected, atol=1e-5)
    assert torch.allclose(model.head[-1](emb).softmax(1), probs, atol=1e-5)


def test_judge_restores_training_mode_and_explains_bad_input():
    model = DigitCNN().train()
    judge(model, torch.zeros(2, 16000))
    assert model.training
    with pytest.raises(ValueError, match="clips, samples"):
        judge(model, torch.zeros(16000))
    with pytest.raises(TypeError, match="frontend"):
        judge(nn.Linear(3, 2), torch.zeros(2, 3))
