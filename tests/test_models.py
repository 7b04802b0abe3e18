"""audiolab.models: the front end, the digit CNNs and the cached pretrained classifier."""

import time
from pathlib import Path
from typing import Any

import pytest
import torch
from test_faults import flip_tensor_byte  # tests/ is on sys.path (rootdir-relative import)

from audiolab import features, models
from audiolab.augment import SpecAugment
from audiolab.features import log_mel_spectrogram
from audiolab.models import AttentionPool, DigitCNN, DigitCNN1d, LogMel, count_parameters

# 8 variants in 7 voice families: a tiny corpus of 80 clips (as in test_datasets)
TINY = ["m1", "m3", "f2", "f4", "klatt", "klatt3", "whisper", "croak"]


def test_logmel_matches_features() -> None:
    x = torch.randn(3, 16000) * 0.1
    out = LogMel()(x)
    assert out.shape == (3, 1, 64, 101)
    ref = log_mel_spectrogram(x, 16000, n_fft=512, hop_length=160, n_mels=64)
    torch.testing.assert_close(LogMel(normalize=False)(x)[:, 0], ref)
    ref = (ref - ref.mean(dim=(1, 2), keepdim=True)) / (ref.std(dim=(1, 2), keepdim=True) + 1e-5)
    torch.testing.assert_close(out[:, 0], ref)
    torch.testing.assert_close(out.mean(dim=(1, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(LogMel()(x * 10), out, atol=1e-4, rtol=1e-4)  # level-invariant


@pytest.mark.parametrize("cls", [DigitCNN, DigitCNN1d])
def test_shapes_and_parameter_counts(cls: type[torch.nn.Module]) -> None:
    model = cls()
    assert 80_000 <= count_parameters(model) <= 300_000
    assert model(torch.randn(2, 16000)).shape == (2, 10)
    bare = cls(frontend=False, n_classes=5)
    assert count_parameters(bare) < count_parameters(model)  # 5 classes instead of 10
    assert bare(torch.randn(2, 1, 64, 101)).shape == (2, 5)
    assert bare(torch.randn(2, 64, 80)).shape == (2, 5)  # any number of frames


def test_parameter_counts_exact() -> None:
    assert count_parameters(DigitCNN()) == 98_682
    assert count_parameters(DigitCNN1d()) == 103_114


def test_attention_pool_weights_and_what_it_returns() -> None:
    pool = AttentionPool(channels=2, heads=3)
    x = torch.randn(4, 2, 5, 7)
    with torch.no_grad():
        pool.score.weight.zero_()
        pool.score.bias.zero_()
    # equal scores: uniform weights, so the attended half is the average as well
    out = pool(x)
    assert out.shape == (4, 4)
    torch.testing.assert_close(out[:, :2], x.mean(dim=(2, 3)))
    torch.testing.assert_close(out[:, 2:], x.mean(dim=(2, 3)))
    # a position that channel 0 marks and the scores favour takes (almost) all the weight
    x[:, 0] = 0.0
    x[:, 0, 1, 2] = 1.0
    with torch.no_grad():
        pool.score.weight[:, 0] = 60.0
    torch.testing.assert_close(pool(x)[:, 2:], x[:, :, 1, 2], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="batch, channels, freq, time"):
        pool(torch.randn(2, 5, 7))


def test_digit_cnn_with_attention_pooling() -> None:
    model = DigitCNN(pool="attention").eval()
    # the head's linear layer takes 2 x 128 inputs; the scoring conv adds 128 x 4 + 4
    assert count_parameters(model) == 98_682 + 128 * 10 + 128 * 4 + 4
    x = torch.randn(3, 16000)
    assert model(x).shape == (3, 10)
    embedding = model.head[:-1](model.features(model.frontend(x)))  # what gan.judge takes
    assert embedding.shape == (3, 256)
    with pytest.raises(ValueError, match="'average' or 'attention'"):
        DigitCNN(pool="max")


def test_spec_augment_only_in_training() -> None:
    model = DigitCNN(spec_augment=SpecAugment()).eval()
    plain = DigitCNN().eval()
    plain.load_state_dict(model.state_dict())  # SpecAugment adds no weights
    x = torch.randn(2, 16000)
    torch.testing.assert_close(model(x), plain(x))


def test_pretrained_trains_caches_and_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDIOLAB_CACHE", str(tmp_path))
    kwargs = {"size": "quick", "device": "cpu", "epochs": 1, "variants": TINY}
    model = models.pretrained_digit_classifier(**kwargs)
    assert isinstance(model, DigitCNN) and not model.training
    assert model.info["from_cache"] is False and model.info["epochs"] == 1
    assert 0.0 <= model.info["test_accuracy"] <= 1.0
    path = models.weights_path("quick", 1, TINY)
    assert path.exists() and Path(model.info["path"]) == path
    assert path.parent == tmp_path / "models" and path.name.startswith("digit_cnn-v")
    x = torch.randn(2, 16000)

    start = time.perf_counter()
    again = models.pretrained_digit_classifier(**kwargs)
    assert time.perf_counter() - start < 2.0
    assert again.info["from_cache"] is True
    assert again.info["test_accuracy"] == model.info["test_accuracy"]
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))

    path.write_bytes(path.read_bytes()[:1000])  # cut short
    with pytest.warns(UserWarning, match="damaged"):
        retrained = models.pretrained_digit_classifier(**kwargs)
    assert retrained.info["from_cache"] is False
    assert models.pretrained_digit_classifier(**kwargs).info["from_cache"] is True
    assert not list(path.parent.glob("*.tmp"))


def test_pretrained_bad_size() -> None:
    with pytest.raises(ValueError, match="size"):
        models.pretrained_digit_classifier(size="huge")


def _tones(labels: torch.Tensor, shift: int = 0) -> torch.Tensor:
    """One second of a noisy tone per label: class k is 300·1.25^((k + shift) mod 10) Hz."""
    g = torch.Generator().manual_seed(int(labels.sum()) + shift)
    freq = 300.0 * 1.25 ** ((labels + shift) % 10).float()
    t = torch.arange(16000) / 16000
    phase = torch.rand(len(labels), 1, generator=g) * 6.28
    x = torch.sin(2 * torch.pi * freq[:, None] * t + phase)
    return 0.3 * x + 0.05 * torch.randn(len(labels), 16000, generator=g)


def test_fine_tuning_adapts_a_copy_and_can_freeze_the_features() -> None:
    torch.manual_seed(0)
    labels = torch.arange(10).repeat(12)
    source = DigitCNN(channels=(8, 16), dropout=0.0)
    from audiolab.training import fit

    fit(source, (_tones(labels), labels), None, torch.nn.CrossEntropyLoss(), epochs=20,
        batch_size=20, lr=1e-2, device="cpu", progress=False)
    source.eval()
    before = {k: v.clone() for k, v in source.state_dict().items()}
    # the target task: the same sounds with other names (a domain the source never saw)
    target = (_tones(labels, shift=3), labels)
    held_out = (_tones(labels[:40], shift=3), labels[:40])
    with torch.no_grad():
        assert (source(held_out[0]).argmax(1) == held_out[1]).float().mean() < 0.3
    tuned, history = models.fine_tune_digit_classifier(
        source, target, held_out, epochs=12, lr=3e-2, freeze_features=True, augment=False,
        batch_size=20, device="cpu",
    )
    for key, value in source.state_dict().items():
        torch.testing.assert_close(value, before[key])  # the original is untouched
    tuned_state = tuned.state_dict()
    for key in before:
        if key.startswith("features.") and "running" not in key and "num_batches" not in key:
            torch.testing.assert_close(tuned_state[key], before[key])  # frozen
    assert not torch.equal(tuned_state["head.3.weight"], before["head.3.weight"])
    with torch.no_grad():
        assert (tuned(held_out[0]).argmax(1) == held_out[1]).float().mean() >= 0.8
    assert len(history) >= 1 and all(p.requires_grad for p in tuned.parameters())
    with pytest.raises(ValueError, match="body_lr_scale"):
        models.fine_tune_digit_classifier(source, target, held_out, body_lr_scale=2.0)
    with pytest.raises(TypeError, match="DigitCNN"):
        models.fine_tune_digit_classifier(torch.nn.Linear(2, 2), target, held_out)


def test_cached_weights_trains_once_then_loads_and_survives_damage(tmp_path: Path):
    path = tmp_path / "models" / "tiny.pt"
    calls = []

    def make() -> tuple[torch.nn.Module, Any]:
        torch.manual_seed(len(calls) + 1)  # a different start each time
        model = torch.nn.Linear(3, 2)

        def train() -> dict:
            calls.append(1)
            with torch.no_grad():
                model.weight.fill_(0.5)
            return {"epochs": 1}

        return model, train

    first = models.cached_weights(path, *make())
    assert not first.training and first.info["from_cache"] is False and len(calls) == 1
    second = models.cached_weights(path, *make())
    assert second.info == {"epochs": 1, "from_cache": True, "path": str(path)}
    assert torch.equal(second.weight, torch.full((2, 3), 0.5)) and len(calls) == 1
    # a flipped byte, a file cut short, another architecture: warned, deleted, retrained
    for damage in ("flip", "cut", "shape"):
        if damage == "flip":  # inside a tensor's data: only the checksum notices
            flip_tensor_byte(path)
        elif damage == "cut":
            path.write_bytes(path.read_bytes()[:100])
        with pytest.warns(UserWarning, match="(?s)damaged or unreadable.*retraining"):
            if damage == "shape":
                other = torch.nn.Linear(4, 2)
                models.cached_weights(path, other, lambda: {"epochs": 2})
                continue
            again = models.cached_weights(path, *make())
        assert again.info["from_cache"] is False
    forced = models.cached_weights(path, *make(), retrain=True)
    assert forced.info["from_cache"] is False


def test_cached_weights_are_not_trained_by_every_process_of_a_distributed_run(
    tmp_path: Path, monkeypatch
):
    path = tmp_path / "tiny.pt"
    model = torch.nn.Linear(3, 2)
    monkeypatch.setenv("WORLD_SIZE", "2")  # as under torchrun
    with pytest.raises(RuntimeError, match="not cached.*once on one process"):
        models.cached_weights(path, model, lambda: {"epochs": 1})
    assert not path.exists()
    monkeypatch.delenv("WORLD_SIZE")
    models.cached_weights(path, model, lambda: {"epochs": 1})
    monkeypatch.setenv("WORLD_SIZE", "2")  # cached: every process loads it
    assert models.cached_weights(path, torch.nn.Linear(3, 2), lambda: {}).info["from_cache"]


def test_logmel_is_the_feature_function_in_one_compiled_graph():
    import torch._dynamo as dynamo

    x = torch.randn(3, 16000) * 0.1
    ref = features.log_mel_spectrogram(x, 16000, 512, 160, n_mels=64)
    ref = (ref - ref.mean((-2, -1), keepdim=True)) / (ref.std((-2, -1), keepdim=True) + 1e-5)
    assert torch.equal(models.LogMel()(x)[:, 0], ref)  # the same operations: bit for bit
    cnn = models.DigitCNN(frontend=True)
    assert not [k for k in cnn.state_dict() if k.startswith("frontend.")]  # weights unchanged
    explained = dynamo.explain(cnn.train())(x)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0)


def test_transfer_comparison_scores_three_ways_on_the_same_clips() -> None:
    torch.manual_seed(0)
    labels = torch.arange(10).repeat(4)
    pretrained = DigitCNN(channels=(8, 16), dropout=0.0).eval()
    before = {k: v.clone() for k, v in pretrained.state_dict().items()}
    data = (_tones(labels, shift=3), labels)
    held_out = (_tones(labels[:20], shift=3), labels[:20])
    result = models.transfer_comparison(pretrained, data, held_out, held_out, epochs=2,
                                        device="cpu")
    assert set(result["accuracy"]) == {"pretrained, no real data", "trained from scratch",
                                       "pretrained, fine-tuned"}
    assert all(0.0 <= a <= 1.0 for a in result["accuracy"].values())
    assert result["train_clips"] == 40 and result["test_clips"] == 20
    assert 1 <= result["epochs"]["trained from scratch"] <= 2
    for key, value in pretrained.state_dict().items():
        torch.testing.assert_close(value, before[key])  # the pretrained model is untouched
    with pytest.raises(TypeError, match="DigitCNN"):
        models.transfer_comparison(torch.nn.Linear(2, 2), data, held_out, held_out)

