"""Music corpora rendered from real sampled instruments: single notes and polyphonic excerpts.

Both are rendered offline with ``tinysoundfont`` from the General MIDI SoundFont
``TimGM6mb.sf2`` that ships inside the ``pretty_midi`` wheel (:func:`soundfont_path`): these
are recorded instrument samples, not oscillators.

- :class:`GMNotes`: single notes, NSynth-style: instrument (GM program and family), MIDI pitch
  over the instrument's playable range, velocity; 1.0 s of note-on and 0.5 s of release in a
  1.5 s clip, peak-normalised (the gain is kept). For timbre tasks and conditional generation.
- :class:`Mixtures`: 4 s excerpts of random melodies (notes of a random scale, random onsets
  and durations, some two-note chords) played by one or two instruments, with the separate
  stem of each instrument and the ground-truth notes and piano roll. For source separation
  and transcription (``mir_eval``).

Both split **by instrument** (:data:`INSTRUMENTS`: every family has two training, one
validation and one test instrument), so the test set holds timbres never heard in training;
:class:`GMNotes` also offers a pitch/velocity hold-out (``split_by="pitch_velocity"``).
Everything is deterministic and cached (:mod:`audiolab.cache`).

Examples
--------
::

    from audiolab.music import GMNotes, Mixtures
    notes = GMNotes("train")                 # rendered on first use (seconds), then cached
    wave, family = notes[0]                  # wave: (24000,) at 16 kHz
    print(notes.metadata[0])                 # program, instrument, family, pitch, velocity, gain

    test = Mixtures("test")                  # two-instrument excerpts
    mix, stems = test[0]                     # mix: (64000,), stems: (2, 64000); mix == stems.sum(0)
    intervals, pitches_hz = test.reference(0)     # for mir_eval.transcription
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from audiolab import checks
from audiolab.cache import cached_arrays

SPLITS: tuple[str, ...] = ("train", "valid", "test")
#: Ways to split :class:`GMNotes` (see its docstring).
SPLIT_SCHEMES: tuple[str, ...] = ("instrument", "pitch_velocity")
#: Bump when the rendering code changes: the cached corpora are then rebuilt.
NOTES_VERSION = 1
MIXTURES_VERSION = 1
#: Lowest sample rate accepted (the SoundFont's samples reach well above 4 kHz).
MIN_SAMPLE_RATE = 8000
#: Single notes: seconds of note-on, and length of the whole clip (the rest is the release).
NOTE_SECONDS = 1.0
CLIP_SECONDS = 1.5
#: int16 full scale of the cached clips (a peak-normalised clip reaches exactly 1.0).
_FULL_SCALE = 32767


class Instrument(NamedTuple):
    """One instrument of the corpus: a General MIDI program and its playable pitch range."""

    program: int  #: GM program number, 0-127 (bank 0 of the SoundFont)
    name: str  #: the SoundFont's preset name
    family: str  #: GM family (``program // 8``), see :data:`FAMILIES`
    low: int  #: lowest MIDI pitch rendered (inclusive)
    high: int  #: highest MIDI pitch rendered (inclusive)
    split: str  #: ``"train"``, ``"valid"`` or ``"test"`` (instrument split)


#: The GM families used (drums, pads, effects, ethnic and percussive programs are left out).
FAMILIES: tuple[str, ...] = (
    "piano", "chromatic_percussion", "organ", "guitar", "bass", "strings", "brass", "reed",
    "pipe", "synth_lead",
)  # fmt: skip

#: The curated instruments: four per family, two for training, one for validation, one for
#: testing. Ranges follow the real instruments' usual compass, cut to where TimGM6mb's samples
#: are in tune (checked with YIN on every semitone: median f0 within 50 cents of the label; the
#: accordion and bandoneon drift flat above C5). Left out: the drawbar and church organs (a
#: 16-foot stop puts strong energy an octave below the key), the celesta, glockenspiel and
#: tubular bells (inharmonic or detuned samples), the oboe and alto sax (samples whose
#: fundamental is weak, so pitch trackers jump an octave), and presets of fifths or layers.
INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument(0, "Piano 1", "piano", 36, 84, "train"),
    Instrument(6, "Harpsichord", "piano", 41, 84, "train"),
    Instrument(7, "Clavinet", "piano", 36, 79, "valid"),
    Instrument(4, "E.Piano 1", "piano", 36, 84, "test"),
    Instrument(12, "Marimba", "chromatic_percussion", 48, 84, "train"),
    Instrument(11, "Vibraphone", "chromatic_percussion", 53, 89, "train"),
    Instrument(10, "MusicBox", "chromatic_percussion", 60, 91, "valid"),
    Instrument(15, "Dulcimer", "chromatic_percussion", 48, 84, "test"),
    Instrument(20, "Reed Organ", "organ", 36, 84, "train"),
    Instrument(21, "Accordion", "organ", 53, 72, "train"),
    Instrument(23, "Bandoneon", "organ", 41, 72, "valid"),
    Instrument(22, "Harmonica", "organ", 60, 84, "test"),
    Instrument(24, "Nylon Guitar", "guitar", 40, 76, "train"),
    Instrument(30, "DistortionGuitar", "guitar", 40, 76, "train"),
    Instrument(25, "Steel Guitar", "guitar", 40, 76, "valid"),
    Instrument(26, "Jazz Guitar", "guitar", 40, 76, "test"),
    Instrument(33, "Fingered Bass", "bass", 28, 55, "train"),
    Instrument(38, "Synth Bass 1", "bass", 28, 55, "train"),
    Instrument(32, "Acoustic Bass", "bass", 28, 55, "valid"),
    Instrument(35, "Fretless Bass", "bass", 28, 55, "test"),
    Instrument(40, "Violin", "strings", 55, 91, "train"),
    Instrument(42, "Cello", "strings", 36, 72, "train"),
    Instrument(43, "Contrabass", "strings", 28, 60, "valid"),
    Instrument(41, "Viola", "strings", 48, 84, "test"),
    Instrument(56, "SoloTrumpet", "brass", 55, 82, "train"),
    Instrument(57, "Trombone", "brass", 40, 72, "train"),
    Instrument(58, "Tuba", "brass", 28, 58, "valid"),
    Instrument(60, "French Horns", "brass", 41, 77, "test"),
    Instrument(66, "Tenor Sax (TB) v2.3", "reed", 44, 76, "train"),
    Instrument(71, "Clarinet", "reed", 50, 89, "train"),
    Instrument(70, "Bassoon", "reed", 34, 72, "valid"),
    Instrument(69, "English Horn", "reed", 52, 81, "test"),
    Instrument(73, "Flute TB", "pipe", 60, 93, "train"),
    Instrument(75, "Pan Flute", "pipe", 60, 93, "train"),
    Instrument(79, "Ocarina", "pipe", 60, 84, "valid"),
    Instrument(74, "Recorder", "pipe", 60, 93, "test"),
    Instrument(80, "Square Wave", "synth_lead", 36, 84, "train"),
    Instrument(81, "Saw Wave", "synth_lead", 36, 84, "train"),
    Instrument(84, "Charang", "synth_lead", 36, 84, "valid"),
    Instrument(82, "Synth Calliope", "synth_lead", 48, 84, "test"),
)
_BY_PROGRAM: dict[int, Instrument] = {i.program: i for i in INSTRUMENTS}

#: Note sizes: every ``pitch_step``-th semitone of each range, at each velocity.
NOTE_SIZES: dict[str, dict[str, Any]] = {
    "quick": {"pitch_step": 2, "velocities": (80, 120)},  # 40 instruments -> ~1,500 notes
    "full": {"pitch_step": 1, "velocities": (40, 80, 120)},  # 40 instruments -> ~4,400 notes
}
#: Pitch/velocity hold-out: a note goes to ``test`` when ``(pitch + 5 * velocity_index) % 7``
#: is 0, to ``valid`` when it is 1, else to ``train``; every pitch and every velocity is in
#: training, but these (pitch, velocity) *combinations* are not.
HOLDOUT_PERIOD = 7

#: Mixture sizes: number of excerpts of the whole corpus (all splits, ~70/15/15).
MIXTURE_SIZES: dict[str, int] = {"quick": 120, "full": 800}
#: Mixtures: excerpt length, last note-off (the rest is release), frame rate of the piano roll.
EXCERPT_SECONDS = 4.0
LAST_OFFSET_SECONDS = 3.5
FRAME_RATE = 100
#: Scales the melodies are drawn from (semitones above the tonic).
SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "pentatonic": (0, 2, 4, 7, 9),
}
#: Peak of every mixture after normalisation.
MIXTURE_PEAK = 0.9


# --------------------------------------------------------------------------- rendering


def soundfont_path() -> Path:
    """The General MIDI SoundFont ``TimGM6mb.sf2`` inside the installed ``pretty_midi`` package.

    Raises
    ------
    FileNotFoundError
        If pretty_midi is installed without it.
    """
    import pretty_midi

    path = Path(pretty_midi.__file__).resolve().parent / "TimGM6mb.sf2"
    if not path.is_file():
        raise FileNotFoundError(
            f"the SoundFont {path.name} is missing from pretty_midi {pretty_midi.__version__} "
            f"({path.parent}); reinstall it: pip install -c requirements/constraints.txt "
            "--force-reinstall pretty_midi"
        )
    return path


@cache
def _soundfont_bytes() -> bytes:
    return soundfont_path().read_bytes()


class Renderer:
    """Renders MIDI notes from TimGM6mb.sf2 to mono float32 samples, deterministically.

    One ``tinysoundfont`` synthesiser per renderer (make one per build, not a global): before
    each render every voice is stopped and the synthesiser is run until it is silent, so a
    rendering never depends on what was rendered before (checked by the tests).

    Parameters
    ----------
    sample_rate
        Output sample rate in Hz (the SoundFont's samples are resampled by tinysoundfont).
    """

    def __init__(self, sample_rate: int = 16000) -> None:
        try:
            from tinysoundfont import _tinysoundfont as tsf
        except ImportError as err:
            raise ImportError(
                "rendering instrument notes needs tinysoundfont; install it without its optional "
                "playback dependency PyAudio: pip install --no-deps tinysoundfont==0.3.7 "
                "(make setup does this)"
            ) from err

        self.sample_rate = _check_sample_rate(sample_rate)
        self._font = tsf.SoundFont(_soundfont_bytes())
        self._font.set_output(tsf.OutputMode.Mono, self.sample_rate, 0.0)
        self._font.set_max_voices(256)

    def _run(self, n: int) -> np.ndarray:
        out = np.zeros(n, dtype=np.float32)
        if n:
            self._font.render(memoryview(out).cast("B"), False)
        return out

    def _silence(self) -> None:
        """Stop every voice and render until nothing sounds (voices fade out in a few ms)."""
        self._font.reset()
        block = max(1, self.sample_rate // 100)
        for _ in range(100):
            if not np.any(self._run(block)):
                return
        raise RuntimeError("tinysoundfont did not fall silent after 1 s of reset; please report")

    def render(
        self, program: int, notes: Sequence[tuple[float, float, int, int]], seconds: float
    ) -> np.ndarray:
        """Play ``notes`` on one GM ``program`` and return ``seconds`` of mono float32 audio.

        Parameters
        ----------
        program
            GM program number (0-127, melodic bank 0).
        notes
            ``(onset_s, offset_s, pitch, velocity)`` tuples; events are placed at the nearest
            sample.
        seconds
            Length of the output.
        """
        self._silence()
        self._font.channel_set_preset_number(0, int(program), False)
        events = []
        for onset, offset, pitch, velocity in notes:
            events.append((round(onset * self.sample_rate), 1, int(pitch), int(velocity)))
            events.append((round(offset * self.sample_rate), 0, int(pitch), 0))
        events.sort()  # at equal times note-offs (0) come before note-ons (1)
        total = round(seconds * self.sample_rate)
        pieces, now = [], 0
        for when, is_on, pitch, velocity in events:
            when = min(when, total)
            pieces.append(self._run(when - now))
            now = when
            if is_on:
                self._font.channel_note_on(0, pitch, velocity / 127)
            else:
                self._font.channel_note_off(0, pitch)
        pieces.append(self._run(total - now))
        return np.concatenate(pieces)

    def note(self, program: int, pitch: int, velocity: int) -> np.ndarray:
        """One note as in :class:`GMNotes`: on for :data:`NOTE_SECONDS`, clip of
        :data:`CLIP_SECONDS` (not normalised)."""
        return self.render(program, [(0.0, NOTE_SECONDS, pitch, velocity)], CLIP_SECONDS)


# --------------------------------------------------------------------------- checks


def _check_sample_rate(sample_rate: Any) -> int:
    sample_rate = checks.sample_rate(sample_rate)
    if sample_rate < MIN_SAMPLE_RATE:
        raise ValueError(
            f"sample_rate must be at least {MIN_SAMPLE_RATE} Hz for instrument notes, "
            f"got {sample_rate}"
        )
    return sample_rate


def _check_common(split: str, size: str | None, sample_rate: Any) -> tuple[str, int]:
    size = checks.split_and_size(split, size, SPLITS, NOTE_SIZES)
    return size, _check_sample_rate(sample_rate)


def _instruments(programs: Sequence[int] | None) -> list[Instrument]:
    """The chosen instruments of :data:`INSTRUMENTS` (all by default), in table order."""
    if programs is None:
        return list(INSTRUMENTS)
    if isinstance(programs, str | bytes) or not isinstance(programs, Sequence):
        raise TypeError(
            f"instruments must be a sequence of GM program numbers, got {type(programs).__name__}"
        )
    chosen = set()
    for program in programs:
        checks.integer("instruments[...]", program, minimum=0)
        if program not in _BY_PROGRAM:
            raise ValueError(
                f"instruments: program {program} is not in the corpus; choose among "
                f"{sorted(_BY_PROGRAM)} (see audiolab.music.INSTRUMENTS)"
            )
        chosen.add(int(program))
    if not chosen:
        raise ValueError("instruments must name at least one GM program")
    return [i for i in INSTRUMENTS if i.program in chosen]


def _labels_of(instrument: Instrument) -> dict[str, Any]:
    return {
        "program": instrument.program,
        "instrument": instrument.name,
        "family": instrument.family,
        "family_index": FAMILIES.index(instrument.family),
        "instrument_split": instrument.split,
    }


def _empty_split(split: str, what: str, instruments: Sequence[Instrument]) -> ValueError:
    have = {s: [i.program for i in instruments if i.split == s] for s in SPLITS}
    return ValueError(
        f"the {split!r} split has no {what}: the chosen instruments are split {have}; "
        "choose at least one instrument of each split (see audiolab.music.INSTRUMENTS)"
    )


# --------------------------------------------------------------------------- single notes


def note_split(pitch: int, velocity_index: int) -> str:
    """The split of a note under the pitch/velocity hold-out (see :data:`HOLDOUT_PERIOD`)."""
    slot = (pitch + 5 * velocity_index) % HOLDOUT_PERIOD
    return "test" if slot == 0 else "valid" if slot == 1 else "train"


def _plan_notes(instruments: Sequence[Instrument], size: str) -> list[dict[str, Any]]:
    pitch_step, velocities = NOTE_SIZES[size]["pitch_step"], NOTE_SIZES[size]["velocities"]
    all_velocities = NOTE_SIZES["full"]["velocities"]
    plan = []
    for instrument in instruments:
        for pitch in range(instrument.low, instrument.high + 1, pitch_step):
            for velocity in velocities:
                plan.append(
                    {
                        **_labels_of(instrument),
                        "pitch": pitch,
                        "velocity": velocity,
                        "holdout_split": note_split(pitch, all_velocities.index(velocity)),
                    }
                )
    return plan


def _build_notes(
    instruments: Sequence[Instrument], size: str, sample_rate: int
) -> dict[str, np.ndarray]:
    plan = _plan_notes(instruments, size)
    renderer = Renderer(sample_rate)
    length = round(CLIP_SECONDS * sample_rate)
    waveforms = np.empty((len(plan), length), dtype=np.int16)
    for row, note in enumerate(plan):
        wave = renderer.note(note["program"], note["pitch"], note["velocity"])
        peak = float(np.abs(wave).max())
        if peak == 0:
            raise RuntimeError(
                f"TimGM6mb rendered silence for program {note['program']} pitch {note['pitch']}"
            )
        note["gain"] = 1.0 / peak  # the clip is wave * gain; the raw peak was 1 / gain
        note["peak_db"] = round(20 * np.log10(peak), 2)
        waveforms[row] = np.round(wave * (_FULL_SCALE / peak))
    return {"waveforms": waveforms, "metadata": np.array(json.dumps(plan))}


class GMNotes(Dataset):
    """Single instrument notes rendered from the General MIDI SoundFont TimGM6mb (NSynth-style).

    Each note of each instrument of :data:`INSTRUMENTS` (ten GM families, four instruments each)
    is played for :data:`NOTE_SECONDS` (1 s) from the start of a :data:`CLIP_SECONDS` (1.5 s)
    clip, so the clip holds the attack, the sustain and 0.5 s of release; every pitch of the
    instrument's range (every second one in the quick size) at each velocity. The clips are
    mono, peak-normalised to 1.0; the factor applied is kept (``gains``, ``metadata``), so
    ``waveforms[i] / gains[i]`` is the raw render at the SoundFont's own level.

    Two split schemes (``split_by``):

    - ``"instrument"`` (default, for timbre tasks): each instrument belongs to one split
      (:attr:`Instrument.split`): 20 training, 10 validation and 10 test instruments, with
      every family in every split, so test timbres are never heard in training.
    - ``"pitch_velocity"`` (for conditional generation): all instruments in every split, and a
      note goes to ``test`` when ``(pitch + 5 * velocity_index) % 7 == 0`` (``valid`` when it is
      1), where ``velocity_index`` is the velocity's position in (40, 80, 120): about 14 % of
      the (pitch, velocity) combinations of every instrument are held out, while every pitch
      and every velocity is seen in training.

    The whole corpus is rendered once (about a millisecond a note) and cached
    (:mod:`audiolab.cache`); each split is a view of it. Rendering is deterministic.

    Parameters
    ----------
    split
        ``"train"``, ``"valid"`` or ``"test"``.
    sample_rate
        Sample rate in Hz (an int, at least 8000).
    size
        ``"quick"`` (every second semitone, velocities 80 and 120: ~1,500 notes in all splits)
        or ``"full"`` (every semitone, velocities 40, 80, 120: ~4,400 notes); ``None`` follows
        :func:`audiolab.settings.mode`.
    split_by
        ``"instrument"`` or ``"pitch_velocity"`` (see above).
    target
        What ``labels`` and ``ds[i][1]`` hold: ``"family"`` (index into :data:`FAMILIES`),
        ``"program"``, ``"pitch"`` or ``"velocity"``.
    instruments
        GM programs to use (a subset of :data:`INSTRUMENTS`, for small corpora); default all.

    Attributes
    ----------
    waveforms
        FloatTensor ``(N, T)``, ``T = 1.5 * sample_rate``, peak 1.
    pitches, velocities, programs, families
        LongTensors ``(N,)``: MIDI pitch, MIDI velocity, GM program, family index.
    gains
        FloatTensor ``(N,)``: the normalisation factor of each clip.
    metadata
        List of N dicts: program, instrument, family, family_index, pitch, velocity, gain,
        peak_db, instrument_split, holdout_split.

    Raises
    ------
    ValueError, TypeError
        For a bad argument, naming it and what is allowed.
    """

    TARGETS: tuple[str, ...] = ("family", "program", "pitch", "velocity")

    def __init__(
        self,
        split: str = "train",
        sample_rate: int = 16000,
        size: str | None = None,
        split_by: str = "instrument",
        target: str = "family",
        instruments: Sequence[int] | None = None,
    ) -> None:
        size, sample_rate = _check_common(split, size, sample_rate)
        if split_by not in SPLIT_SCHEMES:
            raise ValueError(f"split_by must be one of {SPLIT_SCHEMES}, got {split_by!r}")
        if target not in self.TARGETS:
            raise ValueError(f"target must be one of {self.TARGETS}, got {target!r}")
        chosen = _instruments(instruments)
        params = {
            "instruments": [list(i) for i in chosen],
            **NOTE_SIZES[size],
            "sample_rate": sample_rate,
            "note_seconds": NOTE_SECONDS,
            "clip_seconds": CLIP_SECONDS,
            "pretty_midi": package_metadata.version("pretty_midi"),
            "tinysoundfont": package_metadata.version("tinysoundfont"),
        }
        arrays = cached_arrays(
            "gm_notes", params, lambda: _build_notes(chosen, size, sample_rate), NOTES_VERSION
        )
        key = "instrument_split" if split_by == "instrument" else "holdout_split"
        all_metadata = json.loads(str(arrays["metadata"]))
        rows = np.array([m[key] == split for m in all_metadata], dtype=bool)
        if not rows.any():
            raise _empty_split(split, "notes", chosen)
        self.metadata = [m for m, keep in zip(all_metadata, rows, strict=True) if keep]
        self.waveforms = torch.from_numpy(
            arrays["waveforms"][rows].astype(np.float32) / _FULL_SCALE
        )
        self.pitches, self.velocities, self.programs, self.families = (
            torch.tensor([m[k] for m in self.metadata], dtype=torch.long)
            for k in ("pitch", "velocity", "program", "family_index")
        )
        self.gains = torch.tensor([m["gain"] for m in self.metadata], dtype=torch.float32)
        self.sample_rate = sample_rate
        self.split = split
        self.size = size
        self.split_by = split_by
        self.target = target

    @property
    def labels(self) -> torch.Tensor:
        """LongTensor ``(N,)``: the labels named by ``target`` (what ``ds[i][1]`` holds)."""
        return {
            "family": self.families,
            "program": self.programs,
            "pitch": self.pitches,
            "velocity": self.velocities,
        }[self.target]

    @property
    def classes(self) -> list[str]:
        """Names of the ``family`` classes (:data:`FAMILIES`)."""
        return list(FAMILIES)

    @property
    def instruments(self) -> list[Instrument]:
        """The instruments of this split, in :data:`INSTRUMENTS` order."""
        present = {m["program"] for m in self.metadata}
        return [i for i in INSTRUMENTS if i.program in present]

    def __len__(self) -> int:
        return len(self.metadata)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.waveforms[index], int(self.labels[index])

    def __repr__(self) -> str:
        return (
            f"GMNotes(split={self.split!r}, {len(self)} notes of {CLIP_SECONDS:g} s at "
            f"{self.sample_rate} Hz, {len(self.instruments)} instruments, "
            f"split_by={self.split_by!r}, target={self.target!r}, size={self.size!r})"
        )


# --------------------------------------------------------------------------- mixtures


def _melody(
    rng: np.random.Generator, instrument: Instrument, scale: Sequence[int], tonic: int
) -> list[tuple[float, float, int, int]]:
    """A random line of notes on one instrument: (onset, offset, pitch, velocity), sorted.

    Pitches come from the scale within a window of the instrument's range (at most 19
    semitones, around its middle), moving by small steps; inter-onset intervals are 0.25 to
    0.75 s, durations 0.2 to 0.9 s (so notes may overlap); a quarter of the notes get a second
    scale tone a third or a fifth above (a chord).
    """
    centre = (instrument.low + instrument.high) // 2
    low, high = max(instrument.low, centre - 9), min(instrument.high, centre + 10)
    pitches = [p for p in range(low, high + 1) if (p - tonic) % 12 in scale]
    notes = []
    index = int(rng.integers(len(pitches)))
    onset = float(rng.choice([0.0, 0.125, 0.25]))
    while onset < LAST_OFFSET_SECONDS - 0.2:
        duration = float(rng.uniform(0.2, 0.9))
        offset = round(min(onset + duration, LAST_OFFSET_SECONDS), 3)
        velocity = int(rng.integers(70, 121))
        notes.append((round(onset, 3), offset, pitches[index], velocity))
        if rng.uniform() < 0.25:
            upper = index + int(rng.choice([2, 4]))
            if upper < len(pitches):
                notes.append((round(onset, 3), offset, pitches[upper], velocity))
        index = int(np.clip(index + rng.integers(-3, 4), 0, len(pitches) - 1))
        onset += float(rng.choice([0.25, 0.375, 0.5, 0.75]))
    return sorted(notes)


def _plan_mixtures(
    instruments: Sequence[Instrument], n_instruments: int, size: str, seed: int
) -> list[dict[str, Any]]:
    """Every excerpt's split, instruments, scale and notes (no audio).

    Splits get about 70/15/15 % of the excerpts; the instruments of an excerpt are drawn from
    its split, from different families when there are two.
    """
    import pretty_midi

    rng = np.random.default_rng([seed, n_instruments, 5])
    n_total = MIXTURE_SIZES[size]
    counts = {"valid": round(0.15 * n_total), "test": round(0.15 * n_total)}
    counts["train"] = n_total - counts["valid"] - counts["test"]
    plan = []
    for split in SPLITS:
        pool = [i for i in instruments if i.split == split]
        if len({i.family for i in pool}) < n_instruments:
            continue  # reported when that split is asked for
        for _ in range(counts[split]):
            first = pool[int(rng.integers(len(pool)))]
            chosen = [first]
            if n_instruments == 2:
                others = [i for i in pool if i.family != first.family]
                chosen.append(others[int(rng.integers(len(others)))])
            scale_name = str(rng.choice(list(SCALES)))
            tonic = int(rng.integers(12))
            stems = []
            for stem, instrument in enumerate(chosen):
                for onset, offset, pitch, velocity in _melody(
                    rng, instrument, SCALES[scale_name], tonic
                ):
                    stems.append([onset, offset, pitch, velocity, stem])
            plan.append(
                {
                    "split": split,
                    "programs": [i.program for i in chosen],
                    "instruments": [i.name for i in chosen],
                    "families": [i.family for i in chosen],
                    "scale": f"{pretty_midi.note_number_to_name(tonic + 60)[:-1]} {scale_name}",
                    "notes": stems,
                }
            )
    return plan


def to_pretty_midi(metadata: dict[str, Any]) -> Any:
    """The MIDI of one :class:`Mixtures` excerpt as a ``pretty_midi.PrettyMIDI`` object
    (one instrument per stem)."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI()
    for stem, (program, name) in enumerate(
        zip(metadata["programs"], metadata["instruments"], strict=True)
    ):
        track = pretty_midi.Instrument(program=program, name=name)
        track.notes = [
            pretty_midi.Note(velocity=int(v), pitch=int(p), start=float(on), end=float(off))
            for on, off, p, v, s in metadata["notes"]
            if s == stem
        ]
        midi.instruments.append(track)
    return midi


def _build_mixtures(
    instruments: Sequence[Instrument], n_instruments: int, size: str, seed: int, sample_rate: int
) -> dict[str, np.ndarray]:
    plan = _plan_mixtures(instruments, n_instruments, size, seed)
    renderer = Renderer(sample_rate)
    length = round(EXCERPT_SECONDS * sample_rate)
    stems = np.empty((len(plan), n_instruments, length), dtype=np.int16)
    for row, excerpt in enumerate(plan):
        midi = to_pretty_midi(excerpt)  # the excerpt is a MIDI file; render it track by track
        tracks = np.stack(
            [
                renderer.render(
                    track.program,
                    [(n.start, n.end, n.pitch, n.velocity) for n in track.notes],
                    EXCERPT_SECONDS,
                )
                for track in midi.instruments
            ]
        )
        peak = float(np.abs(tracks.sum(axis=0)).max())
        gain = MIXTURE_PEAK / peak
        excerpt["gain"] = gain
        stems[row] = np.round(tracks * (gain * _FULL_SCALE))
    return {"stems": stems, "metadata": np.array(json.dumps(plan))}


class Mixtures(Dataset):
    """Short polyphonic excerpts of random melodies, with their stems, notes and piano roll.

    Each excerpt (:data:`EXCERPT_SECONDS` = 4 s) is a random MIDI file (``pretty_midi``
    objects; :meth:`midi`) of ``n_instruments`` instruments of the same split, from different
    families: each plays a line of notes of one random scale (major, minor or pentatonic, on a
    random tonic), with random onsets and durations and some two-note chords; every note ends
    by :data:`LAST_OFFSET_SECONDS` so the release fits. Each instrument is rendered separately
    from TimGM6mb.sf2 (its *stem*), and the excerpt is scaled so that the mixture's peak is
    :data:`MIXTURE_PEAK`; ``mixtures == stems.sum(1)`` (within float rounding).

    Split by instrument as :class:`GMNotes` (:data:`INSTRUMENTS`), about 70/15/15 % of the
    excerpts: test excerpts are played by instruments never heard in training. Deterministic
    for a given ``seed``; rendered once and cached (:mod:`audiolab.cache`).

    Parameters
    ----------
    split
        ``"train"``, ``"valid"`` or ``"test"``.
    sample_rate
        Sample rate in Hz (an int, at least 8000).
    size
        ``"quick"`` (120 excerpts in all splits) or ``"full"`` (800); ``None`` follows
        :func:`audiolab.settings.mode`.
    n_instruments
        1 (melodies, for transcription) or 2 (two-instrument mixtures, for separation).
    seed
        Seed of the melodies and of the choice of instruments.
    instruments
        GM programs to use (a subset of :data:`INSTRUMENTS`); default all.

    Attributes
    ----------
    mixtures
        FloatTensor ``(N, T)``, ``T = 4 * sample_rate``: the sum of the stems.
    stems
        FloatTensor ``(N, n_instruments, T)``: each instrument alone.
    notes
        List of N float64 arrays ``(n_notes, 5)``: onset (s), offset (s), MIDI pitch, velocity,
        stem index, sorted by onset.
    programs
        LongTensor ``(N, n_instruments)``: the GM program of each stem.
    metadata
        List of N dicts: split, programs, instruments, families, scale, notes, gain.
    """

    def __init__(
        self,
        split: str = "train",
        sample_rate: int = 16000,
        size: str | None = None,
        n_instruments: int = 2,
        seed: int = 0,
        instruments: Sequence[int] | None = None,
    ) -> None:
        size, sample_rate = _check_common(split, size, sample_rate)
        n_instruments = checks.integer("n_instruments", n_instruments, minimum=1)
        if n_instruments > 2:
            raise ValueError(f"n_instruments must be 1 or 2, got {n_instruments}")
        seed = checks.integer("seed", seed, minimum=0)
        chosen = _instruments(instruments)
        params = {
            "instruments": [list(i) for i in chosen],
            "n_instruments": n_instruments,
            "excerpts": MIXTURE_SIZES[size],
            "seed": seed,
            "sample_rate": sample_rate,
            "seconds": [EXCERPT_SECONDS, LAST_OFFSET_SECONDS],
            "scales": SCALES,
            "pretty_midi": package_metadata.version("pretty_midi"),
            "tinysoundfont": package_metadata.version("tinysoundfont"),
        }
        arrays = cached_arrays(
            "gm_mixtures",
            params,
            lambda: _build_mixtures(chosen, n_instruments, size, seed, sample_rate),
            MIXTURES_VERSION,
        )
        all_metadata = json.loads(str(arrays["metadata"]))
        rows = np.array([m["split"] == split for m in all_metadata], dtype=bool)
        if not rows.any():
            pool = {i.family for i in chosen if i.split == split}
            raise _empty_split(
                split, f"excerpts ({n_instruments} families needed, it has {len(pool)})", chosen
            )
        self.metadata = [m for m, keep in zip(all_metadata, rows, strict=True) if keep]
        self.stems = torch.from_numpy(arrays["stems"][rows].astype(np.float32) / _FULL_SCALE)
        self.mixtures = self.stems.sum(dim=1)
        self.notes = [np.array(m["notes"], dtype=np.float64).reshape(-1, 5) for m in self.metadata]
        self.programs = torch.tensor([m["programs"] for m in self.metadata], dtype=torch.long)
        self.sample_rate = sample_rate
        self.n_instruments = n_instruments
        self.frame_rate = FRAME_RATE
        self.split = split
        self.size = size
        self.seed = seed
        self._rolls: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.metadata)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mixtures[index], self.stems[index]

    def piano_roll(self, index: int, stem: int | None = None) -> torch.Tensor:
        """BoolTensor ``(128, F)`` of excerpt ``index`` (one stem, or all with ``None``).

        Frame ``f`` covers ``[f, f + 1) / FRAME_RATE`` seconds; a note is on in the frames
        from ``round(onset * FRAME_RATE)`` up to, not including, ``round(offset * FRAME_RATE)``.
        """
        frames = round(EXCERPT_SECONDS * self.frame_rate)
        roll = torch.zeros(128, frames, dtype=torch.bool)
        for onset, offset, pitch, _, s in self.notes[index]:
            if stem is None or int(s) == stem:
                a, b = round(onset * self.frame_rate), round(offset * self.frame_rate)
                roll[int(pitch), a:b] = True
        return roll

    @property
    def piano_rolls(self) -> torch.Tensor:
        """BoolTensor ``(N, 128, F)``, ``F = 4 * FRAME_RATE``: the piano roll of every excerpt.

        Pitch ``p`` sounds in frame ``f`` (note-on to note-off, :data:`FRAME_RATE` frames a
        second) in any stem.
        """
        if self._rolls is None:
            self._rolls = torch.stack([self.piano_roll(i) for i in range(len(self))])
        return self._rolls

    def reference(self, index: int, stem: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The notes of excerpt ``index`` as ``mir_eval.transcription`` wants them.

        Returns
        -------
        (numpy.ndarray, numpy.ndarray)
            ``intervals`` ``(n, 2)``: onset and offset in seconds; ``pitches`` ``(n,)``: the
            fundamental frequencies in Hz (A4 = 440 Hz).
        """
        notes = self.notes[index]
        if stem is not None:
            notes = notes[notes[:, 4] == stem]
        return notes[:, :2].copy(), 440.0 * 2.0 ** ((notes[:, 2] - 69) / 12)

    def midi(self, index: int) -> Any:
        """Excerpt ``index`` as a ``pretty_midi.PrettyMIDI`` object (one instrument per stem)."""
        return to_pretty_midi(self.metadata[index])

    def __repr__(self) -> str:
        return (
            f"Mixtures(split={self.split!r}, {len(self)} excerpts of {EXCERPT_SECONDS:g} s at "
            f"{self.sample_rate} Hz, {self.n_instruments} instrument(s) each, "
            f"{len({p for m in self.metadata for p in m['programs']})} instruments, "
            f"size={self.size!r}, seed={self.seed})"
        )
