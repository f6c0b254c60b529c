"""Property-based tests (hypothesis) over random shapes, cells, activations, losses and truncations: the
engine agrees with the naive reference and the decomposition identities hold."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

import bpttlab as bl
import naive
from engine_cases import ACTIVATIONS, CELLS, LOSSES, assert_close, rel_err

PROFILE = settings(max_examples=40, deadline=None)


@st.composite
def problems(draw):
    """A network with random sizes and values, inputs (batched or not), targets, h0 and k2."""
    cell = draw(st.sampled_from(CELLS))
    act = draw(st.sampled_from(ACTIVATIONS))
    loss = draw(st.sampled_from(LOSSES))
    T = draw(st.integers(1, 6))
    D, H, O = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    batched = draw(st.booleans())
    B = draw(st.integers(1, 3)) if batched else 1
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    net = bl.make(cell, n_in=D, n_hidden=H, n_out=O, activation=act, seed=int(rng.integers(2 ** 31)),
                  init=draw(st.sampled_from(["normal", "orthogonal"])))
    for name, p in net.params.items():
        net.params[name] = p + rng.normal(scale=0.3, size=p.shape)
    lead = (T, B) if batched else (T,)
    xs = rng.normal(size=lead + (D,))
    y = rng.integers(0, O, size=lead) if loss == "cross_entropy" else rng.normal(size=lead + (O,))
    S = net.state_size
    h0 = draw(st.sampled_from([None, "vector", "per_sequence" if batched else "vector"]))
    if h0 is not None:
        h0 = rng.normal(size=(B, S) if h0 == "per_sequence" else (S,))
    k2 = draw(st.none() | st.integers(1, T + 1))
    reduction = draw(st.sampled_from(["sum", "mean"]))
    return dict(cell=cell, act=act, loss=loss, net=net, xs=xs, y=y, h0=h0, k2=k2, reduction=reduction, T=T)


@PROFILE
@given(problems())
def test_engine_matches_reference_on_random_problems(pb):
    net = pb["net"]
    res = bl.bptt(net, pb["xs"], pb["y"], loss=pb["loss"], reduction=pb["reduction"], k2=pb["k2"], h0=pb["h0"])
    ref = naive.bptt(pb["cell"], pb["act"], net.params, pb["xs"], pb["y"], pb["loss"], pb["reduction"], pb["k2"],
                     None, pb["h0"])
    assert abs(res.loss - ref.loss) <= 1e-10 * abs(ref.loss) + 1e-300
    assert_close(res.grads, ref.grads, 1e-10, "grads")
    assert_close(res.by_copy, ref.by_copy, 1e-10, "by_copy")
    assert_close(res.by_loss, ref.by_loss, 1e-10, "by_loss")


@PROFILE
@given(problems(), st.sampled_from(["W", "U", "b", "V", "c"]))
def test_decomposition_identities_on_random_problems(pb, wrt):
    net, T = pb["net"], pb["T"]
    kw = dict(loss=pb["loss"], reduction=pb["reduction"], k2=pb["k2"], h0=pb["h0"])
    res = bl.bptt(net, pb["xs"], pb["y"], **kw)
    C = bl.contributions(net, pb["xs"], pb["y"], wrt, **kw)
    assert C.shape == (T, T) + net.params[wrt].shape
    assert rel_err(C.sum(axis=1), res.by_loss[wrt]) < 1e-12
    assert rel_err(C.sum(axis=0), res.by_copy[wrt]) < 1e-12
    assert rel_err(C.sum(axis=(0, 1)), res.grads[wrt]) < 1e-12
    t, k = np.indices((T, T))
    k2 = T if pb["k2"] is None else pb["k2"]
    assert np.all(C[(k > t) | (t - k >= k2)] == 0)
    if pb["cell"] == "elman" and wrt in ("V", "c"):
        assert np.all(C[k != t] == 0)


@settings(max_examples=15, deadline=None)
@given(problems(), st.integers(1, 3), st.integers(0, 3))
def test_training_matches_reference_on_random_problems(pb, k1, extra):
    k2 = k1 + extra
    net = pb["net"].copy()
    hist = bl.train(net, pb["xs"], pb["y"], k1=k1, k2=k2, lr=0.05, epochs=2, loss=pb["loss"],
                    reduction=pb["reduction"], h0=pb["h0"], progress=False)
    ref = naive.tbptt(pb["cell"], pb["act"], pb["net"].params, pb["xs"], pb["y"], k1, k2, 0.05, loss=pb["loss"],
                      reduction=pb["reduction"], epochs=2, h0=pb["h0"])
    assert rel_err(hist.loss, ref.loss) < 1e-10
    assert_close(net.params, ref.params, 1e-10, "params after training")
