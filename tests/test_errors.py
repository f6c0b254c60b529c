"""Every bad input gets a ValueError or TypeError that names the argument, what was expected and what was
received, before anything reaches a Numba kernel; an overflowing pass warns with its first non-finite step.
"""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import bpttlab as bl
import naive
from bpttlab.engine import passes

T, D, H, O = 4, 2, 3, 3


@pytest.fixture
def net():
    return bl.make("elman", n_in=D, n_hidden=H, n_out=O, seed=0)


XS = np.ones((T, D))
Y = np.zeros((T, O))
CLASSES = np.array([0, 2, 1, 0])


def raises(exc, call, *fragments):
    """call() raises exc, and its message contains every fragment (case-sensitive, literal)."""
    with pytest.raises(exc) as info:
        call()
    msg = str(info.value)
    for f in fragments:
        assert f in msg, f"{f!r} not in {msg!r}"
    return msg


# -- names: unknown plugins list the registered ones ----------------------------------------------------


def test_unknown_cell_lists_registered_cells():
    msg = raises(ValueError, lambda: bl.make("lstmm"), "cell", "'lstmm'")
    assert all(name in msg for name in bl.registry.cells.names())
    assert "elman" in msg and "jordan" in msg


def test_unknown_activation_lists_registered_activations():
    raises(ValueError, lambda: bl.make("elman", activation="softsign"), "activation", "'softsign'", "identity",
           "relu", "sigmoid", "tanh")


def test_unknown_loss_lists_registered_losses(net):
    raises(ValueError, lambda: bl.bptt(net, XS, Y, loss="hinge"), "loss", "'hinge'", "cross_entropy", "mse")


@pytest.mark.parametrize("kwargs,exc,fragments", [
    (dict(cell=3), TypeError, ["cell", "int"]),
    (dict(activation=None), TypeError, ["activation", "NoneType"]),
    (dict(n_hidden=0), ValueError, ["n_hidden", "positive", "0"]),
    (dict(n_in=2.0), TypeError, ["n_in", "float"]),
    (dict(n_out=True), TypeError, ["n_out", "bool"]),
    (dict(init="xavier"), ValueError, ["init", "normal", "orthogonal", "identity", "'xavier'"]),
    (dict(seed="0"), TypeError, ["seed", "str"]),
])
def test_make_rejects_bad_arguments(kwargs, exc, fragments):
    raises(exc, lambda: bl.make(**kwargs), *fragments)


# -- inputs, targets, h0, parameters --------------------------------------------------------------------

BAD_CALLS = [
    # (what, kwargs for bptt, exception, fragments)
    ("xs wrong feature size", dict(xs=np.ones((T, D + 1))), ValueError, ["xs", f"(T, {D})", "(4, 3)"]),
    ("xs too many axes", dict(xs=np.ones((T, 1, 1, D))), ValueError, ["xs", "(4, 1, 1, 2)"]),
    ("xs empty", dict(xs=np.ones((0, D))), ValueError, ["xs", "T, B >= 1", "(0, 2)"]),
    ("xs empty batch", dict(xs=np.ones((T, 0, D))), ValueError, ["xs", "(4, 0, 2)"]),
    ("xs strings", dict(xs=np.array([["a", "b"]] * T)), TypeError, ["xs", "numeric", "<U1"]),
    ("xs objects", dict(xs=np.array([[None, None]] * T)), TypeError, ["xs", "numeric", "object"]),
    ("xs NaN", dict(xs=np.where(np.arange(T * D).reshape(T, D) == 5, np.nan, 1.0)), ValueError,
     ["xs", "NaN or inf", "(2, 1)"]),
    ("xs inf", dict(xs=np.full((T, D), np.inf)), ValueError, ["xs", "NaN or inf"]),
    ("targets wrong shape", dict(targets=np.zeros((T, O + 1))), ValueError,
     ["targets", f"({T}, {O})", f"({T}, {O + 1})"]),
    ("targets batched vs unbatched", dict(xs=np.ones((T, 2, D))), ValueError, ["targets", f"({T}, 2, {O})"]),
    ("targets NaN", dict(targets=np.full((T, O), np.nan)), ValueError, ["targets", "NaN or inf"]),
    ("targets strings", dict(targets=np.full((T, O), "x")), TypeError, ["targets", "numeric", "<U1"]),
    ("classes out of range", dict(targets=np.array([0, 1, 3, 0]), loss="cross_entropy"), ValueError,
     ["targets", "[0, 2]", "from 0 to 3"]),
    ("classes negative", dict(targets=np.array([0, -1, 1, 0]), loss="cross_entropy"), ValueError,
     ["targets", "from -1 to 1"]),
    ("classes fractional", dict(targets=np.array([0, 0.5, 1, 0]), loss="cross_entropy"), TypeError,
     ["targets", "integer", "float64"]),
    ("classes wrong shape", dict(targets=np.zeros((T, O), dtype=int), loss="cross_entropy"), ValueError,
     ["targets", f"({T},)", f"({T}, {O})"]),
    ("h0 wrong shape", dict(h0=np.zeros(H + 1)), ValueError, ["h0", f"({H},)", f"({H + 1},)"]),
    ("h0 NaN", dict(h0=np.array([0.0, np.nan, 0.0])), ValueError, ["h0", "NaN or inf"]),
    ("h0 strings", dict(h0=np.array(["a"] * H)), TypeError, ["h0", "numeric"]),
    ("reduction", dict(reduction="avg"), ValueError, ["reduction", "'sum'", "'mean'", "'avg'"]),
    ("loss type", dict(loss=3), TypeError, ["loss", "int"]),
    ("k2 zero", dict(k2=0), ValueError, ["k2", "positive", "got 0"]),
    ("k2 negative", dict(k2=-2), ValueError, ["k2", "positive", "got -2"]),
    ("k2 float", dict(k2=2.0), TypeError, ["k2", "int", "2.0"]),
    ("k2 bool", dict(k2=True), TypeError, ["k2", "True"]),
    ("clip mode", dict(clip=("l2", 1.0)), ValueError, ["clip", "norm", "value", "step", "('l2', 1.0)"]),
    ("clip string", dict(clip="norm"), ValueError, ["clip", "(mode, tau)", "'norm'"]),
    ("clip one element", dict(clip=("norm",)), ValueError, ["clip", "('norm',)"]),
    ("clip tau zero", dict(clip=("norm", 0)), ValueError, ["clip", "tau", "positive", "got 0"]),
    ("clip tau negative", dict(clip=("value", -1.0)), ValueError, ["clip", "tau", "-1.0"]),
    ("clip tau inf", dict(clip=("step", np.inf)), ValueError, ["clip", "tau", "finite", "inf"]),
    ("clip tau nan", dict(clip=("step", float("nan"))), ValueError, ["clip", "tau", "nan"]),
    ("clip tau string", dict(clip=("norm", "1")), ValueError, ["clip", "tau", "'1'"]),
    ("net", dict(net="elman"), TypeError, ["net", "Network", "str"]),
]


@pytest.mark.parametrize("what,kwargs,exc,fragments", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bptt_rejects_bad_input(net, what, kwargs, exc, fragments):
    args = dict(net=net, xs=XS, targets=Y, loss="mse")
    if kwargs.get("loss") == "cross_entropy":
        args["targets"] = CLASSES
    args.update(kwargs)
    raises(exc, lambda: bl.bptt(**args), *fragments)


@pytest.mark.parametrize("value,fragment", [(np.nan, "NaN or inf"), (np.inf, "NaN or inf"), (-np.inf, "NaN or inf")])
@pytest.mark.parametrize("name", ["W", "c"])
def test_non_finite_parameters(net, name, value, fragment):
    net.params[name].flat[0] = value
    raises(ValueError, lambda: bl.bptt(net, XS, Y), f"net.params['{name}']", fragment)
    raises(ValueError, lambda: bl.forward(net, XS), f"net.params['{name}']")
    raises(ValueError, lambda: bl.train(net, XS, Y), f"net.params['{name}']")


def test_parameter_of_wrong_shape_or_missing(net):
    net.params["U"] = np.zeros((H, D + 1))
    raises(ValueError, lambda: bl.bptt(net, XS, Y), "net.params['U']", f"({H}, {D})", f"({H}, {D + 1})")
    net.params["U"] = [[0.0] * D] * H
    raises(ValueError, lambda: bl.bptt(net, XS, Y), "net.params['U']", "list")
    del net.params["U"]
    raises(ValueError, lambda: bl.bptt(net, XS, Y), "net.params", "'U'")


def test_forward_and_contributions_validate_too(net):
    raises(ValueError, lambda: bl.forward(net, np.ones((T, D + 1))), "xs")
    raises(ValueError, lambda: bl.forward(net, XS, h0=np.ones((2, H))), "h0")
    raises(ValueError, lambda: bl.contributions(net, XS, Y, "Z"), "wrt", "W, U, b, V, c", "'Z'")
    raises(ValueError, lambda: bl.contributions(net, XS, Y, "W", k2=0), "k2", "got 0")


def test_contributions_refuses_a_table_that_is_too_large(net, monkeypatch):
    monkeypatch.setattr(passes, "TABLE_LIMIT", 1000)
    raises(ValueError, lambda: bl.contributions(net, np.ones((20, D)), np.zeros((20, O)), "W"),
           "contributions table for W", "T=20", "limit 1,000", "quadratic in T", "by_copy")
    with pytest.raises(ValueError) as info:
        bl.contributions(net, np.ones((20, D)), np.zeros((20, O)), "W")
    assert "by_loss" not in str(info.value)  # by_loss is quadratic too: it is no way out


def test_by_loss_refuses_a_quadratic_computation_that_is_too_large(net, monkeypatch):
    monkeypatch.setattr(passes, "TABLE_LIMIT", 1000)
    xs, ys = np.ones((20, D)), np.zeros((20, O))
    size = sum(p.size for p in net.params.values())
    res = bl.bptt(net, xs, ys)
    raises(ValueError, lambda: res.by_loss, "by_loss would hold", f"{20 * 20 * size:,} numbers", "T=20",
           "limit 1,000", "quadratic in T", "k2", "by_copy")
    assert res.by_copy["W"].shape == (20,) + net.params["W"].shape  # linear in T: still there
    small = 1000 // (20 * size)
    assert bl.bptt(net, xs, ys, k2=small).by_loss["W"].shape == (20,) + net.params["W"].shape


def test_by_loss_of_full_bptt_with_step_clipping_is_refused(net):
    res = bl.bptt(net, XS, Y, clip=("step", 0.1))
    raises(ValueError, lambda: res.by_loss, "by_loss", "k2")


@pytest.mark.parametrize("kwargs,exc,fragments", [
    (dict(k1=3, k2=2), ValueError, ["k2 must be >= k1", "k1=3", "k2=2"]),
    (dict(k1=2, k2=0), ValueError, ["k2", "positive", "got 0"]),
    (dict(k1=0), ValueError, ["k1", "positive", "got 0"]),
    (dict(k1=1.5), TypeError, ["k1", "1.5"]),
    (dict(lr=0.0), ValueError, ["lr", "positive", "0.0"]),
    (dict(lr=np.nan), ValueError, ["lr", "nan"]),
    (dict(lr="0.1"), ValueError, ["lr", "'0.1'"]),
    (dict(epochs=0), ValueError, ["epochs", "got 0"]),
    (dict(clip=("norm", -1)), ValueError, ["clip", "tau", "-1"]),
    (dict(clip=("max", 1)), ValueError, ["clip", "('max', 1)"]),
    (dict(reduction="none"), ValueError, ["reduction", "'none'"]),
    (dict(xs=np.ones((T, D, 1, 1))), ValueError, ["xs"]),
])
def test_train_rejects_bad_arguments(net, kwargs, exc, fragments):
    args = dict(xs=XS, targets=Y)
    args.update(kwargs)
    before = {k: v.copy() for k, v in net.params.items()}
    raises(exc, lambda: bl.train(net, **args), *fragments)
    assert all(np.array_equal(before[k], net.params[k]) for k in before), "a rejected call changed the network"


def test_gradcheck_rejects_a_bad_step(net):
    raises(ValueError, lambda: bl.gradcheck(net, XS, Y, eps=0), "eps", "0")
    raises(ValueError, lambda: bl.gradcheck(net, XS, Y, eps=2.0), "eps", "2.0")


def test_registry_lookups_with_wrong_types_and_names():
    raises(TypeError, lambda: bl.registry.cells.get(7), "cell", "int")
    raises(ValueError, lambda: bl.registry.losses.get("l1"), "'l1'", "cross_entropy, mse")
    raises(ValueError, lambda: bl.registry.cells.unregister("nope"), "'nope'", *bl.registry.cells.names())
    raises(ValueError, lambda: bl.registry.cells.register("elman", bl.registry.cells.get("elman")),
           "'elman'", "already registered")
    raises(ValueError, lambda: bl.registry.cells.register("not a name", object()), "'not a name'")


# -- exploding values: a warning with the first non-finite step, not a crash -------------------------------


def exploding(cell):
    """Identity activation, W = 1e200: the state grows 1e200-fold per step and overflows at step 3."""
    net = bl.make(cell, n_in=1, n_hidden=1, n_out=1, activation="identity")
    net.params.update(W=np.array([[1e200]]), U=np.array([[1.0]]), b=np.zeros(1), V=np.array([[1.0]]),
                      c=np.zeros(1))
    return net


def first_nonfinite_step(cell, net, xs):
    tr = naive.forward(cell, "identity", [net.params] * len(xs), xs[:, None, :], np.zeros((1, 1)))
    return int(np.argmax(~np.isfinite(tr.o).reshape(len(xs), -1).all(axis=1))) + 1


@pytest.mark.parametrize("cell", ["elman", "jordan"])
def test_overflow_warns_with_the_first_non_finite_step(cell):
    net = exploding(cell)
    xs = np.ones((6, 1))
    t = first_nonfinite_step(cell, net, xs)
    assert 1 < t < 6
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tr = bl.forward(net, xs)
        res = bl.bptt(net, xs, np.zeros((6, 1)))
        bl.bptt(net, xs, np.zeros((6, 1)), k2=2).by_loss
        bl.contributions(net, xs, np.zeros((6, 1)), "W")
    ours = [w for w in caught if "from time step" in str(w.message)]
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    steps = [int(m) for w in ours for m in re.findall(r"from time step t=(\d+)", str(w.message))]
    assert len(steps) == 4 and set(steps) == {t}, messages
    assert all(w.filename == __file__ for w in ours), "the warning must point at the caller's line"
    assert any("gradient is not finite" in m for m in messages)
    assert np.all(np.isfinite(tr.outputs[:t - 1])) and not np.all(np.isfinite(tr.outputs[t - 1]))
    assert not np.isfinite(res.loss)


@pytest.mark.parametrize("cell", ["elman", "jordan"])
def test_training_that_explodes_warns_once_with_the_absolute_step_and_returns(cell):
    """Blocks of k1 = 2 steps: the first overflow is at step 3, in the second block (its first step)."""
    net = exploding(cell)
    xs = np.ones((6, 1))
    t = first_nonfinite_step(cell, net, xs)
    assert t == 3, "block 1 (steps 1, 2) runs with the initial parameters, so training overflows at step 3 too"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hist = bl.train(net, xs, np.zeros((6, 1)), k1=2, k2=2, lr=0.1, epochs=3, progress=False)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and f"non-finite output from time step t={t} on" in messages[0], messages
    assert caught[0].filename == __file__
    assert len(hist.loss) == 9
