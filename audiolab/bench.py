"""Benchmarks (run by ``python -m audiolab bench NAME``; never part of the unit tests)."""

from __future__ import annotations

import math
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


# --------------------------------------------------------------------------- training loops

#: Dense bf16 peak of the GPUs the course runs on (FLOP/s), by a substring of the device name.
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L4": 121e12, "T4": 65e12}


def peak_flops(dev: torch.device) -> float | None:
    """The dense bf16 peak of CUDA device ``dev`` (FLOP/s) from :data:`PEAK_BF16`, or None."""
    if dev.type != "cuda":
        return None
    name = torch.cuda.get_device_name(dev)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


class _PerClip(Dataset):
    """The tutorial way: ``__getitem__`` computes one clip's features on the CPU."""

    def __init__(self, waveforms: torch.Tensor, labels: torch.Tensor, featurize) -> None:
        self.waveforms, self.labels, self.featurize = waveforms, labels, featurize

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return self.featurize(self.waveforms[index : index + 1])[0], self.labels[index]


def flops_per_clip(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    """Floating-point operations of one training step (forward + backward) per example, counted
    by :class:`torch.utils.flop_counter.FlopCounterMode` (matrix products and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    model.train()
    with FlopCounterMode(display=False) as counter:
        nn.functional.cross_entropy(model(inputs), labels).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(inputs)


def fit_loops(
    model: str = "cnn",
    batch_size: int = 64,
    steps: int = 200,
    device: str | None = None,
    size: str | None = None,
    workers: tuple[int, ...] = (4, 0),
    compile: bool = True,
    lightning: bool = True,
) -> dict[str, object]:
    """One model, one batch size, several training loops: clips per second, side by side.

    ``model``: ``"cnn"`` (chapter 3's :class:`~audiolab.models.DigitCNN` with its log-mel front
    end) or ``"mlp"`` (:func:`digit_mlp` on MFCCs). Each loop trains a fresh copy for at least
    ``steps`` optimisation steps (whole epochs for ``fit``) on the SpokenDigits training clips,
    after a warm-up, and is timed on its best epoch (``fit``) or its whole run:

    - ``fit``: :func:`audiolab.training.fit` (data on the device, features on the device, bf16
      autocast on CUDA); ``fit(compile=True)`` as well, with its compile time reported;
    - ``lightning``: PyTorch Lightning's ``Trainer`` (bf16-mixed on CUDA, a ``DataLoader`` over
      the waveforms with 4 workers and pinned memory, features on the device in the step),
      skipped with a message when Lightning is not installed (``pip install lightning``);
    - ``tutorial, N workers``: a ``DataLoader`` whose dataset computes each clip's features on
      the CPU, float32, a plain loop; for each number of workers in ``workers``.

    Returns the rows (clips/s, ratio to ``fit``, the precision of the loop's arithmetic,
    achieved TFLOP/s and its fraction of the device's bf16 peak where known: one yardstick for
    every loop, which a float32 loop cannot reach), the FLOPs per clip of one training step,
    the date and the library versions.
    """
    from .datasets import SpokenDigits
    from .models import DigitCNN, LogMel
    from .training import fit

    if model not in ("cnn", "mlp"):
        raise ValueError(f"model must be 'cnn' or 'mlp', got {model!r}")
    steps = checks.integer("steps", steps)
    batch_size = checks.integer("batch_size", batch_size)
    dev = settings.device(device)
    size = size or ("full" if dev.type == "cuda" else "quick")
    train = SpokenDigits("train", size=size)
    n, rate = len(train), train.sample_rate
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    if model == "cnn":
        def make(frontend: bool = True) -> nn.Module:
            torch.manual_seed(0)
            return DigitCNN(frontend=frontend)

        device_features = None
        cpu_features = LogMel()
    else:
        def make(frontend: bool = True) -> nn.Module:
            torch.manual_seed(0)
            return digit_mlp()

        def device_features(x: torch.Tensor) -> torch.Tensor:
            return features.mfcc(x, rate, **MFCC, check_finite=False)  # no wait per step

        cpu_features = device_features

    epochs = max(2, math.ceil(steps / math.ceil(n / batch_size)) + 1)
    bf16 = "bf16 autocast" if dev.type == "cuda" else "float32"  # the precision of fit's steps
    rows: dict[str, dict[str, float | str]] = {}

    def engine(use_compile: bool) -> dict[str, float]:
        history = fit(make(), (train.waveforms, train.labels), loss=nn.CrossEntropyLoss(),
                      epochs=epochs, batch_size=batch_size, transform=device_features,
                      device=dev, compile=use_compile, progress=False)
        best = min(history["seconds"][1:])
        return {"clips_per_s": n / best, "first_epoch_s": history["seconds"][0],
                "precision": bf16}

    rows["fit"] = engine(False)
    if compile:
        try:
            rows["fit(compile=True)"] = engine(True)
        except Exception as err:  # a platform without a compiler toolchain
            rows["fit(compile=True)"] = {"skipped": f"{type(err).__name__}: {str(err)[:120]}"}
    if lightning:
        rows["lightning"] = _lightning(make, train, batch_size, epochs, device_features, dev)
    for w in workers:
        loader = DataLoader(_PerClip(train.waveforms, train.labels, cpu_features),
                            batch_size=batch_size, shuffle=True, num_workers=w,
                            persistent_workers=w > 0)
        net = make(frontend=False) if model == "cnn" else make()
        _tutorial_fit(net, loader, min(steps, 5), dev)  # warm-up
        seconds = _tutorial_fit(net, loader, steps, dev)
        rows[f"tutorial, {w} workers"] = {"clips_per_s": steps * batch_size / seconds,
                                          "precision": "float32"}

    sample = train.waveforms[:batch_size].to(dev)
    labels = train.labels[:batch_size].to(dev)
    net = make().to(dev)
    x = sample if device_features is None else device_features(sample)
    flops = flops_per_clip(net, x, labels)
    peak = peak_flops(dev)
    base = rows["fit"]["clips_per_s"]
    for row in rows.values():
        if "clips_per_s" in row:
            row["ratio_to_fit"] = row["clips_per_s"] / base
            row["tflop_per_s"] = row["clips_per_s"] * flops / 1e12
            if peak:
                row["fraction_of_peak"] = row["clips_per_s"] * flops / peak
    sync()
    return {
        "model": model,
        "device": str(dev),
        "device_name": settings.device_name(dev),
        "date": time.strftime("%Y-%m-%d"),
        "versions": settings.versions(),
        "dataset": f"SpokenDigits train ({size}): {n} clips",
        "batch_size": batch_size,
        "steps": steps,
        "fit_epochs": epochs,
        "mflop_per_clip_per_step": flops / 1e6,
        "peak_bf16_tflop_per_s": peak / 1e12 if peak else None,
        "loops": rows,
    }


def _lightning(make, train, batch_size: int, epochs: int, device_features, dev: torch.device):
    """PyTorch Lightning's Trainer on the same model and data; its best epoch (clips/s)."""
    try:
        import lightning as L  # noqa: N812
    except ImportError:
        try:
            import pytorch_lightning as L  # noqa: N812
        except ImportError:
            return {"skipped": "PyTorch Lightning is not installed (pip install lightning)"}
    from torch.utils.data import TensorDataset

    class Module(L.LightningModule):
        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net

        def training_step(self, batch, index):
            x, y = batch
            if device_features is not None:
                with torch.no_grad():
                    x = device_features(x)
            return nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    class EpochTimer(L.Callback):
        def __init__(self) -> None:
            self.seconds: list[float] = []

        def on_train_epoch_start(self, trainer, module) -> None:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer, module) -> None:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            self.seconds.append(time.perf_counter() - self.start)

    timer = EpochTimer()
    loader = DataLoader(TensorDataset(train.waveforms, train.labels), batch_size=batch_size,
                        shuffle=True, num_workers=4, pin_memory=dev.type == "cuda",
                        persistent_workers=True)
    trainer = L.Trainer(max_epochs=epochs, accelerator="gpu" if dev.type == "cuda" else "cpu",
                        devices=1, precision="bf16-mixed" if dev.type == "cuda" else "32-true",
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[timer])
    trainer.fit(Module(make()), loader)
    return {"clips_per_s": len(train) / min(timer.seconds[1:] or timer.seconds),
            "precision": "bf16-mixed" if dev.type == "cuda" else "float32",
            "version": L.__version__}
