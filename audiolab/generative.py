"""Scores for generated audio that use a classifier other than the generator being judged.

Taught in chapters 7 and 8. Both scores follow the image-generation literature, with a
classifier trained on our own real audio in place of the Inception network:

- the **Inception Score** (Salimans et al., 2016) of class posteriors ``p(y | x)``:
  ``IS = exp(E_x[KL(p(y | x) ‖ p(y))])`` with ``p(y) = E_x[p(y | x)]``; it is ``K`` for samples
  that are each confidently one of ``K`` equally frequent classes and 1 when all samples look
  alike (one class, or no confident class);
- the **Fréchet distance** between Gaussians fitted to classifier embeddings of two sets
  (Heusel et al., 2017): ``‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{1/2})``. Its value depends on
  the sample sizes, so report it next to the distance between two sets of *real* clips of the
  same sizes (the floor a perfect generator would reach).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy import linalg


def _as_2d(name: str, value: torch.Tensor | np.ndarray) -> np.ndarray:
    array = value.detach().cpu().double().numpy() if torch.is_tensor(value) else np.asarray(
        value, dtype=np.float64
    )
    if array.ndim != 2 or array.shape[0] < 2:
        raise ValueError(
            f"{name} must be a 2-D array (samples, features) with at least 2 samples, "
            f"got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values; check the model's outputs")
    return array


def inception_score(probs: torch.Tensor | np.ndarray, splits: int = 1) -> tuple[float, float]:
    """Inception Score of class posteriors ``probs`` (samples, classes), rows summing to 1.

    Parameters
    ----------
    probs
        Softmax outputs of the judging classifier for each generated (or real) clip.
    splits
        Compute the score on this many equal parts and return their mean and standard deviation
        (the literature uses 10 parts of 5,000 samples; 1 uses every sample at once).

    Returns
    -------
    (mean, std)
        ``std`` is 0 when ``splits`` is 1.
    """
    p = _as_2d("probs", probs)
    if (p < 0).any() or not np.allclose(p.sum(1), 1.0, atol=1e-3):
        raise ValueError("probs must be probabilities (non-negative rows summing to 1): "
                         "pass softmax(logits), not logits")
    if not 1 <= splits <= len(p):
        raise ValueError(f"splits must be between 1 and the number of samples, got {splits}")
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(0, keepdims=True)
        kl = (part * (np.log(part + 1e-12) - np.log(marginal + 1e-12))).sum(1)
        scores.append(float(np.exp(kl.mean())))
    return float(np.mean(scores)), float(np.std(scores))


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    """Principal matrix square root, quietly (SciPy versions differ in what sqrtm returns)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ill-conditioning is handled by the caller
        root = linalg.sqrtm(matrix)
    return root[0] if isinstance(root, tuple) else root


def frechet_distance(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to embeddings ``a`` and ``b`` (samples, dims).

    ``‖μ_a − μ_b‖² + tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^{1/2})``. Each set needs more samples than
    dimensions for a well-conditioned covariance; the square root's tiny imaginary parts from
    round-off are dropped (a large one raises an error).
    """
    x, y = _as_2d("a", a), _as_2d("b", b)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"embedding sizes differ: {x.shape[1]} vs {y.shape[1]}")
    mu = x.mean(0) - y.mean(0)
    cov_x, cov_y = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    root = _sqrtm(cov_x @ cov_y)
    if not np.isfinite(root).all():  # singular product: regularise as the FID reference code does
        eps = np.eye(len(cov_x)) * 1e-6
        root = _sqrtm((cov_x + eps) @ (cov_y + eps))
    if np.iscomplexobj(root):
        if np.abs(root.imag).max() > 1e-3 * max(1.0, np.abs(root.real).max()):
            raise ValueError("the covariance square root is far from real; use more samples "
                             "than embedding dimensions")
        root = root.real
    return float(mu @ mu + np.trace(cov_x) + np.trace(cov_y) - 2.0 * np.trace(root))
