"""Exercise checkpoint-segment: chained over segments it is plain BPTT; the carry is ∂E/∂h_lo; mistakes."""
import numpy as np
import pytest

import bpttlab as bl
import pack_checks as K
import students_checkpoint as S
from bpttlab.grading import get_exercise
from bpttlab.grading.instances import elman_problem
from bpttlab.grading.pack_checkpoint import reference

ID = "checkpoint-segment"
NAMES = ("W", "U", "b", "V", "c")


def _net(p):
    net = bl.make("elman", n_in=p["U"].shape[1], n_hidden=len(p["b"]), n_out=len(p["c"]), seed=0)
    net.params.update({k: p[k] for k in NAMES})
    return net


@pytest.mark.parametrize("seed, L", [(0, 1), (1, 2), (2, 3), (3, 5), (4, 12)])
def test_chained_over_segments_the_reference_is_plain_bptt(seed, L):
    p = elman_problem(np.random.default_rng(seed), T=12)
    net = _net(p)
    h = bl.forward(net, p["xs"]).h                       # the checkpoints h_0, h_L, h_2L, ...
    total, carry = np.zeros_like(p["W"]), np.zeros(len(p["b"]))
    for lo in reversed(range(0, 12, L)):
        hi = min(12, lo + L)
        ans = reference(**{k: p[k] for k in NAMES}, xs=p["xs"][lo:hi], targets=p["targets"][lo:hi],
                        h_lo=h[lo], carry=carry)
        total += ans["W"]
        carry = ans["carry"]
    assert np.allclose(total, bl.bptt(net, p["xs"], p["targets"]).grads["W"], rtol=1e-10, atol=1e-12)


def test_the_returned_carry_is_the_gradient_with_respect_to_the_checkpoint():
    p = elman_problem(np.random.default_rng(5), T=5)
    net, h_lo, eps = _net(p), np.array([0.3, -0.2, 0.5]), 1e-6
    carry = np.zeros(3)                                  # the last segment: nothing comes after it
    ans = reference(**{k: p[k] for k in NAMES}, xs=p["xs"], targets=p["targets"], h_lo=h_lo, carry=carry)
    fd = [(bl.bptt(net, p["xs"], p["targets"], h0=h_lo + e).loss - bl.bptt(net, p["xs"], p["targets"], h0=h_lo - e).loss)
          / (2 * eps) for e in np.eye(3) * eps]
    assert np.allclose(ans["carry"], fd, rtol=1e-6, atol=1e-8)


def test_right_answer_gets_full_marks():
    K.assert_full_marks(ID, S.segment_backward)


@pytest.mark.parametrize("student, mistake", S.MISTAKES, ids=[f.__name__ for f, _ in S.MISTAKES])
def test_each_mistake_is_diagnosed_at_its_first_wrong_step_and_scores_zero(student, mistake):
    K.assert_diagnosed_and_scores_zero(ID, student, mistake, S.segment_backward)


def test_every_catalogued_slip_fails_every_instance():
    K.assert_every_slip_fails_every_instance(ID)
    assert {m for _, m in S.MISTAKES} == {s.mistake for s in get_exercise(ID).slips}
