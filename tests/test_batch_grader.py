"""``bpttlab grade`` on the sample submissions in tests/submissions (named after their expected outcome)
and ``bpttlab release`` on a teacher notebook.

The batch runs real kernels (python3, a 5 s cell limit for the infinite loop) in the grader's sandbox,
two submissions at a time, once for the module. Expected scores of partly right answers come from grading the same function in this
process with ``bl.grade`` and the same hidden seed (tests/grading_students.py holds it).
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import bpttlab as bl
import grading_students as S
from bpttlab import cli
from bubblewrap_fixture import bubblewrap  # noqa: F401 - the fixture: the grader's sandbox
from bpttlab.grading.notebooks import SourceError, exercise_cells, function_source

SUBMISSIONS = Path(__file__).parent / "submissions"
SEED = 4242
EXERCISES = ("grad-V", "grad-W", "clip-norm")
FULL = {"grad-V": 1.0, "grad-W": 3.0, "clip-norm": 1.0}


def command() -> list[str]:
    """The ``bpttlab`` console script of this environment."""
    script = Path(sys.executable).with_name("bpttlab")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bpttlab.cli"]


def bpttlab(*args: str) -> subprocess.CompletedProcess:
    """Run ``bpttlab ARGS`` in a new process."""
    return subprocess.run([*command(), *args], capture_output=True, text=True, timeout=600)


def bpttlab_here(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``bpttlab ARGS`` in this process (quick, for commands that start no kernel)."""
    try:
        status = cli.main(list(args))
    except SystemExit as exc:  # argparse's errors
        status = exc.code
    out = capsys.readouterr()
    return status, out.out, out.err


# -- the teacher's notebook -----------------------------------------------------------------------------

TEACHER_CELLS = [
    ("markdown", "# Assignment 2\nCompute the gradients below."),
    ("code", "import numpy as np\n%load_ext bpttlab"),
    ("code", "%%bptt exercise grad-V\n"
             "def grad_V(W, U, b, V, c, xs, targets):\n"
             "    ### BEGIN SOLUTION\n"
             "    h, g = np.zeros(len(b)), np.zeros_like(V)\n"
             "    for x, y in zip(xs, targets):\n"
             "        h = np.tanh(W @ h + U @ x + b)\n"
             "        g += np.outer(V @ h + c - y, h)\n"
             "    return g\n"
             "    ### END SOLUTION"),
    ("markdown", "Why does V have no implicit term?\n\n### BEGIN SOLUTION\nIt only feeds o_t.\n### END SOLUTION"),
    ("code", "%%bptt exercise grad-W\n"
             "def grad_W(W, U, b, V, c, xs, targets):\n"
             "    ### BEGIN SOLUTION\n"
             "    hs = [np.zeros(len(b))]\n"
             "    for x in xs:\n"
             "        hs.append(np.tanh(W @ hs[-1] + U @ x + b))\n"
             "    dW, dh_next = np.zeros_like(W), np.zeros(len(b))\n"
             "    for t in range(len(xs) - 1, -1, -1):\n"
             "        da = (1 - hs[t + 1] ** 2) * (V.T @ (V @ hs[t + 1] + c - targets[t]) + dh_next)\n"
             "        dW += np.outer(da, hs[t])\n"
             "        dh_next = W.T @ da\n"
             "    return dW\n"
             "    ### END SOLUTION"),
    ("code", "%%bptt exercise clip-norm\n"
             "def clip_by_norm(grads, tau):\n"
             "    ### BEGIN SOLUTION\n"
             "    norm = np.sqrt(sum(np.sum(g ** 2) for g in grads.values()))\n"
             "    return {k: g * min(1.0, tau / norm) for k, g in grads.items()}\n"
             "    ### END SOLUTION"),
    ("code", "print('a plain cell keeps its output')"),
]


def teacher_notebook():
    cells = [new_markdown_cell(src) if kind == "markdown" else new_code_cell(src) for kind, src in TEACHER_CELLS]
    for cell in cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="teacher's output\n")]
            cell.execution_count = 1
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


# -- one batch run for the module -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def batch(tmp_path_factory, bubblewrap):  # noqa: F811 - the fixture
    root = tmp_path_factory.mktemp("batch")
    teacher = root / "teacher" / "assignment.ipynb"
    teacher.parent.mkdir()
    nbformat.write(teacher_notebook(), teacher)
    released = bpttlab("release", str(teacher), "--out", str(root / "release"))
    assert released.returncode == 0, released.stderr
    subs = sorted(SUBMISSIONS.glob("*.ipynb")) + [SUBMISSIONS / "missing_notebook.ipynb"]
    out = root / "out"
    proc = bpttlab("grade", *map(str, subs), "--out", str(out), "--jobs", "2", "--timeout", "5", "--seed", str(SEED),
                   "--kernel", "python3", "--assignment", str(root / "release" / "assignment.ipynb"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"out": out, "root": root, "teacher": teacher, "stdout": proc.stdout}


def read_gradebook(out: Path) -> list[dict]:
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    as_json = json.loads((out / "gradebook.json").read_text(encoding="utf-8"))
    assert [r["student"] for r in rows] == [r["student"] for r in as_json]
    for r, j in zip(rows, as_json):
        assert (r["exercise"], float(r["score"]), r["diagnosis"], r["detail"]) == (
            j["exercise"], j["score"], j["diagnosis"], j["detail"])
    return as_json


def table(rows) -> dict[tuple[str, str], tuple[float, str]]:
    return {(r["student"], r["exercise"]): (r["score"], r["diagnosis"]) for r in rows}


def expected_gradebook(seed: int = SEED) -> dict[tuple[str, str], tuple[float, str]]:
    correct = {ex: (FULL[ex], "correct") for ex in EXERCISES}
    clip_values = bl.grade("clip-norm", S.clip_values, hidden_seed=seed)
    assert clip_values.score == 0  # a catalogued mistake earns nothing, even where it coincides (issue 16)
    per_student = {
        "correct": correct,
        "prints_megabytes": correct,
        "wrong_answers": {"grad-V": (0.0, "sign_flipped"), "grad-W": (0.0, "explicit_only"),
                          "clip-norm": (round(clip_values.score, 6), "clipped_by_value")},
        "infinite_loop_in_function": {**correct, "grad-W": (0.0, "timeout")},
        "infinite_loop_in_cell": {"grad-V": correct["grad-V"], "grad-W": (0.0, "timeout"),
                                  "clip-norm": (0.0, "timeout")},
        "kernel_crash_os_exit": {"grad-V": correct["grad-V"], "grad-W": (0.0, "kernel-died"),
                                 "clip-norm": (0.0, "kernel-died")},
        "kernel_crash_segfault": {"grad-V": correct["grad-V"], "grad-W": (0.0, "kernel-died"),
                                  "clip-norm": (0.0, "kernel-died")},
        "deleted_exercise_cell": {**correct, "grad-W": (0.0, "missing-cell")},
        "duplicated_exercise_cell": {**correct, "grad-W": (0.0, "duplicate-cells")},
        # a wrong grad_W that passes in the notebook only because the notebook replaced the reference
        "overwrites_reference": {**correct, "grad-W": (0.0, "wrong")},
        "malformed_json": {ex: (0.0, "malformed-notebook") for ex in EXERCISES},
        "missing_notebook": {ex: (0.0, "missing-notebook") for ex in EXERCISES},
    }
    return {(student, ex): v for student, exs in per_student.items() for ex, v in exs.items()}


def test_there_are_enough_sample_submissions_each_named_after_its_outcome():
    names = {p.stem for p in SUBMISSIONS.glob("*.ipynb")}
    assert len(names) >= 8
    assert names <= {student for student, _ in expected_gradebook()}


def test_batch_gives_the_expected_gradebook_in_csv_and_json(batch):
    rows = read_gradebook(batch["out"])
    assert table(rows) == expected_gradebook()
    assert [r["exercise"] for r in rows[:3]] == list(EXERCISES)  # the released assignment's order
    assert [r["student"] for r in rows] == sorted(r["student"] for r in rows)
    assert all(r["max_score"] == FULL[r["exercise"]] for r in rows)


def test_every_failure_is_recorded_with_its_reason(batch):
    detail = {(r["student"], r["exercise"]): r["detail"] for r in read_gradebook(batch["out"])}
    assert "stopped after 5 s: the function did not finish" in detail["infinite_loop_in_function", "grad-W"]
    assert "stopped at cell 5, which ran longer than 5 s" in detail["infinite_loop_in_cell", "grad-W"]
    assert "before this exercise's cell" in detail["infinite_loop_in_cell", "clip-norm"]
    assert "kernel died while running cell 5" in detail["kernel_crash_os_exit", "grad-W"]
    assert "does not exist" in detail["missing_notebook", "grad-V"]
    assert "not valid JSON" in detail["malformed_json", "grad-V"]
    assert "deleted" in detail["deleted_exercise_cell", "grad-W"]
    assert "cells 5, 6 all claim exercise grad-W" in detail["duplicated_exercise_cell", "grad-W"]
    assert "sign flipped" in detail["wrong_answers", "grad-V"] and "t = 1" in detail["wrong_answers", "grad-V"]
    assert "at t = 3" in detail["wrong_answers", "grad-W"]


def test_one_feedback_file_per_student(batch):
    out = batch["out"]
    students = {s for s, _ in expected_gradebook()}
    assert {p.stem for p in (out / "feedback").glob("*.html")} == students
    assert {p.stem for p in (out / "results").glob("*.json")} == students
    for student in students:
        page = (out / "feedback" / f"{student}.html").read_text(encoding="utf-8")
        record = json.loads((out / "results" / f"{student}.json").read_text(encoding="utf-8"))
        assert f"{student}: {record['score']:.3g} / 5 points" in page
        assert "all tests passed" not in page.lower()
    page = (out / "feedback" / "wrong_answers.html").read_text(encoding="utf-8")
    assert "explicit term only (implicit paths missing)" in page and "Hint:" in page
    assert "Hidden instances: 0 of 4 right" in page
    crash = (out / "feedback" / "kernel_crash_segfault.html").read_text(encoding="utf-8")
    assert "the kernel died" in crash


def test_the_grader_keeps_the_notebooks_output_out_of_its_files(batch):
    out = batch["out"]
    assert len(batch["stdout"]) < 10_000
    assert all(p.stat().st_size < 200_000 for p in out.rglob("*") if p.is_file())


def test_a_rerun_skips_what_is_graded_and_keeps_the_gradebook(batch, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(batch["out"], out)
    before = read_gradebook(out)
    status, stdout, err = bpttlab_here(capsys, "grade", str(SUBMISSIONS / "correct.ipynb"),
                                       str(SUBMISSIONS / "malformed_json.ipynb"), "--out", str(out), "--kernel",
                                       "python3", "--exercises", ",".join(EXERCISES), "--timeout", "5")
    assert status == 0, err
    assert "correct: already graded" in stdout and "malformed_json: already graded" in stdout
    assert read_gradebook(out) == before  # the seed was kept in grading.json


def test_grading_runs_from_an_ipython_session(tmp_path, capsys, monkeypatch, bubblewrap):  # noqa: F811
    """IPython (a notebook, the magics) installs a ``__main__`` without ``__spec__``, which multiprocessing's
    spawn reads when it starts the grading workers."""
    monkeypatch.setitem(sys.modules, "__main__", type("DummyMod", (), {})())
    status, stdout, err = bpttlab_here(capsys, "grade", str(SUBMISSIONS / "malformed_json.ipynb"), "--out",
                                       str(tmp_path / "out"), "--kernel", "python3", "--exercises", "grad-V")
    assert status == 0, err
    assert read_gradebook(tmp_path / "out")[0]["student"] == "malformed_json"


def test_killing_the_grader_midway_and_rerunning_gives_the_same_gradebook(batch, tmp_path):
    names = ["malformed_json", "wrong_answers", "deleted_exercise_cell"]
    subs = [str(SUBMISSIONS / f"{n}.ipynb") for n in names]
    out = tmp_path / "out"
    args = [*subs, "--out", str(out), "--timeout", "5", "--seed", str(SEED), "--kernel", "python3",
            "--exercises", ",".join(EXERCISES)]
    proc = subprocess.Popen([*command(), "grade", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not list((out / "results").glob("*.json")) and time.monotonic() < deadline:
            assert proc.poll() is None, "the grader ended before it could be killed"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = {p.stem for p in (out / "results").glob("*.json")}
    assert 1 <= len(done) < len(names)
    for student in done:  # whole files only: each is written atomically
        assert json.loads((out / "results" / f"{student}.json").read_text())["student"] == student
    if (out / "gradebook.csv").exists():  # the kill may come before the gradebook is rewritten
        assert {r["student"] for r in read_gradebook(out)} <= done

    rerun = bpttlab("grade", *args)
    assert rerun.returncode == 0, rerun.stderr
    for student in done:
        assert f"{student}: already graded" in rerun.stdout
    full = [r for r in read_gradebook(batch["out"]) if r["student"] in names]
    assert read_gradebook(out) == full
    assert not [p for p in out.rglob("*.tmp")]


# -- bad arguments ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["--exercises", "grad-Z"], "unknown exercise 'grad-Z'"),
    (["--kernel", "no-such-kernel", "--exercises", "grad-W"], "--kernel 'no-such-kernel' is not installed"),
    (["--jobs", "0"], "expected a positive int, got '0'"),
    (["--timeout", "-1"], "expected a positive float, got '-1'"),
])
def test_grade_bad_arguments_exit_2_with_the_reason(tmp_path, capsys, args, message):
    status, _, err = bpttlab_here(capsys, "grade", str(SUBMISSIONS / "correct.ipynb"), "--out", str(tmp_path / "o"),
                                  *args)
    assert status == 2
    assert message in err


def test_two_submissions_of_one_student_are_refused(tmp_path, capsys):
    other = tmp_path / "correct.ipynb"
    shutil.copy(SUBMISSIONS / "correct.ipynb", other)
    status, _, err = bpttlab_here(capsys, "grade", str(SUBMISSIONS / "correct.ipynb"), str(other), "--out",
                                  str(tmp_path / "o"), "--exercises", "grad-W")
    assert status == 2 and "two submissions belong to student 'correct'" in err


# -- release ---------------------------------------------------------------------------------------------


def test_release_strips_solutions_and_keeps_exercise_cells(batch):
    teacher = nbformat.read(batch["teacher"], as_version=4)
    student = nbformat.read(batch["root"] / "release" / "assignment.ipynb", as_version=4)
    assert len(student.cells) == len(teacher.cells)
    text = "\n".join(c.source for c in student.cells)
    assert "SOLUTION" not in text and "np.outer" not in text and "It only feeds o_t." not in text
    for t_cell, s_cell in zip(teacher.cells, student.cells):
        first = t_cell.source.split("\n", 1)[0]
        if first.startswith("%%bptt exercise"):
            ex = first.split()[-1]
            assert s_cell.metadata["bpttlab"]["exercise"] == ex
            signature = t_cell.source.split("\n")[1]
            assert s_cell.source == f"{first}\n{signature}\n    # YOUR CODE HERE\n    raise NotImplementedError()"
            assert s_cell.outputs == [] and s_cell.execution_count is None
        elif t_cell.cell_type == "markdown" and "SOLUTION" in t_cell.source:
            assert s_cell.source == "Why does V have no implicit term?\n\nYOUR ANSWER HERE"
        else:  # the source untouched; outputs dropped (they can show an answer: tests/test_release.py)
            assert s_cell.source == t_cell.source and s_cell.get("outputs", []) == []
    assert nbformat.read(batch["teacher"], as_version=4) == teacher  # the teacher's file is unchanged


def test_release_refuses_to_overwrite_without_force(tmp_path, capsys):
    teacher = tmp_path / "t.ipynb"
    nbformat.write(teacher_notebook(), teacher)
    assert bpttlab_here(capsys, "release", str(teacher), "--out", str(tmp_path / "r"))[0] == 0
    status, _, err = bpttlab_here(capsys, "release", str(teacher), "--out", str(tmp_path / "r"))
    assert status == 2 and "exists; pass --force" in err
    assert bpttlab_here(capsys, "release", str(teacher), "--out", str(tmp_path / "r"), "--force")[0] == 0
    status, _, err = bpttlab_here(capsys, "release", str(teacher), "--out", str(tmp_path))
    assert status == 2 and "is the teacher notebook itself" in err


@pytest.mark.parametrize("old, new, message", [
    ("    ### END SOLUTION", "", "broken.ipynb, cell 3: BEGIN SOLUTION without an END SOLUTION"),
    ("def grad_V", "    ### END SOLUTION\ndef grad_V", "broken.ipynb, cell 3: END SOLUTION on line 2 without a BEGIN"),
    ("exercise grad-V", "exercise grad-Q", "unknown exercise 'grad-Q'; known: "),
])
def test_release_reports_bad_markers_and_unknown_exercises(tmp_path, capsys, old, new, message):
    nb = teacher_notebook()
    nb.cells[2].source = nb.cells[2].source.replace(old, new, 1)
    broken = tmp_path / "broken.ipynb"
    nbformat.write(nb, broken)
    status, _, err = bpttlab_here(capsys, "release", str(broken), "--out", str(tmp_path / "u"))
    assert status == 1 and message in err
    assert not (tmp_path / "u").exists()


# -- exercise cells ----------------------------------------------------------------------------------------


def test_exercise_cells_are_found_by_metadata_tag_or_magic_line():
    cells = [new_code_cell("x = 1"), new_code_cell("%%bptt exercise grad-W\ndef grad_W(): pass"),
             new_code_cell("def grad_V(): pass", metadata={"tags": ["exercise:grad-V"]}),
             new_code_cell("def clip_by_norm(): pass", metadata={"bpttlab": {"exercise": "clip-norm"}}),
             new_markdown_cell("%%bptt exercise grad-U")]
    assert exercise_cells(new_notebook(cells=cells)) == {"grad-W": [1], "grad-V": [2], "clip-norm": [3]}


def test_only_the_definitions_of_an_exercise_cell_reach_the_sandbox():
    cell = ("%%bptt exercise grad-W\n"
            "import numpy as np\n"
            "import bpttlab.grading.references as R\n"
            "R.gradient = lambda *a, **k: 0\n"
            "SCALE = 2.0\n"
            "def grad_W(W, U, b, V, c, xs, targets):\n"
            "    return SCALE * W\n"
            "print(grad_W(1, 2, 3, 4, 5, 6, 7))\n"
            "grad_W = grad_W\n")
    kept = function_source(cell, "grad_W").split("\n")
    assert kept == ["#", "import numpy as np", "import bpttlab.grading.references as R", "", "SCALE = 2.0",
                    "def grad_W(W, U, b, V, c, xs, targets):", "    return SCALE * W", "", "grad_W = grad_W", ""]
    with pytest.raises(SourceError, match="does not define a function named grad_U"):
        function_source(cell, "grad_U")
    with pytest.raises(SourceError, match="syntax error on line 2"):  # line numbers are the cell's
        function_source("%%bptt exercise grad-W\ndef grad_W(:\n", "grad_W")
