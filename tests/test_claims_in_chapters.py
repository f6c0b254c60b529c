"""A chapter's claims fail when the numbers behind them change; its model answers stay out of the student release.

Each case takes a claim that the chapter, as stored (and checked by nbval), prints with its tick; cuts the
chapter down to the few cells that claim needs (found by their text, so the test follows the chapter when
cells move); changes one seed or constant in them; and runs them on the BPTT Lab kernel, which must stop at
that claim with ``ClaimFailed``. So a sentence of the
course cannot outlive the numbers it describes: the notebook tests would fail first.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

WORKBOOKS = Path(__file__).resolve().parent.parent / "workbooks"

#: (chapter, texts that pick its cells in order, or None for every code cell up to the claim's; (old, new)
#: text of the change; the claim that must fail)
CASES = [
    ("03-full-bptt.ipynb", ("rng = np.random.default_rng(0)", "E_line = "),
     ("rng = np.random.default_rng(0)", "rng = np.random.default_rng(1)"),
     "the best straight line through (x_t, y_t) leaves E ="),
    ("02-explicit-implicit.ipynb", ("rng = np.random.default_rng(2)", "res = bl.bptt(net, xs, ys)",
                                    "d4 = bl.derive", "C = bl.contributions(net, xs, ys", "factors = np.abs("),
     ('net = bl.make("elman", n_in=1, n_hidden=1, n_out=1, activation="tanh", seed=0)',
      'net = bl.make("elman", n_in=1, n_hidden=1, n_out=1, activation="tanh", seed=0)\n'
      'net.params["W"] = 8 * net.params["W"]'),
     "every factor |f'(a_j) W| is below 0.13"),
    ("04-vanishing-exploding.ipynb", None, ("b=np.array([2.0, 10.0])", "b=np.array([2.0, 1.0])"),
     "yet ||dh_30/dh_0|| is about 3e5"),
    ("04b-clipping.ipynb", None, ("T_1, h0 = 30, np.array([0.5])", "T_1, h0 = 30, np.array([0.4])"),
     "for every w >= 1.5 the largest gradient along b lies within two grid steps of the dashed line"),
    ("07-truncated-bptt.ipynb", ("rng = np.random.default_rng(0)", "def delayed_echo", "C_full = bl.contributions",
                                 "def tbptt_mask"),
     ('init="normal", seed=1)', 'init="normal", seed=1)\nnet0.params["W"] = 2 * net0.params["W"]'),
     "here a term 8 copies from the diagonal is typically"),
    ("07b-tbptt-training.ipynb", ("rng = np.random.default_rng(0)", "def delayed_echo", "def last_loss_gradient",
                                  "def cost_per_epoch", "curves, trained = {}, {}", "final = {name: c[-1]"),
     ('"TBPTT(4, 8)": (4, 8, False)', '"TBPTT(4, 8)": (4, 4, False)'),
     "TBPTT(4, 8) learns: below 0.01"),
    ("08-elman-jordan.ipynb", None, ("k = 6.0 / eps", "k = 1.0 / eps"),
     "the hand-built Jordan network's test loss is eps^2/2 within 1 % for each eps"),
    ("09-bptt-vs-search.ipynb", ("import bpttlab as bl", "T2, B2 = 20, 8", "def descend_with"),
     ("alternating = 0.8", "alternating = 0.6"), "the recurrent runs end at two points"),
]


def cut(chapter: str, picks: tuple[str, ...] | None, claim: str) -> nbformat.NotebookNode:
    """The chapter reduced to the first code cell containing each text of ``picks`` (or, with no picks, to
    every code cell up to the first that states ``claim``), outputs cleared."""
    nb = nbformat.read(WORKBOOKS / chapter, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    if picks is None:
        end = next((i for i, c in enumerate(code) if claim in c.source), None)
        assert end is not None, f"{chapter} has no code cell stating {claim!r}"
        found = code[:end + 1]
    else:
        found = []
        for text in picks:
            hits = [c for c in code if text in c.source]
            assert hits, f"{chapter} has no code cell containing {text!r}"
            found.append(hits[0])
    out = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c.source) for c in found])
    out.metadata["kernelspec"] = {"name": "bpttlab", "display_name": "BPTT Lab (Python 3)", "language": "python"}
    return out


def printed(nb: nbformat.NotebookNode) -> str:
    """Everything the code cells of ``nb`` printed."""
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.output_type == "stream")


def run(nb: nbformat.NotebookNode) -> None:
    """Execute ``nb`` on the BPTT Lab kernel, in workbooks/."""
    NotebookClient(nb, kernel_name="bpttlab", timeout=300,
                   resources={"metadata": {"path": str(WORKBOOKS)}}).execute()


@pytest.mark.parametrize("chapter, picks, change, claim", CASES, ids=[case[0].split("-")[0] for case in CASES])
def test_changing_a_constant_behind_a_claim_fails_the_chapter(chapter, picks, change, claim):
    stored = nbformat.read(WORKBOOKS / chapter, as_version=4)
    assert f"✔ {claim}" in printed(stored)              # as the chapter stands, the claim holds

    changed = cut(chapter, picks, claim)
    old, new = change
    targets = [c for c in changed.cells if old in c.source]
    assert len(targets) == 1, f"the change {old!r} must hit exactly one cell"
    targets[0].source = targets[0].source.replace(old, new)
    with pytest.raises(CellExecutionError) as failure:
        run(changed)
    message = str(failure.value)
    assert "ClaimFailed" in message and claim in message


@pytest.mark.parametrize("chapter", ["01-unfolding.ipynb", "02-explicit-implicit.ipynb", "03-full-bptt.ipynb",
                                     "07-truncated-bptt.ipynb", "07b-tbptt-training.ipynb"])
def test_the_student_release_keeps_no_model_answer(chapter):
    """Every Try-it model answer (and the cell that checks it) sits between solution markers, so the
    student version keeps the prompts and loses the answers."""
    from bpttlab.grading.notebooks import release

    teacher = nbformat.read(WORKBOOKS / chapter, as_version=4)
    answers = [c for c in teacher.cells if "Model answers" in c.source]
    assert len(answers) == 1 and answers[0].cell_type == "markdown"
    student = release(teacher, name=chapter)
    text = "\n".join(c.source for c in student.cells)
    assert "Try it" in text
    assert "Model answers" not in text and "SOLUTION" not in text
    kept = {c.source for c in student.cells}
    checking = [c for c in teacher.cells if c.cell_type == "code" and "### BEGIN SOLUTION" in c.source
                and not c.source.startswith("%%bptt")]
    assert checking and not any(c.source in kept for c in checking)
