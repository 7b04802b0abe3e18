"""Spoken-digit datasets: a synthetic corpus made with eSpeak NG, and a loader for real FSDD files.

Both are :class:`torch.utils.data.Dataset` objects with the same interface::

    ds[i]            -> (waveform FloatTensor [T], label int)
    ds.waveforms     FloatTensor [N, T], every clip padded or cut to the same length
    ds.labels        LongTensor [N], the digit 0-9
    ds.metadata      list of N dicts: voice, text, digit, ...
    ds.voices        sorted list of the voice (speaker) ids
    ds.classes       ["zero", "one", ..., "nine"]
    ds.sample_rate   Hz

and both split **by speaker**, never by clip, so that the test set measures how well a model
handles voices it has never heard.

Examples
--------
::

    from audiolab.datasets import SpokenDigits
    train = SpokenDigits("train")       # generated on first use (seconds), then cached
    wave, label = train[0]
    print(train.classes[label], train.metadata[0]["voice"])   # zero adam/en-us/p55-r36-s206
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import warnings
import zlib
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from audiolab import checks, espeak, settings
from audiolab.cache import cached_arrays, sweep_scratch_folders

#: The spoken words; the label of a clip is the index of its word.
DIGITS: tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
)  # fmt: skip
SPLITS: tuple[str, ...] = ("train", "valid", "test")

#: Bump when the generation code changes: the cached corpora are then rebuilt.
CORPUS_VERSION = 2
#: Ranges (low, high + 1) of a speaker's eSpeak pitch, pitch range (0-100) and rate (words per
#: minute): wide, since people differ widely (corpus version 1: 20-80, 20-90, 130-210).
SPEAKER_RANGES: tuple[tuple[int, int], ...] = ((8, 93), (10, 101), (110, 241))
#: Range (low, high + 1) of a speaker's formant scale in percent: vocal-tract lengths about
#: 12 % shorter to 14 % longer than the voice variant's (:func:`audiolab.espeak.synthesize`).
FORMANT_SCALE_PERCENT: tuple[int, int] = (88, 115)
#: English accents of the synthetic speakers (``en-shaw`` is left out: it reads Shavian script).
ACCENTS: tuple[str, ...] = (
    "en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
)  # fmt: skip
#: Corpus sizes: speakers drawn per voice variant, and takes of each digit per speaker.
SIZES: dict[str, dict[str, int]] = {
    "quick": {"speakers_per_variant": 1, "takes": 1},  # 104 variants -> 1,040 clips
    "full": {"speakers_per_variant": 3, "takes": 2},  # 104 variants -> 6,240 clips
}
#: Fraction of the voice variants in each split.
SPLIT_FRACTIONS: dict[str, float] = {"train": 0.8, "valid": 0.1, "test": 0.1}
#: Length of every clip in seconds.
CLIP_SECONDS = 1.0
#: The corpus is synthesised in this many chunks, each in a fresh process (see _synthesize).
N_CHUNKS = 2
#: Name start of the synthesis scratch folders in the cache folder.
SCRATCH_PREFIX = ".espeak-"

FSDD_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset"
_FSDD_NAME = re.compile(r"^(\d)_([A-Za-z0-9-]+)_(\d+)\.wav$", flags=re.IGNORECASE)


class _DigitDataset(Dataset):
    """Fixed-length clips in memory, with labels and per-clip metadata."""

    classes: list[str] = list(DIGITS)

    def __init__(
        self,
        waveforms: torch.Tensor,
        labels: torch.Tensor,
        metadata: list[dict[str, Any]],
        sample_rate: int,
        split: str,
    ) -> None:
        self.waveforms = waveforms
        self.labels = labels
        self.metadata = metadata
        self.sample_rate = sample_rate
        self.split = split

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.waveforms[index], int(self.labels[index])

    @property
    def voices(self) -> list[str]:
        """Sorted ids of the voices (speakers) in this split."""
        return sorted({m["voice"] for m in self.metadata})

    def _describe(self) -> str:
        seconds = self.waveforms.shape[-1] / self.sample_rate
        return (
            f"split={self.split!r}, {len(self)} clips of {seconds:.2f} s at {self.sample_rate} Hz, "
            f"{len(self.voices)} voices"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._describe()})"


# --------------------------------------------------------------------------- synthetic corpus


def voice_family(variant: str) -> str:
    """The family of an eSpeak NG voice variant: numbered copies belong together.

    ``klatt``, ``klatt2``, ... ``klatt6`` are one family (as are ``iven*``, ``robosoft*``,
    ``Gene``/``Gene2``, ...), so a test voice is never a near-copy of a training voice. The
    numbered basic voices ``m1``...``m8`` and ``f1``...``f5`` are distinct voices.
    """
    stem = re.sub(r"\d+$", "", variant.lower())
    return stem if len(stem) > 1 else variant.lower()


def split_families(variants: Sequence[str], seed: int = 0) -> dict[str, str]:
    """Assign each voice family to ``train``, ``valid`` or ``test`` (deterministic).

    The families are put in a seeded random order, the small ones first; ``test`` takes them
    from the front until it holds its share (:data:`SPLIT_FRACTIONS`) of the variants, then
    ``valid`` does, and ``train`` gets the rest. Held-out voices are therefore many different
    single-variant families, and no split is empty when there are three families or more.
    """
    sizes = Counter(voice_family(v) for v in variants)
    families = sorted(sizes)
    shuffled = [families[i] for i in np.random.default_rng(seed).permutation(len(families))]
    queue = sorted(shuffled, key=sizes.__getitem__)  # stable: random order within each size
    assignment = {}
    for split in ("test", "valid"):
        target, count = max(1, round(SPLIT_FRACTIONS[split] * len(variants))), 0
        while queue and count < target:
            family = queue.pop(0)
            assignment[family] = split
            count += sizes[family]
    assignment.update(dict.fromkeys(queue, "train"))
    return assignment


def _plan(variants: Sequence[str], speakers_per_variant: int, takes: int, seed: int) -> list[dict]:
    """Every clip's speaker, synthesis settings, level and placement (no audio yet).

    Each variant has its own random stream (seeded by the seed and the variant's name), so a
    variant's speakers do not change when other variants are added or removed.
    """
    splits = split_families(variants, seed)
    plan = []
    for variant in variants:
        rng = np.random.default_rng([seed, zlib.crc32(variant.encode("utf-8"))])
        for _ in range(speakers_per_variant):
            accent = str(rng.choice(ACCENTS))
            pitch, pitch_range, rate = (int(rng.integers(*r)) for r in SPEAKER_RANGES)
            vtl = int(rng.integers(*FORMANT_SCALE_PERCENT))  # vocal-tract length, in % of formants
            voice = f"{variant}/{accent}/p{pitch}-r{pitch_range}-s{rate}-f{vtl}"
            for digit, word in enumerate(DIGITS):
                for take in range(takes):
                    request = {
                        "text": word,
                        "language": accent,
                        "variant": variant,
                        "rate": int(np.clip(rate * rng.uniform(0.92, 1.08), 80, 450)),
                        "pitch": int(np.clip(pitch + rng.integers(-4, 5), 0, 100)),
                        "pitch_range": pitch_range,
                        "seed": int(rng.integers(2**31)),
                        "formant_scale": vtl / 100,
                    }
                    clip = {
                        "voice": voice,
                        "variant": variant,
                        "family": voice_family(variant),
                        "accent": accent,
                        "split": splits[voice_family(variant)],
                        "digit": digit,
                        "text": word,
                        "take": take,
                        "rate": request["rate"],
                        "pitch": request["pitch"],
                        "pitch_range": pitch_range,
                        "formant_scale": vtl / 100,
                        "level_db": round(float(rng.uniform(-20.0, -1.0)), 2),
                        "position": float(rng.uniform()),  # where the word sits in the window
                    }
                    plan.append({"request": request, "clip": clip})
    return plan


def _synthesize(requests: list[dict], processes: int = 2) -> list[np.ndarray]:
    """Synthesise in :data:`N_CHUNKS` contiguous chunks, each in a fresh Python process.

    eSpeak NG's output depends slightly on what it synthesised before in the same process, so
    fixed chunks in fresh interpreters make the corpus bit-identical from run to run, whatever
    the number of processes or what the calling process did with eSpeak
    (:func:`audiolab.espeak.synthesize_in_subprocess`).

    The workers' scratch folder ``.espeak-PID-XXXX`` is made inside the cache folder and deleted
    afterwards; one left by a killed process is deleted by the next build.
    """
    bounds = np.linspace(0, len(requests), N_CHUNKS + 1).round().astype(int)
    chunks = [requests[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
    parent = settings.cache_dir()
    sweep_scratch_folders(parent, SCRATCH_PREFIX)
    with tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=parent) as tmp:
        outputs = [Path(tmp) / f"chunk{i}.npz" for i in range(len(chunks))]
        with ThreadPoolExecutor(max(1, min(processes, len(chunks)))) as pool:
            results = list(pool.map(espeak.synthesize_in_subprocess, chunks, outputs))
    return [wave for chunk in results for wave in chunk]


def _place(wave: np.ndarray, length: int, position: float) -> tuple[np.ndarray, int, int]:
    """Trim silence and put the word at ``position`` (0 to 1) in a window of ``length`` samples.

    Returns the window (float32, peak 1) and the word's first sample and length in it.
    """
    wave = wave.astype(np.float32)
    peak = np.abs(wave).max(initial=0.0)
    if peak == 0:
        raise RuntimeError("eSpeak NG returned silence; please report this with the request")
    loud = np.flatnonzero(np.abs(wave) > 0.01 * peak)  # trim what is 40 dB below the peak
    wave = wave[loud[0] : loud[-1] + 1] / peak
    if len(wave) > length:  # too long (slow speech, echo tails): cut with a 10 ms fade-out
        wave = wave[:length]
        fade = min(length, int(0.01 * espeak.SAMPLE_RATE))
        wave[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
    start = int(position * (length - len(wave)))
    window = np.zeros(length, dtype=np.float32)
    window[start : start + len(wave)] = wave
    return window, start, len(wave)


def _build_spoken_digits(
    variants: Sequence[str], speakers_per_variant: int, takes: int, seed: int, sample_rate: int
) -> dict[str, np.ndarray]:
    from audiolab.audio import resample

    plan = _plan(variants, speakers_per_variant, takes, seed)
    raw = _synthesize([item["request"] for item in plan])
    length = round(CLIP_SECONDS * espeak.SAMPLE_RATE)
    out_length = round(CLIP_SECONDS * sample_rate)
    waveforms = np.empty((len(plan), out_length), dtype=np.int16)
    metadata = []
    for start in range(0, len(plan), 512):  # place and resample in batches of 512 clips
        batch = []
        for item, wave in zip(plan[start : start + 512], raw[start : start + 512], strict=True):
            clip = dict(item["clip"])
            window, onset, n = _place(wave, length, clip.pop("position"))
            clip["onset_s"] = round(onset / espeak.SAMPLE_RATE, 4)
            clip["duration_s"] = round(n / espeak.SAMPLE_RATE, 4)
            batch.append(window)
            metadata.append(clip)
        clips = resample(torch.from_numpy(np.stack(batch)), espeak.SAMPLE_RATE, sample_rate)
        clips = clips[:, :out_length]
        levels = torch.tensor([10 ** (m["level_db"] / 20) for m in metadata[start:]])
        clips = clips * (levels / clips.abs().amax(dim=1)).unsqueeze(1)  # peak at level_db dBFS
        waveforms[start : start + len(batch)] = np.round(clips.numpy() * 32768)
    return {
        "waveforms": waveforms,
        "labels": np.array([m["digit"] for m in metadata], dtype=np.int64),
        "metadata": np.array(json.dumps(metadata)),
    }


def _check_args(split: str, size: str | None, sample_rate: int, seed: int = 0) -> str:
    """Validate the common arguments; return the size (``None`` follows the mode)."""
    size = checks.split_and_size(split, size, SPLITS, SIZES)
    checks.sample_rate(sample_rate)
    checks.integer("seed", seed, minimum=0)
    return size


def _variants(variants: Sequence[str] | None) -> list[str]:
    """The variants sorted as SpokenDigits sorts them; unknown ones raise a clear error."""
    variants = sorted(set(espeak.voice_variants() if variants is None else variants), key=str.lower)
    for variant in variants:
        espeak.voice_name("en-us", variant)
    return variants


def _select_split(
    arrays: dict[str, np.ndarray], split: str, variants: Sequence[str]
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Rows of a cached corpus that belong to ``split``, and their metadata."""
    all_metadata = json.loads(str(arrays["metadata"]))
    rows = np.array([m["split"] == split for m in all_metadata], dtype=bool)
    if not rows.any():
        raise ValueError(
            f"the {split!r} split is empty: the {len(variants)} variants form "
            f"{len(set(map(voice_family, variants)))} voice families; use at least three"
        )
    return rows, [m for m, keep in zip(all_metadata, rows, strict=True) if keep]


def _pcm_to_float(pcm: np.ndarray) -> torch.Tensor:
    """16-bit PCM samples as float32 in [-1, 1)."""
    return torch.from_numpy(pcm.astype(np.float32) / 32768)


class SpokenDigits(_DigitDataset):
    """Spoken digits "zero" to "nine" from hundreds of synthetic eSpeak NG speakers.

    A speaker is a voice variant (timbre) with an English accent, a pitch, a pitch range, a
    speaking rate and a vocal-tract length (every formant scaled by 0.88 to 1.14), all drawn
    from a seeded random generator (:data:`SPEAKER_RANGES`, :data:`FORMANT_SCALE_PERCENT`);
    each take jitters the rate and pitch a little. Each clip is trimmed, peak-normalised to a
    random level between -20 and -1 dBFS, and placed at a random position in a
    :data:`CLIP_SECONDS` window.

    The splits are disjoint by voice *family* (a variant and its numbered near-copies), about
    80/10/10 by number of variants (:func:`split_families`): every speaker of a test voice is
    unseen in training.

    The whole corpus (all splits) is generated once (2 processes; about 10 s for the full
    size) and cached (:mod:`audiolab.cache`); each split is a view of it.

    Parameters
    ----------
    split
        ``"train"``, ``"valid"`` or ``"test"``.
    sample_rate
        Sample rate of the clips in Hz (eSpeak's 22,050 Hz output is resampled).
    size
        ``"quick"`` (1 speaker per variant, 1 take: ~1,000 clips) or ``"full"`` (3 speakers,
        2 takes: ~6,000 clips); ``None`` follows :func:`audiolab.settings.mode`.
    seed
        Seed of the speakers, takes, levels, positions and of the split.
    variants
        Voice variants to use (default: all of :func:`audiolab.espeak.voice_variants`); a
        few variants make a tiny corpus for tests and demos.
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
            "seed": seed,
            "sample_rate": sample_rate,
            "accents": ACCENTS,
            "clip_seconds": CLIP_SECONDS,
            "chunks": N_CHUNKS,
            "espeakng_loader": package_metadata.version("espeakng-loader"),
        }
        arrays = cached_arrays(
            "spoken_digits",
            params,
            lambda: _build_spoken_digits(
                variants, **SIZES[size], seed=seed, sample_rate=sample_rate
            ),
            CORPUS_VERSION,
        )
        rows, metadata = _select_split(arrays, split, variants)
        super().__init__(
            waveforms=_pcm_to_float(arrays["waveforms"][rows]),
            labels=torch.from_numpy(arrays["labels"][rows]),
            metadata=metadata,
            sample_rate=sample_rate,
            split=split,
        )
        self.size = size
        self.seed = seed

    @property
    def variants(self) -> list[str]:
        """Sorted voice variants in this split."""
        return sorted({m["variant"] for m in self.metadata}, key=str.lower)

    def __repr__(self) -> str:
        return (
            f"SpokenDigits({self._describe()} from {len(self.variants)} voice variants, "
            f"size={self.size!r}, seed={self.seed})"
        )


# --------------------------------------------------------------------------- FSDD


def _as_list(speakers: str | Sequence[str] | None) -> list[str] | None:
    return [speakers] if isinstance(speakers, str) else None if speakers is None else list(speakers)


class FSDD(_DigitDataset):
    """The Free Spoken Digit Dataset (or any folder of files named like it), split by speaker.

    FSDD is not downloaded by this package: get it from ``FSDD_URL`` (its ``recordings``
    folder holds ``{digit}_{speaker}_{index}.wav`` files, 8 kHz mono) and pass that folder.

    Parameters
    ----------
    root
        The folder of ``.wav`` files. Other files are ignored; ``.wav`` files with other names
        are skipped with a warning.
    split
        ``"train"``, ``"valid"`` or ``"test"``.
    sample_rate
        The files are resampled to this rate (Hz).
    test_speakers, valid_speakers
        Speakers held out for testing and validation. By default the alphabetically first
        speaker is the test speaker and the second one the validation speaker; all others train.
    duration
        Every clip is padded with zeros or cut at the end to this length in seconds.

    Raises
    ------
    FileNotFoundError
        If ``root`` does not exist or holds no FSDD-named ``.wav`` file.
    ValueError
        For unknown speakers, a speaker in both held-out sets, or an empty split.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        sample_rate: int = 16000,
        test_speakers: str | Sequence[str] | None = None,
        valid_speakers: str | Sequence[str] | None = None,
        duration: float = 1.0,
    ) -> None:
        from audiolab.audio import load

        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        sample_rate = checks.sample_rate(sample_rate)
        duration = checks.number("duration", duration, positive=True)
        if round(duration * sample_rate) < 1:
            raise ValueError(
                f"duration={duration:g} s is shorter than one sample at {sample_rate} Hz"
            )
        root = Path(root).expanduser()
        files = self._find_files(root)
        speakers = sorted({speaker for _, speaker, _, _ in files})
        test = _as_list(test_speakers)
        valid = _as_list(valid_speakers)
        for name, chosen in [("test_speakers", test), ("valid_speakers", valid)]:
            unknown = sorted(set(chosen or []) - set(speakers))
            if unknown:
                raise ValueError(
                    f"{name}: no recordings of {unknown} in {root}; its speakers are {speakers}"
                )
        if test is not None and valid is not None and set(test) & set(valid):
            raise ValueError(
                f"speakers {sorted(set(test) & set(valid))} are in both test_speakers and "
                "valid_speakers; a speaker can be held out for one of them only"
            )
        if test is None:
            test = [s for s in speakers if s not in (valid or [])][:1]
        if valid is None:
            valid = [s for s in speakers if s not in test][:1]
        by_split = {
            "test": set(test),
            "valid": set(valid),
            "train": set(speakers) - set(test) - set(valid),
        }
        chosen = [f for f in files if f[1] in by_split[split]]
        if not chosen:
            raise ValueError(
                f"the {split!r} split of {root} is empty: "
                + ", ".join(f"{k} speakers {sorted(v)}" for k, v in by_split.items())
                + "; the default split needs at least three speakers"
            )
        length = round(duration * sample_rate)
        waveforms = torch.zeros(len(chosen), length)
        metadata = []
        for row, (path, speaker, digit, index) in enumerate(chosen):
            wave, _ = load(path, sample_rate=sample_rate)
            waveforms[row, : min(length, len(wave))] = torch.from_numpy(wave[:length])
            metadata.append(
                {
                    "voice": speaker,
                    "speaker": speaker,
                    "digit": digit,
                    "text": DIGITS[digit],
                    "index": index,
                    "path": str(path),
                    "duration_s": round(len(wave) / sample_rate, 4),
                }
            )
        super().__init__(
            waveforms=waveforms,
            labels=torch.tensor([m["digit"] for m in metadata], dtype=torch.long),
            metadata=metadata,
            sample_rate=sample_rate,
            split=split,
        )
        self.root = root
        self.speakers = {name: sorted(members) for name, members in by_split.items()}

    @staticmethod
    def _find_files(root: Path) -> list[tuple[Path, str, int, int]]:
        """The FSDD files of ``root`` as (path, speaker, digit, index), in a stable order."""
        where = f"FSDD recordings can be obtained from {FSDD_URL} (the 'recordings' folder)"
        if not root.exists():
            raise FileNotFoundError(f"FSDD folder {root} does not exist; {where}")
        if not root.is_dir():
            raise NotADirectoryError(f"{root} is a file; pass the folder of FSDD .wav files")
        files, bad = [], []
        for path in sorted(root.iterdir()):
            if not (path.is_file() and path.suffix.lower() == ".wav"):
                continue
            match = _FSDD_NAME.match(path.name)
            if match is None:
                bad.append(path.name)
            else:
                files.append((path, match[2], int(match[1]), int(match[3])))
        if bad:
            warnings.warn(
                f"skipped {len(bad)} .wav file(s) in {root} whose names are not "
                f"'{{digit}}_{{speaker}}_{{index}}.wav': {', '.join(bad[:5])}"
                f"{', ...' if len(bad) > 5 else ''}; rename them to include them",
                stacklevel=3,
            )
        if not files:
            raise FileNotFoundError(
                f"no FSDD recordings ('{{digit}}_{{speaker}}_{{index}}.wav' files such as "
                f"7_jackson_32.wav) in {root}; {where}"
            )
        return files

    def __repr__(self) -> str:
        return f"FSDD({self._describe()}, root={str(self.root)!r})"
