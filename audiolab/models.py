"""The spoken-digit classifier that chapter 3 trains and later chapters reuse, trained once.

- :class:`LogMel`: the front end, raw 16 kHz waveforms → normalised log-mel spectrograms;
- :class:`DigitCNN`: a compact 2-D CNN over (mel, time), with the front end as its first layer
  so that ``model(waveforms)`` works and a trained model is self-contained;
- :class:`AttentionPool`: average and attention pooling side by side, the head of the pretrained
  classifier;
- :class:`DigitCNN1d`: 1-D convolutions over time with the mel bands as channels (the
  chapter's comparison);
- :func:`pretrained_digit_classifier`: a trained :class:`DigitCNN`, trained on demand on
  :class:`audiolab.datasets.SpokenDigits` and cached in :func:`audiolab.settings.cache_dir`.

Examples
--------
::

    from audiolab.models import pretrained_digit_classifier
    model = pretrained_digit_classifier()          # trains once (GPU: seconds), then loads
    digits = model(waveforms).argmax(dim=1)        # waveforms: (batch, 16000) at 16 kHz
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from torch import Tensor, nn

from audiolab import checks, features, settings
from audiolab.cache import write_atomically

#: Bump when the model, its training or its data change: cached weights are then retrained.
MODEL_VERSION = 5
#: Training settings of :func:`pretrained_digit_classifier` by corpus size.
TRAINING: dict[str, dict[str, Any]] = {
    "quick": {"epochs": 12, "batch_size": 32, "lr": 3e-3, "patience": 8,
              "channels": (16, 32, 64, 128), "pool": "attention"},
    "full": {"epochs": 30, "batch_size": 64, "lr": 3e-3, "patience": 8,
             "channels": (32, 64, 128, 256), "pool": "attention"},
}


class LogMel(nn.Module):
    """Waveforms → per-utterance normalised log-mel spectrograms ``(batch, 1, mels, frames)``.

    :func:`audiolab.features.log_mel_spectrogram` (``n_fft=512``: 32 ms windows, hop 160: 10 ms,
    64 mel bands, dB with an 80 dB floor), computed in float32 even under autocast; then, with
    ``normalize``, each spectrogram has its mean subtracted and is divided by its standard
    deviation (over all its bins and frames), so the level of a recording does not matter.
    A 1 s clip at 16 kHz gives 101 frames.

    It has no trainable parameters: use it as a model's first layer (as :class:`DigitCNN`
    does) or as ``fit(..., transform=LogMel())``.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 512,
        hop_length: int = 160,
        n_mels: int = 64,
        normalize: bool = True,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.sample_rate, self.n_fft, self.hop_length = sample_rate, n_fft, hop_length
        self.n_mels, self.normalize, self.eps = n_mels, normalize, eps
        # the transform of features.log_mel_spectrogram, held here (its buffers unsaved), so
        # that forward is plain tensor code, which torch.compile captures without breaks
        self.mel = features.mel_transform(sample_rate, n_fft, hop_length, n_fft, n_mels)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 2:
            raise ValueError(
                f"LogMel expects waveforms of shape (batch, samples), got {tuple(x.shape)}"
            )
        with torch.autocast(x.device.type, enabled=False):
            # No NaN check here: on a GPU it would stall every training step; the engine
            # reports a non-finite loss (and whether the batch's data were finite) instead.
            # features.log_mel_spectrogram(x, sample_rate, n_fft, hop_length, n_mels=n_mels): the
            # STFT as torchaudio's Spectrogram computes it (same call, same result), written out
            # because its type checks would split a compiled graph; then its mel filterbank
            stft = torch.stft(
                x.float(), self.n_fft, self.hop_length, self.n_fft,
                window=self.mel.spectrogram.window, center=True, pad_mode="constant",
                normalized=False, onesided=True, return_complex=True,
            )
            spec = features.power_to_db(self.mel.mel_scale(stft.abs().pow(2.0)))
            if self.normalize:
                mean = spec.mean(dim=(-2, -1), keepdim=True)
                std = spec.std(dim=(-2, -1), keepdim=True)
                spec = (spec - mean) / (std + self.eps)
        return spec.unsqueeze(1)

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, hop_length={self.hop_length}, "
            f"n_mels={self.n_mels}, normalize={self.normalize}"
        )


def _block(conv: type[nn.Module], norm: type[nn.Module], pool: type[nn.Module], c_in: int,
           c_out: int, kernel: int) -> nn.Sequential:  # fmt: skip
    return nn.Sequential(
        conv(c_in, c_out, kernel, padding=kernel // 2, bias=False),
        norm(c_out),
        nn.ReLU(inplace=True),
        pool(2),
    )


class AttentionPool(nn.Module):
    """Global average pooling next to attention pooling: ``(batch, C, F, T)`` → ``(batch, 2C)``.

    A 1×1 convolution scores every position ``p`` of the feature map with ``heads`` numbers
    ``s_{h,p}``; a softmax over the positions turns each head's scores into weights
    ``a_{h,p} = exp(s_{h,p}) / Σ_q exp(s_{h,q})`` that sum to one. The attention-pooled vector
    is ``(1/H) Σ_h Σ_p a_{h,p} x_p`` (``x_p``: the ``C`` features at position ``p``, ``H`` =
    ``heads``), and the output is the plain average ``(1/P) Σ_p x_p`` (``P`` positions)
    followed by it. The average alone gives every position the same say, so a loud competing
    talker before or after the word pulls on the decision as much as the word does; the
    attention weights let the model listen where the word it recognises is.

    Parameters
    ----------
    channels
        Feature maps ``C`` of the input.
    heads
        Number of attention maps ``H`` (their pooled vectors are averaged).
    """

    def __init__(self, channels: int, heads: int = 4) -> None:
        super().__init__()
        self.heads = checks.integer("heads", heads)
        self.score = nn.Conv2d(channels, heads, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4:
            raise ValueError(
                f"AttentionPool takes (batch, channels, freq, time), got {tuple(x.shape)}"
            )
        # softmax in float32 (under autocast the scores may be half precision)
        weights = self.score(x).flatten(2).float().softmax(dim=-1).to(x.dtype)  # (batch, H, P)
        values = x.flatten(2)  # (batch, C, P)
        attended = torch.einsum("bhp,bcp->bc", weights, values) / self.heads
        return torch.cat([values.mean(dim=-1), attended], dim=1)


class DigitCNN(nn.Module):
    """A compact 2-D CNN that classifies 1 s spoken digits from their log-mel spectrogram.

    Four blocks of ``Conv2d(3×3) – BatchNorm2d – ReLU – MaxPool2d(2)`` with ``channels``
    (16, 32, 64, 128) feature maps, global average pooling over frequency and time, dropout and
    a linear layer to the class scores (logits). With ``pool="attention"`` the average is
    joined by attention pooling (:class:`AttentionPool`), which doubles the linear layer's
    inputs; :func:`pretrained_digit_classifier` uses it.

    Receptive field: each 3×3 convolution widens it by 2 input steps of its layer and each
    2×2 pooling by 1 step, while the step doubles after each pooling: 1 → 3 → 4 (step 2) → 8
    → 10 (step 4) → 18 → 22 (step 8) → 38 → 46 (step 16). A unit of the last block sees
    46 mel bands × 46 frames (45 hops of 10 ms plus one 32 ms window: 482 ms of audio); the
    global pooling then combines them over the whole clip, so the prediction depends little on
    where the word is (approximately: max-pooling with stride 2 is not exactly shift-invariant).
    About 98k parameters with the default channels.

    Parameters
    ----------
    n_classes
        Number of classes.
    channels
        Feature maps of each block.
    frontend
        Include :class:`LogMel` as the first layer: the model takes waveforms
        ``(batch, samples)``. Without it, it takes features ``(batch, 1, mels, frames)``.
    spec_augment
        An optional module applied to the features in training mode only, e.g.
        :class:`audiolab.augment.SpecAugment` (it has no weights, so the state dict is the same
        with or without it).
    dropout
        Dropout probability before the linear layer.
    pool
        ``"average"`` (global average pooling) or ``"attention"`` (:class:`AttentionPool`:
        the average and an attention-weighted sum, side by side).
    """

    def __init__(
        self,
        n_classes: int = 10,
        channels: Sequence[int] = (16, 32, 64, 128),
        frontend: bool = True,
        spec_augment: nn.Module | None = None,
        dropout: float = 0.1,
        pool: str = "average",
    ) -> None:
        super().__init__()
        if pool not in ("average", "attention"):
            raise ValueError(f"pool must be 'average' or 'attention', got {pool!r}")
        self.frontend = LogMel() if frontend else None
        self.spec_augment = spec_augment
        widths = [1, *channels]
        self.features = nn.Sequential(
            *(
                _block(nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, a, b, 3)
                for a, b in zip(widths[:-1], widths[1:], strict=True)
            )
        )
        if pool == "average":
            pooling: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        else:
            pooling = [AttentionPool(widths[-1])]
        pooled = widths[-1] * (1 if pool == "average" else 2)
        self.head = nn.Sequential(*pooling, nn.Dropout(dropout), nn.Linear(pooled, n_classes))

    def forward(self, x: Tensor) -> Tensor:
        if self.frontend is not None:
            x = self.frontend(x)
        elif x.ndim == 3:
            x = x.unsqueeze(1)  # (batch, mels, frames) -> one channel
        if self.spec_augment is not None and self.training:
            x = self.spec_augment(x)
        return self.head(self.features(x))


class DigitCNN1d(nn.Module):
    """A 1-D CNN over time, with the mel bands as input channels (the 2-D model's counterpart).

    Four blocks of ``Conv1d(kernel 3) – BatchNorm1d – ReLU – MaxPool1d(2)`` with ``channels``
    (96 each by default), global average pooling over time and a linear layer. Every filter
    spans all mel bands at once, so nothing is shared across frequency: a pattern shifted in
    pitch is a different input to it, while the 2-D model sees an approximately shifted copy
    (only in the upper, logarithmic part of the mel axis). The receptive
    field in time is the 2-D model's: 46 frames (482 ms of audio). About 102k parameters with the
    default channels.

    Parameters are those of :class:`DigitCNN`, plus ``n_mels``, the number of input channels.
    Without the front end it takes ``(batch, mels, frames)`` or ``(batch, 1, mels, frames)``.
    """

    def __init__(
        self,
        n_classes: int = 10,
        channels: Sequence[int] = (96, 96, 96, 96),
        frontend: bool = True,
        spec_augment: nn.Module | None = None,
        dropout: float = 0.1,
        n_mels: int = 64,
    ) -> None:
        super().__init__()
        self.frontend = LogMel(n_mels=n_mels) if frontend else None
        self.spec_augment = spec_augment
        widths = [n_mels, *channels]
        self.features = nn.Sequential(
            *(
                _block(nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, a, b, 3)
                for a, b in zip(widths[:-1], widths[1:], strict=True)
            )
        )
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(widths[-1], n_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.frontend is not None:
            x = self.frontend(x)
        if self.spec_augment is not None and self.training:
            x = self.spec_augment(x)
        if x.ndim == 4:
            x = x.squeeze(1)  # (batch, 1, mels, frames) -> mels as channels
        return self.head(self.features(x))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --------------------------------------------------------------------------- pretrained


def _config(
    size: str, epochs: int, variants: Sequence[str] | None, seed: int, randomise: bool = True
) -> dict[str, Any]:
    """Everything that changes the trained weights (hashed into the file name)."""
    return {
        "model": "DigitCNN",
        "frontend": {"n_fft": 512, "hop_length": 160, "n_mels": 64, "sample_rate": 16000},
        "size": size,
        "variants": sorted(variants, key=str.lower) if variants is not None else None,
        "seed": seed,
        **TRAINING[size],
        "epochs": epochs,
        "augment": {"speed": [0.9, 1.0, 1.1], "noise": [0, 20, 0.5], "specaugment": [8, 10, 2]},
        "randomise": randomise,
    }


def weights_path(
    size: str | None = None,
    epochs: int | None = None,
    variants: Sequence[str] | None = None,
    seed: int = 0,
    randomise: bool = True,
) -> Path:
    """Where :func:`pretrained_digit_classifier` caches the weights for these arguments."""
    from audiolab.cache import params_hash

    size = check_size(size)
    config = _config(size, epochs or TRAINING[size]["epochs"], variants, seed, randomise)
    name = f"digit_cnn-v{MODEL_VERSION}-{size}-{params_hash(config)}.pt"
    return settings.cache_dir() / "models" / name


def check_size(size: str | None, table: dict[str, Any] = TRAINING) -> str:
    """``size``, or the mode of :func:`audiolab.settings.mode` for ``None``; must be a key of
    ``table`` (the training settings by size of a pretrained model)."""
    size = size or settings.mode()
    if size not in table:
        raise ValueError(f"size must be one of {tuple(table)} or None, got {size!r}")
    return size


def pretrained_digit_classifier(
    size: str | None = None,
    device: torch.device | str | None = None,
    epochs: int | None = None,
    retrain: bool = False,
    variants: Sequence[str] | None = None,
    seed: int = 0,
    progress: bool = False,
    randomise: bool = True,
) -> DigitCNN:
    """A :class:`DigitCNN` trained on :class:`~audiolab.datasets.SpokenDigits`, in eval mode.

    The first call trains it (full size on a GPU, quick size on a laptop CPU: chapter 3 prints
    how long it took) and saves the weights atomically in
    ``cache_dir()/models/digit_cnn-v{MODEL_VERSION}-{size}-{hash}.pt``; later calls load them.
    Nothing is downloaded. A damaged file is reported with a warning and the model retrained.

    Training: chapter 3's recipe (:func:`train_digit_classifier`): Adam with a cosine
    learning-rate schedule, waveform augmentation (speed ±10 %, then, with ``randomise``,
    :func:`audiolab.augment.domain_randomisation`: onset and level, a room, a microphone,
    sometimes a telephone line, a noise floor, now and then clipping; then white/pink/brown/hum
    noise or babble at 0–20 dB SNR on 70 % of the clips), SpecAugment inside the model, and
    early stopping on the validation loss (the weights of the epoch with the lowest validation
    loss are kept). The full-size model is twice as wide as chapter 3's (channels 32, 64,
    128, 256: :data:`TRAINING`); the quick-size model has chapter 3's channels, so that a laptop
    CPU trains it in minutes. Both pool with attention next to the average
    (``DigitCNN(pool="attention")``, :class:`AttentionPool`), so that other talkers before and
    after the word weigh less in the decision (chapter 3's exercise on attention pooling shows
    how to measure what it buys on the proxy test).
    Randomisation is what prepares the model for real recordings, whose rooms, microphones and
    channels the synthetic corpus lacks (chapter 3's proxy test measures it).

    Parameters
    ----------
    size
        ``"quick"`` or ``"full"`` corpus and training settings (:data:`TRAINING`); ``None``
        follows :func:`audiolab.settings.mode`.
    device
        Where to train and where the returned model lives (default
        :func:`audiolab.settings.device`).
    epochs
        Maximum number of epochs (default from :data:`TRAINING`).
    retrain
        Train again even if cached weights exist (and replace them).
    variants
        Voice variants of the corpus (default: all); a handful make a tiny model for tests.
    seed
        Seed of the corpus and of training.
    progress
        Print one line per epoch while training.
    randomise
        Train with domain randomisation (default); ``False`` gives the model of chapter 3's
        plain augmented recipe (clean synthetic audio only).

    Returns
    -------
    DigitCNN
        The model (front end included: it takes 16 kHz waveforms ``(batch, 16000)``), with an
        ``info`` dict: ``valid_accuracy``, ``test_accuracy``, ``epochs``, ``best_epoch``,
        ``train_seconds``, ``size``, ``device``, ``versions``, ``path`` and ``from_cache``.
    """
    size = check_size(size)
    epochs = TRAINING[size]["epochs"] if epochs is None else checks.integer("epochs", epochs)
    seed = checks.integer("seed", seed, minimum=0)
    dev = device if isinstance(device, torch.device) else settings.device(device)
    model = DigitCNN(channels=TRAINING[size]["channels"], pool=TRAINING[size]["pool"],
                     frontend=True)
    return cached_weights(
        weights_path(size, epochs, variants, seed, randomise),
        model,
        lambda: _train(model, size, epochs, variants, seed, dev, progress, randomise),
        retrain=retrain,
    ).to(dev)


def cached_weights(
    path: Path,
    model: nn.Module,
    train: Callable[[], dict[str, Any]],
    retrain: bool = False,
) -> nn.Module:
    """Load ``model``'s weights from ``path``, or train it and save them there: a pretrained model.

    The one cache of every pretrained model of the course (this module's digit classifier,
    :func:`audiolab.instruments.pretrained_family_classifier`,
    :func:`audiolab.enhancement.pretrained_mask_lstm`). Under a file lock (so that two
    notebooks never train the same model at once), saved weights are checked (SHA-256
    checksum, parameter names and shapes, an ``info`` dict) and loaded; a missing file, or one
    that is damaged (reported with a warning, then deleted), makes ``train()`` train ``model``
    in place and return its info dict, and the weights are written atomically (a crash never
    leaves half a file).

    Parameters
    ----------
    path
        The weights file (``.pt``); its name should hash everything that changes the weights.
    model
        An untrained model of the saved architecture; trained or loaded in place.
    train
        Trains ``model`` in place; returns a JSON-able info dict (kept with the weights).
    retrain
        Train again even if the file exists (and replace it).

    Returns
    -------
    nn.Module
        ``model`` in eval mode, with ``model.info``: the saved info plus ``from_cache`` and
        ``path``.
    """
    from audiolab.training import INTEGRITY_KEY, state_digest

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        state = None if retrain else _load(path, model)
        if state is not None:
            info = dict(state["info"], from_cache=True)
        else:
            from audiolab import distributed

            if distributed.launched():
                raise RuntimeError(
                    f"the pretrained weights {path} are not cached, and every process of this "
                    "distributed run would train them: run the same command once on one "
                    "process (without torchrun), or the chapter that trains them, then again"
                )
            info = train()
            state = {"model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                     "info": info}
            state[INTEGRITY_KEY] = {"sha256": state_digest(state)}
            write_atomically(path, lambda file: torch.save(state, file))
            info = dict(info, from_cache=False)
    model.info = dict(info, path=str(path))
    return model.eval()


def _load(path: Path, model: nn.Module) -> dict[str, Any] | None:
    """Load the saved weights into ``model`` and return the saved state, or ``None`` when there
    is no file or it is damaged (then with a warning, and the file is deleted)."""
    if not path.exists():
        return None
    try:
        from audiolab.training import INTEGRITY_KEY, state_digest

        state = torch.load(path, map_location="cpu", weights_only=True)
        record = state.pop(INTEGRITY_KEY, None)
        if record is not None and record.get("sha256") != state_digest(state):
            raise ValueError("the contents do not match their SHA-256 checksum")
        if not isinstance(state.get("info"), dict):
            raise KeyError("info")
        copy.deepcopy(model).load_state_dict(state["model"])  # checks names and shapes
        model.load_state_dict(state["model"])
        return state
    except Exception as err:
        warnings.warn(
            f"cached model weights {path} are damaged or unreadable "
            f"({type(err).__name__}: {str(err)[:200]}); retraining the model",
            stacklevel=4,
        )
        path.unlink(missing_ok=True)
        return None


def train_digit_classifier(
    model: nn.Module,
    train: Any,
    valid: Any,
    *,
    size: str | None = None,
    epochs: int | None = None,
    augment: bool = True,
    device: torch.device | str | None = None,
    seed: int = 0,
    progress: bool = False,
    batch_size: int | None = None,
    randomise: bool = False,
) -> Any:
    """The training recipe of the digit classifiers (chapter 3), through ``fit``.

    Adam with a cosine learning-rate schedule and early stopping on the validation loss (the
    weights of the epoch with the lowest validation loss are restored: unlike the accuracy on a
    few hundred clips, the loss still improves after the accuracy saturates, so the kept epoch
    is not the first one that happened to get every clip right), with the settings of
    :data:`TRAINING` for ``size``. With
    ``augment``: speed changes of ±10 % and white/pink/brown/hum noise at 0–20 dB SNR on half
    of the clips (on the device, training only), and SpecAugment inside the model while it
    trains. ``train`` and ``valid`` are ``(waveforms, labels)`` or datasets with ``.waveforms``
    and ``.labels``; ``model`` takes waveforms; ``batch_size`` overrides the recipe's (e.g. a
    larger global batch on several GPUs). With ``randomise`` (and ``augment``), every clip
    also goes through :func:`audiolab.augment.domain_randomisation` (onset and level, a room, a
    microphone, sometimes a telephone line, a noise floor, now and then clipping) after the
    speed change, babble (4–6 overlapping clips of the training set: other voices saying
    digits, the noise that competes hardest with the words) joins the noise kinds, three times in
    seven, and 70 % of the clips get noise instead of half. Returns the
    :class:`~audiolab.training.History`.
    """
    from audiolab.augment import (
        AddNoise,
        Compose,
        SpecAugment,
        SpeedPerturb,
        domain_randomisation,
    )
    from audiolab.classification import accuracy
    from audiolab.training import EarlyStopping, fit

    cfg = TRAINING[check_size(size)]
    epochs = epochs or cfg["epochs"]
    noise = AddNoise(snr_db=(0.0, 20.0), p=0.5)
    if randomise:
        speech = train.waveforms if hasattr(train, "waveforms") else train[0]
        # 70 % of the clips get noise; babble, the hardest kind, three times in seven
        noise = AddNoise(kinds=("white", "pink", "brown", "hum", *["babble"] * 3),
                         speech=speech, snr_db=(0.0, 20.0), p=0.7)
    has_slot = hasattr(model, "spec_augment")
    if augment and has_slot:
        model.spec_augment = SpecAugment(freq_mask=8, time_mask=10, n_masks=2)
    try:
        return fit(
            model,
            train,
            valid,
            nn.CrossEntropyLoss(),
            epochs=epochs,
            batch_size=batch_size or cfg["batch_size"],
            lr=cfg["lr"],
            scheduler=lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs),
            train_transform=(
                Compose(
                    SpeedPerturb(),
                    *([domain_randomisation(16000)] if randomise else []),
                    noise,
                )
                if augment
                else None
            ),
            metrics={"accuracy": accuracy},
            early_stopping=EarlyStopping("valid_loss", "min", patience=cfg["patience"]),
            device=device,
            seed=seed,
            progress=progress,
        )
    finally:
        if has_slot:
            model.spec_augment = None


def _train(
    model: DigitCNN,
    size: str,
    epochs: int,
    variants: Sequence[str] | None,
    seed: int,
    device: torch.device,
    progress: bool,
    randomise: bool = True,
) -> dict[str, Any]:
    """Train ``model`` in place; return its info dict."""
    from audiolab.datasets import SpokenDigits

    data = {
        split: SpokenDigits(split, size=size, seed=seed, variants=variants)
        for split in ("train", "valid", "test")
    }
    start = time.perf_counter()
    history = train_digit_classifier(
        model,
        data["train"],
        data["valid"],
        size=size,
        epochs=epochs,
        device=device,
        seed=seed,
        progress=progress,
        randomise=randomise,
    )
    seconds = time.perf_counter() - start
    held_out = {split: (ds.waveforms, ds.labels) for split, ds in data.items() if split != "train"}
    return classifier_info(model, history, seconds, size, device, held_out)


def classifier_info(
    model: nn.Module,
    history: Any,
    seconds: float,
    size: str,
    device: torch.device,
    held_out: dict[str, tuple[Tensor, Tensor]],
) -> dict[str, Any]:
    """The info dict kept with a pretrained classifier's weights (see :func:`cached_weights`).

    ``{split}_accuracy`` on each ``held_out`` split ``(inputs, labels)`` (the model is put in
    eval mode), the epochs run and the best one (``history``: :class:`audiolab.training.History`),
    training time, corpus size, device and library versions.
    """
    from audiolab.classification import accuracy
    from audiolab.training import predict

    model.eval()
    scores = {
        f"{split}_accuracy": round(float(accuracy(predict(model, x), y.cpu())), 4)
        for split, (x, y) in held_out.items()
    }
    return {
        **scores,
        "epochs": len(history),
        "best_epoch": history.best_epoch,
        "train_seconds": round(seconds, 2),
        "size": size,
        "device": str(device),
        "versions": settings.versions(),
    }


def fine_tune_digit_classifier(
    model: DigitCNN,
    train: Any,
    valid: Any,
    *,
    epochs: int = 20,
    lr: float = 1e-3,
    body_lr_scale: float = 0.1,
    freeze_features: bool = False,
    augment: bool = True,
    batch_size: int = 32,
    device: torch.device | str | None = None,
    seed: int = 0,
    progress: bool = False,
) -> tuple[DigitCNN, Any]:
    """Transfer learning: adapt a pretrained digit classifier to a few real speakers.

    A copy of ``model`` (e.g. :func:`pretrained_digit_classifier`, trained on synthetic voices
    only) is trained on ``train`` (e.g. :class:`audiolab.datasets.FSDD` recordings of a few
    speakers); ``model`` itself is left as it was. The classifier's last linear layer learns at
    ``lr`` and the convolutional features at ``lr · body_lr_scale`` (*discriminative*
    fine-tuning: the features already separate digits, so they should only move a little), or
    not at all with ``freeze_features`` (a linear probe; batch-norm statistics still adapt to
    the new recordings). Adam, cosine schedule, early stopping on the validation loss; with
    ``augment``, the speed and noise augmentation of :func:`train_digit_classifier`, since a
    few speakers are few examples.

    Parameters
    ----------
    model
        The pretrained classifier (front end included: it takes 16 kHz waveforms).
    train, valid
        ``(waveforms, labels)`` or datasets with ``.waveforms`` and ``.labels``, 16 kHz.
    epochs, lr, body_lr_scale, batch_size
        Training length and learning rates (``body_lr_scale`` in ``[0, 1]``).
    freeze_features
        Train only the last linear layer.
    augment, device, seed, progress
        As in :func:`train_digit_classifier`.

    Returns
    -------
    (DigitCNN, History)
        The fine-tuned copy, in eval mode, and its training history.
    """
    import copy

    from audiolab.augment import AddNoise, Compose, SpeedPerturb
    from audiolab.classification import accuracy
    from audiolab.training import EarlyStopping, fit

    if not isinstance(model, DigitCNN):
        raise TypeError(f"model must be a DigitCNN, got {type(model).__name__}")
    epochs = checks.integer("epochs", epochs)
    batch_size = checks.integer("batch_size", batch_size)
    lr = checks.number("lr", lr, positive=True)
    body_lr_scale = checks.number("body_lr_scale", body_lr_scale, non_negative=True)
    if body_lr_scale > 1:
        raise ValueError(f"body_lr_scale must be in [0, 1], got {body_lr_scale:g}")
    tuned = copy.deepcopy(model)
    head = list(tuned.head.parameters())
    body = [p for name, p in tuned.named_parameters() if not name.startswith("head.")]
    for p in body:
        p.requires_grad_(not freeze_features and body_lr_scale > 0)
    groups = [{"params": head, "lr": lr}]
    if not freeze_features and body_lr_scale > 0:
        groups.append({"params": body, "lr": lr * body_lr_scale})
    history = fit(
        tuned,
        train,
        valid,
        nn.CrossEntropyLoss(),
        epochs=epochs,
        batch_size=batch_size,
        optimizer=lambda _params: torch.optim.Adam(groups),
        scheduler=lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs),
        train_transform=(
            Compose(SpeedPerturb(), AddNoise(snr_db=(5.0, 30.0), p=0.5)) if augment else None
        ),
        metrics={"accuracy": accuracy},
        early_stopping=EarlyStopping("valid_loss", "min", patience=max(3, epochs // 3)),
        device=device,
        seed=seed,
        progress=progress,
    )
    for p in tuned.parameters():
        p.requires_grad_(True)
    return tuned.eval(), history


def transfer_comparison(
    pretrained: DigitCNN,
    train: Any,
    valid: Any,
    test: Any,
    *,
    epochs: int = 20,
    device: torch.device | str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Three ways to a digit classifier for new recordings, scored on the same held-out clips.

    1. ``pretrained`` as it is (e.g. :func:`pretrained_digit_classifier`: no real data at all);
    2. a new :class:`DigitCNN` of the same shape trained from scratch on ``train`` with the
       chapter-3 recipe (:func:`train_digit_classifier`, augmentation on);
    3. ``pretrained`` fine-tuned on ``train`` (:func:`fine_tune_digit_classifier`).

    ``train``, ``valid`` and ``test`` are ``(waveforms, labels)`` at 16 kHz or datasets with
    ``.waveforms`` and ``.labels`` (e.g. :class:`audiolab.datasets.FSDD` split by speaker, so
    that ``test`` holds speakers that neither training saw). ``pretrained`` is not changed.

    Returns
    -------
    dict
        ``{"accuracy": {way: test accuracy}, "epochs": {way: epochs trained}, "train_clips",
        "test_clips"}``.
    """
    from audiolab.classification import accuracy
    from audiolab.training import predict

    if not isinstance(pretrained, DigitCNN):
        raise TypeError(f"pretrained must be a DigitCNN, got {type(pretrained).__name__}")
    epochs = checks.integer("epochs", epochs)
    test_w, test_y = (test.waveforms, test.labels) if hasattr(test, "waveforms") else test
    n_train = len(train.labels if hasattr(train, "labels") else train[1])

    def score(model: nn.Module) -> float:
        return round(float(accuracy(predict(model, test_w, device=device), test_y)), 4)

    import copy

    scratch = copy.deepcopy(pretrained)  # the same architecture, with fresh initial weights
    torch.manual_seed(seed)
    for module in scratch.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    scratch_history = train_digit_classifier(scratch, train, valid, epochs=epochs, device=device,
                                             seed=seed)
    tuned, tuned_history = fine_tune_digit_classifier(pretrained, train, valid, epochs=epochs,
                                                      device=device, seed=seed)
    return {
        "accuracy": {
            "pretrained, no real data": score(pretrained.eval()),
            "trained from scratch": score(scratch.eval()),
            "pretrained, fine-tuned": score(tuned),
        },
        "epochs": {"trained from scratch": len(scratch_history),
                   "pretrained, fine-tuned": len(tuned_history)},
        "train_clips": n_train,
        "test_clips": len(test_y),
    }
