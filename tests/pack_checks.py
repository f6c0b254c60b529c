"""Checks every exercise module of the core pack runs on its students (tests/students_<topic>.py):
full marks for a right answer, and for each catalogued mistake the diagnosis, score 0 and the first
wrong time step, located here independently of the grader."""
from __future__ import annotations

import numpy as np

import bpttlab as bl
from bpttlab.grading import get_exercise
from bpttlab.grading.instances import hidden_instances, public_instances

SEEDS = (0, 1, 7, 2024)


def _flat(answer) -> np.ndarray:
    if isinstance(answer, dict):
        return np.concatenate([np.ravel(np.asarray(answer[k], dtype=float)) for k in sorted(answer)])
    return np.ravel(np.asarray(answer, dtype=float))


def differs(answer, right, rtol=1e-6, atol=1e-9) -> bool:
    a, r = _flat(answer), _flat(right)
    return a.shape != r.shape or bool(np.any(np.abs(a - r) > atol + rtol * np.abs(r).max()))


def expected_step(exercise, student, right, inputs) -> int | None:
    """The first wrong time step, found by this test's own comparison of the two students."""
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
    ex = get_exercise(exercise_id)
    return public_instances(ex) + [inst for seed in seeds for inst in hidden_instances(ex, seed)]


def assert_full_marks(exercise_id: str, right) -> None:
    ex = get_exercise(exercise_id)
    for seed in SEEDS:
        fb = bl.grade(exercise_id, right, hidden_seed=seed)
        assert fb.passed and fb.score == ex.points, fb.text


def assert_diagnosed_with_score_zero(exercise_id: str, student, right, mistake: str) -> None:
    """Every instance fails, each is diagnosed as ``mistake`` at the first wrong step, the score is 0."""
    ex = get_exercise(exercise_id)
    for seed in SEEDS:
        fb = bl.grade(exercise_id, student, hidden_seed=seed)
        assert fb.score == 0.0, fb.text
        assert fb.diagnosis == mistake, fb.text
        insts = public_instances(ex) + hidden_instances(ex, seed)
        for v, inst in zip(fb.verdicts, insts):
            assert not v.passed and v.mistake == mistake, (v.visibility, v.number, v.problem)
            assert v.step == expected_step(ex, student, right, inst.inputs)
        if fb.main.step is not None:
            assert f"at t = {fb.main.step}" in fb.text


def assert_every_slip_fails_every_instance(exercise_id: str) -> None:
    """Issue 16 item 2: no catalogued mistake coincides with the reference on any instance."""
    ex = get_exercise(exercise_id)
    for inst in all_instances(exercise_id):
        for slip in ex.slips:
            assert differs(slip.compute(**inst.inputs), inst.answer, ex.rtol, ex.atol), (slip.detail, inst.label)
