"""Checkpointed BPTT gives the stored-everything gradients, for every cell, with far less memory."""
from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

import bpttlab as bl
from bpttlab.cells.buffers import release_idle_memory
from bpttlab.engine.checkpoint import n_checkpoints

CELLS = ("elman", "jordan", "gru", "lstm")
T = 23  # not a multiple of the segment lengths below, so the last segment is short


def random_net(cell, D=2, H=3, O=2, seed=0):
    net = bl.make(cell, n_in=D, n_hidden=H, n_out=O, seed=seed)
    rng = np.random.default_rng(seed + 7)
    net.params = {k: rng.normal(scale=0.6, size=v.shape) for k, v in net.params.items()}
    return net


def assert_same_result(got, want, rtol=1e-12):
    for k, g in want.grads.items():
        scale = max(np.abs(g).max(), 1e-300)
        assert np.abs(got.grads[k] - g).max() <= rtol * scale, k
        assert np.abs(got.raw_grads[k] - want.raw_grads[k]).max() <= rtol * np.abs(want.raw_grads[k]).max(), k
    np.testing.assert_allclose(got.losses, want.losses, rtol=rtol, atol=0)
    assert got.loss == pytest.approx(want.loss, rel=rtol)
    assert got.grad_norm == pytest.approx(want.grad_norm, rel=rtol)
    assert got.clipped == want.clipped


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("checkpoint", [1, 2, 5, "sqrt", T, 100])
@pytest.mark.parametrize("B", [None, 3])
@pytest.mark.parametrize("kw", [{}, {"k2": 4}, {"k2": 9, "clip": ("step", 0.3)}, {"clip": ("step", 0.3)},
                                {"reduction": "mean", "clip": ("norm", 1e-3)}, {"k2": 40}],
                         ids=["full", "k2", "k2-step", "step", "mean-norm", "k2>T"])
def test_checkpointed_equals_plain(cell, checkpoint, B, kw):
    net = random_net(cell)
    rng = np.random.default_rng(1)
    lead = (T,) if B is None else (T, B)
    xs, ys = rng.normal(size=lead + (2,)), rng.normal(size=lead + (2,))
    h0 = rng.normal(size=lead[1:] + (net.state_size,))
    want = bl.bptt(net, xs, ys, h0=h0, **kw)
    got = bl.bptt(net, xs, ys, h0=h0, checkpoint=checkpoint, **kw)
    assert_same_result(got, want)


@pytest.mark.parametrize("cell", CELLS)
def test_checkpointed_cross_entropy(cell):
    net = random_net(cell, O=3)
    rng = np.random.default_rng(2)
    xs, ys = rng.normal(size=(T, 2, 2)), rng.integers(0, 3, size=(T, 2))
    assert_same_result(bl.bptt(net, xs, ys, loss="cross_entropy", checkpoint=4),
                       bl.bptt(net, xs, ys, loss="cross_entropy"))


@pytest.mark.parametrize("T_, n", [(1, 1), (16, 4), (17, 5), (99, 10), (100, 10), (101, 11)])
def test_sqrt_stores_ceil_sqrt_T_states(T_, n):
    assert n_checkpoints("sqrt", T_) == n == math.ceil(math.sqrt(T_))


@pytest.mark.parametrize("bad, error", [("square", TypeError), (0, ValueError), (-3, ValueError),
                                        (2.5, TypeError), (True, TypeError)])
def test_bad_checkpoint_is_named(bad, error):
    net = bl.make("elman")
    with pytest.raises(error, match="checkpoint must be None, 'sqrt' or a positive int"):
        bl.bptt(net, np.ones((5, 1)), np.ones((5, 1)), checkpoint=bad)


def test_checkpointed_result_keeps_no_trace():
    net = bl.make("gru", n_in=1, n_hidden=2, n_out=1)
    res = bl.bptt(net, np.ones((9, 1)), np.zeros((9, 1)), checkpoint="sqrt")
    assert res.trace is None
    for attr in ("by_copy", "by_loss"):
        with pytest.raises(ValueError, match=f"{attr} is not kept by checkpointed BPTT"):
            getattr(res, attr)


@pytest.mark.filterwarnings("ignore:the gradient is not finite", "ignore:overflow encountered")
def test_checkpointed_warns_at_the_same_step_as_plain():
    net = bl.make("elman", n_in=1, n_hidden=2, n_out=1, activation="identity", seed=0)
    net.params["W"] = np.eye(2) * 1e80
    xs, ys = np.ones((12, 1)), np.zeros((12, 1))
    with pytest.warns(RuntimeWarning, match="non-finite output") as plain:
        bl.bptt(net, xs, ys)
    with pytest.warns(RuntimeWarning, match="non-finite output") as ckpt:
        bl.bptt(net, xs, ys, checkpoint=3)
    step = [str(w.message).split(" on ")[0] for w in plain if "non-finite output" in str(w.message)]
    assert step == [str(w.message).split(" on ")[0] for w in ckpt if "non-finite output" in str(w.message)]
    # the same warnings, and none of NumPy's "invalid value encountered in ..." besides
    assert [str(w.message) for w in ckpt] == [str(w.message) for w in plain]


def _peak_bytes(fn) -> int:
    """The peak of fresh memory ``fn`` takes, with no recycled result buffers left over from earlier
    tests to hide part of it."""
    release_idle_memory()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("cell", CELLS)
def test_sqrt_checkpointing_needs_a_fraction_of_the_memory(cell):
    net = bl.make(cell, n_in=4, n_hidden=16, n_out=4, seed=0)
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=(4000, 4)), rng.normal(size=(4000, 4))
    bl.bptt(net, xs[:10], ys[:10], checkpoint=2)  # compile outside the measurement
    plain = _peak_bytes(lambda: bl.bptt(net, xs, ys))
    ckpt = _peak_bytes(lambda: bl.bptt(net, xs, ys, checkpoint="sqrt"))
    assert ckpt < plain / 8
