"""audiolab.results: the JSON object of every chapter's results cell."""

import json
import re

import numpy as np
import pytest
import torch

from audiolab.results import Stopwatch, chapter_results


def test_metrics_become_plain_rounded_json_with_context():
    metrics = {"error": 0.000442743123, "tiny": 6.1e-08, "acc": torch.tensor(0.99871234),
               "per_seed": np.array([0.1234567, 0.25]), "n": np.int64(600), "name": "CNN"}
    results = chapter_results("00 test", metrics, Stopwatch())
    m = results["metrics"]
    assert m["error"] == 0.00044274 and m["tiny"] == 6.1e-08 and m["acc"] == 0.99871
    assert m["per_seed"] == [0.12346, 0.25] and m["n"] == 600 and m["name"] == "CNN"
    text = json.dumps(results)
    assert not re.search(r"\d\.\d{9,}", text)  # what the notebook layout test rejects
    assert {"mode", "device", "device_name", "versions", "wall_time_s"} <= set(results)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_metric_is_an_error(bad):
    with pytest.raises(ValueError, match="finite"):
        chapter_results("00 test", {"loss": bad}, Stopwatch())
