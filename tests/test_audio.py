"""audiolab.audio: loading, saving, resampling, and clear errors for bad files."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiolab import audio


def tone(seconds: float = 0.5, rate: int = 8000, freq: float = 440.0, amp: float = 0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("ext", [".wav", ".flac", ".ogg"])
def test_save_load_roundtrip(tmp_path: Path, ext: str):
    x = tone()
    path = audio.save(tmp_path / f"a{ext}", x, 8000)
    y, rate = audio.load(path)
    assert rate == 8000 and y.dtype == np.float32 and y.shape == x.shape
    tol = 0.05 if ext == ".ogg" else 1e-3  # Vorbis is lossy; 16-bit PCM is not far off
    assert np.abs(y - x).max() < tol
    assert not list(tmp_path.glob(".*.tmp")), "temporary file left behind"


def test_load_mixes_down_and_resamples(tmp_path: Path):
    left, right = tone(freq=300), tone(freq=500)
    sf.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 8000)
    y, rate = audio.load(tmp_path / "stereo.wav", sample_rate=16000)
    assert rate == 16000 and y.shape == (2 * len(left),)
    both, _ = audio.load(tmp_path / "stereo.wav", mono=False)
    assert both.shape == (2, len(left))
    np.testing.assert_allclose(both.mean(axis=0), audio.load(tmp_path / "stereo.wav")[0], atol=1e-6)


def test_resample_preserves_a_tone():
    x = tone(seconds=1.0, rate=8000, freq=1000)
    y = audio.resample(x, 8000, 16000)
    spectrum = np.abs(np.fft.rfft(y))
    assert len(y) == 16000 and abs(np.argmax(spectrum) - 1000) <= 1  # 1 Hz bins
    t = audio.resample(torch.from_numpy(x), 8000, 16000)
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), y, atol=1e-6)


def test_missing_file(tmp_path: Path):
    with pytest.raises(audio.AudioFileError, match="no such file"):
        audio.load(tmp_path / "nothing.wav")


def test_empty_file(tmp_path: Path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(audio.AudioFileError, match="empty.wav: the file is empty"):
        audio.load(tmp_path / "empty.wav")


def test_not_audio(tmp_path: Path):
    (tmp_path / "notes.wav").write_text("these are my notes, not a recording\n" * 20)
    with pytest.raises(audio.AudioFileError, match="notes.wav: not a readable audio file"):
        audio.load(tmp_path / "notes.wav")


def test_header_without_samples(tmp_path: Path):
    sf.write(tmp_path / "silent.wav", np.zeros(0, dtype=np.float32), 8000)
    with pytest.raises(audio.AudioFileError, match="silent.wav"):
        audio.load(tmp_path / "silent.wav")


@pytest.mark.parametrize("ext", [".wav", ".flac"])
def test_truncated_file(tmp_path: Path, ext: str):
    audio.save(tmp_path / f"full{ext}", tone(seconds=1.0), 8000)
    data = (tmp_path / f"full{ext}").read_bytes()
    (tmp_path / f"cut{ext}").write_bytes(data[: len(data) // 2])
    with pytest.raises(audio.AudioFileError, match=f"cut\\{ext}: .*(truncated|damaged)"):
        audio.load(tmp_path / f"cut{ext}")


def test_nan_samples(tmp_path: Path):
    x = tone()
    x[100] = np.nan
    sf.write(tmp_path / "nan.wav", x, 8000, subtype="FLOAT")
    with pytest.raises(audio.AudioFileError, match="nan.wav: 1 samples are NaN"):
        audio.load(tmp_path / "nan.wav")


def test_save_refuses_bad_signals(tmp_path: Path):
    with pytest.raises(ValueError, match="exceeds 1.0"):
        audio.save(tmp_path / "loud.wav", 3 * tone(), 8000)
    with pytest.raises(ValueError, match="NaN"):
        audio.save(tmp_path / "nan.wav", np.full(10, np.nan, dtype=np.float32), 8000)
    with pytest.raises(ValueError, match="unknown extension"):
        audio.save(tmp_path / "a.mp4", tone(), 8000)
    assert list(tmp_path.iterdir()) == []


def test_player_keeps_level():
    p = audio.player(torch.tensor(tone(amp=0.1)), 8000)
    assert p.data[:4] == b"RIFF"
    assert "audio" in p._repr_html_()
