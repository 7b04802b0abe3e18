"""audiolab.datasets: the synthetic SpokenDigits corpus and the FSDD folder loader."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiolab import datasets, espeak
from audiolab.audio import AudioFileError
from audiolab.datasets import DIGITS, FSDD, SpokenDigits

# 8 variants in 7 voice families (klatt and klatt3 are one family): a tiny corpus of 80 clips
TINY = ["m1", "m3", "f2", "f4", "klatt", "klatt3", "whisper", "croak"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SpokenDigits]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUDIOLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
        return {s: SpokenDigits(s, size="quick", variants=TINY) for s in datasets.SPLITS}


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AUDIOLAB_CACHE", str(tmp_path))
    return tmp_path


def test_splits_are_disjoint_by_voice_and_variant(tiny):
    variants = {split: set(ds.variants) for split, ds in tiny.items()}
    families = {split: {m["family"] for m in ds.metadata} for split, ds in tiny.items()}
    voices = {split: set(ds.voices) for split, ds in tiny.items()}
    for a, b in [("train", "valid"), ("train", "test"), ("valid", "test")]:
        assert not variants[a] & variants[b]
        assert not families[a] & families[b]
        assert not voices[a] & voices[b]
    assert set.union(*variants.values()) == set(TINY)
    assert all(variants.values()), "every split has voices"
    assert sum(len(ds) for ds in tiny.values()) == len(TINY) * 10


def test_items_shapes_and_labels(tiny):
    for ds in tiny.values():
        assert ds.sample_rate == 16000 and ds.classes == list(DIGITS)
        assert ds.waveforms.dtype == torch.float32 and ds.waveforms.shape == (len(ds), 16000)
        assert ds.labels.dtype == torch.int64 and set(ds.labels.tolist()) == set(range(10))
        assert len(ds.metadata) == len(ds)
        for label, meta in zip(ds.labels.tolist(), ds.metadata, strict=True):
            assert DIGITS[label] == meta["text"] and meta["digit"] == label
            assert {"voice", "variant", "accent", "rate", "pitch", "formant_scale"} <= set(meta)
            assert meta["accent"] in datasets.ACCENTS
            low, high = datasets.FORMANT_SCALE_PERCENT
            assert low / 100 <= meta["formant_scale"] < high / 100
            assert meta["voice"].endswith(f"-f{round(meta['formant_scale'] * 100)}")
        wave, label = ds[3]
        assert wave.shape == (16000,) and isinstance(label, int)
        assert torch.equal(wave, ds.waveforms[3])


def test_clips_are_placed_and_normalised(tiny):
    ds = tiny["train"]
    peaks = ds.waveforms.abs().amax(dim=1).numpy()
    levels = 10 ** (np.array([m["level_db"] for m in ds.metadata]) / 20)
    np.testing.assert_allclose(peaks, levels, rtol=1e-3)
    for wave, meta in zip(ds.waveforms, ds.metadata, strict=True):
        onset = int(meta["onset_s"] * ds.sample_rate)
        assert np.abs(wave[: max(0, onset - 8)].numpy()).max(initial=0) < 0.01  # silence before
        assert 0.1 < meta["duration_s"] <= 1.0


def test_same_parameters_give_identical_corpora(tiny, cache_dir):
    again = SpokenDigits("test", size="quick", variants=TINY)  # built again in another cache
    assert torch.equal(again.waveforms, tiny["test"].waveforms)
    assert again.metadata == tiny["test"].metadata
    assert list(cache_dir.glob("spoken_digits-*.npz"))


def test_other_rate_and_seed(cache_dir):
    ds = SpokenDigits("valid", sample_rate=8000, size="quick", variants=TINY, seed=1)
    assert ds.waveforms.shape == (len(ds), 8000)
    assert "SpokenDigits(split='valid'" in repr(ds) and "8000 Hz" in repr(ds)


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        SpokenDigits("training", variants=TINY)
    with pytest.raises(ValueError, match="size"):
        SpokenDigits("train", size="huge", variants=TINY)
    with pytest.raises(espeak.EspeakError, match="nobody"):
        SpokenDigits("train", variants=["m3", "nobody"])
    with pytest.raises(ValueError, match="'train' split is empty.*2 voice families"):
        SpokenDigits("train", size="quick", variants=["m3", "m1"])


def test_voice_families_and_split_proportions():
    assert datasets.voice_family("klatt3") == datasets.voice_family("klatt") == "klatt"
    assert datasets.voice_family("m3") != datasets.voice_family("m1")
    variants = espeak.voice_variants()
    families = datasets.split_families(variants)
    split_of = [families[datasets.voice_family(v)] for v in variants]
    counts = {s: split_of.count(s) for s in datasets.SPLITS}
    assert counts["train"] > 0.7 * len(variants)
    assert counts["valid"] >= 5 and counts["test"] >= 5
    assert families == datasets.split_families(variants), "deterministic"


# --------------------------------------------------------------------------- FSDD


def write_fsdd(folder: Path, speakers=("alice", "bob", "carol", "dave"), digits=(0, 3, 7)) -> Path:
    """Write tiny FSDD-style recordings: 8 kHz sine bursts whose pitch encodes the digit."""
    folder.mkdir(parents=True, exist_ok=True)
    rate = 8000
    for speaker in speakers:
        for digit in digits:
            for index in range(2):
                t = np.arange(int(0.3 * rate + 400 * index)) / rate
                burst = 0.5 * np.sin(2 * np.pi * (200 + 100 * digit) * t) * np.hanning(len(t))
                sf.write(folder / f"{digit}_{speaker}_{index}.wav", burst, rate, subtype="PCM_16")
    return folder


def test_fsdd_loads_resamples_and_splits_by_speaker(tmp_path: Path):
    root = write_fsdd(tmp_path / "recordings")
    (root / "README.txt").write_text("not audio")  # ignored
    splits = {s: FSDD(root, split=s) for s in datasets.SPLITS}
    assert splits["test"].voices == ["alice"] and splits["valid"].voices == ["bob"]
    assert splits["train"].voices == ["carol", "dave"]
    train = splits["train"]
    assert len(train) == 2 * 3 * 2 and train.sample_rate == 16000
    assert train.waveforms.shape == (12, 16000) and train.waveforms.dtype == torch.float32
    assert sorted(set(train.labels.tolist())) == [0, 3, 7]
    meta = train.metadata[0]
    assert DIGITS[int(train.labels[0])] == meta["text"] and meta["voice"] == "carol"
    assert meta["duration_s"] == pytest.approx(0.3, abs=1e-3)  # 0.3 s at 8 kHz -> 4800 samples
    assert train.waveforms[0, 4900:].abs().max() == 0  # zero padding after the recording
    spectrum = torch.fft.rfft(train.waveforms[0]).abs()
    assert int(spectrum.argmax()) == 200 + 100 * int(train.labels[0])  # 1 Hz bins over 1 s
    assert "FSDD(split='train', 12 clips" in repr(train)


def test_fsdd_explicit_speakers_and_duration(tmp_path: Path):
    root = write_fsdd(tmp_path)
    test = FSDD(root, "test", sample_rate=8000, test_speakers=["dave", "carol"], duration=0.25)
    assert test.voices == ["carol", "dave"] and test.waveforms.shape == (12, 2000)
    train = FSDD(root, "train", test_speakers="dave", valid_speakers=["alice"])
    assert train.voices == ["bob", "carol"]
    assert FSDD(root, "valid", test_speakers="alice").voices == ["bob"]


def test_fsdd_errors_say_what_to_do(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="does not exist.*Jakobovski/free-spoken-digit"):
        FSDD(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no FSDD recordings.*Jakobovski"):
        FSDD(tmp_path / "empty")
    root = write_fsdd(tmp_path / "rec")
    with pytest.raises(ValueError, match=r"test_speakers.*\['zoe'\].*speakers are \['alice'"):
        FSDD(root, test_speakers=["zoe"])
    with pytest.raises(ValueError, match="both test_speakers and valid_speakers"):
        FSDD(root, test_speakers=["bob"], valid_speakers=["bob", "carol"])
    with pytest.raises(ValueError, match="split"):
        FSDD(root, split="dev")
    two = write_fsdd(tmp_path / "two", speakers=("alice", "bob"))
    with pytest.raises(ValueError, match="'train' split.*is empty"):
        FSDD(two, split="train")


def test_fsdd_badly_named_and_broken_files(tmp_path: Path):
    root = write_fsdd(tmp_path)
    sf.write(root / "hello.wav", np.zeros(800), 8000)
    with pytest.warns(UserWarning, match=r"skipped 1 \.wav.*hello\.wav"):
        assert len(FSDD(root, "test")) == 6
    (root / "5_alice_9.wav").write_bytes(b"RIFF....WAVE")  # the right name, but not audio
    with pytest.warns(UserWarning), pytest.raises(AudioFileError, match="5_alice_9.wav"):
        FSDD(root, "test")
