"""Exercise ``es-gradient`` (chapter 9): the reference against a naive NumPy estimate, its agreement with
the BPTT gradient as the directions grow many, a right answer, and each catalogued mistake written as a
student would."""
from __future__ import annotations

import numpy as np

import bpttlab as bl
from bpttlab.grading import get_exercise
from bpttlab.grading.instances import hidden_instances, public_instances
from pack_checks import SEEDS, standard_tests

ID = "es-gradient"
NAMES = ("W", "U", "b", "V", "c")


def _loss(p, xs, targets, *, recurrent="W", readout="h_t", reduce="sum"):
    W = p["W"].T if recurrent == "W.T" else p["W"]
    h, losses = np.zeros(len(p["b"])), []
    for x, y in zip(xs, targets):
        h_new = np.tanh(W @ h + p["U"] @ x + p["b"])
        o = p["V"] @ (h_new if readout == "h_t" else h) + p["c"]
        losses.append(0.5 * np.sum((o - y) ** 2))
        h = h_new
    return np.sum(losses) if reduce == "sum" else np.mean(losses)


def _es(W, U, b, V, c, xs, targets, eps, sigma, *, accumulate=True, order=1.0, **forward):
    theta = {"W": W, "U": U, "b": b, "V": V, "c": c}
    m = len(eps["W"])
    g = {k: np.zeros_like(v) for k, v in theta.items()}
    for i in range(m):
        up = _loss({k: theta[k] + sigma * eps[k][i] for k in theta}, xs, targets, **forward)
        down = _loss({k: theta[k] - sigma * eps[k][i] for k in theta}, xs, targets, **forward)
        for k in theta:
            term = order * (up - down) * eps[k][i]
            g[k] = g[k] + term if accumulate else term
    return {k: v / (2 * m * sigma) for k, v in g.items()}


def right(**kw):
    return _es(**kw)


def _student(**switches):
    return lambda **kw: _es(**kw, **switches)


MISTAKES = [
    ("down_minus_up", _student(order=-1.0), "sign_flipped"),
    ("overwritten", _student(accumulate=False), "no_accumulation"),
    ("mean_loss", _student(reduce="mean"), "mean_instead_of_sum"),
    ("readout_of_previous_state", _student(readout="h_prev"), "off_by_one_time"),
    ("W_transposed_forward", _student(recurrent="W.T"), "transposed"),
]


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
 test_every_slip_of_the_exercise_is_made_by_some_student) = standard_tests(ID, right, MISTAKES)
