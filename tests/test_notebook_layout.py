"""Every chapter notebook has the parts DESIGN.md asks for, in order (no execution needed)."""

import json
import re
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


def _shown_text(cell) -> list[str]:
    """What a reader sees of a code cell's outputs as text (not images, players or JSON)."""
    texts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            texts.append(out.text)
        elif out.output_type == "error":
            texts.append(f"{out.ename}: {out.evalue}")
        elif "text/plain" in out.get("data", {}) and "text/html" not in out.get("data", {}):
            texts.append(out.data["text/plain"])
    return texts


PRESENTATION_DEFECTS = [
    (re.compile(r"\d\.\d{9,}"), "an unrounded float"),
    (re.compile(r"(/tmp/|/home/|/root/|/work/|/Users/|site-packages|\.cache/audiolab)"),
     "a machine path"),
    (re.compile(r"grad_fn="), "a tensor repr with grad_fn"),
    (re.compile(r"loss\b[^\n]{0,20}?\b0\.0{3,}\b"), "a loss printed as zero"),
    (re.compile(r"^[^\n]{400,}$", re.MULTILINE), "a line of 400+ characters (an error dump?)"),
]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_are_for_people(path):
    """The committed outputs show rounded numbers, no machine paths, no raw reprs or dumps."""
    nb = nbformat.read(path, as_version=4)
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for text in _shown_text(cell):
            for pattern, what in PRESENTATION_DEFECTS:
                hit = pattern.search(text)
                if hit:
                    start = max(0, hit.start() - 40)
                    problems.append(f"cell {i} shows {what}: {text[start:hit.end() + 20]!r}")
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_results_shown_once_and_cells_run_in_order(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    shown = 0
    for cell in code:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "application/json" in data and "wall_time_s" in data["application/json"]:
                shown += 1
            elif '"wall_time_s"' in json.dumps(out.get("text", "")) + json.dumps(data):
                shown += 1
    assert shown == 1, f"{path.name}: the results JSON is shown {shown} times (once, please)"
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"{path.name}: execution counts {counts} are not 1, 2, 3, ... (re-run top to bottom)"
    )
