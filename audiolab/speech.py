"""Speech corpora for sequence models: spoken digit strings (for CTC) and noisy speech.

- :class:`DigitStrings`: utterances of 3 to 7 digits spoken in one go ("three one four one
  five") by the synthetic eSpeak NG voices of :class:`~audiolab.datasets.SpokenDigits`, with
  their transcripts, for speech recognition with :class:`torch.nn.CTCLoss`.
- :class:`NoisySpeech`: :class:`~audiolab.datasets.SpokenDigits` clips mixed with noise at a
  random SNR, returning the noisy, clean and noise signals, for noise removal.

Both split **by voice** exactly as :class:`~audiolab.datasets.SpokenDigits` does (the same
voices in the same splits, for the same ``size``, ``seed`` and ``variants``), so a model trained
on single digits, strings or noisy digits never hears a test voice; :class:`NoisySpeech` also
splits by noise type (:data:`NOISE_SPLITS`): the test set has a noise type never used in
training.

Examples
--------
::

    from audiolab.speech import DigitStrings, NoisySpeech
    train = DigitStrings("train")            # generated on first use, then cached
    wave, digits = train[0]                  # wave: (length,), digits: e.g. tensor([3, 1, 4])
    targets, target_lengths = train.padded_targets()      # for torch.nn.CTCLoss(blank=BLANK)

    noisy_test = NoisySpeech("test")
    noisy, clean, noise = noisy_test[0]      # noisy == clean + noise
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Sequence
from importlib import metadata as package_metadata
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from audiolab import espeak, noise
from audiolab.cache import cached_arrays
from audiolab.datasets import (
    ACCENTS,
    DIGITS,
    N_CHUNKS,
    SIZES,
    SPLITS,
    SpokenDigits,
    _check_args,
    _pcm_to_float,
    _plan,
    _select_split,
    _synthesize,
    _variants,
)

#: Bump when the generation code of :class:`DigitStrings` changes (cached corpora are rebuilt).
STRINGS_VERSION = 2
#: Shortest and longest digit strings (inclusive); lengths are drawn uniformly.
MIN_DIGITS, MAX_DIGITS = 3, 7
#: Strings per speaker; speakers per variant are those of SpokenDigits of the same size.
STRINGS_PER_SPEAKER: dict[str, int] = {"quick": 6, "full": 10}  # 104 variants: 624 / 3,120
#: Silence before and after each utterance, drawn uniformly in this range (seconds).
MARGIN_SECONDS: tuple[float, float] = (0.05, 0.25)
#: CTC classes: 0-9 are the digits, :data:`BLANK` (10) is the CTC blank; 11 classes in all.
BLANK = 10
NUM_CLASSES = 11
#: Noise types of each split: ``brown`` is heard only in the test set (an unseen noise type).
NOISE_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("white", "pink", "hum", "babble"),
    "valid": ("white", "pink", "hum", "babble"),
    "test": ("white", "pink", "brown", "hum", "babble"),
}

#: Babble for a voice is made of clips drawn from this many random clips of the other voices.
BABBLE_POOL = 64

_VOICE_SETTINGS = re.compile(r"p(\d+)-r(\d+)-s(\d+)-f(\d+)$")


def _speakers(variants: Sequence[str], size: str, seed: int) -> list[dict[str, Any]]:
    """The speakers (voices) of :class:`SpokenDigits` of this size and seed, with their split."""
    speakers: dict[str, dict[str, Any]] = {}
    for item in _plan(variants, **SIZES[size], seed=seed):
        clip = item["clip"]
        if clip["voice"] not in speakers:
            pitch, pitch_range, rate, vtl = map(
                int, _VOICE_SETTINGS.search(clip["voice"]).groups()
            )
            speakers[clip["voice"]] = {
                **{k: clip[k] for k in ("voice", "variant", "family", "accent", "split")},
                "pitch": pitch,
                "pitch_range": pitch_range,
                "rate": rate,
                "formant_scale": vtl / 100,
            }
    return list(speakers.values())


def _plan_strings(variants: Sequence[str], size: str, seed: int) -> list[dict[str, Any]]:
    """Every utterance's speaker, digits, synthesis settings, level and margins (no audio).

    Each variant has its own random stream (seeded by the seed and the variant's name, and
    distinct from SpokenDigits' stream), so its strings do not change with the other variants.
    """
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for speaker in _speakers(variants, size, seed):
        by_variant.setdefault(speaker["variant"], []).append(speaker)
    plan = []
    for variant, speakers in by_variant.items():
        rng = np.random.default_rng([seed, zlib.crc32(variant.encode("utf-8")), 1])
        for speaker in speakers:
            for _ in range(STRINGS_PER_SPEAKER[size]):
                n_digits = int(rng.integers(MIN_DIGITS, MAX_DIGITS + 1))
                digits = [int(d) for d in rng.integers(0, 10, n_digits)]
                text = " ".join(DIGITS[d] for d in digits)
                request = {
                    "text": text,
                    "language": speaker["accent"],
                    "variant": variant,
                    "rate": int(np.clip(speaker["rate"] * rng.uniform(0.92, 1.08), 80, 450)),
                    "pitch": int(np.clip(speaker["pitch"] + rng.integers(-4, 5), 0, 100)),
                    "pitch_range": speaker["pitch_range"],
                    "seed": int(rng.integers(2**31)),
                    "formant_scale": speaker["formant_scale"],
                }
                utterance = {
                    **{k: speaker[k] for k in ("voice", "variant", "family", "accent", "split")},
                    "text": text,
                    "digits": digits,
                    "n_digits": n_digits,
                    "rate": request["rate"],
                    "pitch": request["pitch"],
                    "pitch_range": speaker["pitch_range"],
                    "formant_scale": speaker["formant_scale"],
                    "level_db": round(float(rng.uniform(-20.0, -1.0)), 2),
                    "margins_s": [round(float(rng.uniform(*MARGIN_SECONDS)), 3) for _ in "ab"],
                }
                plan.append({"request": request, "utterance": utterance})
    return plan


def _trim(wave: np.ndarray) -> np.ndarray:
    """Cut the silence (40 dB below the peak) at both ends; float32 with peak 1."""
    wave = wave.astype(np.float32)
    peak = np.abs(wave).max(initial=0.0)
    if peak == 0:
        raise RuntimeError("eSpeak NG returned silence; please report this with the request")
    loud = np.flatnonzero(np.abs(wave) > 0.01 * peak)
    return wave[loud[0] : loud[-1] + 1] / peak


def _build_digit_strings(
    variants: Sequence[str], size: str, seed: int, sample_rate: int
) -> dict[str, np.ndarray]:
    from audiolab.audio import resample

    plan = _plan_strings(variants, size, seed)
    raw = _synthesize([item["request"] for item in plan])
    clips, metadata = [], []
    for item, wave in zip(plan, raw, strict=True):
        meta = dict(item["utterance"])
        lead, tail = (round(s * espeak.SAMPLE_RATE) for s in meta["margins_s"])
        speech = _trim(wave)
        meta["duration_s"] = round(len(speech) / espeak.SAMPLE_RATE, 4)
        clips.append(np.pad(speech, (lead, tail)))
        metadata.append(meta)
    lengths = [round(len(c) * sample_rate / espeak.SAMPLE_RATE) for c in clips]
    waveforms = np.zeros((len(clips), max(lengths)), dtype=np.int16)
    for start in range(0, len(clips), 256):  # resample in batches, padded to the longest one
        batch = clips[start : start + 256]
        padded = np.zeros((len(batch), max(map(len, batch))), dtype=np.float32)
        for row, clip in enumerate(batch):
            padded[row, : len(clip)] = clip
        out = resample(torch.from_numpy(padded), espeak.SAMPLE_RATE, sample_rate)
        for row, meta in enumerate(metadata[start : start + 256]):
            n = lengths[start + row]
            wave = out[row, :n]
            wave = wave * (10 ** (meta["level_db"] / 20) / wave.abs().max())
            waveforms[start + row, :n] = np.round(wave.numpy() * 32768)
    return {
        "waveforms": waveforms,
        "lengths": np.array(lengths, dtype=np.int64),
        "metadata": np.array(json.dumps(metadata)),
    }


class DigitStrings(Dataset):
    """Strings of 3 to 7 digits spoken in one go by the synthetic voices, with transcripts.

    The speakers are exactly those of :class:`~audiolab.datasets.SpokenDigits` with the same
    ``size``, ``seed`` and ``variants``, in the same splits (by voice family). Each speaker
    says :data:`STRINGS_PER_SPEAKER` strings whose lengths are uniform in 3..7 and whose
    digits are uniform in 0..9, all drawn from a seeded generator; each string is one eSpeak
    NG call ("three one four one five"), so the words run into each other as in real speech.
    Each utterance is trimmed, given 50 to 250 ms of silence on both sides and peak-normalised
    to a random level between -20 and -1 dBFS.

    The whole corpus (all splits) is generated once (2 processes) and cached
    (:mod:`audiolab.cache`); each split is a view of it.

    Attributes
    ----------
    waveforms
        FloatTensor ``(N, T_max)``: the utterances, zero after their length; ``T_max`` is the
        longest utterance of the whole corpus (all splits).
    lengths
        LongTensor ``(N,)``: the length of each utterance in samples.
    targets
        List of N LongTensors: the digits of each utterance (classes 0-9).
    transcripts
        List of N strings, the words spoken ("three one four").
    metadata
        List of N dicts: voice, variant, accent, text, digits, n_digits, rate, pitch, ...

    Notes
    -----
    CTC convention: classes 0-9 are the digits and :data:`BLANK` = 10 is the blank, so a
    model outputs :data:`NUM_CLASSES` = 11 scores per frame; use
    ``torch.nn.CTCLoss(blank=BLANK)`` with :meth:`padded_targets`.

    Parameters
    ----------
    split
        ``"train"``, ``"valid"`` or ``"test"``.
    sample_rate
        Sample rate in Hz (eSpeak's 22,050 Hz output is resampled).
    size
        ``"quick"`` (1 speaker per variant, 6 strings each: 624 utterances) or ``"full"`` (3
        speakers, 10 strings each: 3,120 utterances); ``None`` follows
        :func:`audiolab.settings.mode`.
    seed
        Seed of the speakers and the split (as in SpokenDigits) and of the strings.
    variants
        Voice variants to use (default: all of :func:`audiolab.espeak.voice_variants`).
    """

    def __init__(
        self,
        split: str = "train",
        sample_rate: int = 16000,
        size: str | None = None,
        seed: int = 0,
        variants: Sequence[str] | None = None,
    ) -> None:
        size = _check_args(split, size, sample_rate, seed)
        variants = _variants(variants)
        params = {
            "variants": variants,
            **SIZES[size],
            "strings_per_speaker": STRINGS_PER_SPEAKER[size],
            "digits": [MIN_DIGITS, MAX_DIGITS],
            "margins": MARGIN_SECONDS,
            "seed": seed,
            "sample_rate": sample_rate,
            "accents": ACCENTS,
            "chunks": N_CHUNKS,
            "espeakng_loader": package_metadata.version("espeakng-loader"),
        }
        arrays = cached_arrays(
            "digit_strings",
            params,
            lambda: _build_digit_strings(variants, size, seed, sample_rate),
            STRINGS_VERSION,
        )
        rows, self.metadata = _select_split(arrays, split, variants)
        self.waveforms = _pcm_to_float(arrays["waveforms"][rows])
        self.lengths = torch.from_numpy(arrays["lengths"][rows])
        self.targets = [torch.tensor(m["digits"], dtype=torch.long) for m in self.metadata]
        self.transcripts = [m["text"] for m in self.metadata]
        self.sample_rate = sample_rate
        self.split = split
        self.size = size
        self.seed = seed

    def __len__(self) -> int:
        return len(self.metadata)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.waveforms[index, : int(self.lengths[index])], self.targets[index]

    @property
    def voices(self) -> list[str]:
        """Sorted ids of the voices (speakers) in this split."""
        return sorted({m["voice"] for m in self.metadata})

    @property
    def variants(self) -> list[str]:
        """Sorted voice variants in this split."""
        return sorted({m["variant"] for m in self.metadata}, key=str.lower)

    def padded_targets(self, padding_value: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
        """All targets as one padded tensor, the form :class:`torch.nn.CTCLoss` takes.

        Returns
        -------
        (Tensor, Tensor)
            ``targets`` LongTensor ``(N, MAX_DIGITS)``: the digits (0-9) of each utterance,
            then ``padding_value`` (ignored by CTCLoss); ``target_lengths`` LongTensor
            ``(N,)``: the number of digits.
        """
        targets = torch.full((len(self), MAX_DIGITS), padding_value, dtype=torch.long)
        for row, target in enumerate(self.targets):
            targets[row, : len(target)] = target
        return targets, torch.tensor([len(t) for t in self.targets], dtype=torch.long)

    def __repr__(self) -> str:
        seconds = self.lengths.double().mean().item() / self.sample_rate if len(self) else 0.0
        return (
            f"DigitStrings(split={self.split!r}, {len(self)} utterances "
            f"(mean {seconds:.2f} s, padded to {self.waveforms.shape[-1] / self.sample_rate:.2f}"
            f" s) at {self.sample_rate} Hz, {len(self.voices)} voices, size={self.size!r}, "
            f"seed={self.seed})"
        )


# --------------------------------------------------------------------------- noisy speech


class NoisySpeech(Dataset):
    """SpokenDigits clips mixed with noise at a random SNR: (noisy, clean, noise) triples.

    Each clip of the ``split`` of :class:`~audiolab.datasets.SpokenDigits` gets one noise
    type (the split's types, :data:`NOISE_SPLITS`, in equal shares, in a random order) and an
    SNR drawn uniformly from ``snr_db``; the noise is scaled with
    :func:`audiolab.noise.mix_at_snr`, so ``noisy == clean + noise`` exactly and each item's
    SNR is its ``snr_db`` value. Babble is made of 4 to 6 clips of the *other* voices of the
    same split (never the item's own voice, never a voice of another split), drawn from a random
    pool of :data:`BABBLE_POOL` such clips for each voice.

    The splits are disjoint by voice (those of SpokenDigits) and by noise type: ``brown`` noise
    is only in the test set. Everything is drawn from a seeded CPU :class:`torch.Generator`,
    so two builds are identical; mixing is fast and not cached (the speech is).

    Attributes
    ----------
    noisy, clean, noise
        FloatTensors ``(N, T)``; ``noisy = clean + noise``.
    snr_db
        FloatTensor ``(N,)``: the SNR of each item in dB.
    noise_types
        The noise types of this dataset.
    metadata
        List of N dicts: the SpokenDigits metadata plus ``noise`` (type) and ``snr_db``.

    Parameters
    ----------
    split
        ``"train"``, ``"valid"`` or ``"test"``.
    sample_rate, size, seed, variants
        As for :class:`~audiolab.datasets.SpokenDigits` (``seed`` also seeds the noise).
    snr_db
        Range ``(low, high)`` of the SNR in dB.
    noise_types
        Noise types to use (from :data:`audiolab.noise.NOISE_TYPES`); default
        ``NOISE_SPLITS[split]``.

    Raises
    ------
    ValueError
        For bad arguments, or babble in a split with fewer than 6 clips of other voices.
    """

    def __init__(
        self,
        split: str = "train",
        sample_rate: int = 16000,
        size: str | None = None,
        seed: int = 0,
        snr_db: tuple[float, float] = (-5.0, 15.0),
        noise_types: Sequence[str] | None = None,
        variants: Sequence[str] | None = None,
    ) -> None:
        size = _check_args(split, size, sample_rate, seed)
        low, high = (float(x) for x in snr_db)
        if not low <= high:
            raise ValueError(f"snr_db must be a range (low, high) with low <= high, got {snr_db}")
        types = tuple(NOISE_SPLITS[split] if noise_types is None else noise_types)
        unknown = sorted(set(types) - set(noise.NOISE_TYPES))
        if not types or unknown:
            raise ValueError(f"noise_types must be among {noise.NOISE_TYPES}, got {types}")
        speech = SpokenDigits(split, sample_rate, size, seed, variants)
        clean = speech.waveforms
        n_items, n_samples = clean.shape
        gen = torch.Generator().manual_seed(seed * len(SPLITS) + SPLITS.index(split))
        kinds = (torch.arange(n_items) % len(types))[torch.randperm(n_items, generator=gen)]
        snrs = low + (high - low) * torch.rand(n_items, generator=gen, dtype=torch.float64)
        raw = torch.empty_like(clean)
        voices = [m["voice"] for m in speech.metadata]
        voice_ids = torch.tensor([sorted(set(voices)).index(v) for v in voices])
        for k, kind in enumerate(types):
            rows = torch.nonzero(kinds == k).flatten()
            if len(rows) == 0:
                continue
            if kind != "babble":
                raw[rows] = noise.make_noise(kind, len(rows), n_samples, sample_rate, generator=gen)
                continue
            for voice in voice_ids[rows].unique().tolist():
                mine = rows[voice_ids[rows] == voice]
                others = torch.nonzero(voice_ids != voice).flatten()
                others = others[torch.randperm(len(others), generator=gen)[:BABBLE_POOL]]
                if len(others) < 6:
                    raise ValueError(
                        f"babble needs at least 6 clips of other voices in the {split!r} split, "
                        f"which has {len(set(voices))} voice(s); use more variants, a larger "
                        "size, or noise_types without 'babble'"
                    )
                raw[mine] = noise.make_noise(
                    kind, len(mine), n_samples, sample_rate, generator=gen, speech=clean[others]
                )
        self.noisy, self.noise = noise.mix_at_snr(clean, raw, snrs, return_noise=True)
        self.clean = clean
        self.snr_db = snrs.float()
        self.noise_types = types
        self.metadata = [
            {**m, "noise": types[k], "snr_db": float(s)}
            for m, k, s in zip(speech.metadata, kinds.tolist(), snrs.tolist(), strict=True)
        ]
        self.sample_rate = sample_rate
        self.split = split
        self.size = size
        self.seed = seed

    def __len__(self) -> int:
        return len(self.metadata)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.noisy[index], self.clean[index], self.noise[index]

    @property
    def voices(self) -> list[str]:
        """Sorted ids of the voices (speakers) in this split."""
        return sorted({m["voice"] for m in self.metadata})

    def __repr__(self) -> str:
        return (
            f"NoisySpeech(split={self.split!r}, {len(self)} clips at {self.sample_rate} Hz, "
            f"{len(self.voices)} voices, noise {self.noise_types}, SNR "
            f"{self.snr_db.min().item():.1f} to {self.snr_db.max().item():.1f} dB, "
            f"size={self.size!r}, seed={self.seed})"
        )
