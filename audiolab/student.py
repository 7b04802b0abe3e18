"""The student edition: chapter notebooks without the solutions to their exercises.

Every cell of a solution, from the markdown cell that opens it (the ``solution-start``
directive of sphinx-exercise) to the one that closes it (``solution-end``), carries the cell tag
``solution``.
:func:`student_edition` deletes those cells and keeps everything else (the exercise statements,
the committed outputs of the other cells), so the copy still runs top to bottom.
``python -m audiolab student`` (or ``make student``) writes the copies of every chapter into a
folder of their own.
"""

from __future__ import annotations

import ast
import builtins
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SOLUTION_TAG = "solution"
_START = re.compile(r"^```\{solution-start\}", re.MULTILINE)
_END = re.compile(r"^```\{solution-end\}", re.MULTILINE)


class SolutionTagError(ValueError):
    """A notebook's solution cells are not tagged the way the student edition needs."""


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def solution_cells(nb: Any, name: str = "notebook") -> list[int]:
    """Indices of the cells that belong to a solution, checked against the tags.

    Parameters
    ----------
    nb
        A notebook (``nbformat.NotebookNode`` or the same structure as plain dicts).
    name
        What to call the notebook in error messages (usually its file name).

    Returns
    -------
    list of int
        The cells from each ``solution-start`` cell to its ``solution-end`` cell, inclusive.

    Raises
    ------
    SolutionTagError
        If a solution-start/-end directive shares a cell with other text, the directives are
        unbalanced, or a cell inside a solution is not tagged ``solution`` (or one outside is).
    """
    inside, spans, problems = False, [], []
    for i, cell in enumerate(nb["cells"]):
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        starts, ends = len(_START.findall(source)), len(_END.findall(source))
        if starts + ends > 1 or (starts and ends):
            problems.append(f"cell {i} holds more than one solution directive")
        if starts:
            if inside:
                problems.append(f"cell {i} opens a solution inside another one")
            inside = True
        if inside:
            spans.append(i)
        tagged = SOLUTION_TAG in _tags(cell)
        if inside and not tagged:
            problems.append(f"cell {i} is part of a solution but is not tagged {SOLUTION_TAG!r}")
        if not inside and tagged:
            problems.append(f"cell {i} is tagged {SOLUTION_TAG!r} but is outside every solution")
        if ends:
            if not inside:
                problems.append(f"cell {i} closes a solution that was never opened")
            else:
                closing = source.strip()
                if not re.fullmatch(r"```\{solution-end\}\s*```", closing):
                    problems.append(
                        f"cell {i} closes a solution but holds other text too; put the text "
                        "after the solution in a cell of its own"
                    )
            inside = False
    if inside:
        problems.append("the last solution is never closed with solution-end")
    if problems:
        raise SolutionTagError(
            f"{name}: " + "; ".join(problems) + ". Every cell from the ```{solution-start}``` "
            "cell to the ```{solution-end}``` cell (inclusive) must carry the cell tag "
            f"{SOLUTION_TAG!r}, and those cells must hold nothing but the solution."
        )
    return spans


def student_edition(nb: Any, name: str = "notebook") -> Any:
    """A copy of ``nb`` without its solution cells (see :func:`solution_cells`)."""
    import copy

    drop = set(solution_cells(nb, name))
    out = copy.deepcopy(nb)
    out["cells"] = [c for i, c in enumerate(out["cells"]) if i not in drop]
    out.setdefault("metadata", {})["audiolab"] = {"edition": "student"}
    return out


def _names(source: str) -> tuple[set[str], set[str]]:
    """Names a code cell binds, and the names it reads without binding them itself."""
    from IPython.core.inputtransformer2 import TransformerManager

    tree = ast.parse(TransformerManager().transform_cell(source))  # %magics become calls
    bound: set[str] = set()
    read: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound, read - bound - set(dir(builtins))


def solution_leaks(nb: Any, name: str = "notebook") -> list[str]:
    """Names that a later non-solution code cell reads from a solution cell (should be empty).

    The student edition drops the solution cells, so a chapter cell must not depend on a name
    that a solution binds: in the student copy that name is missing (a ``NameError``), or
    holds the value from before the solution (the results change). This is a static check of
    the notebook's code (it does not see a solution that mutates an object in place).

    Returns
    -------
    list of str
        One line per leak: the cell that reads the name, and the name.
    """
    spans = set(solution_cells(nb, name))
    from_solutions: set[str] = set()
    leaks = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        bound, read = _names(source)
        if i in spans:
            from_solutions |= bound
            continue
        for n in sorted(read & from_solutions):
            leaks.append(f"cell {i} reads {n!r}, bound in a solution")
        from_solutions -= bound  # a chapter cell that binds the name again makes it safe
    return leaks


def write_student_editions(notebooks: Iterable[Path], output_dir: Path) -> list[Path]:
    """Write the student edition of each notebook into ``output_dir`` (created if needed).

    Each copy is written atomically (a temporary file, then a rename), so an interrupted run
    leaves either the old copy or the new one. Returns the paths written.
    """
    import nbformat

    from .cache import write_atomically

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        path = Path(path)
        nb = nbformat.read(path, as_version=4)
        target = output_dir / path.name
        if target.resolve() == path.resolve():
            raise ValueError(
                f"{path}: the student edition would overwrite the original; choose another folder"
            )
        edition = student_edition(nb, path.name)
        text = nbformat.writes(edition).rstrip("\n") + "\n"
        write_atomically(target, lambda file, text=text: file.write(text.encode("utf-8")))
        written.append(target)
    return written
