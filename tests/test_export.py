"""audiolab.export: ONNX export, onnxruntime parity, int8 quantisation, latency."""

from pathlib import Path

import pytest
import torch
from torch import nn

from audiolab import export
from audiolab.models import DigitCNN
from audiolab.streaming import CausalMaskLSTM


class _Step(nn.Module):
    """The causal denoiser's streaming step with its LSTM state as explicit inputs/outputs."""

    def __init__(self, model: CausalMaskLSTM) -> None:
        super().__init__()
        self.model = model

    def forward(self, log_power, h, c):  # real inputs: ONNX has no complex tensors
        mask, (h, c) = self.model.mask_from_log_power(log_power, (h, c))
        return mask, h, c


def test_digit_classifier_exports_with_parity_and_quantises(tmp_path: Path):
    torch.manual_seed(0)
    model = DigitCNN(frontend=True).eval()
    network = nn.Sequential(model.features, model.head)  # the STFT front end stays in the app
    with torch.no_grad():
        x = model.frontend(torch.randn(3, 16000) * 0.1)
        other = model.frontend(torch.randn(5, 16000) * 0.1)  # another batch size
        reference = network(other)
    path = export.export_onnx(network, (x,), tmp_path / "digits.onnx", ["log_mel"], ["logits"],
                              dynamic={"log_mel": {0: "batch"}})
    onnx_model = export.OnnxModel(path, threads=1)
    assert export.max_abs_difference(reference, onnx_model(other)) < 1e-4
    small = export.OnnxModel(export.quantize_int8(path, tmp_path / "digits-int8.onnx"))
    q = small(other)
    assert q.shape == reference.shape
    assert export.max_abs_difference(reference, q) > 1e-6  # really quantised
    assert torch.corrcoef(torch.stack([q.flatten(), reference.flatten()]))[0, 1] > 0.9
    assert export.latency_ms(lambda: onnx_model(other), repeats=3, warmup=1) > 0
    assert not list(tmp_path.glob("*.float.onnx"))  # the temporary file is gone


def test_streaming_step_of_the_causal_denoiser_exports(tmp_path: Path):
    torch.manual_seed(0)
    step = _Step(CausalMaskLSTM(hidden=16)).eval()
    mag = torch.randn(1, 257, 1) * 3 - 10  # one frame per call: the LSTM is unrolled
    h, c = torch.zeros(2, 1, 16), torch.zeros(2, 1, 16)
    path = export.export_onnx(step, (mag, h, c), tmp_path / "denoiser.onnx",
                              ["log_power", "h", "c"], ["mask", "h_out", "c_out"])
    onnx_step = export.OnnxModel(path)
    state = (h, c)
    onnx_state = (h, c)
    for _ in range(3):  # frame by frame, carrying the state, in both runtimes
        x = torch.randn(1, 257, 1) * 3 - 10
        with torch.no_grad():
            mask, *state = step(x, *state)
        onnx_mask, *onnx_state = onnx_step(x, *onnx_state)
        assert export.max_abs_difference((mask, *state), (onnx_mask, *onnx_state)) < 1e-4


def test_bad_arguments_are_explained(tmp_path: Path):
    model = nn.Linear(3, 2)
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match="1 example input.*2 input name"):
        export.export_onnx(model, (x,), tmp_path / "m.onnx", ["a", "b"], ["y"])
    with pytest.raises(ValueError, match="unknown input.*'z'"):
        export.export_onnx(model, (x,), tmp_path / "m.onnx", ["x"], ["y"], dynamic={"z": {0: "n"}})
    with pytest.raises(FileNotFoundError, match="export the model first"):
        export.OnnxModel(tmp_path / "missing.onnx")
    path = export.export_onnx(model, (x,), tmp_path / "m.onnx", ["x"], ["y"])
    with pytest.raises(ValueError, match=r"takes 1 input\(s\)"):
        export.OnnxModel(path)(x, x)
    with pytest.raises(ValueError, match="shapes differ"):
        export.max_abs_difference(torch.zeros(2), torch.zeros(3))
