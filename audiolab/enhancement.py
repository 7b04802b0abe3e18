"""Speech enhancement by a time–frequency mask: chapter 4's LSTM mask model, once, for reuse.

Taught in chapter 4 (Recurrent networks): the phase-sensitive target, the mask network and its
training recipe are written out there. This module holds the same model and recipe so that a
later chapter (chapter 6, Autoencoders) can compare against it on the same test set::

    from audiolab.enhancement import MaskLSTM, train_mask_lstm, enhance
    model, history = train_mask_lstm(NoisySpeech("train"), NoisySpeech("valid"))
    denoised = enhance(model, noisy)           # (batch, samples) -> (batch, samples)
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from audiolab import features, noise, settings
from audiolab.training import EarlyStopping, History, StepContext, fit, predict

#: STFT of the mask model: 32 ms windows, 8 ms hop at 16 kHz (257 bins), as in chapter 4.
N_FFT, STFT_HOP = 512, 128
#: Chapter 4's denoiser settings by mode.
CONFIG: dict[str, dict[str, int]] = {
    "quick": {"epochs": 8, "batch_size": 32, "hidden": 128},
    "full": {"epochs": 100, "batch_size": 128, "hidden": 256},
}


def spectra(*signals: torch.Tensor) -> list[torch.Tensor]:
    """The complex STFTs (``N_FFT``, ``STFT_HOP``) of the signals."""
    return [features.stft(s, N_FFT, STFT_HOP) for s in signals]


def psa_target(Y: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
    """Truncated phase-sensitive target magnitude: ``min(|Y|, max(0, |S| cos(θS − θY)))``."""
    target = S.abs() * torch.cos(S.angle() - Y.angle())
    return target.clamp(min=0).minimum(Y.abs())


def resynthesise(mask: torch.Tensor, Y: torch.Tensor, length: int) -> torch.Tensor:
    """The waveform of ``mask · Y`` (noisy phase), ``length`` samples."""
    return features.istft(mask * Y, N_FFT, STFT_HOP, length=length)


class MaskLSTM(nn.Module):
    """Noisy STFT (batch, bins, frames) -> mask in [0, 1] of the same shape.

    Taught in chapter 4: per-utterance normalised log power spectrum, a layer norm, two
    bidirectional LSTM layers and one sigmoid per bin and frame.
    """

    def __init__(self, bins: int = N_FFT // 2 + 1, hidden: int = 256, layers: int = 2) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(bins)
        self.rnn = nn.LSTM(bins, hidden, layers, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, bins)

    def forward(self, Y: torch.Tensor) -> torch.Tensor:
        x = torch.log(Y.abs().pow(2) + 1e-8).transpose(1, 2)  # (batch, frames, bins)
        x = (x - x.mean(dim=(1, 2), keepdim=True)) / (x.std(dim=(1, 2), keepdim=True) + 1e-5)
        h, _ = self.rnn(self.norm(x))
        return torch.sigmoid(self.head(h).float()).transpose(1, 2)


def remix(clean: torch.Tensor, noise_: torch.Tensor, snr_db: tuple[float, float] = (-5.0, 15.0)):
    """Mix each clip afresh: a circularly shifted copy of its noise at a new random SNR."""
    snr = torch.empty(len(clean), device=clean.device).uniform_(*snr_db)
    shift = torch.randint(0, clean.shape[-1], (len(clean), 1), device=clean.device)
    index = (torch.arange(clean.shape[-1], device=clean.device) + shift) % clean.shape[-1]
    return noise.mix_at_snr(clean, noise_.gather(1, index), snr)


def mask_step(batch: tuple[torch.Tensor, ...], ctx: StepContext) -> dict[str, torch.Tensor]:
    """Chapter 4's training step: remix, mask, normalised phase-sensitive loss.

    Works for any model that maps a noisy STFT ``(batch, bins, frames)`` to a mask.
    """
    noisy, clean, noise_ = batch
    if ctx.training:
        noisy = remix(clean, noise_)
    Y, S = spectra(noisy, clean)
    with ctx.autocast():
        mask = ctx.model(Y)
    error = (mask.float() * Y.abs() - psa_target(Y, S)).pow(2).sum(dim=(1, 2))
    loss = (error / Y.abs().pow(2).sum(dim=(1, 2))).mean()
    if ctx.training:
        ctx.minimize(loss)
    return {"loss": loss.detach()}


def train_mask_model(
    model: nn.Module,
    train: Any,
    valid: Any,
    *,
    epochs: int,
    batch_size: int,
    device: torch.device | str | None = None,
    seed: int = 0,
    patience: int | None = None,
) -> History:
    """Chapter 4's recipe for a mask model: one-cycle Adam (peak 3e-3), clipping 5, remixing.

    ``train`` and ``valid`` are :class:`~audiolab.speech.NoisySpeech` sets (or anything with
    ``noisy``, ``clean`` and ``noise`` tensors). The weights of the epoch with the lowest
    validation loss are kept. By default training is not stopped early (``patience`` = all
    epochs): the one-cycle learning rate becomes small only in the last epochs, and the
    validation loss can stall for ten epochs before them.
    """
    for name, corpus in (("train", train), ("valid", valid)):
        if not all(hasattr(corpus, k) for k in ("noisy", "clean", "noise")):
            raise TypeError(
                f"{name} must have noisy, clean and noise tensors (a NoisySpeech set), got "
                f"{type(corpus).__name__}"
            )

    def one_cycle(opt: torch.optim.Optimizer) -> Any:
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=3e-3, total_steps=epochs, pct_start=0.2
        )

    return fit(
        model,
        (train.noisy, train.clean, train.noise),
        (valid.noisy, valid.clean, valid.noise),
        step=mask_step,
        epochs=epochs,
        batch_size=batch_size,
        scheduler=one_cycle,
        grad_clip=5.0,
        device=device,
        progress=False,
        seed=seed,
        early_stopping=EarlyStopping(monitor="valid_loss", patience=patience or epochs),
    )


def train_mask_lstm(
    train: Any,
    valid: Any,
    config: dict[str, int] | None = None,
    device: torch.device | str | None = None,
) -> tuple[MaskLSTM, History]:
    """Chapter 4's :class:`MaskLSTM`, trained by chapter 4's recipe (``CONFIG`` of the mode).

    Returns the trained model (on ``device``, eval mode) and its history.
    """
    from audiolab import settings

    cfg = dict(CONFIG[settings.mode()] if config is None else config)
    missing = {"epochs", "batch_size", "hidden"} - set(cfg)
    if missing:
        raise ValueError(f"config lacks {sorted(missing)}; give epochs, batch_size and hidden")
    model = MaskLSTM(hidden=cfg["hidden"])
    history = train_mask_model(
        model, train, valid, epochs=cfg["epochs"], batch_size=cfg["batch_size"], device=device
    )
    return model.eval(), history


def enhance(model: nn.Module, noisy: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Denoise ``noisy`` ``(batch, samples)`` with a mask model (noisy phase); same shape."""
    if noisy.ndim != 2:
        raise ValueError(f"noisy must have shape (batch, samples), got {tuple(noisy.shape)}")
    device = next(model.parameters()).device
    (Y,) = spectra(noisy.to(device))
    mask = predict(model, Y, batch_size=batch_size, device=device).to(Y.device)
    return resynthesise(mask, Y, noisy.shape[-1])


#: Bump when MaskLSTM or its recipe changes: cached weights are then retrained.
MODEL_VERSION = 3


def pretrained_mask_lstm(
    size: str | None = None, device: torch.device | str | None = None, retrain: bool = False
) -> MaskLSTM:
    """Chapter 4's :class:`MaskLSTM` trained by :func:`train_mask_lstm` on NoisySpeech, cached.

    The first call trains it on ``NoisySpeech("train")`` / ``("valid")`` of ``size`` with
    :data:`CONFIG` ``[size]`` and saves the weights atomically in
    ``cache_dir()/models/mask_lstm-v{MODEL_VERSION}-{size}-{hash}.pt``; later calls (in any
    notebook) load them. A damaged file is retrained. The model comes back in eval mode with an
    ``info`` dict: ``epochs``, ``best_epoch``, ``train_seconds``, ``from_cache``.
    """
    from audiolab.cache import params_hash
    from audiolab.models import cached_weights, check_size
    from audiolab.speech import NoisySpeech

    size = check_size(size, CONFIG)
    dev = device if isinstance(device, torch.device) else settings.device(device)
    config = {"model": "MaskLSTM", "n_fft": N_FFT, "hop": STFT_HOP, "size": size, **CONFIG[size]}
    path = settings.cache_dir() / "models" / (
        f"mask_lstm-v{MODEL_VERSION}-{size}-{params_hash(config)}.pt"
    )
    torch.manual_seed(0)  # the same initial weights in every notebook
    model = MaskLSTM(hidden=CONFIG[size]["hidden"])

    def train() -> dict[str, Any]:
        start = time.perf_counter()
        history = train_mask_model(
            model, NoisySpeech("train", size=size), NoisySpeech("valid", size=size),
            epochs=CONFIG[size]["epochs"], batch_size=CONFIG[size]["batch_size"], device=dev,
        )  # fmt: skip
        return {"epochs": len(history), "best_epoch": history.best_epoch,
                "train_seconds": round(time.perf_counter() - start, 1)}

    return cached_weights(path, model, train, retrain=retrain).to(dev)
