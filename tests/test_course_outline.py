"""workbooks/README.md tells the truth about the chapters: its table of checked claims, graded exercises
and plots is counted again here from the stored notebooks, and every chapter is in the outline."""
from __future__ import annotations

import json
import re
from pathlib import Path

WORKBOOKS = Path(__file__).resolve().parent.parent / "workbooks"
CHAPTERS = sorted(WORKBOOKS.glob("[0-9][0-9]*-*.ipynb"))
README = (WORKBOOKS / "README.md").read_text(encoding="utf-8")


def counts(path: Path) -> tuple[int, int, int]:
    """(ticked claims printed, %%bptt exercise cells, figures) of a stored chapter."""
    code = [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
    outputs = [o for c in code for o in c.get("outputs", [])]
    ticks = sum(line.startswith("✔") for o in outputs for line in "".join(o.get("text", "")).splitlines())
    exercises = sum("".join(c["source"]).lstrip().startswith("%%bptt exercise") for c in code)
    plots = sum("image/png" in o.get("data", {}) for o in outputs)
    return ticks, exercises, plots


def table() -> dict[str, tuple[int, int, int]]:
    start = README.index("| # | checked claims | graded exercises | plots |")
    rows = re.findall(r"^\| (\w+) \| (\d+) \| (\d+) \| (\d+) \|$", README[start:], flags=re.M)
    return {key: tuple(map(int, numbers)) for key, *numbers in rows}


def test_the_readme_table_counts_what_the_chapters_hold():
    expected = {path.name.split("-")[0]: counts(path) for path in CHAPTERS}
    expected["all"] = tuple(map(sum, zip(*expected.values())))
    assert table() == expected


def test_every_chapter_is_in_the_outline_and_has_a_graded_exercise():
    for path in CHAPTERS:
        assert f"]({path.name})" in README, path.name
        assert counts(path)[1] >= 1, f"{path.name} has no graded exercise"
