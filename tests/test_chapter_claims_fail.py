"""A claim of a chapter is a real check: change one constant behind it and the chapter stops running.

Chapter 08 builds a Jordan network whose hidden units are steep enough (slope 6/eps) to read the echo out
of its own output, and claims its loss is eps^2/2 within 1 %. With a slope of 1/eps the units are too
shallow, the claim is false, and running the chapter must fail on exactly that claim, as the notebook
test (nbval) would.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

CHAPTER = Path(__file__).resolve().parents[1] / "workbooks" / "08-elman-jordan.ipynb"
CONSTANT, CHANGED = "k = 6.0 / eps", "k = 1.0 / eps"


def test_changing_the_constant_behind_a_claim_fails_the_chapter_on_that_claim():
    nb = nbformat.read(CHAPTER, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and CONSTANT in c.source]
    assert len(cells) == 1
    cells[0].source = cells[0].source.replace(CONSTANT, CHANGED)
    client = NotebookClient(nb, kernel_name="bpttlab", timeout=300,
                            resources={"metadata": {"path": str(CHAPTER.parent)}})
    with pytest.raises(CellExecutionError) as failure:
        client.execute()
    message = str(failure.value)
    assert "ClaimFailed" in message
    assert "the hand-built Jordan network's test loss is eps^2/2 within 1 % for each eps" in message
