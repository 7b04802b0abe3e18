"""audiolab.speech: the DigitStrings and NoisySpeech corpora."""

from pathlib import Path

import pytest
import torch

from audiolab import noise
from audiolab.datasets import DIGITS, SPLITS, SpokenDigits
from audiolab.speech import (
    BLANK,
    MAX_DIGITS,
    MIN_DIGITS,
    NOISE_SPLITS,
    NUM_CLASSES,
    DigitStrings,
    NoisySpeech,
)

# 8 variants in 7 voice families, as in test_datasets; "full" gives 3 speakers per variant
TINY = ["m1", "m3", "f2", "f4", "klatt", "klatt3", "whisper", "croak"]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AUDIOLAB_CACHE", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def strings(module_cache: Path) -> dict[str, DigitStrings]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUDIOLAB_CACHE", str(module_cache))
        return {s: DigitStrings(s, size="quick", variants=TINY) for s in SPLITS}


@pytest.fixture(scope="module")
def noisy(module_cache: Path) -> dict[str, NoisySpeech]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUDIOLAB_CACHE", str(module_cache))
        return {s: NoisySpeech(s, size="full", variants=TINY) for s in SPLITS}


# --------------------------------------------------------------------------- DigitStrings


def test_strings_transcripts_match_targets(strings):
    assert sum(len(ds) for ds in strings.values()) == len(TINY) * 6
    for ds in strings.values():
        assert len(ds.targets) == len(ds.transcripts) == len(ds.metadata) == len(ds) > 0
        for target, text, meta in zip(ds.targets, ds.transcripts, ds.metadata, strict=True):
            assert target.dtype == torch.long
            assert MIN_DIGITS <= len(target) <= MAX_DIGITS
            assert text == " ".join(DIGITS[d] for d in target.tolist()) == meta["text"]
            assert meta["digits"] == target.tolist() and meta["n_digits"] == len(target)
            assert {"voice", "variant", "accent"} <= set(meta)
    lengths = {len(t) for ds in strings.values() for t in ds.targets}
    assert len(lengths) >= 3, "string lengths vary"


def test_strings_waveforms_lengths_and_items(strings):
    t_max = strings["train"].waveforms.shape[-1]
    for ds in strings.values():
        assert ds.waveforms.dtype == torch.float32 and ds.waveforms.shape == (len(ds), t_max)
        assert ds.lengths.dtype == torch.long and ds.lengths.shape == (len(ds),)
        for row, n in enumerate(ds.lengths.tolist()):
            wave = ds.waveforms[row]
            assert n > 0.5 * ds.sample_rate  # at least 3 words
            assert wave[:n].abs().max() > 0.05 and (wave[n:] == 0).all()
            peak = 20 * torch.log10(wave.abs().max()).item()
            assert -20.5 < peak < -0.5
        wave, target = ds[0]
        assert wave.shape == (int(ds.lengths[0]),) and torch.equal(target, ds.targets[0])
    assert max(int(ds.lengths.max()) for ds in strings.values()) == t_max


def test_strings_split_by_voice_like_spoken_digits(strings):
    voices = {s: set(ds.voices) for s, ds in strings.items()}
    for a, b in [("train", "valid"), ("train", "test"), ("valid", "test")]:
        assert not voices[a] & voices[b]
    for split, ds in strings.items():
        assert voices[split] == set(SpokenDigits(split, size="quick", variants=TINY).voices)
        assert all(m["split"] == split for m in ds.metadata)


def test_strings_are_deterministic(strings, cache_dir):
    again = DigitStrings("train", size="quick", variants=TINY)  # built again in a new cache
    assert list(cache_dir.glob("digit_strings-*.npz"))
    assert torch.equal(again.waveforms, strings["train"].waveforms)
    assert torch.equal(again.lengths, strings["train"].lengths)
    assert again.metadata == strings["train"].metadata


def test_padded_targets_work_with_ctc_loss(strings):
    ds = strings["train"]
    targets, target_lengths = ds.padded_targets()
    assert targets.shape == (len(ds), MAX_DIGITS) and target_lengths.shape == (len(ds),)
    for row, target in enumerate(ds.targets):
        assert target_lengths[row] == len(target)
        assert torch.equal(targets[row, : len(target)], target)
        assert (targets[row, len(target) :] == -1).all()
    frames = 20
    log_probs = torch.randn(frames, len(ds), NUM_CLASSES).log_softmax(-1)
    loss = torch.nn.CTCLoss(blank=BLANK)(
        log_probs, targets, torch.full((len(ds),), frames), target_lengths
    )
    assert torch.isfinite(loss)


def test_strings_reject_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        DigitStrings("dev", variants=TINY)
    with pytest.raises(ValueError, match="size"):
        DigitStrings("train", size="huge", variants=TINY)


# --------------------------------------------------------------------------- NoisySpeech


def test_noisy_is_clean_plus_noise_at_the_drawn_snr(noisy):
    for ds in noisy.values():
        noisy_, clean, noise_ = ds[0]
        assert noisy_.shape == clean.shape == noise_.shape == (16000,)
        assert ds.noisy.dtype == ds.clean.dtype == ds.noise.dtype == torch.float32
        assert torch.equal(ds.noisy, ds.clean + ds.noise)
        snr = 10 * torch.log10(ds.clean.double().pow(2).mean(1) / ds.noise.double().pow(2).mean(1))
        assert ((snr >= -5 - 1e-3) & (snr <= 15 + 1e-3)).all()
        assert torch.allclose(
            snr, torch.tensor([m["snr_db"] for m in ds.metadata], dtype=torch.float64), atol=1e-3
        )
        assert torch.allclose(snr, ds.snr_db.double(), atol=1e-3)


def test_noise_types_split_and_balanced(noisy):
    assert set(NOISE_SPLITS["test"]) - set(NOISE_SPLITS["train"]), "an unseen test noise type"
    for split, ds in noisy.items():
        assert ds.noise_types == NOISE_SPLITS[split]
        used = [m["noise"] for m in ds.metadata]
        counts = [used.count(kind) for kind in ds.noise_types]
        assert max(counts) - min(counts) <= 1
    train_types = {m["noise"] for m in noisy["train"].metadata}
    assert {m["noise"] for m in noisy["test"].metadata} - train_types == {"brown"}


def test_noisy_voices_disjoint_and_match_spoken_digits(noisy):
    for a, b in [("train", "valid"), ("train", "test"), ("valid", "test")]:
        assert not set(noisy[a].voices) & set(noisy[b].voices)
    speech = SpokenDigits("test", size="full", variants=TINY)
    assert torch.equal(noisy["test"].clean, speech.waveforms)


def test_noisy_is_deterministic_and_seeded(noisy, module_cache, monkeypatch):
    monkeypatch.setenv("AUDIOLAB_CACHE", str(module_cache))
    again = NoisySpeech("test", size="full", variants=TINY)
    assert torch.equal(again.noisy, noisy["test"].noisy)
    assert again.metadata == noisy["test"].metadata
    other = NoisySpeech("test", size="full", variants=TINY, snr_db=(0, 0), noise_types=["hum"])
    assert torch.allclose(other.snr_db, torch.zeros(len(other)))
    assert {m["noise"] for m in other.metadata} == {"hum"}


def test_noisy_rejects_bad_arguments(module_cache, monkeypatch):
    monkeypatch.setenv("AUDIOLAB_CACHE", str(module_cache))
    with pytest.raises(ValueError, match="noise_types"):
        NoisySpeech("test", size="full", variants=TINY, noise_types=["rain"])
    with pytest.raises(ValueError, match="snr_db"):
        NoisySpeech("test", size="full", variants=TINY, snr_db=(10, 0))
    with pytest.raises(ValueError, match="babble"):  # quick: a single test voice
        NoisySpeech("test", size="quick", variants=TINY)
    assert "babble" in noise.NOISE_TYPES
