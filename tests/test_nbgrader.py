"""``bpttlab release --format nbgrader`` and the round trip through nbgrader itself.

A teacher notebook with three exercises is released as an nbgrader source notebook into a course made
in a temporary folder; ``nbgrader generate_assignment``, ``autograde`` and ``generate_feedback`` run on
it unchanged (as the nbgrader console commands), on sample submissions: a right answer, catalogued
mistakes, partial credit, a function that raises, an untouched stub and a kernel that dies. The scores
nbgrader's gradebook records must be those ``bpttlab grade`` gives the same notebooks with the same
hidden seed (each computed by its own machinery: nbgrader runs the test cells in the student's kernel,
bpttlab grade runs the functions in its sandbox).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import bpttlab as bl
from bpttlab import cli
from bpttlab.grading import nbgrader_format as N

if not os.environ.get("CI"):  # CI must have it (the test extra installs it): there a missing nbgrader fails
    pytest.importorskip("nbgrader")
from nbgrader.api import Gradebook  # noqa: E402

SEED = 90210
BIN = Path(sys.executable).parent
COURSE_ID = "bptt-course"
POINTS = {"grad-V": 1.0, "grad-W": 3.0, "clip-norm": 1.0}
pytestmark = [pytest.mark.slow, pytest.mark.kernel]

# -- the teacher's notebook and the students' answers ------------------------------------------------------

GRAD_V = """def grad_V(W, U, b, V, c, xs, targets):
    h, g = np.zeros(len(b)), np.zeros_like(V)
    for x, y in zip(xs, targets):
        h = np.tanh(W @ h + U @ x + b)
        g += np.outer({error}, h)
    return g"""


def grad_W(implicit: bool = True, recurrent: str = "W.T", fail_when: str = "False") -> str:
    """A student's grad_W; the switches are the slips (no implicit term, W where W.T belongs, a crash)."""
    carry = f"{recurrent} @ da" if implicit else "0 * da"
    return f"""def grad_W(W, U, b, V, c, xs, targets):
    if {fail_when}:
        raise ValueError("my loop does not handle this length")
    hs = [np.zeros(len(b))]
    for x in xs:
        hs.append(np.tanh(W @ hs[-1] + U @ x + b))
    dW, dh_next = np.zeros_like(W), np.zeros(len(b))
    for t in range(len(xs) - 1, -1, -1):
        da = (1 - hs[t + 1] ** 2) * (V.T @ (V @ hs[t + 1] + c - targets[t]) + dh_next)
        dW += np.outer(da, hs[t])
        dh_next = {carry}
    return dW"""


CLIP = """def clip_by_norm(grads, tau):
    norm = np.sqrt(sum(np.sum(g ** 2) for g in grads.values()))
    return {k: g * min(1.0, tau / norm) for k, g in grads.items()}"""
CLIP_VALUES = """def clip_by_norm(grads, tau):
    return {k: np.clip(g, -tau, tau) for k, g in grads.items()}"""

RIGHT = {"grad-V": GRAD_V.format(error="V @ h + c - y"), "grad-W": grad_W(), "clip-norm": CLIP}

#: student -> the answer cells they changed (the others keep the handed-out stub or the right answer).
STUDENTS = {
    "correct": RIGHT,
    "mistakes": {"grad-V": GRAD_V.format(error="y - (V @ h + c)"), "grad-W": grad_W(implicit=False),
                 "clip-norm": CLIP_VALUES},
    "transposed": {**RIGHT, "grad-W": grad_W(recurrent="W")},
    "raises_sometimes": {**RIGHT, "grad-W": grad_W(fail_when="len(xs) % 2 == 1")},
    "raises_always": {**RIGHT, "grad-V": GRAD_V.format(error="1 / 0")},
    "untouched": {},
    "kernel_dies": {"grad-V": RIGHT["grad-V"], "grad-W": "import os\nos._exit(1)\n" + grad_W(),
                    "clip-norm": CLIP},
}


def teacher_notebook():
    solved = {ex: src.replace("):\n", "):\n    ### BEGIN SOLUTION\n", 1) + "\n    ### END SOLUTION"
              for ex, src in RIGHT.items()}
    cells = [new_markdown_cell("# Problem set 1"), new_code_cell("import numpy as np\nimport bpttlab as bl"),
             new_code_cell(f"%%bptt exercise grad-V\n{solved['grad-V']}"),
             new_markdown_cell("Why does V have no implicit term?\n\n### BEGIN SOLUTION\nIt only feeds o_t.\n"
                               "### END SOLUTION"),
             new_code_cell(f"%%bptt exercise grad-W\n{solved['grad-W']}"),
             new_code_cell(f"%%bptt exercise clip-norm\n{solved['clip-norm']}"),
             new_code_cell("print('the end')")]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def run(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """A console command of this environment (its bin folder first on PATH: nbgrader calls alembic)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {})}
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=900, env=env,
                          cwd=cwd)


def submission(released, answers: dict[str, str]):
    nb = nbformat.reads(nbformat.writes(released), as_version=4)
    for cell in nb.cells:
        ex = cell.metadata.get("bpttlab", {}).get("exercise")
        if ex in answers:
            cell.source = answers[ex]
    return nb


# -- one course for the module -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    teacher = root / "teacher" / "ps1.ipynb"
    teacher.parent.mkdir()
    nbformat.write(teacher_notebook(), teacher)
    (root / "nbgrader_config.py").write_text(f"c = get_config()\nc.CourseDirectory.course_id = {COURSE_ID!r}\n"
                                             f"c.CourseDirectory.root = {str(root)!r}\n"
                                             "c.Execute.timeout = 600\n")  # a cold Numba cache compiles
    released = run("bpttlab", "release", "--format", "nbgrader", str(teacher), "--out", str(root / "source" / "ps1"))
    assert released.returncode == 0, released.stderr
    generated = run("nbgrader", "generate_assignment", "ps1", "--create", cwd=root)
    assert generated.returncode == 0, generated.stdout + generated.stderr
    handed_out = nbformat.read(root / "release" / "ps1" / "ps1.ipynb", as_version=4)
    flat = root / "flat"
    flat.mkdir()
    for student, answers in STUDENTS.items():
        nb = submission(handed_out, answers)
        path = root / "submitted" / student / "ps1" / "ps1.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(nb, path)
        nbformat.write(nb, flat / f"{student}.ipynb")
    graded = run("nbgrader", "autograde", "ps1", "--create", cwd=root, env={N.SEED_ENV: str(SEED)})
    failed = [line for line in graded.stderr.splitlines() if "There was an error processing" in line]
    assert graded.returncode == 1 and failed and all("kernel_dies" in line for line in failed), graded.stderr
    feedback = run("nbgrader", "generate_feedback", "ps1", cwd=root)
    assert feedback.returncode == 0, feedback.stdout + feedback.stderr
    batch = run("bpttlab", "grade", *map(str, sorted(flat.glob("*.ipynb"))), "--out", str(root / "bpttlab-out"),
                "--seed", str(SEED), "--kernel", "python3", "--assignment", str(root / "release" / "ps1" / "ps1.ipynb"),
                "--jobs", "2")
    assert batch.returncode == 0, batch.stdout + batch.stderr
    return {"root": root, "teacher": teacher, "handed_out": handed_out, "autograde_log": graded.stderr}


def nbgrader_scores(root: Path) -> dict[tuple[str, str], float]:
    """The autograded scores in nbgrader's gradebook (nbgrader grades no notebook whose kernel died)."""
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", course_id=COURSE_ID) as gb:
        return {(student, ex): gb.find_grade(f"{N.grade_id(ex)}-test", "ps1", "ps1", student).score
                for student in STUDENTS if student != "kernel_dies" for ex in POINTS}


def bpttlab_rows(root: Path) -> dict[tuple[str, str], dict]:
    rows = json.loads((root / "bpttlab-out" / "gradebook.json").read_text(encoding="utf-8"))
    return {(r["student"], r["exercise"]): r for r in rows}


# -- the round trip --------------------------------------------------------------------------------------------


def test_nbgrader_gradebook_scores_equal_bpttlab_grade(course):
    ours = bpttlab_rows(course["root"])
    theirs = nbgrader_scores(course["root"])
    assert set(theirs) == {key for key in ours if key[0] != "kernel_dies"}
    for key, score in theirs.items():
        assert score == pytest.approx(ours[key]["score"], abs=1e-6), (key, ours[key]["diagnosis"])
    diagnoses = {key: row["diagnosis"] for key, row in ours.items()}
    # the sample covers full marks, catalogued mistakes (0 even where they coincide with the answer),
    # raising, stubs and a dead kernel; partial credit is the next test
    assert diagnoses["correct", "grad-W"] == "correct" and theirs["correct", "grad-W"] == 3.0
    assert diagnoses["mistakes", "grad-W"] == "explicit_only"
    assert diagnoses["mistakes", "grad-V"] == "sign_flipped"
    assert diagnoses["transposed", "grad-W"] == "transposed"
    assert diagnoses["mistakes", "clip-norm"] == "clipped_by_value" and theirs["mistakes", "clip-norm"] == 0
    assert diagnoses["raises_always", "grad-V"] == "raised" and theirs["raises_always", "grad-V"] == 0
    assert diagnoses["untouched", "grad-W"] == "raised"


def test_a_dead_kernel_is_graded_by_bpttlab_and_refused_by_nbgrader(course):
    """nbgrader stops at a dead kernel and records no grade for that notebook (the teacher sees the error);
    bpttlab grade keeps what was earned before it and says why the rest scores 0."""
    assert "DeadKernelError" in course["autograde_log"] or "Kernel died" in course["autograde_log"]
    assert not (course["root"] / "autograded" / "kernel_dies" / "ps1" / "ps1.ipynb").exists()
    ours = bpttlab_rows(course["root"])
    assert [ours["kernel_dies", ex]["diagnosis"] for ex in POINTS] == ["correct", "kernel-died", "kernel-died"]


def test_partial_credit_is_the_share_of_instances_passed(course):
    theirs = nbgrader_scores(course["root"])
    expected = bl.grade("clip-norm", _function(CLIP_VALUES, "clip_by_norm"), hidden_seed=SEED).score
    assert theirs["mistakes", "clip-norm"] == pytest.approx(expected)
    partial = bl.grade("grad-W", _function(STUDENTS["raises_sometimes"]["grad-W"], "grad_W"), hidden_seed=SEED).score
    assert theirs["raises_sometimes", "grad-W"] == pytest.approx(partial)


def _function(source: str, name: str):
    import numpy as np

    namespace = {"np": np}
    exec(source, namespace)  # noqa: S102 - the test's own sample answers
    return namespace[name]


def test_nbgraders_feedback_shows_bpttlabs_diagnosis(course):
    page = (course["root"] / "feedback" / "mistakes" / "ps1" / "ps1.html").read_text(encoding="utf-8")
    assert "explicit term only (implicit paths missing)" in page
    assert "Hint:" in page and "Hidden instances: 0 of 4 right" in page
    assert "drawn afresh" not in page  # graded with the course's seed, not a fresh one
    correct = (course["root"] / "feedback" / "correct" / "ps1" / "ps1.html").read_text(encoding="utf-8")
    assert "3 / 3" in correct


def test_the_hidden_seed_is_in_no_notebook_a_student_sees(course):
    for path in [*(course["root"] / "release").rglob("*.ipynb"), *(course["root"] / "source").rglob("*.ipynb")]:
        assert str(SEED) not in path.read_text(encoding="utf-8")


# -- the source notebook ------------------------------------------------------------------------------------------


def test_source_notebook_has_answer_and_locked_test_cells(course):
    source = nbformat.read(course["root"] / "source" / "ps1" / "ps1.ipynb", as_version=4)
    meta = [(c.cell_type, c.metadata.get("nbgrader")) for c in source.cells]
    graded = {m["grade_id"]: m for _, m in meta if m}
    assert set(graded) == {"grad-V", "grad-V-test", "answer-1", "grad-W", "grad-W-test", "clip-norm",
                           "clip-norm-test"}
    for ex, points in POINTS.items():
        assert graded[ex] == {"schema_version": 3, "grade": False, "solution": True, "locked": False, "grade_id": ex}
        assert graded[f"{ex}-test"] == {"schema_version": 3, "grade": True, "solution": False, "locked": True,
                                        "grade_id": f"{ex}-test", "points": points}
    assert graded["answer-1"]["grade"] and graded["answer-1"]["solution"] and graded["answer-1"]["points"] == 0
    for i, cell in enumerate(source.cells):
        test = cell.metadata.get("bpttlab", {}).get("test")
        if test:  # each test cell follows its answer cell
            assert source.cells[i - 1].metadata["bpttlab"]["exercise"] == test
            assert f"autograde({test!r})" in cell.source
    text = "\n".join(c.source for c in source.cells)
    assert "%%bptt exercise" not in text and text.count("### BEGIN SOLUTION") == 4


def test_handed_out_notebook_has_stubs_and_read_only_tests(course):
    nb = course["handed_out"]
    text = "\n".join(c.source for c in nb.cells)
    assert "SOLUTION" not in text and "np.outer" not in text and "It only feeds" not in text
    tests = [c for c in nb.cells if c.metadata.get("bpttlab", {}).get("test")]
    assert len(tests) == 3 and all(c.metadata["editable"] is False for c in tests)


def test_the_source_notebook_passes_nbgraders_validation(tmp_path):
    from nbgrader.nbgraderformat import MetadataValidator

    nb = N.to_nbgrader(teacher_notebook())
    MetadataValidator().validate_nb(nb)


@pytest.mark.parametrize("edit, message", [
    (lambda nb: nb.cells.append(new_code_cell("%%bptt exercise grad-W\ndef grad_W(): pass")),
     "exercise grad-W already has an answer cell (cell 5)"),
    (lambda nb: setattr(nb.cells[2], "source", nb.cells[2].source.replace("grad-V", "grad-Q", 1)),
     "unknown exercise 'grad-Q'"),
    (lambda nb: setattr(nb.cells[4], "source", nb.cells[4].source.replace("    ### END SOLUTION", "")),
     "nb.ipynb, cell 5: BEGIN SOLUTION without an END SOLUTION"),
])
def test_release_nbgrader_reports_what_it_cannot_convert(tmp_path, capsys, edit, message):
    nb = teacher_notebook()
    edit(nb)
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    status = cli.main(["release", "--format", "nbgrader", str(path), "--out", str(tmp_path / "out")])
    assert status == 1 and message in capsys.readouterr().err


# -- the seed ------------------------------------------------------------------------------------------------------


def test_hidden_seed_from_the_environment_or_a_file(tmp_path, monkeypatch):
    monkeypatch.delenv(N.SEED_ENV, raising=False)
    monkeypatch.delenv(N.SEED_FILE_ENV, raising=False)
    monkeypatch.delenv(N.NBGRADER_EXECUTION, raising=False)
    assert N.hidden_seed() is None  # a student running the test cell: drawn afresh
    monkeypatch.setenv(N.NBGRADER_EXECUTION, "autograde")
    with pytest.raises(RuntimeError, match=f"run nbgrader autograde with {N.SEED_ENV}=N"):
        N.hidden_seed()
    (tmp_path / "seed").write_text("17\n")
    (tmp_path / "grading.json").write_text('{"seed": 23}\n')
    (tmp_path / "bad").write_text("seventeen")
    monkeypatch.setenv(N.SEED_FILE_ENV, str(tmp_path / "seed"))
    assert N.hidden_seed() == 17
    monkeypatch.setenv(N.SEED_FILE_ENV, str(tmp_path / "grading.json"))  # the seed bpttlab grade stored
    assert N.hidden_seed() == 23
    monkeypatch.setenv(N.SEED_FILE_ENV, str(tmp_path / "bad"))
    with pytest.raises(ValueError, match="must hold an integer seed, got 'seventeen'"):
        N.hidden_seed()
    monkeypatch.setenv(N.SEED_ENV, "5")  # the variable wins over the file
    assert N.hidden_seed() == 5


def test_autograde_returns_the_score_and_says_what_is_missing(monkeypatch, capsys):
    monkeypatch.setenv(N.SEED_ENV, str(SEED))
    monkeypatch.delenv("BPTTLAB_BATCH_GRADING", raising=False)
    right = _function(RIGHT["grad-W"], "grad_W")
    score = N.autograde("grad-W", {"grad_W": right})
    assert float(score) == 3.0 and repr(score) == "3.0"  # the text nbgrader reads
    assert float(N.autograde("grad-W", {})) == 0.0
    from IPython.core.formatters import PlainTextFormatter

    text = PlainTextFormatter(float_precision="%.2f")
    assert text(N.Score(5 / 7)) == repr(5 / 7) and text(5 / 7) == "0.71"  # a notebook's %precision 2
    assert "must define the function grad_W" in capsys.readouterr().out
    monkeypatch.setenv("BPTTLAB_BATCH_GRADING", "1")  # bpttlab grade runs the notebook: it grades itself
    assert N.autograde("grad-W", {"grad_W": right}) is None


def test_every_chapter_converts_to_a_valid_nbgrader_source_notebook():
    from nbgrader.nbgraderformat import MetadataValidator

    from bpttlab.grading.notebooks import exercise_cells

    chapters = sorted((Path(__file__).resolve().parents[1] / "workbooks").glob("[0-9]*.ipynb"))
    assert chapters
    for chapter in chapters:
        teacher = nbformat.read(chapter, as_version=4)
        nb = N.to_nbgrader(teacher, name=chapter.name)
        MetadataValidator().validate_nb(nb)
        tests = {c.metadata["bpttlab"]["test"]: c.metadata["nbgrader"]["points"] for c in nb.cells
                 if "test" in c.metadata.get("bpttlab", {})}
        assert tests == {ex: bl.grading.get_exercise(ex).points for ex in exercise_cells(teacher)}, chapter.name
