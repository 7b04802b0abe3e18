"""audiolab.classification against scikit-learn on a small example."""

import matplotlib
import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from audiolab.classification import (
    accuracy,
    classification_report,
    confusion_matrix,
    plot_confusion,
    predicted_classes,
)

matplotlib.use("Agg")
NAMES = ["zero", "one", "two", "three"]


@pytest.fixture(scope="module")
def example() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits, their predictions and targets for 4 classes; class 3 is never predicted."""
    g = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 4, (50,), generator=g)
    logits = torch.randn(50, 4, generator=g)
    logits[:, 3] -= 10  # never predicted
    logits[torch.arange(50), targets] += 1.0 * (torch.arange(50) % 3 != 0)  # mostly right
    return logits, logits.argmax(1), targets


def test_accuracy_from_logits_or_predictions(example):
    logits, preds, targets = example
    expected = skm.accuracy_score(targets.numpy(), preds.numpy())
    assert float(accuracy(logits, targets)) == pytest.approx(expected)
    assert float(accuracy(preds, targets)) == pytest.approx(expected)
    assert float(accuracy(preds.numpy(), targets.numpy())) == pytest.approx(expected)
    assert float(accuracy(targets, targets)) == 1.0
    assert 0.3 < expected < 0.95
    from torchmetrics.functional.classification import multiclass_accuracy

    micro = multiclass_accuracy(preds, targets, num_classes=4, average="micro")
    assert float(accuracy(logits, targets)) == pytest.approx(float(micro))
    assert accuracy(logits, targets).dtype == torch.float32


def test_classification_report_matches_sklearn(example):
    logits, preds, targets = example
    report = classification_report(logits, targets, NAMES)
    p, r, f, _ = skm.precision_recall_fscore_support(
        targets.numpy(), preds.numpy(), labels=range(4), average="macro", zero_division=0
    )
    assert report["precision"] == pytest.approx(p)
    assert report["recall"] == pytest.approx(r)
    assert report["f1"] == pytest.approx(f)
    assert report["accuracy"] == pytest.approx(skm.accuracy_score(targets, preds))
    assert list(report["per_class"]) == NAMES
    assert report["per_class"]["three"]["precision"] == 0.0  # never predicted: 0, no warning
    assert sum(c["support"] for c in report["per_class"].values()) == 50
    assert report == classification_report(preds, targets, NAMES)


def test_confusion_matrix_matches_sklearn(example):
    logits, preds, targets = example
    cm = confusion_matrix(logits, targets, num_classes=4)
    expected = skm.confusion_matrix(targets.numpy(), preds.numpy(), labels=range(4))
    np.testing.assert_array_equal(cm.numpy(), expected)  # rows: true class; columns: predicted
    assert torch.equal(confusion_matrix(preds, targets, 4), cm)


def test_plot_confusion_labels_and_annotations(example):
    logits, _, targets = example
    cm = confusion_matrix(logits, targets, 4)
    ax = plot_confusion(cm, NAMES)
    assert ax.get_xlabel() == "predicted" and ax.get_ylabel() == "true"
    assert [t.get_text() for t in ax.get_xticklabels()] == NAMES
    texts = {
        (round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts
    }
    assert len(texts) == int((cm > 0).sum())
    i, j = 0, 0
    percent = 100 * cm[i, j] / cm[i].sum()
    assert texts[(i, j)] == f"{float(percent):.0f}"
    counts = plot_confusion(cm, normalize=False)
    assert sorted(int(t.get_text()) for t in counts.texts) == sorted(cm[cm > 0].tolist())
    matplotlib.pyplot.close("all")


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="do not fit"):
        predicted_classes(torch.zeros(5, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="integers"):
        predicted_classes(torch.zeros(5), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="square"):
        plot_confusion(torch.zeros(3, 3), ["a", "b"])
