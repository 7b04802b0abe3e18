"""A proxy test for real recordings that the repository can run: unseen voices through a
recording chain that no training recipe of the course uses.

Real recordings of spoken digits differ from the synthetic corpus in the voices and in the way
they were recorded (room, microphone, line, codec, background). The test split of
:class:`~audiolab.datasets.SpokenDigits` already holds voice variants and accents that no model
trained on; :func:`held_out_recording` adds degradations that no training recipe of the
course produces:

1. a **large reverberant hall**: RT60 of 1.0–1.6 s and a direct-to-reverberant ratio of −6 to
   0 dB (the rooms of :func:`audiolab.augment.domain_randomisation` stop at 1.2 s, so two
   thirds of the hall's range is longer than any training room; chapter 3's plain augmentation
   has no rooms at all);
2. **babble** of 3–5 voices that no model trains on (the caller passes them, e.g. the validation
   split) at 10–20 dB SNR: an unseen kind of noise for chapter 3's augmentation (white, pink,
   brown, hum), unseen voices for the randomised recipe
   (``train_digit_classifier(randomise=True)`` trains with babble of its training clips);
3. a **lossy speech codec**: an Opus round trip at about 9 kbit/s through libsndfile (training
   never encodes).

:func:`proxy_test` reports a classifier's accuracy on clean clips, on each degradation alone and
on all three in a chain, so that a gain can be traced to what causes it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from . import checks

#: The held-out chain's settings (see the module's description).
HELD_OUT = {
    "rt60": (1.0, 1.6),
    "drr_db": (-6.0, 0.0),
    "babble_snr_db": (10.0, 20.0),
    "babble_talkers": (3, 5),
    "codec": "opus",
    "codec_level": 0.97,
}


def _uniform(low: float, high: float, n: int, gen: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


def held_out_reverb(waves: Tensor, sample_rate: int = 16000, seed: int = 0) -> Tensor:
    """Each clip in its own large hall (RT60 1.0–1.6 s, DRR −6 to 0 dB); RMS kept."""
    import torchaudio.functional as AF

    from .augment import _keep_rms, room_impulse_responses

    gen = torch.Generator().manual_seed(seed)
    x = waves.detach().float().cpu()
    rt60 = _uniform(*HELD_OUT["rt60"], len(x), gen)
    drr = _uniform(*HELD_OUT["drr_db"], len(x), gen)
    rir = room_impulse_responses(rt60, drr, sample_rate, gen)
    return _keep_rms(AF.fftconvolve(x, rir)[:, : x.shape[1]], x)


def held_out_babble(waves: Tensor, talkers: Tensor, seed: int = 0) -> Tensor:
    """Babble of 3–5 clips of ``talkers`` (other voices) added at 10–20 dB SNR."""
    from .noise import babble, mix_at_snr

    gen = torch.Generator().manual_seed(seed + 1)
    x = waves.detach().float().cpu()
    noise = babble(x.shape[1], talkers.detach().float().cpu(), batch=len(x),
                   k=HELD_OUT["babble_talkers"], generator=gen)
    return mix_at_snr(x, noise, _uniform(*HELD_OUT["babble_snr_db"], len(x), gen))


#: Clips per encoded stream of :func:`held_out_codec` (fixed, so that the result does not depend
#: on the machine's number of cores).
CODEC_CHUNK = 200


def held_out_codec(waves: Tensor, sample_rate: int = 16000) -> Tensor:
    """An Opus round trip at libsndfile's compression level 0.97 (about 9 kbit/s at 16 kHz).

    The clips are encoded in streams of :data:`CODEC_CHUNK` clips, in parallel threads (the
    encoder runs about 30 times faster than real time on one core, and libsndfile releases
    Python's lock while it works).
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    from .codecs import codec_round_trip

    x = waves.detach().float().cpu()
    peak = x.abs().amax().clamp_min(1e-8)
    scale = 0.9 / peak if peak > 0.9 else torch.tensor(1.0)  # the codec takes [-1, 1]
    chunks = torch.split(x * scale, CODEC_CHUNK)

    def round_trip(chunk: Tensor) -> Tensor:
        decoded, _ = codec_round_trip(chunk.numpy(), sample_rate, HELD_OUT["codec"],
                                      HELD_OUT["codec_level"])
        return torch.from_numpy(decoded).float()

    with ThreadPoolExecutor(min(len(chunks), os.cpu_count() or 1)) as pool:
        decoded = list(pool.map(round_trip, chunks))
    return torch.cat(decoded).reshape(x.shape) / scale


def held_out_recording(
    waves: Tensor, talkers: Tensor, sample_rate: int = 16000, seed: int = 0
) -> Tensor:
    """The whole held-out chain: hall, then babble, then the codec (deterministic in ``seed``).

    Parameters
    ----------
    waves
        ``(clips, samples)`` at ``sample_rate``.
    talkers
        Clips of *other* voices for the babble (e.g. the validation split), ``(clips, samples)``.
    sample_rate
        In Hz.
    seed
        Fixes every random choice, so that every model meets the same degraded clips.
    """
    sample_rate = checks.sample_rate(sample_rate)
    x = held_out_reverb(waves, sample_rate, seed)
    x = held_out_babble(x, talkers, seed)
    return held_out_codec(x, sample_rate)


def degraded_test_sets(
    waves: Tensor, talkers: Tensor, sample_rate: int = 16000, seed: int = 0
) -> dict[str, Tensor]:
    """The test clips clean, through each held-out degradation alone, and through the chain."""
    reverb = held_out_reverb(waves, sample_rate, seed)
    return {
        "clean": waves.detach().float().cpu(),
        "hall": reverb,
        "babble": held_out_babble(waves, talkers, seed),
        "codec": held_out_codec(waves, sample_rate),
        "hall + babble + codec": held_out_codec(held_out_babble(reverb, talkers, seed),
                                                sample_rate),
    }


def proxy_test(
    model: nn.Module,
    waves: Tensor | None = None,
    labels: Tensor | None = None,
    talkers: Tensor | None = None,
    *,
    sets: dict[str, Tensor] | None = None,
    sample_rate: int = 16000,
    seed: int = 0,
) -> dict[str, Any]:
    """Accuracy of a waveform classifier on unseen voices, clean and through held-out chains.

    Pass the test clips (``waves``, ``labels``) and other voices for the babble (``talkers``),
    or ``sets`` from :func:`degraded_test_sets` (to score several models on the same clips
    without degrading them again) with ``labels``.

    Returns
    -------
    dict
        ``{"accuracy": {set name: accuracy}, "clips": n, "held_out": HELD_OUT}``.
    """
    if labels is None:
        raise ValueError("labels are needed (the test clips' digits)")
    if sets is None:
        if waves is None or talkers is None:
            raise ValueError("pass waves and talkers, or sets from degraded_test_sets()")
        sets = degraded_test_sets(waves, talkers, sample_rate, seed)
    from .classification import accuracy
    from .training import predict

    def score(x: Tensor) -> float:
        return round(float(accuracy(predict(model, x, batch_size=500, amp=False), labels)), 4)

    return {
        "accuracy": {name: score(x) for name, x in sets.items()},
        "clips": len(labels),
        "held_out": HELD_OUT,
    }
