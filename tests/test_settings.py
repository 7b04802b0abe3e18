"""Run settings, the results cell and the command line."""

import json

import pytest
import torch

from audiolab import cli, results, settings


def test_mode_override(monkeypatch):
    monkeypatch.setenv("AUDIOLAB_MODE", "full")
    assert settings.mode() == "full"
    monkeypatch.setenv("AUDIOLAB_MODE", " Quick ")
    assert settings.mode() == "quick" and settings.is_quick()
    monkeypatch.setenv("AUDIOLAB_MODE", "fast")
    with pytest.raises(ValueError, match="AUDIOLAB_MODE='fast' is not a mode"):
        settings.mode()


def test_mode_default_follows_cuda(monkeypatch):
    monkeypatch.delenv("AUDIOLAB_MODE", raising=False)
    assert settings.mode() == ("full" if torch.cuda.is_available() else "quick")


def test_device(monkeypatch):
    monkeypatch.setenv("AUDIOLAB_DEVICE", "cpu")
    assert settings.device().type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            settings.device("cuda")


def test_seed_everything_repeats():
    settings.seed_everything(3)
    a = torch.rand(3)
    settings.seed_everything(3)
    assert torch.equal(a, torch.rand(3))


def test_cache_dir_override(monkeypatch, tmp_path):
    monkeypatch.setenv("AUDIOLAB_CACHE", str(tmp_path / "c"))
    assert settings.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()


def test_results_are_json_with_context(monkeypatch):
    monkeypatch.setenv("AUDIOLAB_MODE", "quick")
    out = results.chapter_results("01", {"acc": torch.tensor(0.5), "n": 3}, results.Stopwatch())
    assert out["metrics"] == {"acc": 0.5, "n": 3} and out["mode"] == "quick"
    assert {"torch", "torchaudio", "python"} <= set(out["versions"]) and "wall_time_s" in out
    json.dumps(out)
    with pytest.raises(ValueError, match="finite"):
        results.chapter_results("01", {"loss": float("nan")}, results.Stopwatch())


def test_cli_info(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("AUDIOLAB_CACHE", str(tmp_path))
    assert cli.main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["cache"] == str(tmp_path) and info["versions"]["torch"].startswith("2.11")
    assert cli.main(["info"]) == 0
    assert "mode" in capsys.readouterr().out


def test_cli_lab_unknown_chapter(capsys):
    assert cli.main(["lab", "99"]) == 2
    assert "no notebook for chapter 99" in capsys.readouterr().err


def test_find_notebook():
    assert cli.find_notebook("1").name.startswith("01_")


def test_describe_is_short_and_has_no_paths():
    text = settings.describe()
    assert text.startswith(f"mode {settings.mode()} on ")
    assert "torch" in text and "/" not in text.split("(")[0]
    assert str(settings.cache_dir()) not in text


def test_cli_lab_keeps_the_outputs_of_a_failing_notebook(tmp_path, capsys):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print('ran')"), nbformat.v4.new_code_cell("1 / 0")]
    path = tmp_path / "99_broken.ipynb"
    nbformat.write(nb, path)
    assert cli.main(["lab", str(path), "--output-dir", str(tmp_path / "out")]) == 1
    assert "ZeroDivisionError" in capsys.readouterr().err
    failed = nbformat.read(tmp_path / "out" / "99_broken.failed.ipynb", as_version=4)
    assert failed.cells[0].outputs[0]["text"] == "ran\n"
    assert failed.cells[1].outputs[0]["ename"] == "ZeroDivisionError"
    assert not (tmp_path / "out" / "99_broken.ipynb").exists()
