"""``bpttlab release`` cannot leak: every chapter released, and no line of any solution in what goes out.

The oracle is the teacher notebook itself: the lines between its solution markers (any case; HTML comments
in Markdown) are the secret, and a line the teacher also shows outside every solution region is not one.
Each released file is searched as JSON text and as the strings it holds (sources, and anything an output,
an attachment or a metadata field could carry).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from bpttlab.grading.commands import main as grading_main
from bpttlab.grading.notebooks import BEGIN, CELL_METADATA, END, NOTEBOOK_METADATA, cell_exercise

WORKBOOKS = Path(__file__).resolve().parent.parent / "workbooks"
CHAPTERS = sorted(WORKBOOKS.glob("[0-9][0-9]*-*.ipynb"))   # 04b and 07b too


def release(capsys, *argv: str) -> tuple[int, str, str]:
    status = grading_main(["release", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def split_lines(nb) -> tuple[list[str], set[str]]:
    """(the lines inside solution regions, the lines outside them), stripped, over every cell."""
    secret, public = [], set()
    for cell in nb.cells:
        inside = False
        for line in cell.source.split("\n"):
            if BEGIN.match(line):
                inside = True
            elif END.match(line):
                inside = False
            else:
                (secret.append if inside else public.add)(line.strip())
    return secret, public


def strings(value) -> list[str]:
    """Every string a JSON value holds, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def nontrivial(line: str, public: set[str]) -> bool:
    """A line that would tell a student something: not blank or a lone keyword/bracket, not shown anyway."""
    return len(re.sub(r"\s", "", line)) >= 6 and line not in public


def test_every_chapter_is_in_the_list():
    assert len(CHAPTERS) >= 12 and {"04b", "07b"} <= {p.name.split("-")[0] for p in CHAPTERS}


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_a_released_chapter_holds_no_line_of_any_solution(chapter, tmp_path, capsys):
    status, out, err = release(capsys, str(chapter), "--out", str(tmp_path))
    assert status == 0, err
    teacher = nbformat.read(chapter, as_version=4)
    released_path = tmp_path / chapter.name
    text = released_path.read_text(encoding="utf-8")
    data = json.loads(text)
    held = {line.strip() for s in strings(data) for line in s.split("\n")}
    secret, public = split_lines(teacher)
    if any(cell_exercise(c) for c in teacher.cells):  # the check has something to look for
        assert any(nontrivial(line, public) for line in secret)
    # a whole line of a solution, or a long one anywhere inside another line (a short one such as
    # "return g" may stand inside a longer public line, "return getattr(...)")
    leaks = [line for line in secret if nontrivial(line, public)
             and (line in held or (len(line) >= 24 and json.dumps(line)[1:-1] in text))]
    assert not leaks, leaks
    student = nbformat.read(released_path, as_version=4)
    assert len(student.cells) == len(teacher.cells)
    for t_cell, s_cell in zip(teacher.cells, student.cells):
        ex = cell_exercise(t_cell)
        if ex is not None:
            assert s_cell.metadata["bpttlab"]["exercise"] == ex
            assert "raise NotImplementedError()" in s_cell.source
        assert set(s_cell.metadata) <= set(CELL_METADATA)
        assert "attachments" not in s_cell
        if s_cell.cell_type == "code":
            assert s_cell.outputs == [] and s_cell.execution_count is None
    assert set(student.metadata) <= set(NOTEBOOK_METADATA) and "kernelspec" in student.metadata


def _teacher(*cells) -> nbformat.NotebookNode:
    nb = new_notebook(cells=list(cells))
    nb.metadata.update({"kernelspec": {"name": "bpttlab", "display_name": "BPTT Lab", "language": "python"},
                        "language_info": {"name": "python"},
                        "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {"m": {"value": 42}}}},
                        "teacher_notes": "the answer is 42"})
    return nb


EXERCISE = ("%%bptt exercise grad-V\n"
            "def grad_V(W, U, b, V, c, xs, targets):\n"
            "    {begin}\n"
            "    secret_sum = sum(np.outer(V @ h + c - y, h) for h, y in pairs)\n"
            "    {end}\n")


@pytest.mark.parametrize("begin, end", [("### BEGIN SOLUTION", "### END SOLUTION"),
                                        ("### begin solution", "### end solution"),
                                        ("# Begin Solution", "# End Solution")])
def test_markers_are_matched_in_any_case(tmp_path, capsys, begin, end):
    nbformat.write(_teacher(new_code_cell(EXERCISE.format(begin=begin, end=end))), tmp_path / "t.ipynb")
    status, _, err = release(capsys, str(tmp_path / "t.ipynb"), "--out", str(tmp_path / "out"))
    assert status == 0, err
    text = (tmp_path / "out" / "t.ipynb").read_text()
    assert "secret_sum" not in text and "raise NotImplementedError()" in text


def test_an_exercise_cell_without_markers_stops_the_release_naming_notebook_and_cell(tmp_path, capsys):
    good = _teacher(new_markdown_cell("# Fine"), new_code_cell(EXERCISE.format(begin="### BEGIN SOLUTION",
                                                                                end="### END SOLUTION")))
    bad = _teacher(new_markdown_cell("# Chapter"), new_code_cell("import numpy as np"),
                   new_code_cell(EXERCISE.format(begin="", end="")))
    nbformat.write(good, tmp_path / "good.ipynb")
    nbformat.write(bad, tmp_path / "bad.ipynb")
    status, _, err = release(capsys, str(tmp_path / "good.ipynb"), str(tmp_path / "bad.ipynb"),
                             "--out", str(tmp_path / "out"))
    assert status == 1
    assert "bad.ipynb, cell 3: exercise cell 'grad-V' has no solution markers" in err
    assert not (tmp_path / "out").exists()  # all or nothing: not even the good notebook went out


def test_outputs_attachments_widget_state_and_teacher_metadata_are_dropped(tmp_path, capsys):
    answer = "np.outer(V @ h + c - y, h)"
    exercise = new_code_cell(EXERCISE.format(begin="### BEGIN SOLUTION", end="### END SOLUTION"),
                             metadata={"tags": ["graded"], "nbgrader": {"grade_id": "grad-V", "solution": True},
                                       "collapsed": False, "scrolled": True, "teacher": {"answer": answer}})
    exercise.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": answer}, execution_count=3)]
    exercise.execution_count = 3
    plain = new_code_cell("print(1)", execution_count=4,
                          outputs=[nbformat.v4.new_output("stream", name="stdout", text=answer)])
    picture = new_markdown_cell("![drawing](attachment:answer.png)\n\n<!-- BEGIN SOLUTION -->\n"
                                "The implicit part vanishes because V feeds only o_t.\n<!-- END SOLUTION -->",
                                attachments={"answer.png": {"image/png": "aGVsbG8="}})
    nbformat.write(_teacher(exercise, plain, picture), tmp_path / "t.ipynb")
    status, _, err = release(capsys, str(tmp_path / "t.ipynb"), "--out", str(tmp_path / "out"))
    assert status == 0, err
    text = (tmp_path / "out" / "t.ipynb").read_text()
    for leak in ("np.outer", "the answer is 42", "widget-state", "aGVsbG8=", "feeds only o_t", "collapsed",
                 "scrolled", '"value": 42', "teacher"):
        assert leak not in text, leak
    student = nbformat.read(tmp_path / "out" / "t.ipynb", as_version=4)
    assert set(student.metadata) == {"kernelspec", "language_info"}
    s_ex, s_plain, s_md = student.cells
    assert s_ex.metadata == {"tags": ["graded"], "nbgrader": {"grade_id": "grad-V", "solution": True},
                             "bpttlab": {"exercise": "grad-V"}}
    assert s_ex.outputs == s_plain.outputs == [] and s_ex.execution_count is s_plain.execution_count is None
    assert s_plain.source == "print(1)"
    assert s_md.source.endswith("YOUR ANSWER HERE") and "attachments" not in s_md

