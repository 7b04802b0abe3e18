"""audiolab.instruments: the family classifier that judges generated notes."""

import warnings
from pathlib import Path

import pytest
import torch

from audiolab.instruments import (
    CHANNELS,
    FamilyCNN,
    embeddings,
    log_mel_db,
    pretrained_family_classifier,
    weights_path,
)
from audiolab.music import FAMILIES

TINY = [24]  # the nylon guitar alone: every split has some of its notes (pitch/velocity hold-out)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AUDIOLAB_CACHE", str(tmp_path))
    return tmp_path


def test_takes_waveforms_or_log_mel_spectrograms():
    torch.manual_seed(0)
    model = FamilyCNN().eval()
    waves = torch.randn(3, 24000) * 0.1
    db = log_mel_db(waves)
    assert db.shape == (3, 128, 94)
    with torch.no_grad():
        from_waves, from_db = model(waves), model(db)
        assert from_waves.shape == (3, len(FAMILIES))
        torch.testing.assert_close(from_waves, from_db, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(model(db.unsqueeze(1)), from_db)
        # the level does not matter (per-clip normalisation)
        torch.testing.assert_close(model(db + 12.0), from_db, atol=1e-4, rtol=1e-4)
    emb = embeddings(model, db, batch_size=2)
    assert emb.shape == (3, CHANNELS[-1]) and emb.dtype == torch.float32


def test_bad_inputs_are_refused():
    model = FamilyCNN()
    with pytest.raises(ValueError, match="log-mel spectrograms"):
        model(torch.zeros(2, 64, 94))
    with pytest.raises(TypeError, match="FamilyCNN"):
        embeddings(torch.nn.Linear(2, 2), torch.zeros(2, 128, 94))
    with pytest.raises(ValueError, match="size"):
        pretrained_family_classifier(size="huge")


def test_trains_once_then_loads_from_the_cache(cache_dir):
    first = pretrained_family_classifier(size="quick", device="cpu", epochs=1, instruments=TINY)
    assert not first.info["from_cache"] and not first.training
    assert first.info["epochs"] == 1 and 0.0 <= first.info["test_accuracy"] <= 1.0
    path = weights_path("quick", 1, TINY)
    assert path.exists() and path.parent.parent == cache_dir
    second = pretrained_family_classifier(size="quick", device="cpu", epochs=1, instruments=TINY)
    assert second.info["from_cache"]
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # another configuration is another file
    assert weights_path("quick", 2, TINY) != path and weights_path("quick", 1, [0]) != path
    # a damaged file is reported and the model retrained
    path.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="damaged"):
        third = pretrained_family_classifier(size="quick", device="cpu", epochs=1,
                                             instruments=TINY)
    assert not third.info["from_cache"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pretrained_family_classifier(size="quick", device="cpu", epochs=1,
                                            instruments=TINY).info["from_cache"]
