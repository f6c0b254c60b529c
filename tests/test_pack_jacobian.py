"""Exercise jacobian-product: reference against finite differences and the bound, students' mistakes."""
import numpy as np
import pytest

import bpttlab as bl
import pack_checks as K
import students_jacobian as S
from bpttlab.grading import get_exercise
from bpttlab.grading.pack_jacobian import reference

ID = "jacobian-product"


def _fd_products(W, U, b, h0, xs, eps=1e-6):
    """∂h_{k+n}/∂h_k by central differences of the engine's forward pass, column by column."""
    net = bl.make("elman", n_in=U.shape[1], n_hidden=len(b), n_out=1, seed=0)
    net.params.update(W=W, U=U, b=b)
    cols = []
    for j in range(len(b)):
        e = np.zeros(len(b))
        e[j] = eps
        cols.append((bl.forward(net, xs, h0=h0 + e).h[1:] - bl.forward(net, xs, h0=h0 - e).h[1:]) / (2 * eps))
    return np.stack(cols, axis=-1)                     # (T, H, H): [n-1, i, j] = ∂h_{k+n}[i]/∂h_k[j]


@pytest.mark.parametrize("inst", K.all_instances(ID), ids=lambda i: i.label)
def test_reference_matches_finite_differences_and_bounds_the_norms(inst):
    ans = reference(**inst.inputs)
    assert np.allclose(ans["J"], _fd_products(**inst.inputs), rtol=1e-6, atol=1e-8)
    W = inst.inputs["W"]
    assert np.allclose(ans["bound"], np.linalg.svd(W, compute_uv=False)[0] ** np.arange(1, len(ans["J"]) + 1))
    assert np.all(np.linalg.norm(ans["J"], 2, axis=(1, 2)) <= ans["bound"] * (1 + 1e-12))


def test_instances_are_non_normal_so_the_spectral_radius_bound_is_distinguishable():
    for inst in K.all_instances(ID):
        W = inst.inputs["W"]
        assert max(abs(np.linalg.eigvals(W))) < 0.99 * np.linalg.norm(W, 2)


def test_right_answer_gets_full_marks():
    K.assert_full_marks(ID, S.jacobian_products)


@pytest.mark.parametrize("student, mistake", S.MISTAKES, ids=[f.__name__ for f, _ in S.MISTAKES])
def test_each_mistake_is_diagnosed_at_its_first_wrong_step_and_scores_zero(student, mistake):
    K.assert_diagnosed_and_scores_zero(ID, student, mistake, S.jacobian_products)


def test_every_catalogued_slip_fails_every_instance():
    K.assert_every_slip_fails_every_instance(ID)
    assert {m for _, m in S.MISTAKES} == {s.mistake for s in get_exercise(ID).slips}
