"""Exercise ``es-gradient`` (chapter 9): the reference against a naive NumPy estimate, its agreement with
the BPTT gradient as the directions grow many, a right answer, and each catalogued mistake written as a
student would."""
from __future__ import annotations

import numpy as np

import bpttlab as bl
from bpttlab.grading import get_exercise
from bpttlab.grading.instances import hidden_instances, public_instances
import pack_students as S
from pack_checks import SEEDS, standard_tests

ID = "es-gradient"
right = S.CORRECT[ID]
NAMES = ("W", "U", "b", "V", "c")


def test_reference_equals_the_naive_estimate():
    ex = get_exercise(ID)
    for inst in public_instances(ex) + hidden_instances(ex, SEEDS[0]):
        mine = right(**inst.inputs)
        for k in NAMES:
            np.testing.assert_allclose(inst.answer[k], mine[k], rtol=1e-9, atol=1e-12)


def test_with_many_small_directions_the_estimate_points_along_the_bptt_gradient():
    kw = get_exercise(ID).generate(np.random.default_rng(3))
    rng = np.random.default_rng(4)
    m = 4000
    eps = {k: rng.normal(size=(m, *np.shape(kw[k]))) for k in NAMES}
    g_hat = get_exercise(ID).reference(**{**kw, "eps": eps, "sigma": 1e-4})
    net = bl.make("elman", n_in=2, n_hidden=3, n_out=2, seed=None)
    net.params = {k: np.array(kw[k]) for k in NAMES}
    g = bl.bptt(net, kw["xs"], kw["targets"]).grads
    flat = lambda d: np.concatenate([np.ravel(d[k]) for k in NAMES])
    cosine = flat(g_hat) @ flat(g) / np.linalg.norm(flat(g_hat)) / np.linalg.norm(flat(g))
    n = flat(g).size
    assert cosine > 0.9 * np.sqrt(m / (m + n + 1))


(test_a_right_answer_gets_full_marks, test_each_mistake_is_diagnosed_at_its_first_wrong_step_and_scores_zero,
 test_every_slip_of_the_exercise_is_made_by_some_student,
 test_no_slip_coincides_with_the_reference) = standard_tests(ID, right, S.MISTAKES[ID])
