"""Chapters as nbgrader *source* notebooks, and the autograder test cell they hand out.

``bpttlab release --format nbgrader`` turns a teacher notebook into a notebook that nbgrader's own
commands (``generate_assignment``, ``autograde``, ``generate_feedback``) take unchanged:

* each exercise cell becomes an **autograded answer cell**: nbgrader cell metadata (schema version 3,
  ``solution: true``, ``grade_id`` = the exercise id, so it is stable from one release to the next), the
  model answer left between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's own markers, the
  same as bpttlab's), its ``%%bptt exercise`` line removed (the test cell below grades it) and the
  exercise id kept in ``metadata.bpttlab.exercise``, so ``bpttlab grade`` finds the cell too;
* right after it comes a **read-only autograder test cell** (``grade: true, locked: true``, worth the
  exercise's points, ``grade_id`` = ``ID-test``) that calls :func:`autograde`;
* any other cell with a solution region becomes an nbgrader answer cell: a code cell an ungraded one,
  a markdown cell a manually graded one worth 0 points (the teacher may give it points in the formgrader).

:func:`autograde` grades the student's function with :func:`bpttlab.grading.grade` on the public instances
and on hidden ones, displays bpttlab's feedback (the diagnosis and the hints; nbgrader keeps it in the
feedback it generates) and returns the score, which nbgrader records as the cell's partial credit. The
hidden seed is never in a notebook: during ``nbgrader autograde`` it is read from the environment
variable :data:`SEED_ENV`, or from the file named by :data:`SEED_FILE_ENV` (the integer, or bpttlab's
``grading.json``), so ``bpttlab grade --seed N`` and nbgrader give the same marks. A student who runs the
test cell is graded on hidden instances drawn afresh, as ``%%bptt exercise`` does.
"""
from __future__ import annotations

import copy
import io
import json
import os
import re
import sys
import warnings
from contextlib import redirect_stderr
from dataclasses import dataclass
from pathlib import Path

from .api import BATCH_ENV, get_exercise, grade
from .feedback import Feedback
from .notebooks import MAGIC, cell_exercise, strip_solutions

#: Environment variable holding the hidden seed during ``nbgrader autograde``.
SEED_ENV = "BPTTLAB_HIDDEN_SEED"
#: Environment variable naming a file that holds the hidden seed (an integer, or ``{"seed": N}``).
SEED_FILE_ENV = "BPTTLAB_HIDDEN_SEED_FILE"
#: What nbgrader sets ``NBGRADER_EXECUTION`` to while it autogrades.
NBGRADER_EXECUTION = "NBGRADER_EXECUTION"
#: nbgrader's cell metadata schema version that these notebooks follow.
SCHEMA_VERSION = 3

_GRADE_ID = re.compile(r"[^A-Za-z0-9_\-]")


def grade_id(exercise_id: str) -> str:
    """The nbgrader ``grade_id`` of an exercise's answer cell (nbgrader allows letters, digits, ``_`` and
    ``-``; a pack prefix ``pack:id`` becomes ``pack-id``)."""
    return _GRADE_ID.sub("-", exercise_id)


def cell_metadata(grade_id: str, *, solution: bool = False, grade: bool = False, locked: bool = False,
                  points: float | None = None) -> dict:
    """nbgrader's cell metadata (schema version 3): ``points`` only for a grade cell."""
    meta = {"schema_version": SCHEMA_VERSION, "grade": grade, "solution": solution, "locked": locked,
            "grade_id": grade_id}
    if grade:
        meta["points"] = float(points)
    return meta


def autograder_source(exercise) -> str:
    """The autograder test cell of an exercise: a comment for the student and one call."""
    worth = f"{exercise.points:g} point" + ("" if exercise.points == 1 else "s")
    return (f"# Autograder test of exercise {exercise.id} ({worth}). Do not edit this cell:\n"
            f"# run it for feedback on {exercise.function}. Your grade comes from hidden instances drawn when\n"
            "# your work is graded.\n"
            "from bpttlab.grading.nbgrader_format import autograde\n"
            f"autograde({exercise.id!r})")


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def to_nbgrader(nb, known_ids=None, name: str = "notebook"):
    """The nbgrader source version of a teacher notebook (a new notebook; the input is not changed).

    Args:
        nb: the teacher notebook (nbformat v4), exercise cells marked as for ``bpttlab release``.
        known_ids: exercise ids that exist; None looks each one up in the registered packs.
        name: the notebook's name, for messages.

    Raises:
        ValueError: unbalanced solution markers, an exercise cell without them, an unknown exercise, or one
            exercise in two cells.
    """
    import nbformat
    from nbformat.v4 import new_code_cell

    out = copy.deepcopy(nb)
    cells, seen, answers = [], {}, 0
    for index, cell in enumerate(out.cells, 1):
        where = f"{name}, cell {index}"
        ex_id = cell_exercise(cell)
        _, has_solution = strip_solutions(_source(cell), ("",), where)  # checks the markers
        if ex_id is None:
            if has_solution:
                answers += 1
                markdown = cell.cell_type == "markdown"
                cell.metadata["nbgrader"] = cell_metadata(f"answer-{answers}", solution=True, grade=markdown,
                                                          points=0.0)
            cells.append(cell)
            continue
        if known_ids is not None and ex_id not in known_ids:
            raise ValueError(f"{where}: unknown exercise {ex_id!r}; known: {', '.join(sorted(known_ids))}")
        try:
            exercise = get_exercise(ex_id)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        gid = grade_id(ex_id)
        if gid in seen:
            raise ValueError(f"{where}: exercise {ex_id} already has an answer cell (cell {seen[gid]}); an "
                             "nbgrader notebook grades each exercise once")
        seen[gid] = index
        if not has_solution:
            raise ValueError(f"{where}: exercise cell {ex_id!r} has no solution markers (### BEGIN SOLUTION and "
                             "### END SOLUTION around the answer); nbgrader would hand out its answer")
        lines = _source(cell).split("\n")
        if lines and MAGIC.match(lines[0]):
            lines = lines[1:]
        cell.source = "\n".join(lines)
        cell.outputs, cell.execution_count = [], None
        cell.metadata.setdefault("bpttlab", {})["exercise"] = ex_id
        cell.metadata["nbgrader"] = cell_metadata(gid, solution=True)
        test = new_code_cell(autograder_source(exercise), metadata={
            "nbgrader": cell_metadata(f"{gid}-test", grade=True, locked=True, points=exercise.points),
            "bpttlab": {"test": ex_id}})
        cells += [cell, test]
    out.cells = cells
    nbformat.validate(out)
    return out


# -- the test cell ------------------------------------------------------------------------------------


def hidden_seed() -> int | None:
    """The hidden seed supplied for autograding: :data:`SEED_ENV`, else the file named by
    :data:`SEED_FILE_ENV`; None when neither is set outside ``nbgrader autograde`` (a student running the
    test cell: hidden instances are drawn afresh).

    Raises:
        ValueError: the variable or the file does not hold an integer seed.
        RuntimeError: ``nbgrader autograde`` is running and no seed was supplied (every mark would come
            from a random seed, differently for each student).
    """
    text = os.environ.get(SEED_ENV)
    where = f"the environment variable {SEED_ENV}"
    if text is None and os.environ.get(SEED_FILE_ENV):
        path = Path(os.environ[SEED_FILE_ENV])
        where = f"the file {path} (named by {SEED_FILE_ENV})"
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"{where} cannot be read: {exc.strerror}") from None
        if text.startswith("{"):
            try:
                text = str(json.loads(text)["seed"])
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"{where} must hold an integer or a JSON object with a \"seed\"") from None
    if text is None:
        if os.environ.get(NBGRADER_EXECUTION) == "autograde":
            raise RuntimeError(f"no hidden seed: run nbgrader autograde with {SEED_ENV}=N (or {SEED_FILE_ENV} "
                               "naming a file that holds N) in its environment, N the course's seed")
        return None
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{where} must hold an integer seed, got {text.strip()[:40]!r}") from None


@dataclass(frozen=True)
class Score:
    """The points a test cell earned. Its text is the number in full (``repr`` of the float, whatever
    ``%precision`` a notebook set), which nbgrader reads as the cell's partial credit."""

    points: float

    def __repr__(self) -> str:
        return repr(float(self.points))

    def __float__(self) -> float:
        return float(self.points)


def autograde(exercise_id: str, namespace: dict | None = None) -> Score | None:
    """Grade the function an exercise asks for, as an nbgrader test cell does.

    Displays bpttlab's feedback and returns the :class:`Score` (between 0 and the exercise's points),
    which nbgrader reads as the cell's partial credit. Warnings and anything the function writes to
    stderr while it is graded are kept out of the cell's output (nbgrader gives no credit to a test
    cell that wrote to stderr).

    Args:
        exercise_id: the exercise.
        namespace: where to find the student's function; by default the caller's globals (the notebook's
            namespace when called from a cell).

    Returns:
        the score; None when ``bpttlab grade`` is running the notebook (it grades the function itself).
    """
    if os.environ.get(BATCH_ENV) == "1":
        return None
    exercise = get_exercise(exercise_id)
    names = sys._getframe(1).f_globals if namespace is None else namespace
    fn = names.get(exercise.function)
    if not callable(fn):
        feedback = Feedback(exercise, status="no-function",
                            reason=f"the notebook must define the function {exercise.signature}")
    else:
        seed = hidden_seed()
        with redirect_stderr(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            feedback = grade(exercise, fn, hidden_seed=seed)
    _show(feedback)
    return Score(min(feedback.score, feedback.points))


def _show(feedback: Feedback) -> None:
    try:
        from IPython.display import display
    except ImportError:  # outside IPython
        print(feedback.text)
        return
    display(feedback)
