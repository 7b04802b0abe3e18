"""audiolab.music: GMNotes (single SoundFont notes) and Mixtures (melodies, stems, piano rolls)."""

from pathlib import Path

import librosa
import numpy as np
import pytest
import torch

from audiolab import music
from audiolab.music import FAMILIES, INSTRUMENTS, SPLITS, GMNotes, Mixtures, Renderer

# Two families, one instrument of each split per family: piano (0, 7, 4), guitar (24, 25, 26)
TINY = [0, 7, 4, 24, 25, 26]


@pytest.fixture(scope="module")
def notes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, GMNotes]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUDIOLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
        return {s: GMNotes(s, size="quick", instruments=TINY) for s in SPLITS}


@pytest.fixture(scope="module")
def mixtures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Mixtures]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUDIOLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
        return {s: Mixtures(s, size="quick", instruments=TINY) for s in SPLITS}


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AUDIOLAB_CACHE", str(tmp_path))
    return tmp_path


def test_instrument_table_covers_every_family_in_every_split():
    assert len({i.program for i in INSTRUMENTS}) == len(INSTRUMENTS)
    for split in SPLITS:
        assert {i.family for i in INSTRUMENTS if i.split == split} == set(FAMILIES)
    for i in INSTRUMENTS:
        gm_family = i.program // 8  # GM family 6 (ensemble) is not used
        assert i.family == FAMILIES[gm_family if gm_family < 6 else gm_family - 1]
        assert 21 <= i.low < i.high <= 108 and i.split in SPLITS


def test_notes_split_by_instrument(notes):
    programs = {s: {m["program"] for m in ds.metadata} for s, ds in notes.items()}
    assert programs == {"train": {0, 24}, "valid": {7, 25}, "test": {4, 26}}
    for ds in notes.values():
        assert {m["family"] for m in ds.metadata} == {"piano", "guitar"}
        assert [i.program for i in ds.instruments] == sorted(programs[ds.split], key=TINY.index)


def test_notes_shapes_labels_and_normalisation(notes):
    ds = notes["train"]
    n = len(ds)
    assert ds.waveforms.shape == (n, 24000) and ds.waveforms.dtype == torch.float32
    for t in (ds.pitches, ds.velocities, ds.programs, ds.families):
        assert t.shape == (n,) and t.dtype == torch.long
    assert torch.equal(ds.labels, ds.families) and ds.classes == list(FAMILIES)
    assert set(ds.velocities.tolist()) == {80, 120}
    piano = [m["pitch"] for m in ds.metadata if m["program"] == 0]
    assert min(piano) == 36 and max(piano) == 84 and len(set(piano)) == 25  # every 2nd semitone
    assert torch.allclose(ds.waveforms.abs().amax(dim=1), torch.ones(n))
    wave, label = ds[5]
    assert torch.equal(wave, ds.waveforms[5]) and label == ds.metadata[5]["family_index"]
    # the gain undoes the normalisation: the raw render is wave / gain
    renderer = Renderer(16000)
    for i in (0, n - 1):
        m = ds.metadata[i]
        raw = renderer.note(m["program"], m["pitch"], m["velocity"])
        assert ds.gains[i].item() == pytest.approx(m["gain"])
        np.testing.assert_allclose(ds.waveforms[i].numpy() / m["gain"], raw, atol=1e-4 / m["gain"])
    # the note sounds for 1 s, then decays (release) within the 1.5 s clip
    env = ds.waveforms.abs().unflatten(1, (15, 1600)).amax(dim=2).mean(dim=0)
    assert env[:9].min() > env[-1] * 3


@pytest.mark.parametrize(("program", "pitch"), [(0, 45), (24, 64), (40, 79), (58, 36)])
def test_rendered_pitch_matches_label(program, pitch):
    wave = Renderer(16000).note(program, pitch, 100)[1600:14400]
    f0, voiced, _ = librosa.pyin(
        wave,
        fmin=librosa.midi_to_hz(pitch - 7),
        fmax=librosa.midi_to_hz(pitch + 7),
        sr=16000,
        frame_length=2048,
    )
    assert voiced.mean() > 0.5
    cents = 1200 * np.log2(np.nanmedian(f0[voiced]) / librosa.midi_to_hz(pitch))
    assert abs(cents) < 50


def test_rendering_is_deterministic_and_history_free():
    fresh = Renderer(16000).note(40, 69, 100)
    busy = Renderer(16000)
    for program, pitch in [(0, 60), (73, 80), (12, 50), (40, 69)]:
        busy.note(program, pitch, 90)
    assert np.array_equal(fresh, busy.note(40, 69, 100))


def test_two_builds_are_equal_and_second_loads_from_cache(cache_dir, monkeypatch):
    first = GMNotes("valid", size="quick", instruments=[7, 25])
    files = sorted(cache_dir.glob("gm_notes-*.npz"))
    assert len(files) == 1
    monkeypatch.setattr(music, "_build_notes", lambda *a: pytest.fail("rebuilt"))
    again = GMNotes("valid", size="quick", instruments=[7, 25])
    assert torch.equal(first.waveforms, again.waveforms) and first.metadata == again.metadata
    files[0].unlink()
    monkeypatch.undo()
    monkeypatch.setenv("AUDIOLAB_CACHE", str(cache_dir))
    rebuilt = GMNotes("valid", size="quick", instruments=[7, 25])
    assert torch.equal(first.waveforms, rebuilt.waveforms)


def test_pitch_velocity_holdout(cache_dir):
    split = {
        s: GMNotes(s, size="quick", split_by="pitch_velocity", instruments=[0, 24]) for s in SPLITS
    }
    combos = {
        s: {(m["program"], m["pitch"], m["velocity"]) for m in ds.metadata}
        for s, ds in split.items()
    }
    assert not combos["train"] & combos["test"] and not combos["valid"] & combos["test"]
    for ds in split.values():
        assert {m["program"] for m in ds.metadata} == {0, 24}
    assert {p for _, p, _ in combos["test"]} <= {p for _, p, _ in combos["train"]}
    for m in split["test"].metadata:
        assert (m["pitch"] + 5 * (40, 80, 120).index(m["velocity"])) % 7 == 0
    assert 0.1 < len(split["test"]) / sum(len(d) for d in split.values()) < 0.2


def test_mixtures_stems_notes_and_rolls(mixtures):
    programs = {s: {p for m in ds.metadata for p in m["programs"]} for s, ds in mixtures.items()}
    assert programs == {"train": {0, 24}, "valid": {7, 25}, "test": {4, 26}}
    assert [len(ds) for ds in mixtures.values()] == [84, 18, 18]
    ds = mixtures["test"]
    assert ds.stems.shape == (18, 2, 64000) and ds.mixtures.shape == (18, 64000)
    torch.testing.assert_close(ds.mixtures, ds.stems.sum(dim=1))
    assert ds.mixtures.abs().amax(dim=1).sub(music.MIXTURE_PEAK).abs().max() < 1e-3
    assert ds.programs.shape == (18, 2)
    for i in range(len(ds)):
        meta = ds.metadata[i]
        assert len({music._BY_PROGRAM[p].family for p in meta["programs"]}) == 2
        notes = ds.notes[i]
        assert notes.shape[1] == 5 and set(notes[:, 4]) == {0, 1}
        assert np.all(notes[:, 0] < notes[:, 1]) and notes[:, 1].max() <= 3.5
        roll = ds.piano_rolls[i]
        assert roll.shape == (128, 400)
        for onset, offset, pitch, _, _ in notes:
            assert roll[int(pitch), round(onset * 100) : round(offset * 100)].all()
        assert set(torch.nonzero(roll.any(dim=1)).flatten().tolist()) == set(
            notes[:, 2].astype(int)
        )
        assert torch.equal(roll, ds.piano_roll(i, 0) | ds.piano_roll(i, 1))
        intervals, hz = ds.reference(i, stem=1)
        assert intervals.shape == (int((notes[:, 4] == 1).sum()), 2) and np.all(hz > 20)
        # a stem is silent before its first note, and it does sound
        for stem in (0, 1):
            first = notes[notes[:, 4] == stem, 0].min()
            assert not ds.stems[i, stem, : int(first * 16000)].any()
            assert ds.stems[i, stem].abs().max() > 0.05
        midi = ds.midi(i)
        assert [t.program for t in midi.instruments] == meta["programs"]
        assert sum(len(t.notes) for t in midi.instruments) == len(notes)


def test_melodies_and_determinism(cache_dir):
    one = Mixtures("valid", size="quick", n_instruments=1, instruments=TINY)
    assert one.stems.shape[1] == 1 and torch.equal(one.mixtures, one.stems[:, 0])
    for path in cache_dir.glob("gm_mixtures-*.npz"):
        path.unlink()
    again = Mixtures("valid", size="quick", n_instruments=1, instruments=TINY)
    assert torch.equal(one.stems, again.stems) and one.metadata == again.metadata
    other = Mixtures("valid", size="quick", n_instruments=1, instruments=TINY, seed=1)
    assert other.metadata != one.metadata


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"split": "dev"}, ValueError, "split must be one of"),
        ({"size": "huge"}, ValueError, "size must be one of"),
        ({"sample_rate": 16000.0}, TypeError, "sample_rate"),
        ({"sample_rate": 0}, ValueError, "sample_rate"),
        ({"sample_rate": 4000}, ValueError, "at least 8000"),
        ({"instruments": [999]}, ValueError, "program 999 is not in the corpus"),
        ({"instruments": "piano"}, TypeError, "instruments must be a sequence"),
        ({"instruments": [0, 24]}, ValueError, "'test' split has no"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    args = {"split": "test", "size": "quick", **kwargs}
    with pytest.raises(error, match=match):
        GMNotes(**args)
    with pytest.raises(error, match=match):
        Mixtures(**args)


def test_bad_scheme_target_and_counts():
    with pytest.raises(ValueError, match="split_by must be one of"):
        GMNotes(split_by="pitch")
    with pytest.raises(ValueError, match="target must be one of"):
        GMNotes(target="timbre")
    with pytest.raises(ValueError, match="n_instruments must be 1 or 2"):
        Mixtures(n_instruments=3)
    with pytest.raises(TypeError, match="seed"):
        Mixtures(seed=1.5)
