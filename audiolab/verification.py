"""Speaker verification scoring: cosine trials, equal error rate, DET curve.

Taught in chapter 9 (From notebook to product). A verification system answers "are these two
recordings the same speaker?" by comparing embeddings: a *trial* is a pair of recordings, a
*target* trial one where the speakers are the same. With a score ``s`` (here the cosine of
the two embeddings) and a threshold ``θ``, it accepts when ``s ≥ θ``; the false-acceptance
rate (non-target trials accepted) falls and the false-rejection rate (target trials rejected)
rises with ``θ``. The **equal error rate** is the rate where the two are equal; the **DET
curve** plots one against the other on normal-deviate axes (``sklearn.metrics.det_curve``).

- :func:`cosine_trials`: every pair of distinct recordings of a set, their cosine scores and
  whether each pair is a target trial;
- :func:`equal_error_rate`: the EER and its threshold, from ``sklearn.metrics.roc_curve``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def cosine_trials(embeddings: Tensor, speakers: Tensor | np.ndarray) -> tuple[Tensor, Tensor]:
    """Scores and target flags of all ``n(n−1)/2`` pairs of ``embeddings`` ``(n, dim)``.

    ``speakers`` (n,) are speaker labels (integers). Returns ``(scores, is_target)``, each of
    length ``n(n−1)/2``, in the order of ``torch.triu_indices(n, n, 1)``.
    """
    e = torch.as_tensor(embeddings).float()
    s = torch.as_tensor(np.asarray(speakers)).long()
    if e.ndim != 2 or s.shape != e.shape[:1]:
        raise ValueError(f"embeddings must be (n, dim) and speakers (n,), got "
                         f"{tuple(e.shape)} and {tuple(s.shape)}")
    if len(e) < 2:
        raise ValueError("need at least two recordings to make a trial")
    e = torch.nn.functional.normalize(e, dim=1)
    i, j = torch.triu_indices(len(e), len(e), 1)
    return (e[i] * e[j]).sum(1), s[i] == s[j]


def equal_error_rate(scores: Tensor | np.ndarray, is_target: Tensor | np.ndarray
                     ) -> tuple[float, float]:
    """``(eer, threshold)``: where the false-acceptance and false-rejection rates cross.

    Computed on the ROC curve of ``sklearn.metrics.roc_curve`` (false-acceptance rate = its
    false-positive rate, false-rejection rate = 1 − its true-positive rate), interpolating
    linearly between the two operating points on either side of the crossing.
    """
    from sklearn.metrics import roc_curve

    scores = np.asarray(torch.as_tensor(scores).float())
    is_target = np.asarray(torch.as_tensor(is_target)).astype(bool)
    if scores.shape != is_target.shape or scores.ndim != 1:
        raise ValueError(f"scores and is_target must be 1-D of one length, got "
                         f"{scores.shape} and {is_target.shape}")
    if is_target.all() or not is_target.any():
        raise ValueError("need both target and non-target trials")
    far, tpr, thresholds = roc_curve(is_target, scores)
    frr = 1 - tpr
    k = int(np.flatnonzero(frr <= far)[0])  # first point where FRR has fallen to FAR
    if k == 0:
        return float(far[0]), float(thresholds[0])
    # segment (k-1, k): FAR rises, FRR falls; where do they meet?
    d0, d1 = frr[k - 1] - far[k - 1], frr[k] - far[k]
    t = d0 / (d0 - d1) if d0 != d1 else 0.0
    eer = far[k - 1] + t * (far[k] - far[k - 1])
    threshold = thresholds[k - 1] + t * (thresholds[k] - thresholds[k - 1])
    return float(eer), float(threshold)
