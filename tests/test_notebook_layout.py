"""Every chapter notebook has the parts DESIGN.md asks for, in order (no execution needed)."""

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_layout(path):
    nb = nbformat.read(path, as_version=4)
    cells = nb.cells
    code = [i for i, c in enumerate(cells) if c.cell_type == "code"]
    tagged = [i for i, c in enumerate(cells) if "results" in c.metadata.get("tags", [])]
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# ")
    assert "Learning goals" in cells[0].source, "the first cell states the learning goals"
    assert tagged == [code[-1]], "exactly one cell is tagged 'results' and it is the last code cell"
    assert "show_results(" in cells[code[-1]].source
    assert "assert" in cells[code[-1]].source, "the results cell asserts the headline result"
    text = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    exercises = text.count("```{exercise}")
    assert exercises >= 2 and text.count("```{solution-start}") == exercises
    assert text.count("```{solution-end}") == exercises
    assert "## Summary" in cells[-1].source
    # committed with outputs from a full run: every code cell ran, the results say "full"
    assert all(cells[i].get("execution_count") for i in code), "a code cell has no output run"
    results = [o for o in cells[code[-1]].outputs if "application/json" in o.get("data", {})]
    assert results and results[0]["data"]["application/json"]["mode"] == "full"
