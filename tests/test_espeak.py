"""audiolab.espeak: eSpeak NG through ctypes."""

import numpy as np
import pytest

from audiolab import espeak
from audiolab.datasets import DIGITS


def log_spectrum(wave: np.ndarray, n_fft: int = 512) -> np.ndarray:
    frames = wave[: len(wave) // n_fft * n_fft].astype(np.float64).reshape(-1, n_fft)
    power = (np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)) ** 2).mean(axis=0)
    return 10 * np.log10(power / power.max() + 1e-10)


@pytest.mark.parametrize("word", DIGITS)
def test_each_digit_word_is_speech_at_22050_hz(word: str):
    wave = espeak.synthesize(word)
    assert espeak.SAMPLE_RATE == 22050
    assert wave.dtype == np.int16 and wave.ndim == 1
    assert 0.2 < len(wave) / espeak.SAMPLE_RATE < 1.5
    assert np.abs(wave).max() > 3000  # clearly not silence
    assert np.sqrt(np.mean(wave.astype(np.float64) ** 2)) > 500


def test_variants_sound_different():
    low = log_spectrum(espeak.synthesize("seven", variant="m3"))
    high = log_spectrum(espeak.synthesize("seven", variant="f2"))
    again = log_spectrum(espeak.synthesize("seven", variant="m3"))
    between = np.sqrt(np.mean((low - high) ** 2))
    within = np.sqrt(np.mean((low - again) ** 2))
    assert between > 3.0 and between > 5 * within


def test_settings_change_the_audio():
    slow = espeak.synthesize("seven", rate=100)
    fast = espeak.synthesize("seven", rate=300)
    assert len(slow) > 1.5 * len(fast)


def test_lists_of_accents_and_variants():
    languages = espeak.english_languages()
    assert {"en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc"} <= set(languages)
    variants = espeak.voice_variants()
    assert len(variants) > 50 and {"m3", "f2", "klatt", "whisper"} <= set(variants)
    for language in languages:  # every listed name is accepted
        assert len(espeak.synthesize("two", language=language, variant=None)) > 0


def test_bad_variant_and_language_give_clear_errors():
    with pytest.raises(espeak.EspeakError, match=r"'M3'.*did you mean 'm3'.*voice_variants\(\)"):
        espeak.synthesize("one", variant="M3")
    with pytest.raises(espeak.EspeakError, match=r"no-such-voice.*voice_variants\(\)"):
        espeak.synthesize("one", variant="no-such-voice")
    with pytest.raises(espeak.EspeakError, match=r"xx-yy.*english_languages\(\)"):
        espeak.synthesize("one", language="xx-yy")
    with pytest.raises(ValueError, match="rate=10"):
        espeak.synthesize("one", rate=10)


def centroid_and_pitch(wave: np.ndarray) -> tuple[float, float]:
    """Mean spectral centroid (Hz) of the loud frames, and the median f0 (Hz) by pYIN."""
    import librosa

    x = wave.astype(np.float32) / 32768
    S = np.abs(librosa.stft(x, n_fft=1024))
    loud = (S**2).sum(0) > 0.05 * (S**2).sum(0).max()
    centroid = float(librosa.feature.spectral_centroid(S=S, sr=espeak.SAMPLE_RATE)[0][loud].mean())
    f0, _, _ = librosa.pyin(x, fmin=60, fmax=500, sr=espeak.SAMPLE_RATE)
    return centroid, float(np.nanmedian(f0))


@pytest.mark.parametrize("variant", ["m1", "f2", "klatt"])
def test_formant_scale_moves_the_resonances_and_keeps_the_pitch(variant: str):
    shorter = centroid_and_pitch(espeak.synthesize("seven", variant=variant, formant_scale=1.14))
    plain = centroid_and_pitch(espeak.synthesize("seven", variant=variant))
    longer = centroid_and_pitch(espeak.synthesize("seven", variant=variant, formant_scale=0.88))
    # a shorter vocal tract raises every formant, so the spectrum's centre of mass goes up
    assert longer[0] < 0.95 * plain[0] and shorter[0] > 1.05 * plain[0]
    for _, f0 in (shorter, longer):
        assert abs(np.log2(f0 / plain[1])) < 0.1  # the pitch stays within a tenth of an octave


def test_scaled_variant_text_scales_every_formant():
    text = "language variant\nname x\nformant 0 98 100 100\nformant 2  97  95 100\npitch 75 109\n"
    scaled = espeak.scaled_variant_text(text, 1.1)
    assert "formant 0 108 100 100" in scaled and "formant 2 107  95 100" in scaled
    for n in (1, 3, 4, 5, 6, 7, 8):  # not listed: 100 % before, 110 % now
        assert f"formant {n} 110 100 100" in scaled
    assert "pitch 75 109" in scaled and scaled.count("formant") == 9


def test_formant_scale_errors():
    with pytest.raises(ValueError, match=r"formant_scale=2.0 is out of \[0.7, 1.4\]"):
        espeak.synthesize("one", variant="m3", formant_scale=2.0)
    with pytest.raises(ValueError, match="needs a voice variant"):
        espeak.synthesize("one", variant=None, formant_scale=1.1)
