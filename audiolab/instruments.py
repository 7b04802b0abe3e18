"""An instrument-family classifier trained on real GMNotes, the judge of generated notes.

- :data:`FEATURES`: the log-mel spectrogram it reads (and that chapter 7's VAE models):
  1024-point frames (64 ms), hop 256 (16 ms), 128 mel bands, dB with an 80 dB floor;
- :class:`FamilyCNN`: the 2-D CNN of chapter 3 (:class:`audiolab.models.DigitCNN`) over those
  spectrograms, ten outputs (:data:`audiolab.music.FAMILIES`); it takes waveforms *or* log-mel
  spectrograms in dB, and :meth:`FamilyCNN.embed` returns the pooled features used for the
  Fréchet distance (:func:`audiolab.generative.frechet_distance`);
- :func:`pretrained_family_classifier`: one trained on the real notes of
  :class:`audiolab.music.GMNotes` (pitch/velocity hold-out split), trained on demand and cached
  as :func:`audiolab.models.pretrained_digit_classifier` is.

Taught in chapter 7 (where it scores the notes a conditional VAE generates).

Examples
--------
::

    from audiolab.instruments import pretrained_family_classifier
    judge = pretrained_family_classifier()          # trains once, then loads
    families = judge(waveforms).argmax(dim=1)       # waveforms (batch, 24000) at 16 kHz
    emb = judge.embed(log_mel_db)                   # or spectrograms (batch, 128, frames)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from audiolab import checks, settings
from audiolab.models import DigitCNN, LogMel, cached_weights, check_size, classifier_info
from audiolab.music import FAMILIES

#: Bump when the model, its training or its data change: cached weights are then retrained.
MODEL_VERSION = 1
#: The log-mel spectrogram the classifier reads (keyword arguments of
#: :func:`audiolab.features.log_mel_spectrogram`, at 16 kHz).
FEATURES: dict[str, int] = {"n_fft": 1024, "hop_length": 256, "n_mels": 128}
SAMPLE_RATE = 16000
#: Feature maps of the four convolutional blocks; the last is the embedding size.
CHANNELS: tuple[int, ...] = (16, 32, 64, 64)
#: Training settings of :func:`pretrained_family_classifier` by corpus size.
TRAINING: dict[str, dict[str, Any]] = {
    "quick": {"epochs": 4, "batch_size": 32, "lr": 3e-3, "patience": 4},
    "full": {"epochs": 25, "batch_size": 64, "lr": 3e-3, "patience": 6},
}


class FamilyCNN(DigitCNN):
    """:class:`~audiolab.models.DigitCNN` over :data:`FEATURES` log-mel spectrograms, ten families.

    ``model(x)`` returns family logits ``(batch, 10)`` for

    - waveforms ``(batch, samples)`` at 16 kHz (the log-mel spectrogram is computed inside), or
    - log-mel spectrograms in dB, ``(batch, 128, frames)`` or ``(batch, 1, 128, frames)``, as
      :func:`audiolab.features.log_mel_spectrogram` with :data:`FEATURES` gives them (e.g. a
      VAE's output, judged without turning it into sound).

    Either way each spectrogram is normalised to zero mean and unit standard deviation, so the
    level does not matter, and averaged over 2 bands × 4 frames (64 bands, 64 ms frames:
    enough for timbre, and an eighth of the computation). :meth:`embed` returns the globally
    pooled features of the last block (``channels[-1]`` numbers per clip), the embedding of
    the Fréchet distance.
    """

    def __init__(
        self,
        channels: Sequence[int] = CHANNELS,
        spec_augment: nn.Module | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(
            n_classes=len(FAMILIES), channels=channels, frontend=False,
            spec_augment=spec_augment, dropout=dropout,
        )  # fmt: skip
        self.frontend = LogMel(SAMPLE_RATE, normalize=False, **FEATURES)

    def _spectrograms(self, x: Tensor) -> Tensor:
        """Normalised log-mel spectrograms ``(batch, 1, 128, frames)`` of waveforms or dB."""
        if x.ndim == 2:
            x = self.frontend(x)
        elif x.ndim == 3:
            x = x.unsqueeze(1)
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != FEATURES["n_mels"]:
            raise ValueError(
                "FamilyCNN takes waveforms (batch, samples) or log-mel spectrograms in dB "
                f"(batch, {FEATURES['n_mels']}, frames) or (batch, 1, {FEATURES['n_mels']}, "
                f"frames), got shape {tuple(x.shape)}"
            )
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            mean = x.mean(dim=(-2, -1), keepdim=True)
            std = x.std(dim=(-2, -1), keepdim=True)
            return nn.functional.avg_pool2d((x - mean) / (std + 1e-5), (2, 4), ceil_mode=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self._spectrograms(x)
        if self.spec_augment is not None and self.training:
            x = self.spec_augment(x)
        return self.head(self.features(x))

    def embed(self, x: Tensor) -> Tensor:
        """Embeddings ``(batch, channels[-1])``: the pooled output of the last block."""
        pooled = self.head[:2]  # AdaptiveAvgPool2d(1), Flatten
        return pooled(self.features(self._spectrograms(x)))


@torch.inference_mode()
def embeddings(model: FamilyCNN, x: Tensor, batch_size: int = 256) -> Tensor:
    """:meth:`FamilyCNN.embed` of ``x`` batch by batch, in eval mode, on the CPU (float32)."""
    if not isinstance(model, FamilyCNN):
        raise TypeError(f"model must be a FamilyCNN, got {type(model).__name__}")
    batch_size = checks.integer("batch_size", batch_size)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        return torch.cat(
            [model.embed(x[i : i + batch_size].to(device)).float().cpu()
             for i in range(0, len(x), batch_size)]
        )  # fmt: skip
    finally:
        model.train(was_training)


# --------------------------------------------------------------------------- pretrained


def _config(
    size: str, epochs: int, instruments: Sequence[int] | None, seed: int
) -> dict[str, Any]:
    """Everything that changes the trained weights (hashed into the file name)."""
    return {
        "model": "FamilyCNN",
        "channels": list(CHANNELS),
        "features": FEATURES,
        "data": {"corpus": "GMNotes", "split_by": "pitch_velocity", "size": size},
        "instruments": sorted(instruments) if instruments is not None else None,
        "seed": seed,
        **TRAINING[size],
        "epochs": epochs,
        "augment": {"specaugment": [8, 10, 2]},
        "input_pool": [2, 4],
    }


def weights_path(
    size: str | None = None,
    epochs: int | None = None,
    instruments: Sequence[int] | None = None,
    seed: int = 0,
) -> Path:
    """Where :func:`pretrained_family_classifier` caches the weights for these arguments."""
    from audiolab.cache import params_hash

    size = check_size(size, TRAINING)
    config = _config(size, epochs or TRAINING[size]["epochs"], instruments, seed)
    name = f"family_cnn-v{MODEL_VERSION}-{size}-{params_hash(config)}.pt"
    return settings.cache_dir() / "models" / name


def pretrained_family_classifier(
    size: str | None = None,
    device: torch.device | str | None = None,
    epochs: int | None = None,
    retrain: bool = False,
    instruments: Sequence[int] | None = None,
    seed: int = 0,
    progress: bool = False,
) -> FamilyCNN:
    """A :class:`FamilyCNN` trained on the real notes of :class:`~audiolab.music.GMNotes`.

    Data: the pitch/velocity hold-out split (``split_by="pitch_velocity"``: every instrument
    in every split, some (pitch, velocity) combinations held out), so it judges the
    instruments that a conditional model learns, on notes it has not heard. The first call
    trains it (full size: seconds on a GPU; quick size: seconds on a laptop CPU)
    and saves the weights atomically in ``cache_dir()/models/family_cnn-v{MODEL_VERSION}-
    {size}-{hash}.pt``; later calls load them. A damaged file is reported with a warning and
    the model retrained. Nothing is downloaded.

    Training: as chapter 3 trains its classifier (Adam, cosine schedule, SpecAugment, early
    stopping on the validation loss), on spectrograms computed once (no waveform
    augmentation), with the settings of :data:`TRAINING`.

    Parameters
    ----------
    size
        ``"quick"`` or ``"full"`` corpus and training; ``None`` follows
        :func:`audiolab.settings.mode`.
    device
        Where to train and where the returned model lives (default
        :func:`audiolab.settings.device`).
    epochs
        Maximum number of epochs (default from :data:`TRAINING`).
    retrain
        Train again even if cached weights exist (and replace them).
    instruments
        GM programs of the corpus (default all; a few make a tiny model for tests). Every
        family still has an output.
    seed
        Seed of training.
    progress
        Print one line per epoch while training.

    Returns
    -------
    FamilyCNN
        The model in eval mode, with an ``info`` dict: ``valid_accuracy``, ``test_accuracy``,
        ``epochs``, ``best_epoch``, ``train_seconds``, ``size``, ``device``, ``versions``,
        ``path`` and ``from_cache``.
    """
    size = check_size(size, TRAINING)
    epochs = TRAINING[size]["epochs"] if epochs is None else checks.integer("epochs", epochs)
    seed = checks.integer("seed", seed, minimum=0)
    dev = device if isinstance(device, torch.device) else settings.device(device)
    model = FamilyCNN()
    return cached_weights(
        weights_path(size, epochs, instruments, seed),
        model,
        lambda: _train(model, size, epochs, instruments, seed, dev, progress),
        retrain=retrain,
    ).to(dev)


def log_mel_db(waveforms: Tensor, batch_size: int = 256) -> Tensor:
    """Log-mel spectrograms in dB with :data:`FEATURES` ``(N, 128, frames)``, on the waveforms'
    device, computed batch by batch."""
    from audiolab.features import log_mel_spectrogram

    batch_size = checks.integer("batch_size", batch_size)
    return torch.cat(
        [log_mel_spectrogram(waveforms[i : i + batch_size], SAMPLE_RATE, **FEATURES)
         for i in range(0, len(waveforms), batch_size)]
    )  # fmt: skip


def _train(
    model: FamilyCNN,
    size: str,
    epochs: int,
    instruments: Sequence[int] | None,
    seed: int,
    device: torch.device,
    progress: bool,
) -> dict[str, Any]:
    """Train ``model`` in place on log-mel spectrograms computed once; return its info dict.

    Adam with a cosine learning-rate schedule, SpecAugment inside the model, early stopping on
    the validation loss (the best epoch's weights are kept), as chapter 3 trains its
    classifier; no waveform augmentation (the spectrograms are computed once, on the device).
    """
    from audiolab.augment import SpecAugment
    from audiolab.classification import accuracy
    from audiolab.music import GMNotes
    from audiolab.training import EarlyStopping, fit

    cfg = TRAINING[size]
    data = {}
    for split in ("train", "valid", "test"):
        notes = GMNotes(split, size=size, split_by="pitch_velocity", instruments=instruments)
        data[split] = (log_mel_db(notes.waveforms.to(device)), notes.families.to(device))
    start = time.perf_counter()
    model.spec_augment = SpecAugment(freq_mask=8, time_mask=10, n_masks=2)
    try:
        history = fit(
            model,
            data["train"],
            data["valid"],
            nn.CrossEntropyLoss(),
            epochs=epochs,
            batch_size=cfg["batch_size"],
            lr=cfg["lr"],
            scheduler=lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs),
            metrics={"accuracy": accuracy},
            early_stopping=EarlyStopping("valid_loss", "min", patience=cfg["patience"]),
            device=device,
            seed=seed,
            progress=progress,
        )
    finally:
        model.spec_augment = None
    seconds = time.perf_counter() - start
    held_out = {split: xy for split, xy in data.items() if split != "train"}
    return classifier_info(model, history, seconds, size, device, held_out)
