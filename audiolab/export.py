"""Export a trained model to ONNX, run it with onnxruntime, quantise it to int8, time it.

Taught in chapter 9 (From notebook to product). A notebook's model lives in Python and
PyTorch; a product runs it somewhere else (a phone, a browser, a C++ server). ONNX is the
common file format for that, and onnxruntime the common engine.

- :func:`export_onnx`: ``torch.onnx.export`` (the ``torch.export``-based exporter) with named
  inputs/outputs and dynamic axes, checked with ``onnx.checker``;
- :class:`OnnxModel`: an onnxruntime session on the CPU, called like the PyTorch model
  (tensors in, tensors out);
- :func:`quantize_int8`: onnxruntime's dynamic quantisation: weights stored as int8,
  activations quantised on the fly (MatMul/Gemm, and the LSTM's weights);
- :func:`max_abs_difference` (parity) and :func:`latency_ms` (median time of a call).

Examples
--------
::

    path = export_onnx(model, (example,), "digits.onnx", ["waveform"], ["logits"],
                       dynamic={"waveform": {0: "batch"}})
    onnx_model = OnnxModel(path)
    print(max_abs_difference(model(x), onnx_model(x)))
    small = OnnxModel(quantize_int8(path, "digits-int8.onnx"))
"""

from __future__ import annotations

import contextlib
import io
import statistics
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn


def export_onnx(
    model: nn.Module,
    example_inputs: tuple[Tensor, ...],
    path: str | Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic: Mapping[str, Mapping[int, str]] | None = None,
) -> Path:
    """Export ``model`` (in eval mode, on the CPU) to an ONNX file and check it.

    Parameters
    ----------
    model
        The network; exported as ``model(*example_inputs)`` computes.
    example_inputs
        Inputs of the right dtypes and ranks (their sizes along dynamic axes do not matter).
    path
        The ``.onnx`` file to write (its folder is created).
    input_names, output_names
        Names of the graph's inputs and outputs, one per tensor.
    dynamic
        Axes whose size may change, by input name: e.g. ``{"x": {0: "batch", 2: "frames"}}``.

    Returns
    -------
    Path
        ``path``.
    """
    import onnx

    if len(input_names) != len(example_inputs):
        raise ValueError(
            f"{len(example_inputs)} example input(s) but {len(input_names)} input name(s)"
        )
    unknown = set(dynamic or {}) - set(input_names)
    if unknown:
        raise ValueError(f"dynamic axes for unknown input(s) {sorted(unknown)}; "
                         f"the inputs are {list(input_names)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model = model.cpu().eval()
    shapes = None
    if dynamic:
        dims: dict[str, torch.export.Dim] = {}
        shapes = tuple(
            {axis: dims.setdefault(name, torch.export.Dim(name)) for axis, name in
             (dynamic.get(input_name) or {}).items()} or None
            for input_name in input_names
        )
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's progress and deprecation notes
            torch.onnx.export(
                model,
                tuple(x.cpu() for x in example_inputs),
                str(path),
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_shapes=shapes,
                dynamo=True,
                external_data=False,
            )
    finally:
        model.train(was_training)
    onnx.checker.check_model(str(path))
    return path


class OnnxModel:
    """An ONNX file run by onnxruntime on the CPU, called like the PyTorch model.

    ``OnnxModel(path)(*tensors)`` returns the outputs as float32 CPU tensors (one tensor when
    the graph has one output, else a tuple). ``threads`` limits onnxruntime's intra-op threads
    (1 measures one CPU core).
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no ONNX file at {path}: export the model first")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.path = path
        self.session = ort.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, *inputs: Tensor | np.ndarray) -> Tensor | tuple[Tensor, ...]:
        if len(inputs) != len(self.input_names):
            raise ValueError(
                f"{self.path.name} takes {len(self.input_names)} input(s) "
                f"{self.input_names}, got {len(inputs)}"
            )
        feed = {
            name: (x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x))
            for name, x in zip(self.input_names, inputs, strict=True)
        }
        outputs = [torch.from_numpy(np.asarray(y)) for y in self.session.run(None, feed)]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def __repr__(self) -> str:
        return f"OnnxModel({self.path.name!r}, inputs={self.input_names})"


def quantize_int8(path: str | Path, out_path: str | Path) -> Path:
    """Dynamic int8 quantisation of an ONNX model by onnxruntime (weights as signed int8).

    Activations are quantised at run time, batch by batch, so no calibration data is needed;
    the accuracy cost must be measured (chapter 9 does). Returns ``out_path``.
    """
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(path))
    # onnxruntime's quantiser runs its own shape inference, which can disagree with the
    # exporter's annotations of intermediate values; they are optional, so drop them.
    model.graph.ClearField("value_info")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    clean = out_path.with_suffix(".float.onnx")
    onnx.save(model, str(clean))
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # a note suggesting optional pre-processing
    try:
        quantize_dynamic(str(clean), str(out_path), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
        clean.unlink(missing_ok=True)
    return out_path


def max_abs_difference(a: Any, b: Any) -> float:
    """The largest absolute difference between two tensors (or tuples of tensors)."""
    if isinstance(a, tuple | list):
        if not isinstance(b, tuple | list) or len(a) != len(b):
            raise ValueError("compare outputs of the same structure")
        return max(max_abs_difference(x, y) for x, y in zip(a, b, strict=True))
    a = torch.as_tensor(a).detach().float().cpu()
    b = torch.as_tensor(b).detach().float().cpu()
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} and {tuple(b.shape)}")
    return float((a - b).abs().max()) if a.numel() else 0.0


def latency_ms(call: Callable[[], object], repeats: int = 50, warmup: int = 5) -> float:
    """The median wall time of ``call()`` in milliseconds, after ``warmup`` calls.

    Waits for the GPU after each call when CUDA is in use, so that the time is the call's.
    """
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        call()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        sync()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)
