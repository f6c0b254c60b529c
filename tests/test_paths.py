"""The direct sum over all paths (O(T^2)) gives the backward recursion's gradient (O(T))."""
from __future__ import annotations

import numpy as np
import pytest

import bpttlab as bl

from naive_gated import naive_bptt, naive_contributions

CELLS = ("elman", "jordan", "gru", "lstm")


def random_net(cell, seed=0):
    net = bl.make(cell, n_in=2, n_hidden=3, n_out=2, seed=seed)
    rng = np.random.default_rng(seed + 11)
    net.params = {k: rng.normal(scale=0.6, size=v.shape) for k, v in net.params.items()}
    return net


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("kw", [{}, {"k2": 3}, {"k2": 5, "clip": ("step", 0.2)}, {"reduction": "mean"},
                                {"clip": ("value", 1e-2)}])
@pytest.mark.parametrize("B", [None, 2])
def test_all_paths_equals_the_recursion(cell, kw, B):
    net = random_net(cell)
    rng = np.random.default_rng(4)
    lead = (11,) if B is None else (11, B)
    xs, ys = rng.normal(size=lead + (2,)), rng.normal(size=lead + (2,))
    fast, slow = bl.bptt(net, xs, ys, **kw), bl.bptt_all_paths(net, xs, ys, **kw)
    for k, g in fast.grads.items():
        np.testing.assert_allclose(slow.grads[k], g, rtol=1e-11, atol=1e-13 * np.abs(g).max(), err_msg=k)
    assert slow.loss == pytest.approx(fast.loss, rel=1e-14)
    for k, g in fast.by_loss.items():
        np.testing.assert_allclose(slow.by_loss[k], g, rtol=1e-11, atol=1e-13 * np.abs(g).max(), err_msg=k)


@pytest.mark.parametrize("cell, wrt", [("gru", "W_n"), ("lstm", "W_g")])
def test_all_paths_is_the_sum_of_the_naive_table(cell, wrt):
    net = random_net(cell)
    rng = np.random.default_rng(5)
    xs, ys = rng.normal(size=(8, 2)), rng.normal(size=(8, 2))
    s0 = np.zeros(net.state_size)
    C = naive_contributions(cell, net.params, xs, ys, s0, wrt)
    got = bl.bptt_all_paths(net, xs, ys).grads[wrt]
    np.testing.assert_allclose(got, C.sum(axis=(0, 1)), rtol=1e-11)
    np.testing.assert_allclose(got, naive_bptt(cell, net.params, xs, ys, s0)[wrt], rtol=1e-11)


def test_step_clipping_needs_k2():
    net = bl.make("gru")
    with pytest.raises(ValueError, match=r"clip=\('step', tau\) needs k2"):
        bl.bptt_all_paths(net, np.ones((4, 1)), np.ones((4, 1)), clip=("step", 1.0))
