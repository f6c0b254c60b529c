"""Checks the tests of the exercise modules share: a right answer gets full marks, a catalogued mistake is
diagnosed, located at its first wrong time step and scores 0, and finite differences of a NumPy loss.

The first wrong step is found directly, by calling the student's function and the right one on the first
n steps of the instance, n = 1, 2, ...; nothing here comes from the grader's own diagnosis.
"""
from __future__ import annotations

import numpy as np

import bpttlab as bl
from bpttlab.grading import CATALOGUE, get_exercise
from bpttlab.grading.instances import hidden_instances, public_instances

SEEDS = (20240607, 7)


def differs(a, b) -> bool:
    if isinstance(b, dict):
        return set(a) != set(b) or any(differs(a[k], b[k]) for k in b)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape != b.shape or not np.allclose(a, b, rtol=1e-6, atol=1e-9)


def first_wrong_step(fn, right, inputs, args=("xs", "targets")) -> int:
    for n in range(1, len(inputs[args[0]]) + 1):
        cut = dict(inputs, **{name: np.asarray(inputs[name])[:n] for name in args})
        if differs(fn(**cut), right(**cut)):
            return n
    raise AssertionError("the mistaken answer agrees with the right one on every prefix")


def assert_full_marks(exercise_id: str, fn) -> None:
    ex = get_exercise(exercise_id)
    for seed in SEEDS:
        fb = bl.grade(exercise_id, fn, hidden_seed=seed)
        assert fb.passed and fb.score == ex.points and fb.diagnosis == "correct", fb.text
        assert [v.visibility for v in fb.verdicts] == ["public"] * ex.n_public + ["hidden"] * ex.n_hidden


def assert_diagnosed_and_scores_zero(exercise_id: str, student, mistake: str, right) -> None:
    """Every instance fails, is diagnosed as ``mistake`` at the step found directly, and the score is 0."""
    ex = get_exercise(exercise_id)
    for seed in SEEDS:
        fb = bl.grade(exercise_id, student, hidden_seed=seed)
        assert fb.score == 0 and fb.diagnosis == mistake, fb.text
        insts = public_instances(ex) + hidden_instances(ex, seed)
        for v, inst in zip(fb.verdicts, insts):
            assert not v.passed and v.mistake == mistake, (v.visibility, v.number, v.problem, v.mistake)
            if ex.timeline is not None:
                assert v.step == first_wrong_step(student, right, inst.inputs), (v.step, inst.inputs["xs"].shape)
        assert f"Diagnosis: {CATALOGUE[mistake].title}" in fb.text


def finite_difference_gradient(loss, params: dict, eps: float = 1e-6) -> dict:
    """Central differences of ``loss(params)`` with respect to every entry of every array."""
    grads = {}
    for name, value in params.items():
        value = np.asarray(value, dtype=float)
        g = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            for sign in (1, -1):
                moved = value.copy()
                moved[index] += sign * eps
                g[index] += sign * loss({**params, name: moved}) / (2 * eps)
        grads[name] = g
    return grads


def standard_tests(exercise_id: str, right, mistakes):
    """The three tests every exercise module has, for ``mistakes`` = [(name, student, catalogue key)]:
    full marks for ``right``, each mistake diagnosed at its first wrong step with score 0, and every slip
    of the exercise made by some student. Assign them to module-level test names."""
    import pytest

    def test_a_right_answer_gets_full_marks():
        assert_full_marks(exercise_id, right)

    @pytest.mark.parametrize("name, student, mistake", mistakes, ids=[m[0] for m in mistakes])
    def test_each_mistake_is_diagnosed_at_its_first_wrong_step_and_scores_zero(name, student, mistake):
        assert_diagnosed_and_scores_zero(exercise_id, student, mistake, right)

    def test_every_slip_of_the_exercise_is_made_by_some_student():
        assert {s.mistake for s in get_exercise(exercise_id).slips} == {m for _, _, m in mistakes}

    return (test_a_right_answer_gets_full_marks,
            test_each_mistake_is_diagnosed_at_its_first_wrong_step_and_scores_zero,
            test_every_slip_of_the_exercise_is_made_by_some_student)
