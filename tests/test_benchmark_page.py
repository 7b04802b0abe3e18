"""The book's benchmark page states what the committed benchmark records say."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LABEL = {"cnn": "chapter 3's CNN", "mlp": "MFCC MLP"}
LOOP = {
    "fit": "`fit`",
    "fit(compile=True)": "`fit(compile=True)`",
    "lightning": "Lightning `Trainer`",
    "tutorial, 4 workers": "tutorial loop, 4 workers",
    "tutorial, 0 workers": "tutorial loop, 0 workers",
}


def test_every_table_row_is_a_committed_record():
    page = (ROOT / "book" / "benchmarks.md").read_text()
    records = json.loads((ROOT / "benchmarks" / "fit-1xH200.json").read_text())["bench"]
    rows = {
        (m[1], int(m[2]), m[3]): int(m[4].replace(",", ""))
        for m in re.finditer(r"^\| ([^|]+) \| (\d+) \| ([^|]+) \| ([\d,]+) \|", page, re.M)
    }
    expected = {
        (LABEL[r["model"]], r["batch_size"], LOOP[name]): round(loop["clips_per_s"])
        for r in records
        for name, loop in r["loops"].items()
    }
    assert len(expected) == 20  # two models, two batch sizes, five loops
    assert rows == expected
    assert records[0]["date"] in page
