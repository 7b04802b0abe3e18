"""Benchmarks (run by ``python -m audiolab bench NAME``; never part of the unit tests)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from . import checks, features, settings


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

    n_clips = checks.integer("n_clips", n_clips)
    repeats = checks.integer("repeats", repeats)
    sample_rate = checks.sample_rate(sample_rate)
    seconds = checks.number("seconds", seconds, positive=True)
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


# --------------------------------------------------------------------------- fit

#: MFCC settings of the fit benchmark: 20 coefficients x 101 frames for a 1 s clip at 16 kHz.
MFCC = {"n_mfcc": 20, "n_fft": 512, "hop_length": 160, "n_mels": 64}


def digit_mlp(n_inputs: int = 20 * 101, hidden: int = 256, classes: int = 10) -> nn.Module:
    """MFCC matrix, flattened -> 256 -> 256 -> 10 digit scores."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(n_inputs, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, classes),
    )


class PerClipMFCC(Dataset):
    """The tutorial way: ``__getitem__`` computes one clip's MFCCs on the CPU."""

    def __init__(self, waveforms: torch.Tensor, labels: torch.Tensor, sample_rate: int) -> None:
        self.waveforms, self.labels, self.sample_rate = waveforms, labels, sample_rate

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        clip = self.waveforms[index]
        return features.mfcc(clip, self.sample_rate, **MFCC), self.labels[index]


def _tutorial_fit(model: nn.Module, loader: DataLoader, steps: int, device: torch.device) -> float:
    """A plain float32 training loop over ``loader`` for ``steps`` steps; its wall time (s)."""
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    start, done = time.perf_counter(), 0
    while done < steps:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            done += 1
            if done == steps:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def fit_speed(
    steps: int = 200,
    batch_size: int = 64,
    device: str | None = None,
    size: str | None = None,
    num_workers: int | None = None,
) -> dict[str, object]:
    """Training throughput: ``audiolab.training.fit`` against a tutorial-style PyTorch loop.

    Both train the same MLP (:func:`digit_mlp`) on the MFCCs of the SpokenDigits training split
    for the same number of optimisation steps (``steps`` rounded to whole epochs) with Adam.

    - audiolab: waveforms on the device once, batches by indexing there, MFCCs of each batch on
      the device (``transform=``), bf16 autocast on CUDA.
    - tutorial: a ``Dataset`` whose ``__getitem__`` computes one clip's MFCCs on the CPU, a
      ``DataLoader(shuffle=True, num_workers=...)``, each batch moved to the device, float32.

    Parameters
    ----------
    steps, batch_size
        Optimisation steps (rounded to whole epochs) and examples per step.
    device
        ``"cpu"`` or ``"cuda"`` (default: the best available).
    size
        SpokenDigits size, ``"quick"`` or ``"full"`` (default: quick on the CPU, full on a GPU).
    num_workers
        The DataLoader's worker processes (default: 2 on the CPU, half the cores with a GPU).

    Returns
    -------
    dict
        Samples per second of both, their ratio (``speedup``) and the settings.
    """
    from .datasets import SpokenDigits
    from .training import fit

    steps = checks.integer("steps", steps)
    batch_size = checks.integer("batch_size", batch_size)
    if num_workers is not None:
        num_workers = checks.integer("num_workers", num_workers, minimum=0)
    dev = settings.device(device)
    size = size or ("full" if dev.type == "cuda" else "quick")
    if num_workers is None:
        num_workers = 2 if dev.type == "cpu" else max(2, (os.cpu_count() or 4) // 2)
    train = SpokenDigits("train", size=size)
    n, rate = len(train), train.sample_rate
    per_epoch = math.ceil(n / batch_size)
    epochs = max(1, round(steps / per_epoch))
    steps = epochs * per_epoch

    def engine(epochs: int) -> float:
        torch.manual_seed(0)
        model = digit_mlp()
        start = time.perf_counter()
        fit(
            model,
            (train.waveforms, train.labels),
            loss=nn.CrossEntropyLoss(),
            epochs=epochs,
            batch_size=batch_size,
            transform=lambda x: features.mfcc(x, rate, **MFCC),
            device=dev,
            progress=False,
        )
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    def tutorial(steps: int) -> float:
        torch.manual_seed(0)
        loader = DataLoader(
            PerClipMFCC(train.waveforms, train.labels, rate),
            batch_size=batch_size,
            shuffle=True,
            num_workers=num_workers,
        )
        return _tutorial_fit(digit_mlp(), loader, steps, dev)

    engine(1), tutorial(min(steps, 4))  # warm-up: libraries, kernels, FFT plans
    t_engine, t_tutorial = engine(epochs), tutorial(steps)
    samples = epochs * n
    return {
        "device": str(dev),
        "device_name": settings.device_name(dev),
        "dataset": f"SpokenDigits train ({size}): {n} clips",
        "steps": steps,
        "epochs": epochs,
        "batch_size": batch_size,
        "num_workers": num_workers,
        "torch_threads": torch.get_num_threads(),
        "audiolab_samples_per_s": samples / t_engine,
        "tutorial_samples_per_s": samples / t_tutorial,
        "speedup": t_tutorial / t_engine,
        "audiolab_seconds": t_engine,
        "tutorial_seconds": t_tutorial,
    }
