"""Plots label their axes and stop frequency axes at the Nyquist frequency."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from audiolab import plots  # noqa: E402


@pytest.mark.parametrize("y_axis", ["hz", "mel"])
def test_frequency_axes_stop_at_nyquist(y_axis):
    sr = 16_000
    db = np.random.default_rng(0).normal(size=(64 if y_axis == "mel" else 257, 50))
    ax = plots.spectrogram(db, sr, hop_length=160, y_axis=y_axis)
    assert ax.get_ylim()[1] == pytest.approx(sr / 2)
    assert ax.get_ylabel().startswith("frequency (Hz")
    assert ax.get_xlabel() == "time (s)"
    if y_axis == "mel":
        assert max(ax.get_yticks()) == pytest.approx(sr / 2)
    plt.close(ax.figure)


def test_spectrogram_refuses_a_batch():
    with pytest.raises(ValueError, match="one spectrogram"):
        plots.spectrogram(np.zeros((2, 64, 10)), 16_000, hop_length=160)
