"""Calibration of a classifier's probabilities: reliability, ECE and temperature scaling.

Taught in chapter 9 (From notebook to product). A classifier is *calibrated* when, among the
examples to which it gives confidence ``p`` (its largest class probability), a fraction ``p``
is classified correctly. Networks trained with cross-entropy are often over-confident.

- :func:`reliability`: the examples binned by confidence (equal-width bins on [0, 1]): each
  bin's mean confidence, accuracy and count, the data of a reliability diagram;
- :func:`expected_calibration_error`: ``ECE = Σ_b (n_b / n) |acc_b − conf_b|``, computed by
  ``torchmetrics`` (the same binning);
- :func:`fit_temperature` and :func:`temperature_scale`: temperature scaling (Guo et al.,
  2017): one scalar ``T > 0`` divides the logits, chosen to minimise the negative
  log-likelihood on held-out data; it changes confidences, never the predicted class.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check(probs: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    probs, labels = torch.as_tensor(probs).float(), torch.as_tensor(labels).long()
    if probs.ndim != 2 or labels.shape != probs.shape[:1]:
        raise ValueError(
            f"probs must be (examples, classes) and labels (examples,), got "
            f"{tuple(probs.shape)} and {tuple(labels.shape)}"
        )
    if probs.min() < 0 or not torch.allclose(probs.sum(1), torch.ones(len(probs)), atol=1e-3):
        raise ValueError("probs must be probabilities (rows summing to 1): apply softmax first")
    return probs, labels


def reliability(probs: Tensor, labels: Tensor, n_bins: int = 15) -> dict[str, Tensor]:
    """The reliability diagram's data: per confidence bin, ``confidence`` (mean),
    ``accuracy`` and ``count``; empty bins have count 0 and NaN means. Also ``edges``."""
    probs, labels = _check(probs, labels)
    confidence, predicted = probs.max(1)
    correct = (predicted == labels).float()
    edges = torch.linspace(0, 1, n_bins + 1)
    index = torch.bucketize(confidence, edges[1:-1], right=False)  # bins (lo, hi]
    count = torch.bincount(index, minlength=n_bins).float()
    total_conf = torch.bincount(index, confidence, minlength=n_bins)
    total_acc = torch.bincount(index, correct, minlength=n_bins)
    with torch.no_grad():
        conf_mean = torch.where(count > 0, total_conf / count.clamp_min(1), torch.nan)
        acc_mean = torch.where(count > 0, total_acc / count.clamp_min(1), torch.nan)
    return {"confidence": conf_mean, "accuracy": acc_mean, "count": count, "edges": edges}


def expected_calibration_error(probs: Tensor, labels: Tensor, n_bins: int = 15) -> float:
    """ECE with ``n_bins`` equal-width confidence bins (torchmetrics, L1 norm)."""
    from torchmetrics.functional.classification import multiclass_calibration_error

    probs, labels = _check(probs, labels)
    return float(
        multiclass_calibration_error(probs, labels, probs.shape[1], n_bins=n_bins, norm="l1")
    )


def temperature_scale(logits: Tensor, temperature: float) -> Tensor:
    """Probabilities ``softmax(logits / T)``."""
    if not temperature > 0:
        raise ValueError(f"the temperature must be positive, got {temperature}")
    return torch.softmax(torch.as_tensor(logits).float() / temperature, dim=1)


def fit_temperature(logits: Tensor, labels: Tensor, max_iter: int = 200) -> float:
    """The temperature ``T`` minimising the cross-entropy of ``softmax(logits / T)``.

    Fitted on held-out (validation) logits by L-BFGS over ``log T`` (so ``T`` stays positive);
    never on the test set.
    """
    # a copy: logits from inference mode (e.g. audiolab.training.predict) cannot enter autograd
    logits = torch.as_tensor(logits).float().detach().clone()
    labels = torch.as_tensor(labels).long()
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"logits must be (examples, classes) and labels (examples,), got "
                         f"{tuple(logits.shape)} and {tuple(labels.shape)}")
    log_t = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())
