"""Benchmarks (run by ``python -m audiolab bench NAME``; never part of the unit tests)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from . import features, settings


def _best_of(fn: Callable[[], object], repeats: int, sync: bool) -> float:
    """Best wall time of ``repeats`` calls after one warm-up (seconds)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        if sync:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def feature_speed(
    n_clips: int = 256,
    seconds: float = 1.0,
    sample_rate: int = 16000,
    device: str | None = None,
    repeats: int = 3,
) -> dict[str, float]:
    """Log-mel + MFCC for a batch of clips: audiolab (batched, on ``device``) vs librosa (loop).

    Returns clips per second for both and their ratio. Inputs are random noise of the given
    length, since speed does not depend on the content.
    """
    import librosa

    dev = settings.device(device)
    rng = np.random.default_rng(0)
    clips = rng.uniform(-0.5, 0.5, size=(n_clips, int(seconds * sample_rate))).astype(np.float32)
    params = dict(n_fft=512, hop_length=160, n_mels=64)
    on_device = torch.from_numpy(clips).to(dev)

    def ours() -> None:
        features.log_mel_spectrogram(on_device, sample_rate, **params)
        features.mfcc(on_device, sample_rate, n_mfcc=20, **params)

    def reference() -> None:
        for y in clips:
            librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sample_rate, **params))
            librosa.feature.mfcc(y=y, sr=sample_rate, n_mfcc=20, **params)

    t_ours = _best_of(ours, repeats, dev.type == "cuda")
    t_ref = _best_of(reference, max(1, repeats // 2), False)
    return {
        "clips": n_clips,
        "device": str(dev),
        "audiolab_clips_per_s": n_clips / t_ours,
        "librosa_clips_per_s": n_clips / t_ref,
        "speedup": t_ref / t_ours,
    }
