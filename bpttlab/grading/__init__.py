"""Auto-graded exercises: exercises as data, diagnoses of common mistakes, feedback, and a batch grader.

* :func:`grade` (``bl.grade``) grades a function against an exercise; ``%%bptt exercise ID`` runs a
  notebook cell and grades what it defines (:func:`run_exercise_cell`).
* :mod:`~bpttlab.grading.pack` holds the built-in exercises (the ``core`` pack); packs are plugins of
  the ``bpttlab.exercises`` entry-point group.
* ``bpttlab grade`` / ``bpttlab release`` (:mod:`~bpttlab.grading.commands`) grade a batch of student
  notebooks and produce student versions of teacher notebooks.
"""
from __future__ import annotations

from .api import exercises, get_exercise, grade, run_exercise_cell
from .exercise import Exercise, ExercisePack, Slip, Timeline
from .feedback import Feedback
from .mistakes import CATALOGUE, Mistake

__all__ = ["CATALOGUE", "Exercise", "ExercisePack", "Feedback", "Mistake", "Slip", "Timeline", "exercises",
           "get_exercise", "grade", "run_exercise_cell"]
