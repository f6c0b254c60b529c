"""Exercise ``jordan-grad-V`` (chapter 8): the reference against finite differences of a NumPy Jordan
network, a right NumPy answer, and each catalogued mistake written as a student would."""
from __future__ import annotations

import numpy as np

from bpttlab.grading import get_exercise
from bpttlab.grading.instances import hidden_instances, public_instances
import pack_students as S
from pack_checks import SEEDS, finite_difference_gradient, standard_tests

ID = "jordan-grad-V"
right = S.CORRECT[ID]


def _loss(xs, targets):
    def loss(p):
        o, E = np.zeros(len(p["c"])), 0.0
        for x, y in zip(xs, targets):
            o = p["V"] @ np.tanh(p["W"] @ o + p["U"] @ x + p["b"]) + p["c"]
            E += 0.5 * float(np.sum((o - y) ** 2))
        return E
    return loss


def test_reference_equals_finite_differences_and_has_a_large_implicit_part():
    ex = get_exercise(ID)
    for inst in public_instances(ex) + hidden_instances(ex, SEEDS[0]):
        kw = inst.inputs
        params = {k: kw[k] for k in "WUbVc"}
        fd = finite_difference_gradient(_loss(kw["xs"], kw["targets"]), params)["V"]
        np.testing.assert_allclose(inst.answer, fd, rtol=1e-6, atol=1e-8)
        explicit = dict((n, f) for n, f, _ in S.MISTAKES[ID])["elman_formula"](**kw)
        assert np.linalg.norm(inst.answer - explicit) > 0.05 * np.linalg.norm(inst.answer)


(test_a_right_answer_gets_full_marks, test_each_mistake_is_diagnosed_at_its_first_wrong_step_and_scores_zero,
 test_every_slip_of_the_exercise_is_made_by_some_student,
 test_no_slip_coincides_with_the_reference) = standard_tests(ID, right, S.MISTAKES[ID])
