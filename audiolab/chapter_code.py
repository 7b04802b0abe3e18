"""A chapter's code outside Jupyter: run the code cells of a notebook as a script would.

The scaling command trains chapter 8's GAN on several GPUs with the chapter's own networks and
training step, not with a copy of them: :func:`run_cells` executes the notebook's code cells in
order, up to the cell that defines what is needed, and returns the names they defined.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
import warnings
from pathlib import Path
from typing import Any


def run_cells(notebook: str | Path, until: str, *, quiet: bool = True) -> dict[str, Any]:
    """Execute ``notebook``'s code cells in order, up to and including the first cell whose
    source contains ``until``; return the namespace they built.

    The cells run with the notebook's folder as the working directory (as in Jupyter), with
    matplotlib's non-interactive backend (figures are closed after each cell) and with IPython
    magics (lines starting with ``%`` or ``!``) skipped.

    Parameters
    ----------
    notebook
        The ``.ipynb`` file.
    until
        A piece of source code (such as ``"def train_more("``) that marks the last cell to run.
    quiet
        Swallow what the cells print (a distributed run's ranks would all print it).

    Returns
    -------
    dict
        The global names after the last cell, and ``"__seconds__"``, the time the cells took.

    Raises
    ------
    FileNotFoundError
        If there is no such notebook.
    ValueError
        If no code cell contains ``until`` (nothing is executed then).
    RuntimeError
        If a cell raises: which cell, and the error (chained).
    """
    import matplotlib
    import nbformat

    path = Path(notebook)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such notebook")
    cells = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    last = next((i for i, source in enumerate(cells) if until in source), None)
    if last is None:
        raise ValueError(
            f"no code cell of {path.name} contains {until!r}: the chapter has changed; "
            "update the marker to a definition that its cells still make"
        )
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    namespace: dict[str, Any] = {"__name__": "__chapter__"}
    start, cwd = time.perf_counter(), Path.cwd()
    sink = io.StringIO() if quiet else None
    try:
        os.chdir(path.parent)
        with contextlib.ExitStack() as stack:
            if sink is not None:
                stack.enter_context(contextlib.redirect_stdout(sink))
            stack.enter_context(warnings.catch_warnings())
            warnings.filterwarnings("ignore", message=".*non-interactive.*")
            for index, source in enumerate(cells[: last + 1]):
                code = "\n".join(_without_magic(line) for line in source.splitlines())
                try:
                    exec(compile(code, f"{path.name}, code cell {index + 1}", "exec"), namespace)
                except Exception as err:
                    raise RuntimeError(
                        f"code cell {index + 1} of {path.name} failed: "
                        f"{type(err).__name__}: {err}"
                    ) from err
                finally:
                    plt.close("all")
    finally:
        os.chdir(cwd)
    namespace["__seconds__"] = time.perf_counter() - start
    return namespace


def _without_magic(line: str) -> str:
    """An IPython magic or shell line as a ``pass`` statement (indentation kept)."""
    stripped = line.lstrip()
    if stripped.startswith(("%", "!")):
        return f"{line[: len(line) - len(stripped)]}pass  # {stripped}"
    return line
