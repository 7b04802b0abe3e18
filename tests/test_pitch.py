"""audiolab.pitch: CREPE (tiny) pitch of notes, voicing, accuracy within ±50 cents."""

import math

import numpy as np
import pytest
import torch

from audiolab.pitch import cents_between, crepe_frames, midi_to_hz, note_pitch, pitch_accuracy

SR = 16000


def tone(f0: float, seconds: float = 0.6, sr: int = SR, harmonics: int = 6) -> torch.Tensor:
    t = torch.arange(int(seconds * sr), dtype=torch.float64) / sr
    wave = sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, harmonics + 1))
    return (0.5 * wave / wave.abs().max()).float()


@pytest.fixture(scope="module")
def tones() -> tuple[torch.Tensor, torch.Tensor]:
    midi = torch.tensor([45, 57, 69, 76])  # 110, 220, 440, 659 Hz
    return torch.stack([tone(float(midi_to_hz(m))) for m in midi]), midi


def test_unit_conversions():
    assert float(midi_to_hz(69)) == pytest.approx(440.0)
    assert float(midi_to_hz(57)) == pytest.approx(220.0)
    assert float(cents_between(torch.tensor(880.0), torch.tensor(440.0))) == pytest.approx(1200)
    assert math.isnan(float(cents_between(torch.tensor(float("nan")), torch.tensor(440.0))))


def test_harmonic_tones_are_found_within_a_few_cents(tones):
    waves, midi = tones
    result = note_pitch(waves, start=0.1, stop=0.5, frames=6, device="cpu")
    assert result.frame_f0_hz.shape == (4, 6) and result.confidence.shape == (4, 6)
    assert (result.voiced_fraction == 1).all()
    error = cents_between(result.f0_hz, midi_to_hz(midi)).abs()
    assert (error < 25).all(), error


def test_accuracy_counts_semitone_and_octave_errors_as_misses(tones):
    waves, midi = tones
    options = {"start": 0.1, "stop": 0.5, "frames": 4, "device": "cpu"}
    right = pitch_accuracy(waves, midi, **options)
    assert right.accuracy == 1.0 and right.correct.all() and right.voiced.all()
    semitone = pitch_accuracy(waves, midi + 1, **options)  # 100 cents off: a miss
    assert semitone.accuracy == 0.0
    assert torch.allclose(semitone.cents, right.cents - 100, atol=1e-6)
    octave = pitch_accuracy(waves, midi - 12, **options)
    assert octave.accuracy == 0.0 and (octave.cents.abs() > 1100).all()
    # a wider tolerance accepts the semitone
    assert pitch_accuracy(waves, midi + 1, tolerance_cents=150, **options).accuracy == 1.0


def test_unvoiced_notes_are_misses_not_left_out(tones):
    waves, midi = tones
    noise = 0.3 * torch.randn(2, waves.shape[1], generator=torch.Generator().manual_seed(0))
    score = pitch_accuracy(torch.cat([waves[:2], noise]), torch.cat([midi[:2], midi[:2]]),
                           start=0.1, stop=0.5, frames=4, device="cpu")
    assert score.voiced.tolist() == [True, True, False, False]
    assert torch.isnan(score.cents[2:]).all() and score.accuracy == 0.5
    # with a voicing threshold near 0 every frame counts, so noise gets a (wrong) pitch
    loose = note_pitch(noise, start=0.1, stop=0.5, frames=4, threshold=1e-6, device="cpu")
    assert not torch.isnan(loose.f0_hz).any()


def test_other_sample_rates_are_resampled():
    wave = tone(220.0, sr=22050)
    score = pitch_accuracy(wave, [57], sample_rate=22050, start=0.1, stop=0.5, frames=4,
                           device="cpu")
    assert score.accuracy == 1.0 and len(score.cents) == 1


def test_frames_are_taken_at_the_requested_times():
    # 220 Hz for 0.3 s, then 440 Hz: frames centred in each half see each pitch
    wave = torch.cat([tone(220.0, 0.3), tone(440.0, 0.3)])
    f0, conf = crepe_frames(wave, start=0.1, stop=0.5, frames=2, device="cpu")
    assert f0.shape == (1, 2) and (conf > 0.5).all()
    np.testing.assert_allclose(f0[0].numpy(), [220.0, 440.0], rtol=0.02)


def test_bad_input_gives_clear_errors(tones):
    waves, midi = tones
    with pytest.raises(ValueError, match="NaN"):
        pitch_accuracy(torch.full((1, 8000), float("nan")), [60], device="cpu")
    with pytest.raises(ValueError, match="requested pitches"):
        pitch_accuracy(waves, midi[:2], device="cpu", stop=0.5)
    with pytest.raises(ValueError, match="beyond the end"):
        note_pitch(waves, stop=2.0, device="cpu")
    with pytest.raises(TypeError, match="floating point"):
        note_pitch(torch.zeros(1, 8000, dtype=torch.int16), device="cpu")
    with pytest.raises(ValueError, match="shape"):
        note_pitch(torch.zeros(2, 3, 8000), device="cpu")
    with pytest.raises(ValueError, match="CREPE's range"):
        pitch_accuracy(waves[:1], [120], stop=0.5, device="cpu")
    with pytest.raises(ValueError, match="threshold"):
        note_pitch(waves, threshold=1.5, stop=0.5, device="cpu")
    with pytest.raises(ValueError, match="stop"):
        crepe_frames(waves, start=0.4, stop=0.2, device="cpu")
