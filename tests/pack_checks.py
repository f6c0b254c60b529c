"""Checks every exercise module's tests share: a right answer gets full marks; a catalogued mistake is
diagnosed, located at its first wrong time step and scores 0 on every instance; no slip coincides with the
reference on any instance; central finite differences of a NumPy loss.

The first wrong step is found here directly, by calling the student's function and the right one on the
first n steps of the instance (or row by row), never from the grader's own diagnosis.
"""
from __future__ import annotations

import numpy as np

import bpttlab as bl
from bpttlab.grading import CATALOGUE, get_exercise
from bpttlab.grading.instances import hidden_instances, public_instances

SEEDS = (0, 7, 2024)


def _flat(answer) -> np.ndarray:
    if isinstance(answer, dict):
        return np.concatenate([np.ravel(np.asarray(answer[k], dtype=float)) for k in sorted(answer)])
    return np.ravel(np.asarray(answer, dtype=float))


def differs(answer, right, rtol: float = 1e-6, atol: float = 1e-9) -> bool:
    """True when ``answer`` is not ``right`` (arrays or dicts of arrays) to the given tolerance."""
    if isinstance(right, dict) and (not isinstance(answer, dict) or set(answer) != set(right)):
        return True
    a, r = _flat(answer), _flat(right)
    return a.shape != r.shape or bool(np.any(np.abs(a - r) > atol + rtol * np.abs(r).max(initial=0.0)))


def expected_step(exercise, student, right, inputs) -> int | None:
    """The first wrong time step (1-based), found by comparing the two functions on prefixes or rows."""
    tl = exercise.timeline
    if tl is None:
        return None
    if tl.mode == "rows":
        a, r = np.asarray(student(**inputs)), np.asarray(right(**inputs))
        rows = np.flatnonzero([differs(a[i], r[i]) for i in range(len(r))])
        return int(rows[-1] if tl.backward else rows[0]) + 1
    for n in range(1, tl.steps(inputs)):
        cut = tl.cut(inputs, n)
        if differs(student(**cut), right(**cut)):
            return n
    return tl.steps(inputs)


def all_instances(exercise_id: str, seeds=SEEDS):
    """The public instances and the hidden ones of every seed."""
    ex = get_exercise(exercise_id)
    return public_instances(ex) + [inst for seed in seeds for inst in hidden_instances(ex, seed)]


def assert_full_marks(exercise_id: str, right) -> None:
    ex = get_exercise(exercise_id)
    for seed in SEEDS:
        fb = bl.grade(exercise_id, right, hidden_seed=seed)
        assert fb.passed and fb.score == ex.points and fb.diagnosis == "correct", fb.text
        assert [v.visibility for v in fb.verdicts] == ["public"] * ex.n_public + ["hidden"] * ex.n_hidden


def assert_diagnosed_and_scores_zero(exercise_id: str, student, mistake: str, right) -> None:
    """Every instance fails, each is diagnosed as ``mistake`` at the first wrong step, the score is 0."""
    ex = get_exercise(exercise_id)
    for seed in SEEDS:
        fb = bl.grade(exercise_id, student, hidden_seed=seed)
        assert fb.score == 0.0 and fb.diagnosis == mistake, fb.text
        insts = public_instances(ex) + hidden_instances(ex, seed)
        for v, inst in zip(fb.verdicts, insts):
            assert not v.passed and v.mistake == mistake, (v.visibility, v.number, v.problem, v.mistake)
            assert v.step == expected_step(ex, student, right, inst.inputs)
        assert f"Diagnosis: {CATALOGUE[mistake].title}" in fb.text
        if fb.main.step is not None:
            assert f"at t = {fb.main.step}" in fb.text


def assert_every_slip_fails_every_instance(exercise_id: str) -> None:
    """Issue 16 item 2: no catalogued mistake coincides with the reference on any instance."""
    ex = get_exercise(exercise_id)
    for inst in all_instances(exercise_id):
        for slip in ex.slips:
            assert differs(slip.compute(**inst.inputs), inst.answer, ex.rtol, ex.atol), (slip.detail, inst.label)


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
    """The tests every exercise module has, for ``mistakes`` = [(name, student, catalogue key)]: full marks
    for ``right``, each mistake diagnosed at its first wrong step with score 0, every slip of the exercise
    made by some student, and no slip coinciding with the reference. Assign them to module-level names."""
    import pytest

    def test_a_right_answer_gets_full_marks():
        assert_full_marks(exercise_id, right)

    @pytest.mark.parametrize("name, student, mistake", mistakes, ids=[m[0] for m in mistakes])
    def test_each_mistake_is_diagnosed_at_its_first_wrong_step_and_scores_zero(name, student, mistake):
        assert_diagnosed_and_scores_zero(exercise_id, student, mistake, right)

    def test_every_slip_of_the_exercise_is_made_by_some_student():
        assert {s.mistake for s in get_exercise(exercise_id).slips} == {m for _, _, m in mistakes}

    def test_no_slip_coincides_with_the_reference():
        assert_every_slip_fails_every_instance(exercise_id)

    return (test_a_right_answer_gets_full_marks,
            test_each_mistake_is_diagnosed_at_its_first_wrong_step_and_scores_zero,
            test_every_slip_of_the_exercise_is_made_by_some_student,
            test_no_slip_coincides_with_the_reference)
