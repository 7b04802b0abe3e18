"""Classification metrics: thin wrappers over torchmetrics and scikit-learn, and a plot.

Every function takes either the model's outputs, shape ``(N, C)`` (logits or probabilities; the
predicted class is the arg-max), or predicted class indices, shape ``(N,)``, together with the
true class indices ``(N,)``. Tensors may be on any device; NumPy arrays work too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from sklearn.metrics import accuracy_score, precision_recall_fscore_support
from torch import Tensor
from torchmetrics.functional.classification import multiclass_confusion_matrix


def predicted_classes(outputs: Tensor | np.ndarray, targets: Tensor | np.ndarray) -> Tensor:
    """Class indices from ``outputs``: the arg-max over classes of scores, or the indices given.

    ``outputs`` are scores when they have one axis more than ``targets`` (the class axis is axis
    1, as in :class:`torch.nn.CrossEntropyLoss`), and class indices when they have the same shape.
    """
    outputs, targets = torch.as_tensor(outputs), torch.as_tensor(targets)
    scores = outputs.ndim == targets.ndim + 1
    if scores and outputs.shape[:1] + outputs.shape[2:] == targets.shape:
        return outputs.argmax(dim=1)
    if scores or outputs.shape != targets.shape:
        raise ValueError(
            f"outputs of shape {tuple(outputs.shape)} do not fit targets of shape "
            f"{tuple(targets.shape)}: give scores (N, classes) or class indices (N,)"
        )
    if outputs.is_floating_point():
        raise TypeError("class indices must be integers; scores need a class axis (N, classes)")
    return outputs


def accuracy(outputs: Tensor | np.ndarray, targets: Tensor | np.ndarray) -> Tensor:
    """The fraction of examples whose predicted class is the true one (a 0-d float32 tensor).

    The micro-averaged accuracy (as ``torchmetrics``' ``multiclass_accuracy`` with
    ``average="micro"``), computed as the mean of ``predicted == true`` on the tensors' device:
    nothing is read back, so a training step that logs it does not wait for the GPU.
    """
    outputs, targets = torch.as_tensor(outputs), torch.as_tensor(targets)
    preds = predicted_classes(outputs, targets)
    if targets.numel() == 0:
        raise ValueError("there are no examples: the accuracy of nothing is undefined")
    return (preds == targets.to(preds.device)).float().mean()


def classification_report(
    outputs: Tensor | np.ndarray, targets: Tensor | np.ndarray, class_names: Sequence[str]
) -> dict:
    """Accuracy and macro-averaged precision, recall and F1, with the per-class figures.

    The per-class values come from :func:`sklearn.metrics.precision_recall_fscore_support`
    (0 where a class is never predicted); the macro averages are their unweighted means over
    ``class_names`` (whose order defines the class indices).

    Returns
    -------
    dict
        ``{"accuracy", "precision", "recall", "f1"}`` as floats, and ``"per_class"``:
        ``{name: {"precision", "recall", "f1", "support"}}``.
    """
    y_pred = predicted_classes(outputs, targets).cpu().numpy().ravel()
    y_true = torch.as_tensor(targets).cpu().numpy().ravel()
    labels = np.arange(len(class_names))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    }
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision.mean()),
        "recall": float(recall.mean()),
        "f1": float(f1.mean()),
        "per_class": per_class,
    }


def confusion_matrix(
    outputs: Tensor | np.ndarray, targets: Tensor | np.ndarray, num_classes: int
) -> Tensor:
    """Counts ``C[i, j]`` of examples of true class ``i`` predicted as class ``j`` (on the CPU).

    ``torchmetrics.functional.classification.multiclass_confusion_matrix``.
    """
    preds = predicted_classes(outputs, targets)
    targets = torch.as_tensor(targets).to(preds.device)
    return multiclass_confusion_matrix(preds, targets, num_classes=num_classes).cpu()


def plot_confusion(
    cm: Tensor | np.ndarray,
    class_names: Sequence[str] | None = None,
    ax: Axes | None = None,
    normalize: bool = True,
    title: str | None = None,
) -> Axes:
    """Show a confusion matrix (rows: true class, columns: predicted class), each cell annotated.

    Parameters
    ----------
    cm
        Counts, shape ``(classes, classes)``, as :func:`confusion_matrix` returns.
    class_names
        Tick labels (default: the class indices).
    ax
        Where to draw (default: a new figure).
    normalize
        Show each row as percentages of its true class (so the diagonal is each class's recall);
        otherwise show counts.
    title
        The axes' title.
    """
    import matplotlib.pyplot as plt

    counts = torch.as_tensor(cm).cpu().numpy().astype(float)
    n = counts.shape[0]
    names = [str(i) for i in range(n)] if class_names is None else list(class_names)
    if counts.shape != (n, n) or len(names) != n:
        raise ValueError(f"expected a square matrix for {len(names)} classes, got {counts.shape}")
    if normalize:
        values = 100 * counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    else:
        values = counts
    if ax is None:
        size = 2.0 + 0.45 * n
        _, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=100 if normalize else None)
    ax.figure.colorbar(image, ax=ax, label="% of the true class" if normalize else "examples")
    threshold = (100 if normalize else max(values.max(), 1)) / 2
    for i in range(n):
        for j in range(n):
            if counts[i, j] == 0:
                continue
            text = f"{values[i, j]:.0f}" if normalize else f"{int(values[i, j])}"
            color = "white" if values[i, j] > threshold else "black"
            ax.text(j, i, text, ha="center", va="center", color=color, fontsize="small")
    ax.set(
        xticks=range(n),
        yticks=range(n),
        xticklabels=names,
        yticklabels=names,
        xlabel="predicted",
        ylabel="true",
        title=title,
    )
    return ax
