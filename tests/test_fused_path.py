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


@pytest.mark.parametrize("name, shape", [("W", (9, 1)), ("W", (1, 9)), ("U", (1, 3)), ("V", (3, 1))])
def test_a_parameter_reshaped_in_place_to_as_many_dimensions_is_reported_as_before(name, shape):
    """Per call only the parameters' identity, dtype and number of dimensions are compared; the fused
    kernel itself declines shapes that no longer fit, and the general path reports them."""
    net, xs, ys = problem()
    bl.bptt(net, xs, ys)
    bl.bptt(net, xs, ys)  # the second call runs on the call plan
    old = net.params[name].shape
    net.params[name].shape = shape
    with pytest.raises(ValueError, match=rf"net.params\['{name}'\] must be an array of shape "
                                         rf"\({old[0]}, {old[1]}\), got \({shape[0]}, {shape[1]}\)"):
        bl.bptt(net, xs, ys)
    net.params[name].shape = old
    assert_matches(bl.bptt(net, xs, ys), net.params, xs, ys)


def test_a_parameter_whose_strides_are_changed_in_place_is_read_as_it_now_reads():
    """The compiled entry point indexes C-order arrays by their shape alone; an array made to read
    transposed in place (deprecated in NumPy, still possible) must be read as NumPy reads it."""
    net, xs, ys = problem()
    bl.bptt(net, xs, ys)
    bl.bptt(net, xs, ys)
    W = net.params["W"]
    W[:] = np.arange(9.0).reshape(3, 3) / 10.0
    with pytest.warns(DeprecationWarning):
        W.strides = W.strides[::-1]  # the same object, now its transpose
    expected = {**net.params, "W": np.array(W)}
    assert_matches(bl.bptt(net, xs, ys), expected, xs, ys)


def test_read_only_and_fortran_order_arrays_give_the_reference_gradient():
    net, xs, ys = problem()
    h0 = np.asfortranarray(np.full((1, 3), 0.25))  # (B, H) in Fortran order: declined, general path
    bl.bptt(net, xs, ys)
    for a in (xs, ys, *net.params.values()):
        a.flags.writeable = False
    for _ in range(2):
        assert_reference(bl.bptt(net, xs, ys), net, xs, ys)
    np.testing.assert_allclose(bl.bptt(net, xs, ys, h0=h0).grads["W"],
                               naive.bptt("elman", "tanh", net.params, xs, ys, h0=h0[0]).grads["W"], rtol=1e-10)


def test_a_loss_name_registered_anew_is_not_served_by_the_old_plan():
    import dataclasses

    from bpttlab.losses import MSE

    net, xs, ys = problem()
    name = "fused_path_test_loss"
    bl.registry.losses.register(name, dataclasses.replace(MSE, name=name))
    try:
        first = [bl.bptt(net, xs, ys, loss=name) for _ in range(2)][-1]
        assert_reference(first, net, xs, ys)
        doubled = dataclasses.replace(MSE, name=name, value=lambda o, y: 2.0 * MSE.value(o, y),
                                      grad=lambda o, y: 2.0 * MSE.grad(o, y))
        bl.registry.losses.register(name, doubled, replace=True)
        second = bl.bptt(net, xs, ys, loss=name)
    finally:
        bl.registry.losses.unregister(name)
    assert second.loss == pytest.approx(2.0 * first.loss, rel=1e-12)
    np.testing.assert_allclose(second.grads["W"], 2.0 * first.grads["W"], rtol=1e-12)


def test_the_fused_kernel_is_called_through_its_compiled_entry_point():
    """bl.bptt calls the compiled version the engine warms, skipping Numba's dispatch; if the kernel's
    arguments changed without its recorded signature, the dispatcher would be used (slower, still right)."""
    from bpttlab.cells.direct import entry_point

    entry = entry_point(elman_kernels._full_bptt, elman_kernels._FULL_BPTT_TYPES)
    assert entry is not elman_kernels._full_bptt
    assert tuple(elman_kernels._FULL_BPTT_TYPES) in elman_kernels._full_bptt.overloads


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


def assert_reference(res, net, xs, ys, **kw):
    """res against the naive reference for the same call."""
    ref = naive.bptt("elman", "tanh", net.params, xs, ys, **kw)
    assert res.loss == pytest.approx(ref.loss, rel=1e-12)
    for k, g in ref.grads.items():
        np.testing.assert_allclose(res.grads[k], g, rtol=1e-10, atol=1e-12)


def test_the_kept_call_plan_follows_every_change_of_size_loss_reduction_clip_and_h0():
    """A repeat call reuses what the last one found out about its sizes; any other call must not."""
    net, xs, ys = problem()
    rng = np.random.default_rng(3)
    batch = rng.normal(size=(10, 4, 1)), rng.normal(size=(10, 4, 1))
    short = xs[:6].copy(), ys[:6].copy()
    classes = np.zeros(10, dtype=np.int64)
    h0 = np.full(3, 0.5)
    calls = [
        ((xs, ys), {}), ((xs, ys), {}), (short, {}), (batch, {}), ((xs, ys), {"reduction": "mean"}),
        ((xs, ys), {"loss": "cross_entropy"}), ((xs, classes), {"loss": "cross_entropy"}), ((xs, ys), {"h0": h0}),
        ((xs, ys), {"clip": ("norm", 0.01)}), ((xs, ys), {"k2": 20}), ((xs, ys), {}), (short, {"reduction": "mean"}),
    ]
    for (x, y), kw in calls:
        if kw.get("loss") == "cross_entropy" and y.dtype != np.int64:
            with pytest.raises((TypeError, ValueError)):
                bl.bptt(net, x, y, **kw)
            continue
        res = bl.bptt(net, x, y, **kw)
        assert_reference(res, net, x, y, **{k: v for k, v in kw.items() if k != "k2"})
        if "clip" in kw:
            assert res.clipped and res.grad_norm > 0.01


def test_writing_into_a_result_reaches_neither_the_next_call_nor_another_result():
    net, xs, ys = problem()
    first = bl.bptt(net, xs, ys)
    expected = bl.bptt(net.copy(), xs, ys)
    for array in (first.trace.h, first.trace.arrays["a"], first.trace.outputs, first.losses, *first.grads.values(),
                  *first.raw_grads.values()):
        array += 1.0  # the zero initial state's copy h[0] included
    second = bl.bptt(net, xs, ys)
    assert second.loss == expected.loss
    for k in "WUbVc":
        assert second.grads[k].tobytes() == expected.grads[k].tobytes()
    assert second.trace.h.tobytes() == expected.trace.h.tobytes() and not second.trace.h[0].any()


def test_inputs_and_targets_edited_in_place_between_calls_are_seen():
    net, xs, ys = problem()
    bl.bptt(net, xs, ys)
    xs[3] += 1.0
    ys[:] = 0.25
    assert_reference(bl.bptt(net, xs, ys), net, xs, ys)
    ys.dtype = np.int64  # the same targets object, other numbers: converted as before
    assert_reference(bl.bptt(net, xs, ys), net, xs, ys.astype(np.float64))
    ys.dtype = np.float64
    ys[:] = -0.5
    assert_reference(bl.bptt(net, xs, ys), net, xs, ys)
    xs[5] = np.inf
    with pytest.raises(ValueError, match="xs contains NaN or inf"):
        bl.bptt(net, xs, ys)


def test_a_deep_copy_runs_on_its_own_arrays():
    net, xs, ys = problem()
    bl.bptt(net, xs, ys)
    other = copy.deepcopy(net)
    other.params["W"] += 0.2  # in place: the copy's checked arrays, not the original's
    assert_reference(bl.bptt(other, xs, ys), other, xs, ys)
    assert_reference(bl.bptt(net, xs, ys), net, xs, ys)


def test_the_numpy_tier_takes_over_when_compilation_is_switched_off():
    from bpttlab.engine import compilation

    net, xs, ys = problem()
    fused = bl.bptt(net, xs, ys)
    previous = compilation.set_mode("off")
    try:
        general = bl.bptt(net, xs, ys)
    finally:
        compilation.set_mode(previous)
    assert type(general) is not type(fused)
    assert_reference(general, net, xs, ys)


def test_a_call_plan_keeps_small_inputs_alive_but_not_large_ones():
    import gc
    import weakref

    net = bl.make("elman", n_in=1, n_hidden=3, n_out=1, seed=0)
    for T, kept in ((10, True), (20000, False)):
        xs, ys = np.ones((T, 1)), np.zeros((T, 1))
        for _ in range(2):  # the second call runs on the plan the first made
            res = bl.bptt(net, xs, ys)
        if kept:  # the naive reference is quadratic in T
            assert_reference(res, net, xs, ys)
        refs = weakref.ref(xs), weakref.ref(ys)
        del xs, ys, res  # a result keeps its inputs (by_copy and by_loss run on them)
        gc.collect()
        assert all((ref() is not None) == kept for ref in refs)
