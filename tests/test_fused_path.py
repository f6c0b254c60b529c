"""The small-problem path of bl.bptt: parameters checked once per network, results packed in flat
buffers and made into arrays on first access. Nothing a user does to the network between calls may
reach a stale check or a stale result; every number is held against the naive NumPy reference
(tests/naive.py) or, bit for bit, against the fused kernel called with separate arrays."""
from __future__ import annotations

import copy

import numpy as np
import pytest

import bpttlab as bl
import naive
from bpttlab.activations import TANH
from bpttlab.cells import elman_kernels

pytestmark = pytest.mark.usefixtures("compiled_elman")


@pytest.fixture(scope="module")
def compiled_elman():
    bl.engine.warm("elman")  # the fused path only runs on the compiled tier


def problem(seed=0, T=10):
    rng = np.random.default_rng(seed)
    return bl.make("elman", n_in=1, n_hidden=3, n_out=1, seed=seed), rng.normal(size=(T, 1)), rng.normal(size=(T, 1))


def assert_matches(res, params, xs, ys, every=("grads",)):
    """res against the naive reference, on the gradient (and by_copy, by_loss if asked)."""
    ref = naive.bptt("elman", "tanh", {k: np.asarray(params[k], dtype=np.float64) for k in "WUbVc"}, xs, ys)
    assert res.loss == pytest.approx(ref.loss, rel=1e-12)
    for what in every:
        for k, g in getattr(ref, what).items():
            np.testing.assert_allclose(getattr(res, what)[k], g, rtol=1e-10, atol=1e-12)


def test_an_in_place_edit_of_a_weight_reaches_the_next_call():
    net, xs, ys = problem()
    before = bl.bptt(net, xs, ys)
    net.params["W"][0, 1] += 0.5
    net.params["b"] *= 0.0
    net.params["b"] += 0.25
    after = bl.bptt(net, xs, ys)
    assert_matches(after, net.params, xs, ys)
    assert not np.allclose(after.grads["W"], before.grads["W"])


def test_a_new_array_or_a_new_params_dict_reaches_the_next_call():
    net, xs, ys = problem()
    bl.bptt(net, xs, ys)
    net.params["U"] = np.full((3, 1), 0.7)
    assert_matches(bl.bptt(net, xs, ys), net.params, xs, ys)
    net.params = {k: 0.5 * v for k, v in reversed(net.params.items())}  # another dict, in another order
    assert_matches(bl.bptt(net, xs, ys), net.params, xs, ys)
    net.params["note"] = "not a parameter"  # ignored, as by the general path
    assert_matches(bl.bptt(net, xs, ys), net.params, xs, ys)
    del net.params["note"]
    net.params["c"] = np.array([0.3], dtype=np.float32)  # converted to float64 by the general path, as before
    res = bl.bptt(net, xs, ys)
    assert net.params["c"].dtype == np.float64
    assert_matches(res, net.params, xs, ys)


def test_a_kept_result_describes_the_pass_it_ran_after_the_weights_change():
    net, xs, ys = problem()
    reference = net.copy()
    res = bl.bptt(net, xs, ys)  # nothing but the loss and the norm is made yet
    net.params["W"] += 0.3
    net.params["V"][:] = 0.0
    bl.bptt(net, 2.0 * xs, ys)
    assert_matches(res, reference.params, xs, ys, every=("grads", "raw_grads", "by_copy", "by_loss"))
    general = bl.bptt(reference, xs.tolist(), ys)  # a list of inputs takes the general path
    np.testing.assert_allclose(res.trace.h, general.trace.h, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res.losses, general.losses, rtol=1e-12)


def test_a_parameter_reshaped_in_place_is_reported_as_before():
    net, xs, ys = problem()
    bl.bptt(net, xs, ys)
    net.params["W"].shape = (9,)
    with pytest.raises(ValueError, match=r"net.params\['W'\] must be an array of shape \(3, 3\), got \(9,\)"):
        bl.bptt(net, xs, ys)
    net.params["W"].shape = (3, 3)
    assert_matches(bl.bptt(net, xs, ys), net.params, xs, ys)


def test_a_parameter_retyped_in_place_is_converted_as_before():
    net, xs, ys = problem()
    bl.bptt(net, xs, ys)
    W = net.params["W"]
    W[:] = np.arange(9.0).reshape(3, 3)
    W.dtype = np.int64  # the same object, other numbers (the float64 bit patterns read as integers)
    expected = {**net.params, "W": W.astype(np.float64)}
    res = bl.bptt(net, xs, ys)
    assert net.params["W"].dtype == np.float64
    assert_matches(res, expected, xs, ys)


def test_nan_written_into_a_checked_weight_is_still_refused():
    net, xs, ys = problem()
    bl.bptt(net, xs, ys)
    net.params["V"][0, 2] = np.nan
    with pytest.raises(ValueError, match=r"net.params\['V'\] contains NaN or inf"):
        bl.bptt(net, xs, ys)


def test_gradients_raw_gradients_and_two_results_do_not_share_memory():
    net, xs, ys = problem()
    first, second = bl.bptt(net, xs, ys), bl.bptt(net, xs, ys)
    raw = first.raw_grads["W"].copy()
    first.grads["W"][:] = 0.0
    np.testing.assert_array_equal(first.raw_grads["W"], raw)
    np.testing.assert_array_equal(second.grads["W"], raw)
    assert not np.shares_memory(first.trace.h, second.trace.h)
    assert first.grads is first.grads  # made once, then kept


@pytest.mark.parametrize("config", [(1, 3, 1, 10, 1), (2, 5, 3, 7, 4), (3, 4, 2, 1, 2)])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_every_packed_array_lands_where_it_is_read(config, loss):
    """The trace bit for bit as the compiled forward kernel gives it, the raw gradient bit for bit as the
    gradient, and the gradient, losses and decompositions as the naive reference gives them."""
    D, H, O, T, B = config
    rng = np.random.default_rng(1)
    net = bl.make("elman", n_in=D, n_hidden=H, n_out=O, seed=2)
    xs = rng.normal(size=(T, B, D))
    ys = rng.normal(size=(T, B, O)) if loss == "mse" else rng.integers(0, O, size=(T, B))
    res = bl.bptt(net, xs, ys, loss=loss, reduction="mean")
    trace = elman_kernels.ElmanKernels().forward(net.params, xs, np.zeros((B, H)), TANH)
    assert list(res.trace.arrays) == list(trace) == ["states", "h", "a", "outputs"]
    for name, array in trace.items():
        assert res.trace.arrays[name].tobytes() == array.tobytes()
    ref = naive.bptt("elman", "tanh", net.params, xs, ys, loss=loss, reduction="mean")
    assert res.loss == pytest.approx(ref.loss, rel=1e-12)
    np.testing.assert_allclose(res.losses, ref.losses, rtol=1e-12, atol=1e-15)
    for k, v in net.params.items():
        assert res.raw_grads[k].tobytes() == res.grads[k].tobytes()
        assert res.grad_norm == pytest.approx(np.sqrt(sum(np.sum(g * g) for g in res.grads.values())), rel=1e-14)
        for what in ("grads", "by_copy", "by_loss"):
            np.testing.assert_allclose(getattr(res, what)[k], getattr(ref, what)[k], rtol=1e-10, atol=1e-13)


def test_copies_of_a_network_with_checked_parameters_follow_their_own_edits():
    net, xs, ys = problem()
    bl.bptt(net, xs, ys)
    for other in (copy.deepcopy(net), copy.copy(net)):
        other.params["W"] = other.params["W"] + 0.1  # copy.copy shares the dict: restored below
        assert_matches(bl.bptt(other, xs, ys), other.params, xs, ys)
        other.params["W"] = other.params["W"] - 0.1
    assert_matches(bl.bptt(net, xs, ys), net.params, xs, ys)
