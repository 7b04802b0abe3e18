"""Helpers for adversarial training and for judging generated digits. Taught in chapter 8.

- :func:`gradient_penalty`: the WGAN-GP term ``E[(‖∇ₓ̂ D(x̂)‖₂ − 1)²]`` on random points
  between real and generated examples (Gulrajani et al., 2017);
- :func:`r1_penalty`: the R1 term ``E[‖∇ₓ D(x)‖²]`` on real examples (Mescheder et al., 2018);
- :func:`judge`: the class posteriors and penultimate-layer embeddings of a judging classifier
  such as :func:`audiolab.models.pretrained_digit_classifier`, for
  :func:`audiolab.generative.inception_score` and :func:`audiolab.generative.frechet_distance`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from audiolab import checks


def gradient_penalty(
    critic: Callable[..., Tensor], real: Tensor, fake: Tensor, *args: Tensor
) -> Tensor:
    """WGAN-GP's penalty ``E[(‖∇ₓ̂ critic(x̂)‖₂ − 1)²]`` with ``x̂ = ε x + (1 − ε) x̃``.

    ``ε`` is drawn uniformly in [0, 1] once per example, so ``x̂`` lies on the segment between a
    real example ``x`` and a generated one ``x̃``; the norm is taken over all of an example's
    axes. The result keeps its graph (``create_graph=True``), so that adding it to the critic's
    loss trains the critic towards gradients of norm 1.

    Parameters
    ----------
    critic
        The critic (discriminator), called as ``critic(x̂, *args)``; it returns one score per
        example.
    real, fake
        Real and generated examples of the same shape ``(batch, ...)``; ``fake`` may be detached.
    *args
        Further inputs of the critic, e.g. the class labels of a conditional critic.

    Returns
    -------
    Tensor
        A scalar (float32).
    """
    if real.shape != fake.shape:
        raise ValueError(
            f"real and fake must have the same shape, got {tuple(real.shape)} and "
            f"{tuple(fake.shape)}: generate as many examples as there are real ones"
        )
    if real.ndim < 2:
        raise ValueError(f"expected a batch (batch, ...), got shape {tuple(real.shape)}")
    eps = torch.rand(real.shape[0], *([1] * (real.ndim - 1)), device=real.device)
    mixed = eps * real.detach().float() + (1 - eps) * fake.detach().float()
    return (_input_gradient(critic, mixed, *args).norm(dim=1) - 1).pow(2).mean()


def _input_gradient(critic: Callable[..., Tensor], x: Tensor, *args: Tensor) -> Tensor:
    """``∇ₓ critic(x)`` per example, flattened to ``(batch, features)``, in float32, with its
    graph kept (``create_graph=True``) so that a penalty on it trains the critic."""
    x = x.detach().float().requires_grad_(True)
    scores = critic(x, *args)
    if scores.shape != (len(x),) and scores.shape != (len(x), 1):
        raise ValueError(
            f"the discriminator must return one score per example, got shape "
            f"{tuple(scores.shape)} for a batch of {len(x)}"
        )
    (grad,) = torch.autograd.grad(scores.float().sum(), x, create_graph=True)
    return grad.flatten(1)


def r1_penalty(discriminator: Callable[..., Tensor], real: Tensor, *args: Tensor) -> Tensor:
    """The R1 penalty ``E[‖∇ₓ D(x)‖₂²]`` on real examples ``x`` (Mescheder et al., 2018).

    Zero-centred and taken on the data only: it penalises a discriminator whose logit changes
    steeply around the real examples, which is what lets it keep sharpening its boundary
    instead of settling. The loss adds ``γ / 2`` times it. The squared norm is taken over all of
    an example's axes, in float32, and the result keeps its graph (``create_graph=True``), so that
    adding it to the discriminator's loss trains the discriminator.

    Parameters
    ----------
    discriminator
        Called as ``discriminator(x, *args)``; returns one logit (score) per example.
    real
        Real examples ``(batch, ...)`` (augmented ones, if the discriminator sees those).
    *args
        Further inputs of the discriminator, e.g. the class labels of a conditional one.

    Returns
    -------
    Tensor
        A scalar (float32).
    """
    if real.ndim < 2:
        raise ValueError(f"expected a batch (batch, ...), got shape {tuple(real.shape)}")
    return _input_gradient(discriminator, real, *args).pow(2).sum(1).mean()


@torch.no_grad()
def judge(
    classifier: nn.Module, waveforms: Tensor, batch_size: int = 256
) -> tuple[Tensor, Tensor]:
    """Class posteriors and penultimate embeddings of ``classifier`` for ``waveforms``.

    ``classifier`` is a :class:`audiolab.models.DigitCNN` (or a model built the same way: a
    ``frontend``, ``features`` and a ``head`` whose last layer is the linear classifier). The
    embedding is the input of that last layer: the globally pooled feature maps (128 numbers
    for the default DigitCNN; with ``pool="attention"``, as in the pretrained classifier, the
    average and the attention-pooled maps side by side, twice as many). The model is run in
    eval mode, batch by batch, on its own device; its training mode is restored afterwards.

    Parameters
    ----------
    classifier
        The judging classifier.
    waveforms
        ``(clips, samples)`` at the classifier's sample rate.
    batch_size
        Clips per forward pass.

    Returns
    -------
    (probs, embeddings)
        ``(clips, classes)`` softmax probabilities and ``(clips, features)`` embeddings, float32
        on the CPU.
    """
    for part in ("frontend", "features", "head"):
        if not hasattr(classifier, part):
            raise TypeError(
                f"judge needs a classifier with a {part!r} part, such as audiolab.models.DigitCNN; "
                f"got a {type(classifier).__name__}"
            )
    if not isinstance(classifier.head[-1], nn.Linear):
        raise TypeError("the classifier's head must end with its linear output layer")
    if waveforms.ndim != 2 or len(waveforms) == 0:
        raise ValueError(
            f"waveforms must have shape (clips, samples) with at least one clip, got "
            f"{tuple(waveforms.shape)}"
        )
    batch_size = checks.integer("batch_size", batch_size)
    device = next(classifier.parameters()).device
    was_training = classifier.training
    classifier.eval()
    probs, embeddings = [], []
    try:
        for start in range(0, len(waveforms), batch_size):
            x = waveforms[start : start + batch_size].to(device).float()
            if classifier.frontend is not None:
                x = classifier.frontend(x)
            h = classifier.head[:-1](classifier.features(x)).float()
            embeddings.append(h.cpu())
            probs.append(classifier.head[-1](h).float().softmax(dim=1).cpu())
    finally:
        classifier.train(was_training)
    return torch.cat(probs), torch.cat(embeddings)
