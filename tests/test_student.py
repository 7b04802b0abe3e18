"""The student edition: no solution survives, the exercises do, and the tags are checked.

That the student copies still run top to bottom is checked statically here (no chapter cell
reads a name that a solution binds); ``make student-check`` also executes the copies (nbval).
"""

from pathlib import Path

import nbformat
import pytest

from audiolab import cli
from audiolab.student import SolutionTagError, solution_cells, solution_leaks, student_edition

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _nb(*cells):
    nb = nbformat.v4.new_notebook()
    for kind, source, tags in cells:
        make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
        cell = make(source)
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    return nb


START = "```{solution-start} ex-a\n:class: dropdown\n```\nThe answer is 42."
END = "```{solution-end}\n```"


def test_student_edition_drops_exactly_the_solution_cells():
    nb = _nb(
        ("markdown", "# Chapter\n\n```{exercise}\n:label: ex-a\nWhat is 6 x 7?\n```", None),
        ("markdown", START, ["solution"]),
        ("code", "print(6 * 7)", ["solution"]),
        ("markdown", END, ["solution"]),
        ("code", "x = 1", ["results"]),
    )
    assert solution_cells(nb) == [1, 2, 3]
    student = student_edition(nb)
    sources = [c.source for c in student.cells]
    assert sources == [nb.cells[0].source, "x = 1"]
    assert len(nb.cells) == 5, "the original is left alone"


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        ([("markdown", START, None), ("markdown", END, ["solution"])], "not tagged 'solution'"),
        ([("markdown", START, ["solution"])], "never closed"),
        ([("markdown", END, ["solution"])], "never opened"),
        ([("code", "x = 1", ["solution"])], "outside every solution"),
        (
            [("markdown", START, ["solution"]), ("markdown", END + "\n\n## Results", ["solution"])],
            "holds other text",
        ),
        ([("markdown", START + "\n\n" + END, ["solution"])], "more than one solution directive"),
    ],
)
def test_badly_tagged_solutions_are_refused(cells, message):
    with pytest.raises(SolutionTagError, match=message):
        student_edition(_nb(*cells), "ch.ipynb")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_solution_text_survives_in_the_student_edition(path):
    nb = nbformat.read(path, as_version=4)
    spans = solution_cells(nb, path.name)  # raises if a solution cell is not tagged
    assert spans, f"{path.name} has no tagged solutions"
    student = student_edition(nb, path.name)
    text = "\n".join(c.source for c in student.cells)
    assert "{solution-start}" not in text and "{solution-end}" not in text
    assert text.count("```{exercise}") == "\n".join(c.source for c in nb.cells).count(
        "```{exercise}"
    ), "every exercise statement is kept"
    kept = {c.source for c in student.cells}
    for i in spans:
        body = nb.cells[i].source.strip()
        if body not in ("```{solution-end}\n```",):
            assert body not in kept
            if nb.cells[i].cell_type != "markdown":
                continue  # a line of solution code may repeat a line of the chapter's own code
            # no sentence of a solution's answer is left anywhere (short lines aside)
            lines = [line for line in body.splitlines() if len(line.strip()) > 25]
            leaked = [line for line in lines if line in text and "exercise" not in line]
            assert not leaked, f"{path.name}: solution text left in the student copy: {leaked}"


def test_cli_writes_the_student_editions(tmp_path, capsys):
    out = tmp_path / "student"
    assert cli.main(["student", "--output-dir", str(out), "1", "2"]) == 0
    written = sorted(p.name for p in out.glob("*.ipynb"))
    assert written == [NOTEBOOKS[0].name, NOTEBOOKS[1].name]
    copy = nbformat.read(out / NOTEBOOKS[0].name, as_version=4)
    assert not any("solution" in c.metadata.get("tags", []) for c in copy.cells)
    assert "student edition" in capsys.readouterr().out
    assert not list(out.glob(".*.tmp")), "no temporary file is left behind"


def test_cli_refuses_to_overwrite_the_originals(capsys):
    folder = str(NOTEBOOKS[0].parent)
    assert cli.main(["student", "--output-dir", folder, "1"]) == 2
    assert "overwrite the original" in capsys.readouterr().err


def test_solution_leaks_are_found():
    nb = _nb(
        ("code", "%matplotlib inline\nimport numpy as np\nmodel = 1", None),
        ("markdown", START, ["solution"]),
        ("code", "extra = np.zeros(3)\nmodel = 2\ndef helper(k):\n    return k", ["solution"]),
        ("markdown", END, ["solution"]),
        ("code", "for k in range(2):\n    print(k, model, helper(k))", None),
        ("code", "extra = 5\nprint(extra, len([k for k in range(3)]))", None),
    )
    assert solution_leaks(nb) == [
        "cell 4 reads 'helper', bound in a solution",
        "cell 4 reads 'model', bound in a solution",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_chapter_cell_depends_on_a_solution(path):
    nb = nbformat.read(path, as_version=4)
    assert solution_leaks(nb, path.name) == []
