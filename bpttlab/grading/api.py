"""Grading from a notebook: ``bl.grade(ID, fn)`` and the ``%%bptt exercise ID`` cell magic.

Both draw the exercise's public instances and a fresh set of hidden ones, call the function on each
(watched: a function that uses bpttlab itself scores 0, see :mod:`~bpttlab.grading.library_use`),
diagnose what is wrong and return a :class:`~bpttlab.grading.feedback.Feedback`, which renders as a short
HTML block in the notebook and as text elsewhere.
"""
from __future__ import annotations

import io
import os
import secrets
from contextlib import redirect_stdout

from .. import registry
from . import library_use
from .diagnosis import assess
from .exercise import Exercise
from .feedback import Feedback
from .instances import hidden_instances, public_instances
from .notebooks import defines
from .sandbox import call


#: Set (to "1") in the kernels the batch grader runs notebooks in: ``%%bptt exercise`` cells then only run,
#: since the grader grades their functions itself, in its own process.
BATCH_ENV = "BPTTLAB_BATCH_GRADING"


def exercises() -> list[Exercise]:
    """Every exercise of every registered pack, pack by pack."""
    return [ex for _, pack in registry.exercises.items() for ex in pack.exercises]


def get_exercise(exercise_id: str) -> Exercise:
    """The exercise called ``exercise_id`` in the registered packs (``"pack:id"`` picks a pack).

    Raises:
        TypeError: ``exercise_id`` is not a string.
        ValueError: no such exercise (the message lists them), or the id is in several packs.
    """
    if isinstance(exercise_id, Exercise):
        return exercise_id
    if not isinstance(exercise_id, str):
        raise TypeError(f"exercise_id must be an exercise id (str), got {type(exercise_id).__name__}")
    if ":" in exercise_id:
        pack_name, _, ex_id = exercise_id.partition(":")
        return registry.exercises.get(pack_name, "exercise pack").get(ex_id)
    found = [(name, ex) for name, pack in registry.exercises.items() for ex in pack.exercises
             if ex.id == exercise_id]
    if len(found) == 1:
        return found[0][1]
    if found:
        raise ValueError(f"exercise {exercise_id!r} is in several packs; say which: "
                         f"{', '.join(f'{name}:{exercise_id}' for name, _ in found)}")
    known = ", ".join(ex.id for ex in exercises()) or "(none)"
    broken = "".join(f"; exercise pack {name!r} failed to load: {why}"
                     for name, why in registry.exercises.broken.items())
    raise ValueError(f"unknown exercise {exercise_id!r}; registered exercises: {known}{broken}")


def grade(exercise_id: str, fn, *, hidden_seed: int | None = None) -> Feedback:
    """Grade a function against an exercise, on its public instances and on hidden ones.

    Args:
        exercise_id: the exercise (``bl.registry.exercises`` lists the packs), or an Exercise.
        fn: the student's function, called with the exercise's keyword arguments.
        hidden_seed: the seed of the hidden instances; None draws a fresh random one, so the hidden
            instances cannot be known in advance.

    Returns:
        the :class:`Feedback` (score, what passed, the diagnosis, a hint).

    Example:
        >>> import numpy as np, bpttlab as bl
        >>> def grad_V(W, U, b, V, c, xs, targets):
        ...     h, g = np.zeros(len(b)), np.zeros_like(V)
        ...     for x, y in zip(xs, targets):
        ...         h = np.tanh(W @ h + U @ x + b)
        ...         g += np.outer(V @ h + c - y, h)
        ...     return g
        >>> bl.grade("grad-V", grad_V).passed
        True
    """
    exercise = get_exercise(exercise_id)
    if not callable(fn):
        raise TypeError(f"fn must be the function to grade, got {type(fn).__name__}")
    seed = secrets.randbits(63) if hidden_seed is None else hidden_seed
    instances = public_instances(exercise) + hidden_instances(exercise, seed)
    cache: dict[tuple[int, int | None], dict] = {}
    printed = io.StringIO()
    graded = library_use.watched(fn)

    def outcome(i: int, n: int | None) -> dict:
        if (i, n) not in cache:
            inputs = instances[i].inputs if n is None else exercise.timeline.cut(instances[i].inputs, n)
            with redirect_stdout(printed):
                cache[i, n] = call(graded, inputs)
        return cache[i, n]

    verdicts = assess(exercise, instances, outcome, library=library_use.in_function(fn))
    lines = printed.getvalue().count("\n")
    notes = (f"your function printed {lines} line(s) while it was being graded; they are not shown",) if lines else ()
    return Feedback(exercise, verdicts, notes=notes, redrawn=hidden_seed is None)


def run_exercise_cell(shell, exercise_id: str, source: str) -> Feedback | None:
    """Run a ``%%bptt exercise ID`` cell in the user namespace and grade the function it defines.

    Args:
        shell: the IPython shell.
        exercise_id: the exercise.
        source: the cell's code (without the magic line).

    Returns:
        the :class:`Feedback`; a cell that does not define the exercise's function gets one that says so.
        None when the batch grader runs the notebook (:data:`BATCH_ENV` set): the cell only runs.

    Raises:
        UsageError: the exercise is unknown.
    """
    from IPython.core.error import UsageError

    try:
        exercise = get_exercise(exercise_id)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"%%bptt exercise: {exc}") from None
    result = shell.run_cell(source, store_history=False)
    if os.environ.get(BATCH_ENV) == "1":
        return None
    if result.error_before_exec is not None:
        return Feedback(exercise, reason=f"the cell could not run: {result.error_before_exec}",
                        status="syntax-error")
    if not defines(source, exercise.function):
        return Feedback(exercise, reason=f"this cell must define the function {exercise.signature}",
                        status="no-function")
    fn = shell.user_ns.get(exercise.function)
    if not callable(fn):
        return Feedback(exercise, reason=f"{exercise.function} is not a function; the exercise asks for "
                                         f"{exercise.signature}", status="no-function")
    feedback = grade(exercise, fn)
    if result.error_in_exec is not None:
        feedback.notes += (f"the cell raised {type(result.error_in_exec).__name__} after defining "
                           f"{exercise.function}; the function was graded anyway",)
    return feedback
