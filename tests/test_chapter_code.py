"""audiolab.chapter_code: a notebook's code cells run as a script."""

from pathlib import Path

import nbformat
import pytest

from audiolab.chapter_code import run_cells
from audiolab.cli import find_notebook
from audiolab.scaling import GAN_RECIPE


def _notebook(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%matplotlib inline\nimport matplotlib.pyplot as plt\n"
                                  "from pathlib import Path\nhere = Path.cwd()\nx = 1\n"
                                  "print('printed')"),
        nbformat.v4.new_markdown_cell("def not_code(): this is markdown"),
        nbformat.v4.new_code_cell("def f():\n    return x + 1\n\n\nif x:\n    %time y = 2\n"
                                  "plt.plot([1, 2])\nplt.show()"),
        nbformat.v4.new_code_cell("raise KeyError('a cell after the marker ran')"),
    ]
    path = folder / "chapter.ipynb"
    nbformat.write(nb, path)
    return path


def test_cells_run_up_to_the_marker_in_the_notebooks_folder(tmp_path: Path, capsys):
    path, cwd = _notebook(tmp_path), Path.cwd()
    namespace = run_cells(path, until="def f(")
    assert namespace["f"]() == 2 and namespace["here"] == tmp_path
    assert Path.cwd() == cwd and namespace["__seconds__"] >= 0
    assert "printed" not in capsys.readouterr().out  # quiet by default
    run_cells(path, until="def f(", quiet=False)
    assert "printed" in capsys.readouterr().out


def test_a_missing_marker_or_a_failing_cell_is_explained(tmp_path: Path):
    path, cwd = _notebook(tmp_path), Path.cwd()
    with pytest.raises(ValueError, match="no code cell of chapter.ipynb contains 'def g\\('"):
        run_cells(path, until="def g(")
    with pytest.raises(RuntimeError, match="code cell 3 of chapter.ipynb failed"):
        run_cells(path, until="raise KeyError")
    assert Path.cwd() == cwd  # restored after the failure
    with pytest.raises(FileNotFoundError, match="no such notebook"):
        run_cells(tmp_path / "missing.ipynb", until="x")


def test_chapter_8_still_defines_what_the_gan_scaling_run_uses():
    # `python -m audiolab scale --workload gan` runs chapter 8 up to `def train_more(`
    code = "\n".join(c.source for c in nbformat.read(find_notebook("8"), as_version=4).cells
                     if c.cell_type == "code")
    head = code[: code.index("def train_more(")]
    for name in ("def new_gan(", "def scores(", "IS_REAL =", "images =", "CONFIG =",
                 f'"{GAN_RECIPE}"', "def loss_trace("):
        assert name in code, name
    assert "def new_gan(" in head and f'"{GAN_RECIPE}"' in head
