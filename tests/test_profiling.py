"""The trace arithmetic of ``audiolab.profiling`` (the profile itself runs on the GPU machine)."""

from __future__ import annotations

import json

import pytest

from audiolab import profiling


def test_union_length_counts_overlaps_once():
    assert profiling.union_length([]) == 0
    assert profiling.union_length([(0, 10), (5, 15), (20, 30), (21, 22)]) == 25


def test_kernel_classes_by_name():
    assert profiling.kernel_class("sm90_xmma_gemm_bf16bf16_bf16f32") == "matmul/conv"
    assert profiling.kernel_class("triton_poi_fused_add_relu_0") == "fused Triton"
    assert profiling.kernel_class("multi_tensor_apply_kernel<FusedAdam>") == "optimiser"
    assert profiling.kernel_class("vectorized_elementwise_kernel") == "elementwise/other"


def trace(tmp_path, kernels, launches):
    events = [{"ph": "X", "cat": "kernel", "name": name, "ts": ts, "dur": dur}
              for name, ts, dur in kernels]
    events += [{"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "ts": i, "dur": 4}
               for i in range(launches)]
    path = tmp_path / "trace.json"
    path.write_text(json.dumps({"traceEvents": events}))
    return path


def test_analyse_trace_per_step_and_verdicts(tmp_path):
    # two steps: a 30 us GEMM and two overlapping 10 us elementwise kernels per step
    kernels = [("sm90_gemm", 0, 30), ("elementwise_a", 40, 10), ("elementwise_b", 45, 10),
               ("sm90_gemm", 100, 30), ("elementwise_a", 140, 10), ("elementwise_b", 145, 10)]
    t = profiling.analyse_trace(trace(tmp_path, kernels, launches=6), n=2)
    assert t["kernels_per_step"] == 3 and t["kernel_launch_calls_per_step"] == 3
    assert t["kernel_time_us_per_step"] == 50 and t["gpu_busy_us_per_step"] == 45
    assert t["kernel_time_by_class_us_per_step"] == {"matmul/conv": 30, "elementwise/other": 20}
    top = t["top_kernels"][0]
    assert top["name"] == "sm90_gemm" and top["share_of_kernel_time"] == 0.6

    # the verdict: idle GPU -> launch; busy in data movement -> memory; in matmuls -> by rate
    base = {"gpu_busy_fraction": 0.9, "matmul_conv_share_of_kernel_time": 0.8}
    assert profiling.verdict(base | {"gpu_busy_fraction": 0.2}, 1e15) == "launch"
    assert profiling.verdict(base | {"matmul_conv_share_of_kernel_time": 0.3}, 1e15) == "memory"
    assert profiling.verdict(base | {"tflop_per_s_inside_matmul_conv": 500}, 1e15) == "arithmetic"
    assert profiling.verdict(base | {"tflop_per_s_inside_matmul_conv": 50}, 1e15) == "small-matmul"


def test_profile_fit_refuses_bad_arguments():
    with pytest.raises(ValueError, match="modes must be 'eager' and/or 'compiled'"):
        profiling.profile_fit(modes=("fast",))
    with pytest.raises(ValueError, match="batch_size must be"):
        profiling.profile_fit(batch_size=0)
