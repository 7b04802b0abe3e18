"""Speech synthesis with eSpeak NG, called through :mod:`ctypes`.

The ``espeakng-loader`` wheel ships the ``libespeak-ng`` shared library and its data folder, so
nothing needs to be installed system-wide. eSpeak NG is a formant synthesiser: it is robotic,
but it is fast (about a millisecond per word), offline, and it has many English accents and
about a hundred *voice variants* (different formants, pitch, breathiness, ...). Combining
them with rate and pitch settings gives many distinct "speakers", which is what
:mod:`audiolab.datasets` uses to make spoken-digit corpora.

The library keeps global state, so there is one engine per process, initialised on first use
and guarded by a lock. Its output also depends slightly on what it synthesised before (the
pitch "flutter" runs on across utterances); :func:`synthesize` seeds the noise source, and
callers that need bit-identical corpora synthesise in fresh processes (see
:func:`synthesize_many`).

Examples
--------
>>> from audiolab import espeak
>>> wave = espeak.synthesize("seven", language="en-gb-scotland", variant="f2", rate=150)
>>> wave.dtype, espeak.SAMPLE_RATE
(dtype('int16'), 22050)
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

#: Sample rate of eSpeak NG's output in Hz (checked when the library is initialised).
SAMPLE_RATE = 22050

# Constants of espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2  # the synth callback gets the audio before espeak_Synth returns
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_PARAMETERS = {"rate": 1, "pitch": 3, "pitch_range": 4, "word_gap": 7}
_LIMITS = {"rate": (80, 450), "pitch": (0, 100), "pitch_range": (0, 100), "word_gap": (0, 1000)}
_STATUS = {-1: "internal error", 1: "buffer full", 2: "not found"}  # espeak_ERROR

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class EspeakError(RuntimeError):
    """The eSpeak NG library, its data, a language or a voice variant could not be used."""


def data_path() -> Path:
    """The ``espeak-ng-data`` folder shipped by the ``espeakng-loader`` wheel."""
    try:
        import espeakng_loader
    except ImportError as err:
        raise EspeakError(
            "the espeakng-loader package is missing; install it with `pip install espeakng-loader`"
        ) from err
    return Path(espeakng_loader.get_data_path())


def voice_variants() -> list[str]:
    """Names of the voice variants in the shipped data (``espeak-ng-data/voices/!v``).

    A variant modifies a language's voice (formants, pitch, breath, echo, ...); pass one as
    ``variant`` to :func:`synthesize`. Names are case-sensitive; one contains a space.
    """
    return list(_voice_variants())


@cache
def _voice_variants() -> tuple[str, ...]:
    folder = data_path() / "voices" / "!v"
    return tuple(sorted((p.name for p in folder.iterdir() if p.is_file()), key=str.lower))


def english_languages() -> list[str]:
    """The English accents in the shipped data, as names :func:`synthesize` accepts.

    These are the voice files in ``espeak-ng-data/lang`` whose language is English: ``en``
    (British), ``en-us``, ``en-gb-scotland``, ``en-gb-x-rp``, ``en-029`` (Caribbean), ...
    ``espeak_SetVoiceByName`` matches file names, so ``en-gb`` (a language code) is not one.
    ``en-shaw`` expects text in the Shavian alphabet.
    """
    return list(_english_languages())


@cache
def _english_languages() -> tuple[str, ...]:
    found = []
    for path in (data_path() / "lang").rglob("*"):
        if path.is_file() and path.name.lower().startswith("en"):
            text = path.read_text(encoding="utf-8", errors="replace")
            if re.search(r"^language\s+en\b", text, flags=re.MULTILINE):
                found.append(path.name.lower())
    return tuple(sorted(found))


#: Range of the formant-frequency scale of :func:`synthesize` (vocal-tract-length warping).
FORMANT_SCALE_LIMITS = (0.7, 1.4)
_FORMANT_LINE = re.compile(r"^formant\s+(\d+)\s+(\d+)(.*)$", flags=re.MULTILINE)
_N_FORMANTS = 9  # eSpeak NG's formant table: formants 0 to 8


def scaled_variant_text(text: str, scale: float) -> str:
    """A voice-variant file with every formant frequency multiplied by ``scale``.

    eSpeak NG's ``formant N frequency strength width`` lines give percentages of the language's
    formants; those a variant does not list are 100 %. Multiplying all of them by ``scale`` is
    vocal-tract-length warping done in the synthesiser: a shorter vocal tract (``scale`` > 1)
    raises every resonance by the same factor, while the pitch (the glottal source) stays.
    """
    listed = set()

    def scaled(match: re.Match) -> str:
        listed.add(int(match.group(1)))
        return f"formant {match.group(1)} {round(int(match.group(2)) * scale)}{match.group(3)}"

    text = _FORMANT_LINE.sub(scaled, text)
    extra = [f"formant {n} {round(100 * scale)} 100 100" for n in range(_N_FORMANTS)
             if n not in listed]
    return text.rstrip("\n") + "\n" + "\n".join(extra) + "\n"


def _overlay(source: Path) -> Path:
    """A private copy of eSpeak NG's data folder whose ``voices/!v`` folder can take new voice
    variants: links to the shipped files (copies where links are not allowed), removed when the
    process ends."""
    import atexit
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="audiolab-espeak-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    target = root / "espeak-ng-data"

    def mirror(src: Path, dst: Path, keep: str | None) -> None:
        dst.mkdir()
        for entry in src.iterdir():
            if entry.name == keep:
                continue
            try:
                (dst / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
            except OSError:  # no symbolic links (e.g. Windows without developer mode)
                if entry.is_dir():
                    shutil.copytree(entry, dst / entry.name)
                else:
                    shutil.copy2(entry, dst / entry.name)

    mirror(source, target, "voices")
    mirror(source / "voices", target / "voices", "!v")
    mirror(source / "voices" / "!v", target / "voices" / "!v", None)
    return target


class _Engine:
    """The process-wide eSpeak NG library handle and the buffer its callback fills."""

    def __init__(self) -> None:
        shipped = data_path()  # raises a clear error if espeakng-loader is missing
        data = _overlay(shipped)
        self.variants = data / "voices" / "!v"  # where scaled variants are written
        import espeakng_loader

        library = espeakng_loader.get_library_path()
        try:
            lib = ctypes.CDLL(library)
        except OSError as err:
            raise EspeakError(
                f"could not load the eSpeak NG library {library} ({err}); reinstall it with "
                "`pip install --force-reinstall espeakng-loader`"
            ) from err
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        # AUDIO_OUTPUT_RETRIEVAL works too but goes through a polling thread: ~17 ms per call
        # instead of ~1 ms. SYNCHRONOUS plays nothing; it only hands the samples to the callback.
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 100, str(data).encode(), 0)
        if rate != SAMPLE_RATE:
            raise EspeakError(
                f"eSpeak NG failed to initialise with the data in {data} (returned {rate}, "
                f"expected {SAMPLE_RATE} Hz); reinstall it with "
                "`pip install --force-reinstall espeakng-loader`"
            )
        self.lib = lib
        self.lock = threading.Lock()
        self.chunks: list[np.ndarray] = []
        self.callback = _SynthCallback(self._collect)  # keep a reference: C holds a pointer
        lib.espeak_SetSynthCallback(self.callback)

    def _collect(self, wav: Any, n_samples: int, events: Any) -> int:
        if wav and n_samples > 0:  # wav is NULL at the end of the utterance
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        return 0  # 0 = go on


_ENGINE: _Engine | None = None
_ENGINE_LOCK = threading.Lock()


def _engine() -> _Engine:
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = _Engine()
        return _ENGINE


def voice_name(language: str = "en-us", variant: str | None = None) -> str:
    """The ``language+variant`` string that eSpeak NG's ``espeak_SetVoiceByName`` takes.

    Raises
    ------
    EspeakError
        If ``variant`` is not one of :func:`voice_variants` (eSpeak NG itself would silently
        ignore an unknown variant).
    """
    if variant is None:
        return language
    if variant not in _voice_variants():
        close = [v for v in _voice_variants() if v.lower() == variant.lower()]
        hint = f" (did you mean {close[0]!r}? names are case-sensitive)" if close else ""
        raise EspeakError(
            f"unknown eSpeak NG voice variant {variant!r}{hint}; "
            f"audiolab.espeak.voice_variants() lists the {len(voice_variants())} valid ones "
            f"(files in {data_path() / 'voices' / '!v'})"
        )
    return f"{language}+{variant}"


def synthesize(
    text: str,
    language: str = "en-us",
    variant: str | None = "m3",
    rate: int = 175,
    pitch: int = 50,
    pitch_range: int = 50,
    word_gap: int = 0,
    seed: int = 0,
    formant_scale: float = 1.0,
) -> np.ndarray:
    """Speak ``text`` and return the waveform.

    Parameters
    ----------
    text
        What to say (UTF-8 text; digits are read as numbers).
    language
        An eSpeak NG language/accent, e.g. one of :func:`english_languages`.
    variant
        A voice variant from :func:`voice_variants`, or ``None`` for the language's own voice.
    rate
        Speaking rate in words per minute (80 to 450).
    pitch, pitch_range
        Base pitch and intonation range, 0 to 100 (50 is the voice's normal value).
    word_gap
        Extra pause between words, in units of 10 ms at the default rate.
    seed
        Seed of eSpeak NG's noise generator (breath, aspiration, Klatt voices).
    formant_scale
        Multiplies every formant frequency of the voice (vocal-tract-length warping,
        :func:`scaled_variant_text`); 1 leaves the voice as it is. In
        :data:`FORMANT_SCALE_LIMITS`. Needs a ``variant``.

    Returns
    -------
    numpy.ndarray
        int16 samples at :data:`SAMPLE_RATE` Hz, including eSpeak's short leading and trailing
        silences.

    Raises
    ------
    EspeakError
        If the library, the language or the variant cannot be loaded.
    ValueError
        If a numeric setting is out of range.
    """
    settings = {"rate": rate, "pitch": pitch, "pitch_range": pitch_range, "word_gap": word_gap}
    for name, value in settings.items():
        low, high = _LIMITS[name]
        if not low <= value <= high:
            raise ValueError(f"{name}={value} is out of eSpeak NG's range [{low}, {high}]")
    low, high = FORMANT_SCALE_LIMITS
    if not low <= formant_scale <= high:
        raise ValueError(f"formant_scale={formant_scale} is out of [{low}, {high}]")
    if formant_scale != 1.0 and variant is None:
        raise ValueError("formant_scale needs a voice variant (e.g. variant='m3')")
    voice = voice_name(language, variant)
    engine = _engine()
    lib = engine.lib
    with engine.lock:
        if formant_scale != 1.0:  # a variant file with scaled formants, written once
            name = f"{variant}~vtl{round(formant_scale * 1000)}"
            path = engine.variants / name
            if not path.exists():
                shipped = (data_path() / "voices" / "!v" / variant).read_text(encoding="utf-8")
                path.write_text(scaled_variant_text(shipped, formant_scale), encoding="utf-8")
            voice = f"{language}+{name}"
        status = lib.espeak_SetVoiceByName(voice.encode("utf-8"))
        if status != 0:
            raise EspeakError(
                f"eSpeak NG could not load the voice {voice!r} ({_STATUS.get(status, status)}); "
                "check the language: audiolab.espeak.english_languages() lists the English "
                f"accents (the files in {data_path() / 'lang'} are all the languages)"
            )
        for name, value in settings.items():
            lib.espeak_SetParameter(_PARAMETERS[name], int(value), 0)
        lib.espeak_ng_SetRandSeed(seed)
        engine.chunks.clear()
        data = text.encode("utf-8") + b"\0"
        status = lib.espeak_Synth(
            data, len(data), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None
        )
        lib.espeak_Synchronize()
        if status != 0:
            raise EspeakError(f"eSpeak NG failed to speak {text!r} ({_STATUS.get(status, status)})")
        chunks, engine.chunks = engine.chunks, []
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


def synthesize_many(requests: Iterable[Mapping[str, Any]]) -> list[np.ndarray]:
    """Run :func:`synthesize` on each dict of keyword arguments, in order.

    This is the job that :mod:`audiolab.datasets` sends to each fresh worker process: with the
    same requests, in the same order, in a process that has not used eSpeak before, the
    output is bit-identical from run to run.
    """
    return [synthesize(**request) for request in requests]


def synthesize_in_subprocess(requests: list[Mapping[str, Any]], output: Path) -> list[np.ndarray]:
    """:func:`synthesize_many` in a fresh Python interpreter (``python -m audiolab.espeak``).

    A fresh interpreter has never used eSpeak, so the output is bit-identical from run to run;
    unlike a multiprocessing pool, it does not re-import the caller's ``__main__``, so it works
    from scripts, ``python -c`` and notebooks alike. The worker writes the clips to ``output``.
    """
    package_root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "audiolab.espeak", str(output)],
        input=json.dumps(list(requests)),
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise EspeakError(f"the eSpeak NG worker process failed:\n{done.stderr.strip()[-2000:]}")
    with np.load(output) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


def _worker_main() -> None:
    """Entry point of the worker: JSON requests on stdin, clips to the .npz named in argv[1]."""
    waves = synthesize_many(json.load(sys.stdin))
    np.savez(sys.argv[1], *waves)


if __name__ == "__main__":
    _worker_main()
