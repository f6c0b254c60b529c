"""Exercise ``jordan-grad-V`` (chapter 8): the reference against finite differences of a NumPy Jordan
network, a right NumPy answer, and each catalogued mistake written as a student would."""
from __future__ import annotations

import numpy as np

from bpttlab.grading import get_exercise
from bpttlab.grading.instances import hidden_instances, public_instances
from pack_checks import SEEDS, finite_difference_gradient, standard_tests

ID = "jordan-grad-V"


def _grad_V(W, U, b, V, c, xs, targets, *, steps_back=None, derivative="1-h^2", answer="V", h_shift=0,
            accumulate=True, error_sign=1.0):
    """A student's Jordan backward pass, with the switches the mistaken students below flip."""
    o, h, a = [np.zeros(len(c))], [None], [None]
    for x in xs:
        a.append(W @ o[-1] + U @ x + b)
        h.append(np.tanh(a[-1]))
        o.append(V @ h[-1] + c)
    T = len(xs)
    h[0] = np.zeros(len(b))
    g = np.zeros_like(V)
    for t in range(T, 0, -1):
        # dE/do_t: its own error plus what the later losses send back through o_t, up to steps_back steps
        obar = np.zeros(len(c))
        for s in range(t, T + 1 if steps_back is None else min(T, t + steps_back - 1) + 1):
            d = error_sign * (o[s] - targets[s - 1])      # dE_s/do_s, carried back to o_t
            for j in range(s, t, -1):
                fprime = {"1-h^2": 1 - h[j] ** 2, "none": 1.0, "1-a^2": 1 - a[j] ** 2}[derivative]
                d = W.T @ (fprime * (V.T @ d))
            obar += d
        term = np.outer(obar, h[t - h_shift])
        g = g + term if accumulate or t == T else g
    return g.T if answer == "V.T" else g


def right(**kw):
    return _grad_V(**kw)


def _student(**switches):
    return lambda **kw: _grad_V(**kw, **switches)


MISTAKES = [
    ("elman_formula", _student(steps_back=1), "explicit_only"),
    ("one_step_of_feedback", _student(steps_back=2), "wrong_truncation"),
    ("no_derivative", _student(derivative="none"), "activation_derivative_missing"),
    ("derivative_at_a", _student(derivative="1-a^2"), "activation_derivative_wrong"),
    ("transposed_answer", _student(answer="V.T"), "transposed"),
    ("previous_hidden", _student(h_shift=1), "off_by_one_time"),
    ("only_last_term", _student(accumulate=False), "no_accumulation"),
    ("y_minus_o", _student(error_sign=-1.0), "sign_flipped"),
]


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
        explicit = _student(steps_back=1)(**kw)
        assert np.linalg.norm(inst.answer - explicit) > 0.05 * np.linalg.norm(inst.answer)


(test_a_right_answer_gets_full_marks, test_each_mistake_is_diagnosed_at_its_first_wrong_step_and_scores_zero,
 test_every_slip_of_the_exercise_is_made_by_some_student) = standard_tests(ID, right, MISTAKES)
