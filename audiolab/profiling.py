"""Where a training step's time goes: :mod:`torch.profiler` over steps of ``fit``.

``python -m audiolab bench profile`` trains chapter 3's CNN (:class:`~audiolab.models.DigitCNN`
with its log-mel front end) for two epochs through ``fit``, eager and ``compile=True``, with
``fit``'s own default step wrapped in timers. Epoch 1 is the warm-up (compilation, CUDA-graph
recording, cuDNN's algorithm choices). In epoch 2:

- steps ``[skip, skip + n)`` are timed without the profiler (synchronised at both ends): the
  wall time per step, and the host's time inside the step function;
- steps ``[skip + n, skip + 2n)`` run under :mod:`torch.profiler` (CPU and CUDA): the GPU's busy
  time (the union of its kernel, copy and set intervals), kernels and launch calls per step, the
  top kernels and a rough class of each by its name.

The verdict says what bounds the step: ``launch`` (the GPU is idle more than half the time,
waiting for the host), ``memory`` (busy mostly in kernels that move data), ``arithmetic``
(busy mostly in matrix products and convolutions near the peak) or ``small-matmul`` (busy
mostly in matrix products far from the peak: tiles too small to fill the GPU). Never part of
the unit tests, except its trace arithmetic.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter, defaultdict
from pathlib import Path

import torch
from torch import nn

from . import bench, checks, settings, training

#: Kernel name fragments -> class, the first match wins (fragments of the names of cuDNN,
#: cuBLAS, CUTLASS, PyTorch and Triton kernels).
KERNEL_CLASSES = [
    # inductor's own kernels (elementwise and reduction fusions; its matmuls and convolutions
    # call cuBLAS and cuDNN unless max-autotune is on)
    ("fused Triton", ("triton",)),
    ("normalisation", ("bn_fw", "bn_bw", "batch_norm", "batchnorm", "layer_norm", "welford")),
    ("layout/copy", ("nchwtonhwc", "nhwctonchw", "transpose", "copy", "memcpy", "memset",
                     "cat_", "index", "gather", "scatter")),
    ("optimiser", ("adam", "multi_tensor", "foreach")),
    ("FFT (STFT)", ("fft", "spectral", "regular_fft", "vector_fft")),
    ("matmul/conv", ("gemm", "cutlass", "xmma", "conv", "cudnn", "implicit", "fprop", "dgrad",
                     "wgrad", "winograd", "sm90_", "sm80_", "nvjet", "cublas")),
    ("pooling", ("pool",)),
    ("reduction", ("reduce", "softmax", "sum", "norm", "cross_entropy", "nll")),
]


def kernel_class(name: str) -> str:
    """A rough class of a CUDA kernel by its name (the first of :data:`KERNEL_CLASSES` to match)."""
    low = name.lower()
    for label, keys in KERNEL_CLASSES:
        if any(k in low for k in keys):
            return label
    return "elementwise/other"


def union_length(intervals: list[tuple[float, float]]) -> float:
    """Total length covered by ``intervals`` (overlaps counted once)."""
    total, end = 0.0, -math.inf
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def analyse_trace(path: Path, n: int) -> dict:
    """Per-step numbers from a Chrome trace of n steps (times in microseconds)."""
    events = json.loads(path.read_text())["traceEvents"]
    kernels = [e for e in events if e.get("ph") == "X" and e.get("cat") == "kernel"]
    gpu_other = [e for e in events if e.get("ph") == "X" and e.get("cat") in ("gpu_memcpy",
                                                                            "gpu_memset")]
    runtime = [e for e in events if e.get("ph") == "X" and e.get("cat") in ("cuda_runtime",
                                                                          "cuda_driver")]
    busy = union_length([(e["ts"], e["ts"] + e["dur"]) for e in kernels + gpu_other])
    calls = Counter(e["name"] for e in runtime)
    launch_calls = sum(c for k, c in calls.items() if "LaunchKernel" in k)
    graph_launches = sum(c for k, c in calls.items() if "GraphLaunch" in k)
    copy_calls = sum(c for k, c in calls.items() if "Memcpy" in k or "Memset" in k)
    sync_calls = sum(c for k, c in calls.items() if "Synchronize" in k)
    runtime_us = sum(e["dur"] for e in runtime)
    by_name: dict[str, list[float]] = defaultdict(list)
    for e in kernels:
        by_name[e["name"]].append(e["dur"])
    kernel_us = sum(e["dur"] for e in kernels)
    by_class: dict[str, float] = defaultdict(float)
    for name, durs in by_name.items():
        by_class[kernel_class(name)] += sum(durs)
    top = sorted(by_name.items(), key=lambda kv: -sum(kv[1]))[:15]
    return {
        "kernels_per_step": len(kernels) / n,
        "distinct_kernels": len(by_name),
        "kernel_time_us_per_step": kernel_us / n,
        "gpu_busy_us_per_step": busy / n,
        "copies_per_step": len(gpu_other) / n,
        "kernel_launch_calls_per_step": launch_calls / n,
        "graph_launches_per_step": graph_launches / n,
        "copy_and_set_calls_per_step": copy_calls / n,
        "synchronize_calls_per_step": sync_calls / n,
        "host_runtime_api_us_per_step": runtime_us / n,
        "mean_kernel_us": kernel_us / len(kernels) if kernels else None,
        "kernel_time_by_class_us_per_step": {
            k: v / n for k, v in sorted(by_class.items(), key=lambda kv: -kv[1])
        },
        "top_kernels": [
            {"name": name[:120], "class": kernel_class(name), "calls_per_step": len(d) / n,
             "us_per_step": sum(d) / n, "mean_us": sum(d) / len(d),
             "share_of_kernel_time": sum(d) / kernel_us if kernel_us else None}
            for name, d in top
        ],
        "runtime_calls_per_step": {k: c / n for k, c in calls.most_common(12)},
    }


class _Probe:
    """fit's default step, timed and profiled in two windows of epoch ``epoch``."""

    def __init__(self, dev: torch.device, skip: int, n: int, epoch: int) -> None:
        self.base = training.supervised_step()
        self.dev, self.skip, self.n, self.epoch = dev, skip, n, epoch
        self.cuda = dev.type == "cuda"
        self.host_in_step = 0.0
        self.result: dict[str, float] = {}
        self.prof = None

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.dev)

    def __call__(self, batch, ctx):
        if ctx.epoch == self.epoch:
            i, a, b, c = ctx.step, self.skip, self.skip + self.n, self.skip + 2 * self.n
            if i == a:
                self.sync()
                self.t0 = time.perf_counter()
            elif i == b:
                self.result["host_s"] = time.perf_counter() - self.t0  # before waiting
                self.sync()
                self.result["wall_s"] = time.perf_counter() - self.t0
                activities = [torch.profiler.ProfilerActivity.CPU]
                if self.cuda:
                    activities.append(torch.profiler.ProfilerActivity.CUDA)
                self.prof = torch.profiler.profile(activities=activities)
                self.prof.start()
                self.t1 = time.perf_counter()
            elif i == c:
                self.sync()
                self.result["profiled_wall_s"] = time.perf_counter() - self.t1
                self.prof.stop()
            if a <= i < b:
                t = time.perf_counter()
                out = self.base(batch, ctx)
                self.host_in_step += time.perf_counter() - t
                return out
        return self.base(batch, ctx)


def _counters() -> dict:
    from torch._dynamo.utils import counters

    return {
        "graph_breaks": sum(counters["graph_break"].values()),
        "graph_break_reasons": dict(list(counters["graph_break"].items())[:5]),
        "unique_graphs": counters["stats"].get("unique_graphs", 0),
        "cudagraph_skips": counters["inductor"].get("cudagraph_skips", 0),
        "cudagraph_recorded_non_static_inputs": counters["inductor"].get(
            "cudagraph_recorded_non_static_inputs", 0),
    }


def _profile_mode(name: str, compile: bool, train, dev, batch_size: int, skip: int, n: int,
                 trace_dir: Path, flops_per_step: float, peak: float | None) -> tuple[dict, str]:
    from torch._dynamo.utils import counters

    from .models import DigitCNN

    counters.clear()
    torch.manual_seed(0)
    trace = trace_dir / f"trace-{name}.json"
    probe = _Probe(dev, skip, n, epoch=2)
    model: nn.Module = DigitCNN(frontend=True)
    graphed = compile and dev.type == "cuda" and training.GRAPH_WHOLE_STEP  # as fit: _graphable
    if graphed:  # fit's own path, taken by hand because the probe is a custom step
        probe.base = training.GraphedStep(probe.base)
        model = training._compile(model.to(dev), dev, cuda_graphs=False)
    history = training.fit(model, (train.waveforms, train.labels),
                           loss=nn.CrossEntropyLoss(), epochs=2, batch_size=batch_size,
                           device=dev, compile=compile and not graphed, progress=False,
                           step=probe)
    if probe.prof is None or "profiled_wall_s" not in probe.result:
        raise RuntimeError(f"{name}: epoch 2 ended before the profiled window (steps {skip} to "
                           f"{skip + 2 * n}); lower skip or steps")
    probe.prof.export_chrome_trace(str(trace))
    sort = "self_device_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    table = probe.prof.key_averages().table(sort_by=sort, row_limit=25, max_name_column_width=70)
    wall = probe.result["wall_s"] / n
    row: dict = {
        "compile": compile,
        "epoch_seconds": list(history["seconds"]),
        "steps_timed": n,
        "wall_ms_per_step": wall * 1e3,
        "host_ms_in_step_fn_per_step": probe.host_in_step / n * 1e3,
        "host_ms_per_step": probe.result["host_s"] / n * 1e3,
        # GPU work still queued when the host reached the end of the window: about one step's
        # worth or less when the host is the bottleneck, much more when the GPU is
        "gpu_drain_ms_after_window": (probe.result["wall_s"] - probe.result["host_s"]) * 1e3,
        "profiled_wall_ms_per_step": probe.result["profiled_wall_s"] / n * 1e3,
        "clips_per_s": batch_size / wall,
        "tflop_per_s": flops_per_step / wall / 1e12,
        "fraction_of_peak": flops_per_step / wall / peak if peak else None,
    }
    if compile:
        row["dynamo"] = _counters()
    if dev.type == "cuda":
        row["trace"] = _gpu_numbers(trace, n, wall, probe.result["profiled_wall_s"] / n,
                                   flops_per_step, peak)
    else:
        row["trace"] = {"note": "CPU run: no CUDA activity; see the operator table",
                        "verdict": "cpu"}
    return row, table


def _gpu_numbers(trace: Path, n: int, wall: float, profiled: float, flops_per_step: float,
                peak: float | None) -> dict:
    """The trace's numbers per step, with the busy fraction, FLOP rates and verdict (wall and
    profiled: seconds per step without and with the profiler)."""
    t = analyse_trace(trace, n)
    # kernel times barely change under the profiler, the host's time does: the busy fraction
    # is taken against the wall time measured without it
    t["gpu_busy_fraction"] = t["gpu_busy_us_per_step"] / (wall * 1e6)
    t["gpu_busy_fraction_while_profiled"] = t["gpu_busy_us_per_step"] / (profiled * 1e6)
    mm = t["kernel_time_by_class_us_per_step"].get("matmul/conv", 0.0)
    kernel = t["kernel_time_us_per_step"]
    t["matmul_conv_share_of_kernel_time"] = mm / kernel if kernel else None
    t["tflop_per_s_inside_matmul_conv"] = flops_per_step / (mm * 1e-6) / 1e12 if mm else None
    busy = t["gpu_busy_us_per_step"]
    t["tflop_per_s_while_gpu_busy"] = flops_per_step / (busy * 1e-6) / 1e12 if busy else None
    t["verdict"] = verdict(t, peak)
    return t


def verdict(t: dict, peak: float | None) -> str:
    """launch: the GPU waits for the host; memory: the GPU is busy mostly in kernels that move
    data (elementwise, normalisation, layout); arithmetic: busy mostly in matmul/conv near peak;
    small-matmul: busy mostly in matmul/conv far from peak (tiles too small to fill the GPU)."""
    if t["gpu_busy_fraction"] < 0.5:
        return "launch"
    if (t["matmul_conv_share_of_kernel_time"] or 0) < 0.5:
        return "memory"
    rate = t["tflop_per_s_inside_matmul_conv"] or 0
    return "arithmetic" if peak and rate * 1e12 > 0.3 * peak else "small-matmul"


def _text_summary(name: str, row: dict) -> str:
    epochs = [round(s, 2) for s in row["epoch_seconds"]]
    lines = [
        f"== {name}: {row['wall_ms_per_step']:.3f} ms/step wall ({row['clips_per_s']:,.0f} "
        f"clips/s, {row['tflop_per_s']:.3f} TFLOP/s); host {row['host_ms_per_step']:.3f} ms/step "
        f"({row['host_ms_in_step_fn_per_step']:.3f} in the step function), GPU drain after the "
        f"window {row['gpu_drain_ms_after_window']:.3f} ms; epochs (s) {epochs}"
    ]
    t = row["trace"]
    if "gpu_busy_us_per_step" in t:
        lines.append(
            f"   GPU busy {t['gpu_busy_us_per_step']:.1f} us/step ({t['gpu_busy_fraction']:.1%} "
            f"of the wall time; {row['profiled_wall_ms_per_step'] * 1e3:.1f} us/step under the "
            f"profiler); kernels {t['kernels_per_step']:.1f}/step (mean "
            f"{t['mean_kernel_us']:.2f} us); launch calls "
            f"{t['kernel_launch_calls_per_step']:.1f}/step, graph launches "
            f"{t['graph_launches_per_step']:.1f}/step, copies/sets "
            f"{t['copy_and_set_calls_per_step']:.1f}/step; host runtime API "
            f"{t['host_runtime_api_us_per_step']:.1f} us/step; verdict: {t['verdict']}"
        )
        lines.append("   kernel time by class (us/step): " + ", ".join(
            f"{k} {v:.1f}" for k, v in t["kernel_time_by_class_us_per_step"].items()))
        lines.append("   top kernels (us/step, calls/step, class):")
        lines += [f"     {k['us_per_step']:8.1f} {k['calls_per_step']:5.1f}  {k['class']:<18} "
                  f"{k['name'][:90]}" for k in t["top_kernels"]]
    if "dynamo" in row:
        lines.append(f"   dynamo: {row['dynamo']}")
    return "\n".join(lines)


def profile_fit(
    batch_size: int = 64,
    device: str | None = None,
    size: str | None = None,
    skip: int = 8,
    steps: int = 32,
    modes: tuple[str, ...] = ("eager", "compiled"),
    trace_dir: str | Path | None = None,
) -> tuple[dict, str]:
    """Profile ``fit`` on chapter 3's CNN, eager and compiled; the numbers and a text report.

    Parameters
    ----------
    batch_size
        Examples per step.
    device
        ``"cpu"`` or ``"cuda"`` (default: the best available). On the CPU the trace has no GPU
        activity and only the operator table is informative.
    size
        SpokenDigits size (default ``"full"`` on CUDA, ``"quick"`` elsewhere).
    skip, steps
        Steps of epoch 2 before the windows, and steps per window.
    modes
        ``"eager"`` and/or ``"compiled"`` (``fit(compile=True)``).
    trace_dir
        Where to write one Chrome trace per mode (open in https://ui.perfetto.dev); default a
        temporary folder that is deleted afterwards.

    Returns
    -------
    result, text
        A JSON-ready dictionary (per mode: ms per step, clips/s, TFLOP/s, GPU busy fraction,
        kernels and launches per step, kernel time by class, top kernels, verdict) and the same
        as text with the profiler's operator tables.
    """
    import tempfile

    from .datasets import SpokenDigits
    from .models import DigitCNN

    batch_size = checks.integer("batch_size", batch_size)
    steps = checks.integer("steps", steps)
    unknown = set(modes) - {"eager", "compiled"}
    if unknown:
        raise ValueError(f"modes must be 'eager' and/or 'compiled', got {sorted(unknown)}")
    dev = settings.device(device)
    size = size or ("full" if dev.type == "cuda" else "quick")
    train = SpokenDigits("train", size=size)
    full_batches = len(train) // batch_size
    n = min(steps, (full_batches - skip) // 2)
    if n < 1:
        raise ValueError(f"an epoch has {full_batches} full batches of {batch_size}: too few for "
                         f"{skip} skipped steps and two windows; lower batch_size or skip")
    torch.manual_seed(0)
    net = DigitCNN(frontend=True).to(dev)
    x, y = train.waveforms[:batch_size].to(dev), train.labels[:batch_size].to(dev)
    flops_per_step = bench.flops_per_clip(net, x, y) * batch_size
    peak = bench.peak_flops(dev)
    result: dict = {
        "what": "torch.profiler over steps of audiolab.training.fit (chapter 3's CNN), epoch 2",
        "model": "cnn",
        "device": str(dev),
        "device_name": settings.device_name(dev),
        "date": time.strftime("%Y-%m-%d"),
        "versions": settings.versions(),
        "dataset": f"SpokenDigits train ({size}): {len(train)} clips",
        "batch_size": batch_size,
        "skip": skip,
        "steps_per_window": n,
        "gflop_per_step": flops_per_step / 1e9,
        "peak_bf16_tflop_per_s": peak / 1e12 if peak else None,
        "modes": {},
    }
    texts = [f"{result['what']}\n{result['device_name']}, torch {torch.__version__}, "
             f"{result['dataset']}, batch {batch_size}, {n} steps per window, "
             f"{result['gflop_per_step']:.2f} GFLOP per step (forward + backward)"]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(trace_dir) if trace_dir is not None else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for name in modes:
            start = time.perf_counter()
            row, table = _profile_mode(name, name == "compiled", train, dev, batch_size, skip, n,
                                       folder, flops_per_step, peak)
            row["seconds"] = time.perf_counter() - start
            result["modes"][name] = row
            texts += [_text_summary(name, row), table]
    eager, compiled = result["modes"].get("eager"), result["modes"].get("compiled")
    if eager and compiled:
        result["compiled_speedup"] = eager["wall_ms_per_step"] / compiled["wall_ms_per_step"]
    return result, "\n\n".join(texts) + "\n"
