"""Codecs: quantisers, honest bit accounting, real codecs and speech-quality scores.

Taught in chapter 6 (Autoencoders), which turns an autoencoder into a codec:

- quantisers: :func:`uniform_quantize` (scalar, with a straight-through gradient),
  :class:`VectorQuantizer` (a codebook; straight-through gradient; codebook and commitment
  losses, or an exponential-moving-average codebook) and :class:`ResidualVQ` (stages that
  each quantise what the previous ones left, so one model serves several bitrates);
- bit accounting: :func:`kbit_per_second` = frames per second × bits per frame;
- real codecs through libsndfile (:func:`codec_round_trip`: Opus, Vorbis, MP3), whose bitrate
  is *measured* from the size of the encoded stream, not taken from a nominal setting;
- quality: :func:`pesq_wb` (wideband PESQ, ITU-T P.862.2), :func:`stoi` (short-time objective
  intelligibility) and :func:`log_mel_distance`, computed on the CPU in parallel processes.
"""

from __future__ import annotations

import io
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audiolab import checks

#: Real codecs available through libsndfile: name -> (container format, subtype).
CODECS: dict[str, tuple[str, str]] = {
    "opus": ("OGG", "OPUS"),
    "vorbis": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}


# --------------------------------------------------------------------------- bit accounting


def kbit_per_second(frames_per_second: float, bits_per_frame: float) -> float:
    """The bitrate in kbit/s of a code of ``bits_per_frame`` bits sent ``frames_per_second`` times.

    Examples
    --------
    >>> kbit_per_second(62.5, 8 * 10)   # 8 codebooks of 1024 entries at 62.5 frames/s
    5.0
    """
    frames_per_second = checks.number("frames_per_second", frames_per_second, positive=True)
    bits_per_frame = checks.number("bits_per_frame", bits_per_frame, non_negative=True)
    return frames_per_second * bits_per_frame / 1000.0


def vq_bits(num_codes: int, stages: int = 1) -> float:
    """Bits per frame of ``stages`` codebooks of ``num_codes`` entries: ``stages · log2(K)``."""
    num_codes = checks.integer("num_codes", num_codes, minimum=2)
    stages = checks.integer("stages", stages, minimum=0)
    return stages * math.log2(num_codes)


# --------------------------------------------------------------------------- scalar quantiser


def uniform_quantize(x: Tensor, bits: int, low: float | Tensor, high: float | Tensor) -> Tensor:
    """Round ``x`` to the nearest of ``2**bits`` levels evenly spaced over ``[low, high]``.

    Values outside the range are clipped to it. The gradient passes straight through
    (``x + (q - x).detach()``), so the quantiser can sit inside a network in training.
    ``low`` and ``high`` may be tensors that broadcast against ``x`` (one range per coefficient).
    """
    bits = checks.integer("bits", bits, minimum=1)
    low_t, high_t = torch.as_tensor(low, dtype=x.dtype), torch.as_tensor(high, dtype=x.dtype)
    if bool((high_t <= low_t).any()):
        raise ValueError("every high must be above its low (an empty quantiser range)")
    levels = 2**bits - 1
    step = (high_t - low_t).to(x.device) / levels
    low_t = low_t.to(x.device)
    q = torch.round((x.clamp(low_t, low_t + levels * step) - low_t) / step) * step + low_t
    return x + (q - x).detach()


# --------------------------------------------------------------------------- vector quantisers


class VQOutput(NamedTuple):
    """What a vector quantiser returns (``sg`` below is the stop-gradient)."""

    #: The code vectors, same shape as the input; in training the gradient passes straight
    #: through to the input (``z + (e - z).detach()``).
    quantized: Tensor
    #: LongTensor of the chosen entries, the input's shape without the vector axis.
    codes: Tensor
    #: The loss to add to the training loss: ``β · commitment`` (+ ``codebook`` without EMA).
    loss: Tensor
    #: ``mean ‖z − sg(e)‖²``.
    commitment: Tensor
    #: ``mean ‖sg(z) − e‖²``.
    codebook: Tensor
    #: ``exp(entropy)`` of the code usage in this batch: how many entries are in use.
    perplexity: Tensor


def _to_last(z: Tensor) -> tuple[Tensor, bool]:
    """``(B, D)`` stays; ``(B, D, T)`` (channels first, as convolutions give) becomes (B, T, D)."""
    if z.ndim == 2:
        return z, False
    if z.ndim == 3:
        return z.transpose(1, 2), True
    raise ValueError(f"expected codes of shape (batch, dim) or (batch, dim, frames), got {z.shape}")


class VectorQuantizer(nn.Module):
    """Replace each vector by its nearest codebook entry (VQ-VAE, van den Oord et al., 2017).

    Input ``(batch, dim)`` or ``(batch, dim, frames)``. With ``e_k`` the entries and
    ``k* = argmin_k ‖z − e_k‖²``, the output is ``e_{k*}``; in training the gradient of the
    output is copied to the input (straight-through estimator). The losses:

    - commitment ``‖z − sg(e_{k*})‖²`` keeps the encoder close to its entries (weight ``beta``);
    - codebook ``‖sg(z) − e_{k*}‖²`` pulls the entries to the encodings; with ``ema=True`` the
      entries are instead moving averages of the encodings assigned to them (decay ``decay``),
      which is usually steadier.

    Entries are initialised from the first training batch, and an entry that has not been used
    for a while (EMA count below ``dead_threshold``) is moved onto a random encoding of the
    batch, so that the codebook does not collapse to a few entries.

    Parameters
    ----------
    num_codes, dim
        Codebook size ``K`` (``log2 K`` bits per vector) and vector length.
    beta
        Weight of the commitment loss.
    ema, decay
        Exponential-moving-average codebook updates, and their decay.
    dead_threshold
        An entry whose use (a moving average, decay 0.9, of "used in this batch") falls below
        this is restarted on a random encoding of the batch (0.01: unused for about 40
        batches); 0 turns restarts off.
    """

    def __init__(
        self,
        num_codes: int,
        dim: int,
        beta: float = 0.25,
        ema: bool = True,
        decay: float = 0.99,
        dead_threshold: float = 0.01,
    ) -> None:
        super().__init__()
        self.num_codes = checks.integer("num_codes", num_codes, minimum=2)
        self.dim = checks.integer("dim", dim)
        self.beta = checks.number("beta", beta, non_negative=True)
        if not 0 < decay < 1:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.ema, self.decay, self.dead_threshold = ema, decay, float(dead_threshold)
        self.codebook = nn.Parameter(torch.randn(num_codes, dim) / math.sqrt(dim))
        self.codebook.requires_grad_(not ema)
        self.register_buffer("initialized", torch.tensor(False))
        self.register_buffer("ema_count", torch.ones(num_codes))
        self.register_buffer("usage", torch.ones(num_codes))  # fast-decaying use, for restarts
        self.register_buffer("ema_sum", self.codebook.detach().clone())

    @property
    def bits(self) -> float:
        """Bits per vector: ``log2(num_codes)``."""
        return math.log2(self.num_codes)

    def nearest(self, flat: Tensor) -> Tensor:
        """Index of the nearest entry for each row of ``flat`` ``(n, dim)``."""
        e = self.codebook.float()
        distance = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.T + e.pow(2).sum(1)
        return distance.argmin(dim=1)

    def lookup(self, codes: Tensor, channels_first: bool = True) -> Tensor:
        """The entries of ``codes`` (``(batch,)`` or ``(batch, frames)``) as vectors."""
        out = F.embedding(codes, self.codebook)
        return out.transpose(1, 2) if channels_first and codes.ndim == 2 else out

    @torch.no_grad()
    def _initialise(self, flat: Tensor) -> None:
        rows = flat[torch.randint(0, len(flat), (self.num_codes,), device=flat.device)]
        self.codebook.data.copy_(rows + 1e-3 * torch.randn_like(rows))
        self.ema_sum.copy_(self.codebook.data)
        self.ema_count.fill_(1.0)
        self.usage.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _update(self, flat: Tensor, codes: Tensor) -> None:
        onehot = F.one_hot(codes, self.num_codes).type_as(flat)
        count, total = onehot.sum(0), onehot.T @ flat
        if self.ema:
            self.ema_count.mul_(self.decay).add_(count, alpha=1 - self.decay)
            self.ema_sum.mul_(self.decay).add_(total, alpha=1 - self.decay)
            n = self.ema_count.sum()
            smoothed = (self.ema_count + 1e-5) / (n + self.num_codes * 1e-5) * n
            self.codebook.data.copy_(self.ema_sum / smoothed.unsqueeze(1))
        else:
            self.ema_count.mul_(self.decay).add_(count, alpha=1 - self.decay)
        self.usage.mul_(0.9).add_((count > 0).type_as(flat), alpha=0.1)
        dead = self.usage < self.dead_threshold  # unused for about 40 batches
        if self.dead_threshold > 0 and bool(dead.any()):
            rows = flat[torch.randint(0, len(flat), (int(dead.sum()),), device=flat.device)]
            self.codebook.data[dead] = rows
            self.ema_sum[dead] = rows
            self.ema_count[dead] = 1.0
            self.usage[dead] = 1.0

    def forward(self, z: Tensor) -> VQOutput:
        with torch.autocast(z.device.type, enabled=False):  # distances in float32, not bf16
            return self._quantize(z)

    def _quantize(self, z: Tensor) -> VQOutput:
        zl, channels_first = _to_last(z)
        if zl.shape[-1] != self.dim:
            raise ValueError(f"the vectors have length {zl.shape[-1]}, the codebook {self.dim}")
        flat = zl.reshape(-1, self.dim).float()
        if self.training and not bool(self.initialized):
            self._initialise(flat.detach())
        codes = self.nearest(flat.detach())
        if self.training:
            self._update(flat.detach(), codes)
        e = F.embedding(codes, self.codebook).float()
        commitment = (flat - e.detach()).pow(2).mean()
        codebook = (flat.detach() - e).pow(2).mean()
        loss = self.beta * commitment + (0.0 if self.ema else codebook)
        usage = torch.bincount(codes, minlength=self.num_codes).float() / len(codes)
        perplexity = torch.exp(-(usage * torch.log(usage + 1e-10)).sum())
        quantized = flat + (e - flat).detach()
        quantized = quantized.reshape(zl.shape).to(z.dtype)
        if channels_first:
            quantized = quantized.transpose(1, 2)
        return VQOutput(quantized, codes.reshape(zl.shape[:-1]), loss, commitment, codebook,
                        perplexity)


class ResidualVQ(nn.Module):
    """Residual vector quantisation: stage ``s`` quantises what stages ``1..s−1`` left.

    ``r_0 = z``, ``q_s = VQ_s(r_{s−1})``, ``r_s = r_{s−1} − q_s``, output ``Σ_s q_s``. Using
    the first ``n`` stages costs ``n · log2(K)`` bits per vector, so one trained model gives
    ``stages`` bitrates. With ``quantizer_dropout`` (SoundStream, Zeghidour et al., 2021) each
    training batch uses a random number of stages, so that every prefix is a good codec.

    Parameters
    ----------
    stages, num_codes, dim
        Number of stages, entries per codebook, vector length.
    quantizer_dropout
        Train with a random number of stages (1 to ``stages``) per batch.
    **kwargs
        Passed to each :class:`VectorQuantizer` (``beta``, ``ema``, ``decay``, ...).
    """

    def __init__(
        self, stages: int, num_codes: int, dim: int, quantizer_dropout: bool = True, **kwargs
    ) -> None:
        super().__init__()
        self.stages = checks.integer("stages", stages)
        self.quantizer_dropout = quantizer_dropout
        self.layers = nn.ModuleList(
            VectorQuantizer(num_codes, dim, **kwargs) for _ in range(stages)
        )

    def bits(self, n_stages: int | None = None) -> float:
        """Bits per vector with the first ``n_stages`` stages (default all)."""
        n = self.stages if n_stages is None else n_stages
        return vq_bits(self.layers[0].num_codes, n)

    def forward(self, z: Tensor, n_stages: int | None = None) -> VQOutput:
        if n_stages is None:
            n_stages = self.stages
            if self.training and self.quantizer_dropout:
                n_stages = int(torch.randint(1, self.stages + 1, ()).item())
        if not 1 <= n_stages <= self.stages:
            raise ValueError(f"n_stages must be 1 to {self.stages}, got {n_stages}")
        residual, total = z, torch.zeros_like(z)
        codes, loss, commitment, codebook, perplexity = [], 0.0, 0.0, 0.0, []
        for layer in self.layers[:n_stages]:
            out = layer(residual)
            residual = residual - out.quantized.detach()
            total = total + out.quantized
            codes.append(out.codes)
            loss, commitment = loss + out.loss, commitment + out.commitment
            codebook = codebook + out.codebook
            perplexity.append(out.perplexity)
        # the straight-through sum: gradient to z once, values of the quantised sum
        quantized = z + (total - z).detach()
        return VQOutput(quantized, torch.stack(codes, dim=-1), loss, commitment, codebook,
                        torch.stack(perplexity))


# --------------------------------------------------------------------------- real codecs


def _rows(wave: np.ndarray | Tensor, name: str = "wave") -> np.ndarray:
    if isinstance(wave, Tensor):
        wave = wave.detach().float().cpu().numpy()
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim == 1:
        wave = wave[None]
    if wave.ndim != 2 or wave.size == 0:
        raise ValueError(f"{name} must have shape (samples,) or (clips, samples), got {wave.shape}")
    if not np.isfinite(wave).all():
        raise ValueError(f"{name} contains NaN or infinite samples")
    return wave


def _delay(reference: np.ndarray, decoded: np.ndarray, max_lag: int) -> int:
    """The lag (samples) by which ``decoded`` trails ``reference`` (cross-correlation peak)."""
    n = min(len(reference), len(decoded))
    size = 1 << int(np.ceil(np.log2(2 * n)))
    xc = np.fft.irfft(np.fft.rfft(decoded[:n], size) * np.conj(np.fft.rfft(reference[:n], size)))
    lags = np.concatenate([xc[: max_lag + 1], xc[-max_lag:]])
    best = int(np.argmax(lags))
    return best if best <= max_lag else best - len(lags)


def codec_round_trip(
    wave: np.ndarray | Tensor,
    sample_rate: int,
    codec: str,
    compression_level: float,
    bitrate_mode: str | None = None,
) -> tuple[np.ndarray, float]:
    """Encode and decode clips with a real codec through libsndfile; measure the bitrate.

    The clips ``(clips, samples)`` are joined into one stream (so that the container's headers
    are paid once, as in a long recording), encoded into memory, decoded, re-aligned (the
    codec's delay is found by cross-correlation) and cut back into clips.

    Parameters
    ----------
    wave
        ``(samples,)`` or ``(clips, samples)``, float in [-1, 1].
    sample_rate
        Hz.
    codec
        ``"opus"``, ``"vorbis"`` or ``"mp3"`` (:data:`CODECS`).
    compression_level
        libsndfile's setting from 0 (best quality, highest bitrate) to 1 (lowest bitrate).
        It sets the bitrate only indirectly: the result says what it was.
    bitrate_mode
        ``"CONSTANT"``, ``"AVERAGE"`` or ``"VARIABLE"`` (MP3 only; Opus and Vorbis refuse it in
        libsndfile 1.2.2), or ``None`` for the codec's default.

    Returns
    -------
    (np.ndarray, float)
        The decoded clips (float32, the input's shape) and the **measured** bitrate in kbit/s:
        the size of the encoded stream in bits divided by its duration.
    """
    import soundfile as sf

    if codec not in CODECS:
        raise ValueError(f"codec must be one of {sorted(CODECS)}, got {codec!r}")
    sample_rate = checks.sample_rate(sample_rate)
    level = checks.number("compression_level", compression_level, non_negative=True)
    if level > 1:
        raise ValueError(f"compression_level must be in [0, 1], got {level}")
    single = np.ndim(wave) == 1
    clips = _rows(wave)
    if np.abs(clips).max() > 1.0:
        raise ValueError("samples exceed [-1, 1]; scale the clips before encoding")
    stream = clips.reshape(-1)
    fmt, subtype = CODECS[codec]
    buffer = io.BytesIO()
    try:
        sf.write(buffer, stream, sample_rate, format=fmt, subtype=subtype,
                 compression_level=level, bitrate_mode=bitrate_mode)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise RuntimeError(
            f"libsndfile could not encode {codec} at compression_level={level} with "
            f"bitrate_mode={bitrate_mode!r} and {sample_rate} Hz ({err}); try another level, "
            "bitrate_mode=None, or check that libsndfile was built with this codec"
        ) from err
    kbps = len(buffer.getvalue()) * 8 / (len(stream) / sample_rate) / 1000
    buffer.seek(0)
    decoded, _ = sf.read(buffer, dtype="float32", always_2d=False)
    decoded = decoded if decoded.ndim == 1 else decoded.mean(axis=1)
    lag = _delay(stream, decoded, max_lag=min(4096, len(stream) // 4))
    aligned = np.zeros_like(stream)
    src = decoded[max(lag, 0):]
    dst = aligned[max(-lag, 0):]
    n = min(len(src), len(dst))
    dst[:n] = src[:n]
    out = aligned.reshape(clips.shape)
    return (out[0] if single else out), float(kbps)


# --------------------------------------------------------------------------- quality


def _score_pair(args: tuple[np.ndarray, np.ndarray, int, bool, bool]) -> tuple[float, float]:
    """PESQ-WB and STOI of one pair (NaN where PESQ finds no utterance)."""
    ref, deg, sample_rate, do_pesq, do_stoi = args
    p = s = float("nan")
    if do_pesq and np.abs(ref).max() > 0:
        from pesq import PesqError, pesq

        value = pesq(sample_rate, ref, deg, "wb", on_error=PesqError.RETURN_VALUES)
        p = float(value) if value >= 0 else float("nan")  # negative values are error codes
    if do_stoi:
        import warnings

        from pystoi import stoi as _stoi

        with warnings.catch_warnings():  # too little speech: pystoi warns and returns 1e-5
            warnings.simplefilter("ignore", RuntimeWarning)
            s = float(_stoi(ref, deg, sample_rate, extended=False))
        s = s if s > 1e-5 else float("nan")
    return p, s


def _scores(
    reference, degraded, sample_rate: int, do_pesq: bool, do_stoi: bool, processes: int | None
) -> np.ndarray:
    ref, deg = _rows(reference, "reference"), _rows(degraded, "degraded")
    if ref.shape != deg.shape:
        raise ValueError(f"reference {ref.shape} and degraded {deg.shape} must have one shape")
    if do_pesq and sample_rate != 16000:
        raise ValueError(f"wideband PESQ needs 16000 Hz, got {sample_rate} (resample first)")
    deg = np.clip(deg, -1.0, 1.0)
    jobs = [(r, d, sample_rate, do_pesq, do_stoi) for r, d in zip(ref, deg, strict=True)]
    workers = min(len(jobs), processes or os.cpu_count() or 1)
    if workers <= 1:
        return np.array([_score_pair(j) for j in jobs])
    # import the scorers once here: forked workers inherit them instead of each importing
    # pystoi/scipy.signal again (seconds per worker, more than scoring a few clips takes)
    if do_pesq:
        import pesq  # noqa: F401
    if do_stoi:
        import pystoi  # noqa: F401
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        return np.array(list(pool.map(_score_pair, jobs, chunksize=max(1, len(jobs) // workers))))


def speech_quality(
    reference, degraded, sample_rate: int = 16000, processes: int | None = None
) -> dict[str, np.ndarray]:
    """PESQ-WB and STOI of each clip, in parallel processes on the CPU.

    Returns ``{"pesq": (clips,), "stoi": (clips,)}``. NaN marks a clip that could not be
    scored: PESQ found no utterance, or STOI had fewer than 30 frames (384 ms) of speech after
    dropping silent frames, so score signals of a few seconds, not single short words.
    PESQ-WB runs from about 1.0 (bad) to 4.64, STOI from 0
    to 1. Both compare the degraded clip with the clean reference, which must be aligned.
    """
    out = _scores(reference, degraded, checks.sample_rate(sample_rate), True, True, processes)
    return {"pesq": out[:, 0], "stoi": out[:, 1]}


def pesq_wb(reference, degraded, sample_rate: int = 16000, processes: int | None = None):
    """Wideband PESQ (ITU-T P.862.2, MOS-LQO) of each clip (``(clips,)`` array; see above)."""
    return _scores(reference, degraded, checks.sample_rate(sample_rate), True, False,
                   processes)[:, 0]


def stoi(reference, degraded, sample_rate: int = 16000, processes: int | None = None):
    """STOI (Taal et al., 2011) of each clip, 0 to 1 (``(clips,)`` array)."""
    return _scores(reference, degraded, checks.sample_rate(sample_rate), False, True,
                   processes)[:, 1]


def log_mel_distance(
    reference, degraded, sample_rate: int = 16000, n_mels: int = 64, floor_db: float = -80.0
) -> np.ndarray:
    """Mean absolute difference of the log-mel spectrograms in dB, per clip (0 is identical).

    Both spectrograms are in dB relative to full scale (n_fft 512, hop 128) and floored at
    ``floor_db``, so that silence against silence counts as no error.
    """
    from audiolab import features

    ref = torch.from_numpy(_rows(reference, "reference"))
    deg = torch.from_numpy(_rows(degraded, "degraded"))
    if ref.shape != deg.shape:
        raise ValueError(f"reference {ref.shape} and degraded {deg.shape} must have one shape")

    def db(x: Tensor) -> Tensor:
        mel = features.mel_spectrogram(x, sample_rate, n_fft=512, hop_length=128, n_mels=n_mels)
        return (10 * torch.log10(mel.clamp_min(1e-12))).clamp_min(floor_db)

    return (db(ref) - db(deg)).abs().mean(dim=(-2, -1)).numpy()
