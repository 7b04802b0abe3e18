"""Chapter 4's mask model and recipe, as reused by chapter 6 (audiolab.enhancement)."""

import contextlib
from types import SimpleNamespace

import pytest
import torch

from audiolab import enhancement


def _corpus(n=8, samples=4000, seed=0):
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / 16000
    clean = torch.stack([0.3 * torch.sin(2 * torch.pi * (200 + 50 * i) * t) for i in range(n)])
    noise_ = 0.3 * torch.randn(n, samples, generator=gen)
    return SimpleNamespace(noisy=clean + noise_, clean=clean, noise=noise_)


def test_mask_lstm_outputs_a_mask_of_the_input_shape():
    model = enhancement.MaskLSTM(hidden=8)
    (Y,) = enhancement.spectra(torch.randn(2, 4000))
    with torch.no_grad():
        mask = model(Y)
    assert mask.shape == Y.shape
    assert float(mask.min()) >= 0 and float(mask.max()) <= 1


def test_psa_target_is_between_zero_and_noisy_magnitude():
    clean, noisy = torch.randn(2, 4000), torch.randn(2, 4000)
    Y, S = enhancement.spectra(noisy, clean)
    target = enhancement.psa_target(Y, S)
    assert torch.all(target >= 0) and torch.all(target <= Y.abs() + 1e-6)
    # a clean input is its own target: the mask is one
    assert torch.allclose(enhancement.psa_target(S, S), S.abs(), atol=1e-5)


def test_training_recipe_lowers_the_loss_and_enhance_keeps_shape():
    torch.manual_seed(0)
    train, valid = _corpus(16, seed=0), _corpus(4, seed=1)
    model = enhancement.MaskLSTM(hidden=16)
    history = enhancement.train_mask_model(model, train, valid, epochs=6, batch_size=8,
                                           device="cpu")
    assert len(history) == 6
    assert history["train_loss"][-1] < history["train_loss"][0]
    out = enhancement.enhance(model.eval(), valid.noisy)
    assert out.shape == valid.noisy.shape


def test_bad_inputs_are_refused():
    model = enhancement.MaskLSTM(hidden=4)
    with pytest.raises(ValueError, match="batch, samples"):
        enhancement.enhance(model, torch.randn(4000))
    with pytest.raises(TypeError, match="NoisySpeech"):
        enhancement.train_mask_model(model, torch.randn(3), _corpus(2), epochs=1, batch_size=2)
    with pytest.raises(ValueError, match="config"):
        enhancement.train_mask_lstm(_corpus(2), _corpus(2), config={"epochs": 1})
    with pytest.raises(ValueError, match="size"):
        enhancement.pretrained_mask_lstm(size="huge")


def _chapter4_definitions() -> dict:
    """The functions and classes that chapter 4's notebook writes out, executed here."""
    import ast
    import json
    from pathlib import Path

    from torch import nn

    from audiolab import features, noise

    notebook = Path(__file__).parents[1] / "notebooks" / "04_recurrent_networks.ipynb"
    cells = json.loads(notebook.read_text())["cells"]
    wanted = {"N_FFT", "spectra", "psa_target", "resynthesise", "MaskLSTM", "remix", "mask_step"}
    namespace = {"torch": torch, "nn": nn, "features": features, "noise": noise}
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        lines = "".join(cell["source"]).splitlines()
        source = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines)
        for node in ast.parse(source).body:
            names = {getattr(node, "name", None)} | {
                t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)
            } | {e.id for t in getattr(node, "targets", []) if isinstance(t, ast.Tuple)
                 for e in t.elts if isinstance(e, ast.Name)}
            if names & wanted:
                module = ast.Module(body=[node], type_ignores=[])
                exec(compile(module, str(notebook), "exec"), namespace)
    missing = wanted - set(namespace)
    assert not missing, f"chapter 4 no longer defines {sorted(missing)}"
    return namespace


def test_chapter4_notebook_and_this_module_are_the_same_model_and_recipe():
    # chapter 4 writes the model out in full (it teaches it); chapter 6 imports this copy:
    # the two must not drift apart
    ch4 = _chapter4_definitions()
    assert (ch4["N_FFT"], ch4["STFT_HOP"]) == (enhancement.N_FFT, enhancement.STFT_HOP)
    noisy, clean = torch.randn(3, 4000), torch.randn(3, 4000)
    for a, b in zip(ch4["spectra"](noisy, clean), enhancement.spectra(noisy, clean), strict=True):
        torch.testing.assert_close(a, b)
    Y, S = enhancement.spectra(noisy, clean)
    torch.testing.assert_close(ch4["psa_target"](Y, S), enhancement.psa_target(Y, S))
    mask = torch.rand(Y.shape)
    torch.testing.assert_close(ch4["resynthesise"](mask, Y, 4000),
                               enhancement.resynthesise(mask, Y, 4000))
    torch.manual_seed(0)
    theirs = ch4["MaskLSTM"](hidden=16)
    torch.manual_seed(0)
    ours = enhancement.MaskLSTM(hidden=16)
    with torch.no_grad():
        torch.testing.assert_close(theirs(Y), ours(Y))
    torch.manual_seed(1)
    remixed = ch4["remix"](clean, noisy)
    torch.manual_seed(1)
    torch.testing.assert_close(remixed, enhancement.remix(clean, noisy))
    ctx = SimpleNamespace(training=False, model=ours, autocast=contextlib.nullcontext)
    batch = (noisy, clean, noisy - clean)
    torch.testing.assert_close(ch4["mask_step"](batch, ctx)["loss"],
                               enhancement.mask_step(batch, ctx)["loss"])
