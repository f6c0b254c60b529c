"""Exercise ``end-of-window-update`` (chapter 7b): the reference against finite differences of the window's
last loss, a right NumPy answer, and each catalogued mistake written as a student would."""
from __future__ import annotations

import numpy as np

from bpttlab.grading import get_exercise
from bpttlab.grading.instances import hidden_instances, public_instances
import pack_students as S
from pack_checks import SEEDS, finite_difference_gradient, standard_tests

ID = "end-of-window-update"
right = S.CORRECT[ID]


def _last_loss(h0, xs, targets):
    def loss(p):
        h = np.array(h0, dtype=float)
        for x in xs:
            h = np.tanh(p["W"] @ h + p["U"] @ x + p["b"])
        return 0.5 * float(np.sum((p["V"] @ h + p["c"] - targets[-1]) ** 2))
    return loss


def test_reference_is_a_step_down_the_finite_difference_gradient_of_the_last_loss():
    ex = get_exercise(ID)
    for inst in public_instances(ex) + hidden_instances(ex, SEEDS[0]):
        kw = inst.inputs
        params = {k: kw[k] for k in "WUbVc"}
        fd = finite_difference_gradient(_last_loss(kw["h0"], kw["xs"], kw["targets"]), params)
        for k in params:
            np.testing.assert_allclose(inst.answer[k], params[k] - kw["lr"] * fd[k], rtol=1e-7, atol=1e-8)
        assert set(inst.answer) == set(params)


(test_a_right_answer_gets_full_marks, test_each_mistake_is_diagnosed_at_its_first_wrong_step_and_scores_zero,
 test_every_slip_of_the_exercise_is_made_by_some_student,
 test_no_slip_coincides_with_the_reference) = standard_tests(ID, right, S.MISTAKES[ID])
